"""The `litesr` command: one sub-command per workflow step, each a thin call into the package.

User-facing errors (bad images, bad configs, failed downloads, diverged training) are printed
as one line naming the file and the problem, with exit status 1.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import logging
import os
import sys
import traceback
from pathlib import Path


def user_errors() -> tuple[type[BaseException], ...]:
    """Errors a user can act on (bad input, bad config, a failed download, a diverged run,
    an output being made by another run): one line. Anything else is a bug and keeps its
    traceback. Imported late, so that ``--quiet`` is set before tqdm is first imported."""
    from litesr.atomic import OutputBusy
    from litesr.data.download import DownloadError
    from litesr.report.audit import AuditFailed
    from litesr.train.loop import TrainingDiverged

    return (ValueError, OSError, DownloadError, TrainingDiverged, OutputBusy, AuditFailed)


# Sub-commands that live beside the code they drive: each module has ``add_parser(sub)``,
# which adds its sub-parser and sets ``func`` (called with the parsed arguments).
PLUGGED_COMMANDS: tuple[str, ...] = (
    "litesr.config_check",
    "litesr.models.releases",
    "litesr.tools.upscale",
    "litesr.tools.export",
    "litesr.report.audit",
)


def _json(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON: {text!r} ({err})") from err


def cmd_download(a: argparse.Namespace) -> None:
    from litesr.data.download import download_dataset

    download_dataset(a.dataset, a.root)


def cmd_prepare(a: argparse.Namespace) -> None:
    from litesr.data.sources import hr_images, prepare_set

    images = hr_images(a.source, a.where, a.scale, a.download_root)
    prepare_set(images, a.scale, a.out, progress=not a.quiet)


def call_with_spec(fn, spec: dict, what: str, quiet: bool = False):
    """Call a keyword-only entry point with a JSON spec; a wrong or missing key is named.
    ``quiet`` passes ``progress=False`` to an entry point that takes it: tqdm's TQDM_DISABLE
    (set by ``--quiet``) does not override a bar's explicit ``disable=``."""
    if not isinstance(spec, dict):
        raise ValueError(f"{what}: --spec must be a JSON object, got {type(spec).__name__}")
    signature = inspect.signature(fn)
    if quiet and "progress" in signature.parameters:
        spec = {"progress": False, **spec}
    try:
        signature.bind(**spec)
    except TypeError as err:
        raise ValueError(f"{what}: bad --spec: {err}") from None
    return fn(**spec)


def cmd_train(a: argparse.Namespace) -> None:
    from litesr.launch import job_spec
    from litesr.train.run import train_model

    call_with_spec(train_model, job_spec(a.spec, a.argv), "train", a.quiet)


def cmd_run(a: argparse.Namespace) -> None:
    from litesr.launch import job_spec
    from litesr.methods.registry import entry

    step = entry("steps", f"{a.method}.{a.step}")
    call_with_spec(step, job_spec(a.spec, a.argv), f"run {a.method} {a.step}", a.quiet)


def workflow_form(a: argparse.Namespace) -> None:
    """Check the arguments of ``litesr evaluate --model`` (one prepared set, the workflow's
    form) and set its defaults: one scale, device cpu."""
    if a.models or a.sets or a.reference:
        raise ValueError("give --model (one prepared set) or MODEL... --sets DIR..., not both")
    needed = [f"--{k}" for k in ("name", "data", "set", "scale") if getattr(a, k) is None]
    if needed or len(a.scale) != 1:
        raise ValueError(f"--model needs {' '.join(needed) or 'one --scale'}")
    a.scale, a.device = a.scale[0], a.device or "cpu"


def cmd_evaluate(a: argparse.Namespace) -> None:
    if a.model is None:  # the user's form: models on folders of HR images
        cmd_score(a)
        return
    workflow_form(a)
    from litesr.evaluate.run import evaluate_set
    from litesr.launch import hold_gpus

    hold_gpus(1, a.device)
    evaluate_set(
        a.model,
        a.data,
        a.scale,
        a.out,
        model_name=a.name,
        set_name=a.set,
        device=a.device,
        save_dir=a.save_dir,
        progress=not a.quiet,
        backend=a.backend,
        threads=a.threads,
    )


def cmd_score(a: argparse.Namespace) -> None:
    from litesr.evaluate.score import mean_table, score_models

    if not a.models or not a.sets:
        raise ValueError("give models (files, releases, bicubic) and --sets DIR...")
    means, notes = score_models(
        a.models,
        a.sets,
        a.out,
        scales=a.scale,
        reference=a.reference,
        device=a.device or "auto",
        progress=not a.quiet,
        backend=a.backend,
        threads=a.threads,
    )
    print(mean_table(means, notes))


def cmd_summarize(a: argparse.Namespace) -> None:
    import pandas as pd

    from litesr.evaluate.run import summarize
    from litesr.tsv import write_tsv

    write_tsv(summarize(pd.concat([pd.read_csv(p, sep="\t") for p in a.inputs])), a.out)


def cmd_cost(a: argparse.Namespace) -> None:
    from litesr.launch import hold_gpus
    from litesr.measure.cost import measure_models

    hold_gpus(1, a.device)

    measure_models(a.models, a.out, names=a.names, cpu_threads=a.threads, device=a.device)


def cmd_catalog(a: argparse.Namespace) -> None:
    from litesr.report.catalog import write_catalog

    write_catalog(a.models, a.names, a.out)


def cmd_figures(a: argparse.Namespace) -> None:
    from litesr.methods.registry import entry
    from litesr.report.draw import make_figure

    make_figure(a.kind, a.out, a.inputs, method_figure=lambda kind: entry("figures", kind))


def cmd_scorecard(a: argparse.Namespace) -> None:
    from litesr.report.scorecard import write_scorecard

    call_with_spec(write_scorecard, {**a.spec, "out": a.out}, "scorecard")


def cmd_report(a: argparse.Namespace) -> None:
    from litesr.methods.deviations import method_deviations
    from litesr.methods.registry import entry, get
    from litesr.report.pdf import build_report

    build_report(
        a.out,
        a.spec,
        method_table=lambda kind: entry("tables", kind),
        deviations=lambda name: method_deviations(get(name)),
    )


def parser() -> argparse.ArgumentParser:
    from litesr.tools.backends import add_backend_options  # imports torch: after OMP settings

    p = argparse.ArgumentParser(prog="litesr", description=__doc__.splitlines()[0])
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.add_argument(
        "--log-file",
        type=Path,
        help="write logs and tracebacks here; a user error's one line also reaches the console",
    )
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("download", help="fetch and unpack one dataset (MD5-checked, resumable)")
    s.add_argument("--dataset", required=True)
    s.add_argument("--root", type=Path, required=True)
    s.set_defaults(func=cmd_download)

    s = sub.add_parser("prepare", help="modcrop HR and make MATLAB-bicubic LR for one set")
    s.add_argument("--source", required=True, choices=["embedded", "folder", "download"])
    s.add_argument("--where", type=_json, required=True, help="JSON: image names or a folder")
    s.add_argument("--scale", type=int, required=True)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--download-root", type=Path, default=Path("resources"))
    s.set_defaults(func=cmd_prepare)

    s = sub.add_parser("train", help="train one registered architecture plainly")
    s.add_argument(
        "--spec",
        type=_json,
        required=True,
        help="JSON keyword arguments of litesr.train.run.train_model",
    )
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("run", help="run one step of a registered method")
    s.add_argument("method", help="a registered method (litesr.methods.registry)")
    s.add_argument("step", help="one of the method's steps")
    s.add_argument("--spec", type=_json, required=True, help="JSON keyword arguments")
    s.set_defaults(func=cmd_run)

    s = sub.add_parser(
        "evaluate",
        help="PSNR/SSIM of models on folders of HR images (or of one model on a prepared set)",
        description="litesr evaluate MODEL... --sets DIR... --out DIR: models (litesr model "
        "files, release names, bicubic; NAME=... names one) on folders of HR images ({scale} "
        "is replaced by the scale), prepared as the workflow prepares them; writes "
        "per_image.tsv and mean.tsv to --out and prints the means (see "
        "litesr.evaluate.score). The workflow's form: --model FILE|bicubic --name N --data "
        "PREPARED --set S --scale S --out TSV.",
    )
    s.add_argument("models", nargs="*", help="model files, release names or bicubic")
    s.add_argument("--sets", nargs="+", metavar="[NAME=]DIR", help="folders of HR images")
    s.add_argument("--reference", type=Path, help="the folder of the release files")
    s.add_argument("--scale", type=int, nargs="+", help="default: the scales each model serves")
    s.add_argument(
        "--out",
        type=Path,
        required=True,
        help="folder for per_image.tsv and mean.tsv (with --model: the per-image TSV)",
    )
    s.add_argument(
        "--device", choices=["cpu", "cuda", "auto"], help="default: auto (cpu with --model)"
    )
    s.add_argument("--model", help="the workflow's form: a .safetensors file or 'bicubic'")
    s.add_argument("--name", help="with --model: the model's name in the TSV")
    s.add_argument("--data", type=Path, help="with --model: a prepared set (HR/, LR/)")
    s.add_argument("--set", help="with --model: the set's name in the TSV")
    s.add_argument("--save-dir", type=Path, default=None, help="also write the SR PNGs here")
    add_backend_options(
        s,
        "auto (default): onnxruntime where litesr upscale's measured rule picks it, else "
        "torch; both float32, the PSNR within 0.001 dB (see litesr.evaluate.run)",
    )
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("summarize", help="per-set means of per-image TSVs")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("inputs", nargs="+", type=Path)
    s.set_defaults(func=cmd_summarize)

    s = sub.add_parser("cost", help="params, MACs, latency and peak memory of models")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--threads", type=int, default=1)
    s.add_argument("--device", default="auto", choices=["cpu", "cuda", "auto"])
    s.add_argument("--names", nargs="+", help="model names, in the order of the files")
    s.add_argument("models", nargs="+", type=Path)
    s.set_defaults(func=cmd_cost)

    s = sub.add_parser("catalog", help="method, variant and size of models, from their metadata")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--names", nargs="+", required=True, help="model names, in file order")
    s.add_argument("models", nargs="+", type=Path)
    s.set_defaults(func=cmd_catalog)

    s = sub.add_parser("figure", help="draw one report figure")
    s.add_argument("kind")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--inputs", type=_json, required=True, help="JSON keyword arguments")
    s.set_defaults(func=cmd_figures)

    s = sub.add_parser("scorecard", help="the papers' claims: paper, authors' weights, ours")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--spec", type=_json, required=True, help="JSON: claims, summary, cost, config")
    s.set_defaults(func=cmd_scorecard)

    s = sub.add_parser("report", help="assemble reports/all.pdf")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--spec", type=_json, required=True, help="JSON: tables, figures, config")
    s.set_defaults(func=cmd_report)

    for module in PLUGGED_COMMANDS:
        importlib.import_module(module).add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # OpenMP threads that wait sleep at once instead of spinning; libgomp reads this when
    # torch is first imported, after this line. Spinning threads take the cores of busy
    # neighbours: on a 2-core CPU beside one busy process, 2 spinning threads ran 1.2-2.6
    # times slower than 1 thread, sleeping ones 0.8-1.1 times; on an idle CPU both gave
    # 0.6-0.85 (benchmarks/measured/bench_threads_cpu.txt). A value set is kept.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    quiet = argparse.ArgumentParser(add_help=False)
    quiet.add_argument("-q", "--quiet", action="store_true")
    if quiet.parse_known_args(argv)[0].quiet:
        # tqdm reads its settings when first imported: before any command module is.
        os.environ["TQDM_DISABLE"] = "1"
    args = parser().parse_args(argv)
    args.argv = argv
    console = sys.stderr
    # Under torchrun (a training job on several processes) rank 0 appends to the job's log,
    # after the launcher's lines; the other ranks report warnings and errors on the console.
    rank = int(os.environ.get("RANK", "0"))
    mode = "a" if "WORLD_SIZE" in os.environ else "w"
    log_file = (
        open(args.log_file, mode, buffering=1)  # noqa: SIM115
        if args.log_file and rank == 0
        else None
    )
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format=f"%(asctime)s {f'rank {rank} ' if rank else ''}%(levelname)s %(name)s: %(message)s",
        stream=log_file or console,
        force=True,
    )
    try:
        if log_file:
            sys.stderr = log_file
        args.func(args)
    except user_errors() as err:
        line = f"litesr {args.command}: error: {err}"
        for stream in dict.fromkeys([sys.stderr, console]):
            print(line, file=stream)
        return 1
    except Exception:
        if log_file:
            traceback.print_exc(file=log_file)
        raise
    finally:
        sys.stderr = console
    return 0


if __name__ == "__main__":
    sys.exit(main())
