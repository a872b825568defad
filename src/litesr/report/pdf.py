"""Assemble ``reports/all.pdf``, typeset by typst from ``templates/report.typ``.

The report is read by people: typeset tables with units and the best value per column in
bold, figures at page width with captions that say what to look at, the provenance and
how the numbers were made.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import typst
import yaml

from litesr.atomic import atomic_path
from litesr.report.deviations import for_print as deviations_for_print
from litesr.report.provenance import provenance
from litesr.report.scorecard import for_print as scorecard_for_print
from litesr.report.tables import accuracy_for_print, cost_for_print, typeset

TEMPLATE = Path(__file__).with_name("templates") / "report.typ"

HOW = (
    "HR images are modcropped to the scale; LR images are made with MATLAB's "
    "imresize(·, 1/s, 'bicubic') (antialiased Keys cubic, edge pixels repeated, uint8 "
    "rounding after each pass), bit-identical to MATLAB on Set5 and Set14. PSNR and SSIM "
    "are computed on BT.601 Y with `scale` pixels cropped at each border and the SR output "
    "rounded to uint8, averaged over images; grey images are measured on their grey level; "
    "SSIM uses an 11×11 Gaussian window, σ = 1.5. MACs count one multiply-accumulate once "
    "(convolutions and matrix products). Latency is the median of repeated forwards with "
    "the thread count fixed; CPU memory is the peak RSS of a separate inference process "
    "minus its RSS before the forward. Training is seeded and resumable; every number "
    "below comes from the files of this run, and the audit notebook recomputes them."
)

COST_NOTE = (
    "Params, MACs at a 256×256 LR input (NTIRE) and at the LR size of a 1280×720 output, "
    "CPU latency (ms, whole 720p-output image) and CPU inference memory (MiB); GPU columns "
    "(NTIRE protocol: CUDA events, warm-up, median; peak allocated memory) when CUDA is "
    "present. Bold: the lowest value per column."
)


def build_report(
    out: Path,
    spec: dict[str, Any],
    method_table: Callable[[str], Callable[..., pd.DataFrame]] | None = None,
    deviations: Callable[[str], Any] | None = None,
) -> Path:
    """Write the PDF described by ``spec``.

    ``spec`` keys: ``config`` (the workflow configuration), ``summary`` (per-set PSNR/SSIM
    TSV), ``cost`` (cost TSV), ``catalog`` (each model's method, variant and size),
    ``tables`` (methods' tables: ``[title, "<method>.<kind>", params, caption]``),
    ``figures`` (``[title, png, caption]``), ``scorecard`` (the claims TSV, first page) and
    ``absent`` (models made at some scales only: their missing ``scales`` and ``why``).
    ``method_table(kind)`` gives the function that makes a method's table and
    ``deviations(method)`` a method's checked deviations from its authors' code, or ``None``
    when it has none yet (the command passes the method registry's lookups: the report
    imports no method). Every method of ``config["methods"]`` gets a deviations section
    after the scorecard; without the lookup each reads "not yet audited".
    """
    summary, cost, catalog = (
        pd.read_csv(spec[k], sep="\t") for k in ("summary", "cost", "catalog")
    )
    config = spec["config"]
    info = provenance(config)
    packages = info.pop("packages")
    info["packages"] = ", ".join(f"{k} {v}" for k, v in packages.items())
    tables = []
    for title, kind, params, caption in spec.get("tables", []):
        if method_table is None:
            raise ValueError(f"table {kind!r} is a method's, and no method lookup was given")
        frame = method_table(kind)(summary, cost, catalog, **params)
        tables.append({"title": title, "table": typeset(frame, caption)})
    data = {
        "methods": ", ".join(sorted(config.get("methods", {}))) or "no method enabled",
        "note": config.get("report", {}).get("note", ""),
        "scorecard": scorecard_for_print(
            pd.read_csv(spec["scorecard"], sep="\t", keep_default_na=False, na_values=[""])
        ),
        "deviations": deviations_for_print(
            config.get("methods", {}), deviations or (lambda _name: None)
        ),
        "how": HOW,
        "provenance": {k: str(v) for k, v in info.items()},
        "accuracy": accuracy_for_print(summary, spec.get("absent")),
        "cost": cost_for_print(cost, COST_NOTE),
        "tables": tables,
        "figures": [
            {"title": t, "png": str(Path(png).resolve()), "caption": c}
            for t, png, c in spec.get("figures", [])
        ],
        "config": yaml.safe_dump(config, sort_keys=False, width=100, default_flow_style=None),
    }
    with atomic_path(out) as tmp:
        try:
            typst.compile(
                TEMPLATE.read_bytes(),
                output=str(tmp),
                root="/",
                sys_inputs={"data": json.dumps(data)},
            )
        except RuntimeError as err:
            raise ValueError(f"typst could not typeset {out}: {err}") from err
    return Path(out)
