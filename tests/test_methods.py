"""The method seam: a method defined outside the package (tests/plugin) appears in the DAG
without editing any shared file, in any include order; plans are checked at parse time.
(The end-to-end run in test_workflow takes the toy methods through the tables and the PDF.)"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from test_workflow import workflow_copy

from litesr.methods.registry import get, methods

PLUGIN = REPO / "tests" / "plugin"

TINY = {
    "seed": 0,
    "scales": [2],
    "data": {
        "source": "embedded",
        "train": {"tr": ["astronaut"]},
        "test": {"te": ["chelsea"]},
    },
    "models": {
        "base": {
            "arch": "edsr",
            "args": {"n_resblocks": 1, "n_feats": 8},
            "train": {"steps": 4, "batch_size": 2, "lr_patch": 16},
        }
    },
    "methods": {"toya": {"source": "base"}, "toyb": {"source": "base", "note": "b"}},
    "cost": {"reserve_cores": 1},
}


def snakemake(wd: Path, *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    env = os.environ | {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": os.pathsep.join([str(PLUGIN), os.environ.get("PYTHONPATH", "")]),
        "LITESR_METHODS": "toya:toyb",
    }
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=wd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )


def with_config(tmp_path: Path, config: dict) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    wd = workflow_copy(tmp_path)
    (wd / "tiny.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return wd


def dry_jobs(wd: Path) -> set[tuple[str, str]]:
    """``(rule, outputs)`` of every job of a dry run to the PDF."""
    result = snakemake(wd, "-n", "reports/all.pdf", "--configfile", "tiny.yaml")
    assert result.returncode == 0, result.stdout[-3000:]
    jobs = re.findall(r"^rule (\w+):\n(?:.*\n)*?\s+output: (.*)$", result.stdout, re.M)
    assert jobs
    return set(jobs)


def test_the_built_in_method_is_registered():
    assert "ail" in methods() and get("ail").schema.is_file()
    with pytest.raises(ValueError, match="nosuch.*ail"):
        get("nosuch")


def test_a_plugin_method_joins_the_dag_in_any_include_order(tmp_path):
    forward = dry_jobs(with_config(tmp_path / "ab", TINY))
    swapped = dict(TINY, methods=dict(reversed(list(TINY["methods"].items()))))
    backward = dry_jobs(with_config(tmp_path / "ba", swapped))
    assert forward == backward
    rules = {rule for rule, _ in forward}
    assert {"toya_marker", "toyb_marker", "method_model", "method_figure"} <= rules
    outputs = " ".join(out for _, out in forward)
    assert "results/models/toya-copy/x2/model.safetensors" in outputs
    assert "results/figures/toyb_bar.png" in outputs


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"methods": {"toya": {"source": "nosuch"}}}, "nosuch"),
        ({"methods": {"toya": {"source": "base", "colour": "red"}}}, "colour"),
        ({"methods": {"toyc": {"source": "base"}}}, "toyc"),
    ],
)
def test_a_wrong_method_section_fails_the_dry_run(tmp_path, change, named):
    wd = with_config(tmp_path, TINY | change)
    result = snakemake(wd, "-n", "--configfile", "tiny.yaml")
    assert result.returncode != 0 and named in result.stdout, result.stdout[-2000:]


def test_a_misspelled_recipe_key_fails_the_dry_run_naming_it(tmp_path):
    config = yaml.safe_load(yaml.safe_dump(TINY))
    config["models"]["base"]["train"]["stpes"] = 3
    result = snakemake(with_config(tmp_path, config), "-n", "--configfile", "tiny.yaml")
    assert result.returncode != 0 and "stpes" in result.stdout


def test_every_entry_resolves_and_loading_the_methods_imports_no_torch_nor_plotting():
    """Parsing the workflow loads every method package for its plan: step and report code
    (torch, matplotlib) is imported by ``entry`` when a job runs it, never at load time."""
    from litesr.methods.registry import entry

    for name, method in methods().items():
        for kind in ("steps", "figures", "tables"):
            for key in getattr(method, kind):
                assert callable(entry(kind, f"{name}.{key}")), f"{name}.{key}"
    code = (
        "import sys; from litesr.methods.registry import methods; methods(); "
        "import litesr.claims, litesr.methods.plan, litesr.report.provenance; "
        "print(sorted({'torch', 'seaborn', 'matplotlib.pyplot'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_method_package_still_exports_its_step_classes():
    from litesr.methods import ail, drc

    assert ail.Importance.__module__ == "litesr.methods.ail.importance"
    assert drc.candidate_widths.__module__ == "litesr.methods.drc.search"
    with pytest.raises(AttributeError, match="litesr.methods.ail.*nosuch"):
        ail.nosuch  # noqa: B018


def imported(path: Path) -> set[str]:
    """The modules a source file imports (``from a import b`` gives ``a`` and ``a.b``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def test_the_plan_imports_nothing_from_the_report():
    """One arrow: the report is drawn from the plan's files, the plan knows no report code
    (the claims both need live in litesr.claims, which imports neither)."""
    src = REPO / "src" / "litesr"
    plan_side = [src / "claims.py", *(src / "methods").glob("*.py")]
    plan_side += (src / "methods").glob("*/__init__.py")
    for path in plan_side:
        back = {m for m in imported(path) if m.startswith("litesr.report")}
        assert not back, f"{path.relative_to(src)} imports {back}"
    assert not {m for m in imported(src / "claims.py") if m.startswith("litesr.methods")}


@pytest.mark.parametrize(
    ("args", "named"),
    [
        ({"n_feets": 8}, "n_feets"),
        ({"n_resblocks": 10_000_000}, "LITESR_MAX_LAYERS"),
        ({"scale": 2}, "scale"),
        ({"n_feats": 8.5}, "whole numbers"),
    ],
)
def test_a_model_s_args_are_checked_at_plan_time_without_building_it(args, named):
    from litesr.methods.collect import ConfigError, check_arch

    with pytest.raises(ConfigError, match=f"models.m.args: .*{named}"):
        check_arch("edsr", args, [2, 4], "models.m.args")
    check_arch("edsr", {"n_resblocks": 2, "n_feats": 8}, [2, 4], "models.m.args")
