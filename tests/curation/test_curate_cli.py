"""``demoforge curate`` and ``demoforge select`` run as a user runs them, on episodes recorded in the sim."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cli_helpers import demoforge, refused
from toolkit.store import Store
from toolkit.validation import validate

BASE = 'operator == "careful"'


@pytest.fixture(scope="module")
def curated(tmp_path_factory, sim_store, block) -> Path:
    """Careful (the base) and side operators on pick-and-place, curated with every pass."""
    root = tmp_path_factory.mktemp("curate") / "s.zarr"
    sim_store(root, [block(style="careful", count=10, seed=0), block(style="side", count=5, seed=100)])
    proc = demoforge("curate", root, "--base", BASE, "--report", root.parent / "report.json")
    assert "curated 15 episodes" in proc.stdout
    return root


def test_curate_saves_scores_a_valid_report_and_a_summary(curated):
    report = json.loads((curated.parent / "report.json").read_text())
    validate(report, "curation_report", "report.json")
    assert set(report["passes"]) == {"quality", "diversity", "shortcuts", "compatibility"}
    assert report["passes"]["compatibility"]["base"] == BASE
    assert json.loads((curated / "curation" / "report.json").read_text()) == report
    columns = Store.open(curated).catalog.columns()
    for column in ("quality.ok", "diversity.contribution", "compatibility.score", "shortcuts.isolated"):
        assert column in columns
        assert not columns[column.split(".")[0] + ".stale"].any()


def test_scores_filter_and_show_in_ls(curated):
    proc = demoforge("ls", curated, "--where", "not compatibility.compatible", "--columns", "compatibility.score")
    store = Store.open(curated)
    rejected = store.ids("not compatibility.compatible")
    assert rejected and all(i in proc.stdout for i in rejected), proc.stdout
    # the base operator's own episodes stay compatible; the side operator's mostly do not
    assert set(rejected) <= set(store.ids('operator == "side"')) and len(rejected) >= 3


def test_select_saves_a_view_and_copies_a_reproducible_subset(curated, tmp_path):
    where = "quality.ok and compatibility.compatible"
    demoforge("select", curated, "--where", where, "--save-view", "train", "--note", "first cut")
    assert "train: " in demoforge("select", curated, "--views").stdout
    out = tmp_path / "train.zarr"
    proc = demoforge("select", curated, "--view", "train", "--out", out)
    expected = Store.open(curated).ids(where)
    assert f"selected {len(expected)} of 15" in proc.stdout
    subset = Store.open(out)
    assert len(subset) == len(expected) > 0
    record = json.loads((out / "selection.json").read_text())
    assert record["where"] == where and record["view"] == "train" and record["source_ids"] == expected
    careful = [r for r in subset.catalog.rows() if r["operator"] == "careful"]
    assert len(careful) == len(Store.open(curated).ids('operator == "careful" and quality.ok'))


def test_select_warns_when_scores_are_stale(curated, tmp_path):
    copy = tmp_path / "copy.zarr"
    shutil.copytree(curated, copy)
    first = Store.open(copy).ids()[0]
    demoforge("trim", copy, first, "--start", "2")
    proc = demoforge("select", copy, "--where", "quality.ok")
    assert "stale" in proc.stderr and "'quality'" in proc.stderr


def test_curate_refusals_are_one_line(curated):
    assert "--passes" in refused("curate", curated, "--passes", "quality,nonsense")
    assert "--base" in refused("curate", curated, "--passes", "compatibility")
    assert "selects no episodes" in refused("curate", curated, "--base", 'operator == "nobody"')
    assert "unknown field" in refused("select", curated, "--where", "qualty.ok")
    assert "no view" in refused("select", curated, "--view", "missing")
