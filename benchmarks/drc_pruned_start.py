"""DRC diagnostic: each selection's network right after pruning, before any fine-tuning.

For a finished DRC run (``--run``: the workflow's folder), on a prepared test set: the
primal; DRC's network after its last selection stage (``drc-r<R>/x<S>/stages/select*``);
the primal pruned to the L1 baseline's uniform widths by filter L1 norm; and the same with
each removed channel's mean input to its consumer conv (over ``--patches`` LR crops of the
training set) folded into that consumer's bias, the constant part of what the removed
channel contributed. Prints Set PSNR-Y per ratio (a table).

Example::

    python benchmarks/drc_pruned_start.py --run . --train SunHays80 --set Set5 --scale 4
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from litesr.compress.prune import conv_widths, l1_norm
from litesr.data.images import read_image
from litesr.evaluate.metrics import psnr_y
from litesr.evaluate.run import super_resolve
from litesr.methods.drc.pipeline import layer_pairs, load_primal, prune_to
from litesr.models.store import load_model

CPU = torch.device("cpu")


def set_psnr(model: nn.Module, folder: Path, scale: int) -> float:
    """Mean PSNR-Y of ``model`` on a prepared set (``HR/`` and ``LR/``)."""
    values = []
    for hr_path in sorted((folder / "HR").glob("*.png")):
        lr, hr = read_image(folder / "LR" / hr_path.name), read_image(hr_path)
        with torch.no_grad():
            values.append(psnr_y(super_resolve(model, lr, CPU), hr, scale))
    return float(np.mean(values))


def calibration(folder: Path, patches: int, size: int, seed: int) -> torch.Tensor:
    """``patches`` random LR crops of ``size`` px from a prepared training set, in [0, 1]."""
    rng = np.random.default_rng(seed)
    files = sorted((folder / "LR").glob("*.png"))
    crops = []
    for path in rng.choice(files, patches, replace=len(files) < patches):
        image = read_image(path)
        i = rng.integers(0, image.shape[0] - size + 1)
        j = rng.integers(0, image.shape[1] - size + 1)
        crops.append(image[i : i + size, j : j + size])
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255


def fold_removed_means(model: nn.Module, widths: dict[str, int], batch: torch.Tensor) -> None:
    """Add to each consumer's bias what the channels L1 removes give on average."""
    pairs = layer_pairs(model)
    means: dict[str, torch.Tensor] = {}

    def keep_mean(name: str):
        return lambda _m, inputs: means.__setitem__(name, inputs[0].mean(dim=(0, 2, 3)))

    hooks = [model.get_submodule(c).register_forward_pre_hook(keep_mean(c)) for c in pairs.values()]
    with torch.no_grad():
        model(batch)
        for producer, consumer_name in pairs.items():
            order = torch.argsort(l1_norm(model.get_submodule(producer)), descending=True)
            removed = order[widths[producer] :]
            consumer = model.get_submodule(consumer_name)
            kernel_sums = consumer.weight[:, removed].sum(dim=(2, 3))
            consumer.bias += (kernel_sums * means[consumer_name][removed]).sum(dim=1)
    for hook in hooks:
        hook.remove()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, default=Path("."))
    p.add_argument("--train", default="SunHays80")
    p.add_argument("--set", default="Set5")
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--patches", type=int, default=32)
    p.add_argument("--patch", type=int, default=48)
    a = p.parse_args()
    torch.set_num_threads(1)
    models, data = a.run / "results" / "models", a.run / "results" / "data"
    test, x = data / a.set / f"x{a.scale}", f"x{a.scale}"
    primal_file = models / "drc-primal" / x / "model.safetensors"
    batch = calibration(data / a.train / x, a.patches, a.patch, seed=0)
    rows = [
        {
            "ratio": 0.0,
            "selection": "primal",
            "psnr_y": set_psnr(load_primal(primal_file, CPU)[0], test, a.scale),
        }
    ]
    for drc in sorted(models.glob("drc-r[0-9]*")):
        ratio = int(drc.name.removeprefix("drc-r")) / 100
        stages = sorted((drc / x / "stages").glob("select*.safetensors"),
                        key=lambda f: int(re.search(r"select(\d+)", f.name).group(1)))  # fmt: skip
        rows.append(
            {
                "ratio": ratio,
                "selection": "DRC",
                "psnr_y": set_psnr(load_model(stages[-1])[0], test, a.scale),
            }
        )
        l1 = next((models).glob(f"drc-l1-{drc.name.removeprefix('drc-')}-s*"))
        primal = load_primal(primal_file, CPU)[0]
        widths = {k: v for k, v in conv_widths(load_model(l1 / x / "model.safetensors")[0]).items()
                  if k in layer_pairs(primal)}  # fmt: skip
        for compensated in (False, True):
            model = load_primal(primal_file, CPU)[0]
            if compensated:
                fold_removed_means(model, widths, batch)
            prune_to(model, widths, l1_norm)
            name = "L1 + removed means in the bias" if compensated else "L1"
            rows.append(
                {"ratio": ratio, "selection": name, "psnr_y": set_psnr(model, test, a.scale)}
            )
    print(pd.DataFrame(rows).round(3).to_string(index=False))


if __name__ == "__main__":
    main()
