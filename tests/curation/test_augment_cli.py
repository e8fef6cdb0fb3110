"""``demoforge augment`` run as a user runs it: DemoGen's real flower demos through the point-cloud edit, sim
episodes through the green screen, bad flags refused in one line."""

from __future__ import annotations

from pathlib import Path

from cli_helpers import demoforge, refused
from toolkit.store import Store

FLOWER = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "demogen" / "flower" / "flower.zarr"
# The flowers and the vase: source 0's first-frame masks lifted into its cloud (see test_pointcloud.py).
BOXES = ("0.408,-0.002,0.000,0.519,0.258,0.200", "0.387,-0.225,0.000,0.524,-0.088,0.236")


def test_pointcloud_cli_gives_demogens_48_episodes(tmp_path):
    source = tmp_path / "flower.zarr"
    demoforge("import", FLOWER, "--out", source, "--task", "put the flowers into the vase")
    out = tmp_path / "aug.zarr"
    proc = demoforge("augment", "pointcloud", source, "--out", out, "--box", BOXES[0], "--box", BOXES[1],
                     "--frames", "6,68,83")
    assert "48 synthetic episodes from 3 source episodes" in proc.stdout
    rows = Store.open(out).catalog.rows()
    assert len(rows) == 48 and sorted({r["length"] for r in rows}) == [102, 103, 106]
    assert {r["provenance.augmentation"] for r in rows} == {"pointcloud/1"}
    assert "--box" in refused("augment", "pointcloud", source, "--out", tmp_path / "x.zarr", "--box", "1,2,3")


def test_greenscreen_cli_writes_copies_with_a_matte(tmp_path, sim_store, block):
    source = tmp_path / "s.zarr"
    sim_store(source, [block(count=2, config={"cameras": ("front",), "height": 60, "width": 80})])
    out = tmp_path / "gs.zarr"
    proc = demoforge("augment", "greenscreen", source, "--out", out, "--copies", "2", "--seed", "3")
    assert "4 synthetic episodes from 2 source episodes" in proc.stdout
    store = Store.open(out)
    assert "observation.mask.front.greenscreen" in store.spec.features
    assert len(store.ids("provenance.augmentation")) == 4
    assert "not a folder" in refused("augment", "greenscreen", source, "--out", tmp_path / "y.zarr",
                                     "--backgrounds", tmp_path / "missing")
