"""A toy method defined outside the package, to show a method plugs in without editing any
shared file. ``make_method(name)`` gives a method that copies a config model
(``<name>-copy``), draws a figure from the summary and a marker file made by its own rules
file, and adds a table listing its models from the catalog."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from litesr.methods.plan import Figure, MadeModel, Plan, Table  # noqa: E402
from litesr.methods.registry import Method  # noqa: E402
from litesr.models.store import load_model, save_model  # noqa: E402

HERE = Path(__file__).parent


def make_method(name: str) -> Method:
    def copy(*, source, scale, out, log, stages, device, note):
        model, meta = load_model(source)
        save_model(
            model,
            out,
            arch=meta["arch"],
            args=meta["args"],
            meta={"method": name, "variant": "copy", "size": 1},
        )
        pd.DataFrame({"step": [1], "loss": [0.0]}).to_csv(log, sep="\t", index=False)

    def table(summary, cost, catalog, **params):
        mine = catalog[catalog.method == name][["model", "scale", "variant"]]
        return summary.merge(mine, on=["model", "scale"]).set_index("model")[["variant", "psnr_y"]]

    def bar(*, summary, marker, out):
        data = pd.read_csv(summary, sep="\t")
        fig, ax = plt.subplots(figsize=(4, 3))
        ax.bar(data.model, data.psnr_y)
        ax.set_title(Path(marker).read_text().strip())
        fig.savefig(out, dpi=100)
        plt.close(fig)
        return Path(out)

    def plan(section, config, paths):
        return Plan(
            made=[
                MadeModel(
                    name=f"{name}-copy",
                    step="copy",
                    inputs={"source": section["source"]},
                    params={"note": section.get("note", "")},
                )
            ],
            figures=[
                Figure(
                    name=f"{name}_bar",
                    title=f"{name.upper()} FIGURE",
                    kind="bar",
                    files={"summary": paths.summary, "marker": f"results/{name}/marker.txt"},
                    caption=f"the {name} caption",
                )
            ],
            tables=[Table(title=f"{name.upper()} TABLE", kind="table")],
        )

    return Method(
        name=name,
        schema=HERE / "toy_schema.yaml",
        plan=plan,
        steps={"copy": copy},
        figures={"bar": bar},
        tables={"table": table},
        rules=HERE / f"{name}.smk",
    )
