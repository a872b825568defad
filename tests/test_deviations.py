"""Every method's deviations.yaml (where one exists) is well formed; the loader refuses
malformed files, naming the file and the entry."""

from __future__ import annotations

import pytest
import yaml

from litesr.methods.deviations import (
    CLASSES,
    deviations_file,
    load_deviations,
    method_deviations,
)
from litesr.methods.registry import methods

AUDITED = [m for m in methods().values() if deviations_file(m).is_file()]


def test_drc_is_audited():
    assert "drc" in {m.name for m in AUDITED}


@pytest.mark.parametrize("method", AUDITED, ids=lambda m: m.name)
def test_every_deviations_file_is_well_formed(method):
    found = method_deviations(method)
    assert found is not None and found.items
    assert set(found.source) == {"repository", "commit", "folder"}
    assert all(d.kind in CLASSES for d in found.items)
    assert sum(len(v) for v in found.by_class().values()) == len(found.items)


GOOD = {
    "source": {"repository": "o/r", "commit": "a" * 40, "folder": "X"},
    "deviations": [
        {"id": "one-thing", "what": "w", "authors": "a.py:f", "ours": "o", "class": "budget",
         "effect": "e"},
    ],
}  # fmt: skip


def _write(tmp_path, doc):
    path = tmp_path / "deviations.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_loader_reads_a_good_file(tmp_path):
    found = load_deviations(_write(tmp_path, GOOD))
    assert found.items[0].kind == "budget" and found.items[0].authors == "a.py:f"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["deviations"][0].update({"class": "bug"}), "is not one of"),
        (lambda d: d["deviations"][0].pop("effect"), "needs exactly the keys"),
        (lambda d: d["deviations"][0].update({"note": "x"}), "needs exactly the keys"),
        (lambda d: d["deviations"][0].update({"ours": " "}), "non-empty text"),
        (lambda d: d["deviations"].append(dict(d["deviations"][0])), "ids are unique"),
        (lambda d: d["deviations"][0].update({"id": "Two Words"}), "ids are unique"),
        (lambda d: d["source"].update({"commit": "abc"}), "40-hex"),
        (lambda d: d["source"].pop("folder"), "source"),
        (lambda d: d.update({"deviations": []}), "non-empty list"),
    ],
)
def test_loader_refuses_malformed_files(tmp_path, change, message):
    doc = yaml.safe_load(yaml.safe_dump(GOOD))
    change(doc)
    with pytest.raises(ValueError, match=message):
        load_deviations(_write(tmp_path, doc))
