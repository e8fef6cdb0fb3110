"""The ``demoforge`` command line, run as a user runs it (a subprocess): help, exit codes, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import demoforge, refused
from toolkit.sample import sample_episodes, sample_spec
from toolkit.store import Store

COMMANDS = ["info", "ls", "validate", "import", "export", "merge", "split", "delete", "trim", "reindex", "record",
            "curate", "select", "augment", "dashboard", "demo"]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli") / "s.zarr"
    spec = sample_spec(cameras=1, height=32, width=48)
    with Store.create(root, spec) as s:
        for e in sample_episodes(spec, 6):
            s.append(e)
    return root


def test_every_subcommand_has_help():
    top = demoforge("--help").stdout
    for command in COMMANDS:
        assert command in top
        assert "Usage" in demoforge(command, "--help").stdout


def test_info_and_ls(store):
    info = demoforge("info", store).stdout
    assert "6 episodes" in info and "observation.images.front" in info and "operators: alice (2)" in info
    listed = demoforge("ls", store, "--where", 'operator == "bob"').stdout
    assert "000001" in listed and "000004" in listed and "000000" not in listed


def test_edit_commands(store, tmp_path):
    work = tmp_path / "w.zarr"
    demoforge("merge", store, "--out", work)
    length = Store.open(work).entry("000000")["length"]
    assert f"{length} -> 10 frames" in demoforge("trim", work, "000000", "--start", "5", "--end", "15").stdout
    assert Store.open(work).entry("000000")["length"] == 10
    demoforge("delete", work, "000001")
    assert "000001" not in Store.open(work).ids()
    assert "--yes" in refused("delete", work, "--where", "success")
    demoforge("split", work, "--where", "success", "--out", tmp_path / "ok.zarr", "--rest", tmp_path / "rest.zarr")
    ok, rest = Store.open(tmp_path / "ok.zarr"), Store.open(tmp_path / "rest.zarr")
    assert len(ok) + len(rest) == len(Store.open(work)) and all(ok.meta(i).success for i in ok.ids())
    (work / "catalog.sqlite").unlink()
    assert "catalog rebuilt: 5 episodes" in demoforge("reindex", work).stdout
    assert "ok" in demoforge("validate", work, "--deep").stdout
    damaged = work / "episodes" / "000002" / "zarr.json"
    damaged.write_text('{"zarr_format": 3, "node_')
    assert f"{damaged}: not valid JSON" in refused("validate", work)
    assert "no committed episode '000002'" in refused("trim", work, "000002", "--start", "1")


def test_validate_json_files(tmp_path):
    good = tmp_path / "spec.json"
    good.write_text(json.dumps(sample_spec(cameras=1).to_dict()))
    assert "valid dataset spec" in demoforge("validate", good).stdout
    bad = tmp_path / "meta.json"
    bad.write_text('{"task": "x", "success": "yes"}')
    assert "field 'success'" in refused("validate", bad)
    broken = tmp_path / "broken.json"
    broken.write_text('{"task": ')
    assert "not valid JSON (line 1" in refused("validate", broken)


def test_bad_input_gives_one_line(store, tmp_path):
    assert "no such store" in refused("info", tmp_path / "missing.zarr")
    assert "unknown field 'colour'" in refused("ls", store, "--where", "colour == 'red'")
    assert "not allowed" in refused("ls", store, "--where", "__import__('os').system('true')")
    assert "frame range" in refused("trim", store, "000000", "--start", "30", "--end", "10")
    assert "expected one of lerobot" in refused("export", store, "--to", "parquet", "--out", tmp_path / "x")
    assert "cannot tell the format" in refused("import", tmp_path, "--out", tmp_path / "y.zarr")


def test_usage_errors_exit_2_without_traceback():
    proc = demoforge("info", check=False)
    assert proc.returncode == 2 and "Missing argument" in proc.stderr and "Traceback" not in proc.stderr


FIXTURES = Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures"


def test_demo_end_to_end_export_loads_in_real_lerobot(tmp_path, lerobot_oracle):
    out = tmp_path / "demo"
    log = demoforge("demo", "--out", out, "--no-serve").stdout
    assert "LeRobot v3.0 (AV1 video)" in log and "done" in log
    recorded = Store.open(out / "store.zarr")
    operators = {recorded.meta(i).operator for i in recorded.ids()}
    assert {"scripted:careful", "scripted:side", "scripted:fast"} <= operators
    assert len({recorded.meta(i).factors["object_colour"] for i in recorded.ids()}) > 1
    subset = Store.open(out / "pick_place.zarr")
    # curated: the side operator conflicts with the careful base style and stays out of the training view
    assert (out / "store.zarr" / "curation" / "report.json").exists()
    assert not {subset.meta(i).operator for i in subset.ids()} & {"scripted:side", "scripted:fast"}
    assert len(recorded.ids('compatibility.compatible == False and operator == "scripted:side"')) >= 3
    # augmented: synthetic episodes with provenance pointing at recorded ones
    for name, count in (("greenscreen.zarr", 4), ("pointcloud.zarr", 32)):
        synthetic = Store.open(out / name)
        assert len(synthetic.ids("provenance.augmentation")) == count
        assert {synthetic.meta(i).provenance["source_id"] for i in synthetic.ids()} <= set(recorded.ids())
    report = lerobot_oracle.check_load(out / "lerobot")
    assert report["total_episodes"] == len(subset)
    assert report["episode_lengths"] == [subset.entry(i)["length"] for i in subset.ids()]
    assert report["tasks"] == list(dict.fromkeys(subset.meta(i).task for i in subset.ids()))  # first-seen order
    # demo refuses to clobber a folder it did not make
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("x")
    assert "not made by 'demoforge demo'" in refused("demo", "--out", foreign)
    assert (foreign / "keep.txt").exists()


def test_record_on_the_tabletop_with_a_scripted_operator(tmp_path):
    out = tmp_path / "rec.zarr"
    log = demoforge("record", "--out", out, "--task", "push", "--style", "hesitant", "--episodes", "2",
                    "--height", "96", "--width", "128", "--no-realtime").stderr
    assert "recorded 2 episodes" in log
    store = Store.open(out)
    meta = store.meta(store.ids()[0])
    assert meta.operator == "scripted:hesitant" and meta.factors["task_kind"] == "push"
    assert meta.timing["target_hz"] == 10
    assert store.spec.features["observation.images.front"].shape == (96, 128, 3)
    # each episode keeps the calibration of its own (jittered) front camera
    poses = [np.array(store.meta(i).extra["cameras"]["observation.images.front"]["extrinsics"]) for i in store.ids()]
    assert poses[0].shape == (4, 4) and not np.allclose(poses[0], poses[1])
    assert "expected one of careful" in refused("record", "--out", out, "--style", "sloppy")


def test_import_export_round_trip_through_each_format(tmp_path, store):
    for fmt, target in (("lerobot", tmp_path / "lr"), ("robomimic", tmp_path / "x.hdf5"),
                        ("replay-buffer", tmp_path / "rb.zarr")):
        extra = ["--images"] if fmt == "lerobot" else []
        demoforge("export", store, "--to", fmt, "--out", target, "--where", "success", *extra)
        back = tmp_path / f"back-{fmt}.zarr"
        assert "imported" in demoforge("import", target, "--out", back).stdout
        original, imported = Store.open(store), Store.open(back)
        assert [imported.entry(i)["length"] for i in imported.ids()] == [
            original.entry(i)["length"] for i in original.ids("success")]
        assert [imported.meta(i).operator for i in imported.ids()] == [
            original.meta(i).operator for i in original.ids("success")]


def test_crashed_lerobot_recording_is_refused_then_salvaged(tmp_path):
    crashed = FIXTURES / "lerobot" / "v30_lerobot061_crashed_before_finalize"
    line = refused("import", crashed, "--out", tmp_path / "c.zarr")
    assert "no parquet footer" in line and "finalize()" in line and "--salvage" in line
    assert not (tmp_path / "c.zarr").exists()
    assert "imported 3 episodes" in demoforge("import", crashed, "--out", tmp_path / "c.zarr", "--salvage").stdout
