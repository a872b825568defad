"""Bad configs fail at parse time in one line naming the key: whole numbers, bounded model
arguments and sizes, patches the model accepts, crop boxes, safe paths, YAML alias bombs."""

from __future__ import annotations

import copy
import inspect
import re
import time
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from snakemake.utils import update_config
from test_workflow import snakemake, workflow_copy

from litesr.config_check import PATH_PATTERN, check_schema, strict_load
from litesr.methods.collect import ConfigError, collect
from litesr.methods.plan import Paths
from litesr.models import _REGISTRY, available
from litesr.train.spec import TrainSpec

SCHEMA = REPO / "config" / "schema.yaml"
TINY = {
    "scales": [4],
    "data": {"source": "embedded", "train": {"tr": ["astronaut"]}, "test": {"te": ["camera"]}},
    "models": {
        "tiny": {
            "arch": "edsr",
            "args": {"n_resblocks": 1, "n_feats": 8},
            "train": {"steps": 4, "batch_size": 2, "lr_patch": 8, "lr": 1.0e-3},
        }
    },
}
AIL = {
    **TINY,
    "methods": {
        "ail": yaml.safe_load((REPO / "config" / "config.yaml").read_text())["methods"]["ail"]
    },
}


def _with(base: dict, path: str, value) -> dict:
    cfg = copy.deepcopy(base)
    *parents, last = path.split(".")
    node = cfg
    for key in parents:
        node = node[key]
    node[last] = value
    return cfg


@pytest.mark.parametrize(
    ("base", "path", "value", "named"),
    [
        (TINY, "scales", [4.0], "config key scales[0]: 4.0 is not of type 'integer'"),
        (TINY, "models.tiny.train.steps", 4.0, "config key models.tiny.train.steps: 4.0"),
        (TINY, "models.tiny.args.n_feats", 8.0, "config key models.tiny.args.n_feats: 8.0"),
        (AIL, "methods.ail.rounds", 2.0, "config key methods.ail.rounds: 2.0"),
        (AIL, "methods.ail.round.steps", 4.0, "config key methods.ail.round.steps"),
    ],
)
def test_whole_numbers_must_be_written_as_integers(base, path, value, named) -> None:
    with pytest.raises(ValueError, match="write whole numbers") as err:
        check_schema(_with(base, path, value), SCHEMA)
    assert str(err.value).startswith(named)


@pytest.mark.parametrize(
    ("path", "value", "named"),
    [
        ("models.tiny.args.n_feats", 1_000_000, "models.tiny.args.n_feats: 1000000 is greater"),
        ("models.tiny.args.n_resblocks", 10**7, "models.tiny.args.n_resblocks: 10000000 is gr"),
        ("models.tiny.args.n_feats", 0, "models.tiny.args.n_feats: 0 is less"),
        ("models.tiny.args.depth", 3, "models.tiny.args: Additional properties"),
        ("models.tiny.train.steps", 10**12, "models.tiny.train.steps: 1000000000000 is gr"),
        ("report", {"crop": {"set": "te", "image": "camera", "box": [0, 0, 0, 0]}}, "crop.box["),
        ("report", {"crop": {"set": "te", "image": "camera", "box": [0, 0, 8, -1]}}, "crop.box[3]"),
    ],
)
def test_model_arguments_and_boxes_are_bounded(path, value, named) -> None:
    with pytest.raises(ValueError, match="config key") as err:
        check_schema(_with(TINY, path, value), SCHEMA)
    assert named in str(err.value)


def test_the_schema_bounds_every_argument_of_every_architecture() -> None:
    defs = yaml.safe_load(SCHEMA.read_text())["$defs"]
    for arch in available():
        params = set(inspect.signature(_REGISTRY[arch]).parameters) - {"scale"}
        assert set(defs[f"{arch}_args"]["properties"]) == params, arch


@pytest.mark.parametrize(
    "value",
    [
        "r$(touch /tmp/PWNED)",
        "r`touch /tmp/PWNED`",
        "r; touch /tmp/PWNED",
        "r' x",
        'r" x',
        "r\ntouch /tmp/PWNED",
        "r\n",
        "r | cat",
        "r && ls",
        "r > x",
    ],
)
def test_paths_with_shell_metacharacters_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="config key data.download_root: .* is not a safe path"):
        check_schema(_with(TINY, "data.download_root", value), SCHEMA)
    folder = _with(TINY, "data.source", "folder")
    with pytest.raises(ValueError, match=r"config key data.test.te: .* is not a safe path"):
        check_schema(_with(folder, "data.test", {"te": value}), SCHEMA)


def test_ordinary_paths_are_accepted() -> None:
    folder = _with(TINY, "data.source", "folder")
    check_schema(_with(folder, "data.test", {"te": "data/Set5/x{scale}/HR"}), SCHEMA)
    check_schema(_with(TINY, "data.download_root", "my resources/v1.2"), SCHEMA)
    authors = {"reference": "../shared/data/reference", "releases": ["dipnet"]}
    check_schema(_with(TINY, "methods", {"authors": authors}), SCHEMA)


SCHEMAS = [
    SCHEMA,
    REPO / "src" / "litesr" / "train" / "recipe.schema.yaml",
    *sorted((REPO / "src" / "litesr" / "methods").glob("*/schema.yaml")),
]


def _nodes(node):
    """Every mapping in a parsed schema, depth first."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _nodes(value)
    elif isinstance(node, list):
        for value in node:
            yield from _nodes(value)


def test_every_integer_of_the_schemas_is_bounded() -> None:
    unbounded = [
        (path.name, node)
        for path in SCHEMAS
        for node in _nodes(yaml.safe_load(path.read_text()))
        if "integer" in str(node.get("type")) and not {"maximum", "enum"} & set(node)
    ]
    assert not unbounded


def test_every_path_pattern_of_the_schemas_is_the_checked_one() -> None:
    found = [
        node["pattern"]
        for path in SCHEMAS
        for node in _nodes(yaml.safe_load(path.read_text()))
        if str(node.get("pattern", "")).startswith("^(?![\\s\\S]*")
    ]
    assert len(found) >= 4 and set(found) == {PATH_PATTERN}


def test_every_shipped_config_passes_the_strict_schema() -> None:
    for path in sorted((REPO / "config").glob("*.yaml")):
        if path.name != "schema.yaml":
            check_schema(strict_load(path), SCHEMA)


def test_every_overlay_merges_onto_the_base_its_header_names() -> None:
    """An overlay (config/overlays/) is given after its base: ``--configfile BASE OVERLAY``."""
    overlays = sorted((REPO / "config" / "overlays").glob("*.yaml"))
    assert overlays
    for path in overlays:
        command = re.search(r"--configfile (config/\S+\.yaml) (config/\S+\.yaml)", path.read_text())
        assert command, f"{path.name}: its header gives no --configfile BASE OVERLAY command"
        assert REPO / command[2] == path, f"{path.name}: its header names another overlay"
        config = strict_load(REPO / command[1])
        update_config(config, strict_load(path))
        check_schema(config, SCHEMA)


def test_train_spec_refuses_fractional_counts() -> None:
    with pytest.raises(ValueError, match="training steps must be a whole number, got 4.0"):
        TrainSpec.from_dict({"steps": 4.0})


def _collect(config: dict) -> None:
    collect(config, Paths(config["scales"], "tr", ["te"]))


def test_an_lr_patch_too_small_for_the_model_is_refused_at_parse_time() -> None:
    rlfn = {"feature_channels": 8, "mid_channels": 8, "esa_channels": 4, "n_blocks": 1}
    config = _with(TINY, "models.tiny.arch", "rlfn")
    config["models"]["tiny"]["args"] = rlfn
    config["models"]["tiny"]["train"]["lr_patch"] = 12
    with pytest.raises(ConfigError, match=r"models\.tiny\.train\.lr_patch: 12 .* 15 pixels"):
        _collect(config)
    config["models"]["tiny"]["train"]["lr_patch"] = 15
    _collect(config)


def test_a_huge_model_within_the_bounds_is_refused_at_once() -> None:
    config = _with(TINY, "models.tiny.args", {"n_resblocks": 1000, "n_feats": 4096})
    check_schema(config, SCHEMA)  # each argument is within its bounds
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=r"models\.tiny\.args: .*the limit is 200,000,000"):
        _collect(config)
    assert time.perf_counter() - start < 2


def _laughs(mappings: bool, levels: int = 9) -> str:
    if mappings:
        lines = ["  a0: &a0 {" + ", ".join(f"k{j}: lol" for j in range(9)) + "}"]
        lines += [
            f"  a{i}: &a{i} {{" + ", ".join(f"k{j}: *a{i - 1}" for j in range(9)) + "}"
            for i in range(1, levels + 1)
        ]
    else:
        lines = ["  a0: &a0 [" + ", ".join(["lol"] * 9) + "]"]
        lines += [
            f"  a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels + 1)
        ]
    return yaml.safe_dump(TINY) + "x:\n" + "\n".join(lines) + "\n"


@pytest.mark.parametrize("mappings", [False, True])
def test_a_billion_laughs_is_refused_at_once(tmp_path: Path, mappings: bool, capsys) -> None:
    from litesr.cli import main

    path = tmp_path / "bomb.yaml"
    path.write_text(_laughs(mappings))
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"bomb\.yaml:\d+:\d+: YAML aliases expand the document"):
        strict_load(path)
    assert time.perf_counter() - start < 1
    assert main(["check-config", str(path)]) == 1
    assert "billion laughs" in capsys.readouterr().err


def test_modest_aliases_and_recursive_ones(tmp_path: Path) -> None:
    shared = tmp_path / "shared.yaml"
    shared.write_text(
        "recipe: &r {steps: 4, batch_size: 2, lr_patch: 8}\n"
        "models:\n  a: {train: *r}\n  b: {train: *r}\n  c: {train: *r}\n"
    )
    assert strict_load(shared)["models"]["c"]["train"]["steps"] == 4
    loop = tmp_path / "loop.yaml"
    loop.write_text("a: &a [1, *a]\n")
    with pytest.raises(ValueError, match=r"loop\.yaml:1:4: recursive YAML alias"):
        strict_load(loop)


@pytest.fixture(scope="module")
def wd(tmp_path_factory) -> Path:
    return workflow_copy(tmp_path_factory.mktemp("wd"))


def _dry_run(wd: Path, text: str, timeout: int = 120):
    (wd / "c.yaml").write_text(text)
    return snakemake("-n", "--configfile", "c.yaml", cwd=wd, timeout=timeout)


def test_dry_run_names_a_fractional_scale(wd: Path) -> None:
    result = _dry_run(wd, yaml.safe_dump(_with(TINY, "scales", [4.0])))
    assert result.returncode != 0
    assert "config key scales[0]: 4.0 is not of type 'integer'" in result.stdout, result.stdout
    assert "models.tiny.args" not in result.stdout


def test_dry_run_refuses_a_shell_injection_in_a_path(wd: Path, tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    result = _dry_run(wd, yaml.safe_dump(_with(TINY, "data.download_root", f"r$(touch {marker})")))
    assert result.returncode != 0 and "config key data.download_root" in result.stdout
    assert not marker.exists()


def test_dry_run_refuses_a_billion_laughs_fast(wd: Path) -> None:
    """Snakemake keeps a list alias as one shared object, so the workflow's own re-read of
    the file refuses the bomb. (Nested-mapping bombs hang in Snakemake's own config merge
    before the workflow runs: `litesr check-config` refuses those, see above.)"""
    result = _dry_run(wd, _laughs(mappings=False), timeout=90)
    assert result.returncode != 0 and "YAML aliases expand the document" in result.stdout
