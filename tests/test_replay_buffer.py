"""diffusion_policy replay buffers: the real DemoGen data, round trips, the on-disk layout and refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zarr
import zarr.storage

from toolkit.episode import Episode
from toolkit.errors import FormatError
from toolkit.formats.replay_buffer import buffer_key, export_replay_buffer, guess_kind, read_replay_buffer
from toolkit.sample import sample_episodes, sample_spec
from toolkit.spec import DatasetSpec

FLOWER = Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures" / "demogen" / "flower" / "flower.zarr"
# keyword arguments accepted by the imagecodecs 2022.9.26 numcodecs shim that diffusion_policy vendors
OLD_SHIM_KWARGS = {
    "imagecodecs_jpegxl": {"level", "effort", "distance", "lossless", "decodingspeed", "photometric", "planar",
                           "usecontainer", "index", "keeporientation", "numthreads"},
    "imagecodecs_jpeg2k": {"level", "codecformat", "colorspace", "tile", "reversible", "bitspersample",
                           "resolutions", "numthreads", "verbose"},
}


@pytest.fixture(scope="module")
def spec() -> DatasetSpec:
    return sample_spec(cameras=2, height=24, width=32, depth=True)


@pytest.fixture(scope="module")
def episodes(spec) -> list[Episode]:
    eps = sample_episodes(spec, 4, seed=5)
    eps[2].id = "ep-2"
    return eps


# --------------------------------------------------------------------------------------- real DemoGen data


@pytest.fixture(scope="module")
def flower():
    if not FLOWER.exists():
        pytest.skip(f"DemoGen fixture not found at {FLOWER}")
    return read_replay_buffer(FLOWER, task="put the flowers into the vase")


def test_demogen_flower_imports(flower):
    assert len(flower) == 3 and flower.lengths == [106, 103, 102]
    f = flower.spec.features
    assert f["observation.point_cloud"].kind == "pointcloud" and f["observation.point_cloud"].shape == (1024, 6)
    assert f["observation.state"].kind == "state" and f["observation.state"].shape == (7,)
    assert f["action"].kind == "action" and f["action"].shape == (7,)
    eps = list(flower)
    assert [e.length for e in eps] == [106, 103, 102]
    raw = zarr.open_group(str(FLOWER), mode="r")
    np.testing.assert_array_equal(eps[1].data["observation.point_cloud"], raw["data/point_cloud"][106:209])
    np.testing.assert_array_equal(eps[2].data["action"], raw["data/action"][209:311])
    for i, ep in enumerate(eps):
        assert ep.meta.task == "put the flowers into the vase"
        assert ep.meta.origin == {"format": "replay_buffer", "path": str(FLOWER), "episode": i}
        state, action = ep.data["observation.state"], ep.data["action"]
        # README fact: the state is logged after the action, so state[t] - state[t-1] == action[t] (position)
        np.testing.assert_allclose(np.diff(state[:, :3], axis=0), action[1:, :3], atol=1e-6)


def test_demogen_round_trips_through_our_export(flower, tmp_path):
    out = tmp_path / "flower_copy.zarr"
    summary = export_replay_buffer(flower.spec, iter(flower), out)
    assert (summary.episodes, summary.frames) == (3, 311)
    copy = read_replay_buffer(out)
    for a, b in zip(flower, copy):
        for name in a.data:
            np.testing.assert_array_equal(a.data[name], b.data[name])
        assert b.meta.task == "put the flowers into the vase"
    ends = zarr.open_group(str(out), mode="r")["meta/episode_ends"][:]
    assert ends.dtype == np.int64 and ends.tolist() == [106, 209, 311]


# --------------------------------------------------------------------------------------- sample round trips


def test_names():
    assert buffer_key("observation.state") == "state"
    assert buffer_key("action") == "action"
    assert buffer_key("observation.images.front") == "front_image"
    assert buffer_key("observation.depth.front") == "front_depth"
    assert buffer_key("observation.pointcloud") == "point_cloud"
    assert buffer_key("next.reward") == "reward"
    assert guess_kind("agent_pos", np.dtype("float32"), (2,)) == "state"
    assert guess_kind("img", np.dtype("uint8"), (96, 96, 3)) == "image"
    assert guess_kind("depth", np.dtype("float32"), (96, 96)) == "depth"
    assert guess_kind("point_cloud", np.dtype("float32"), (1024, 3)) == "pointcloud"


@pytest.mark.parametrize("codec, lossless", [("jpegxl", False), ("jpegxl", True), ("jpeg2k", False), ("none", False)])
def test_round_trip(tmp_path, spec, episodes, codec, lossless):
    out = tmp_path / "rb.zarr"
    summary = export_replay_buffer(spec, iter(episodes), out, image_codec=codec, lossless=lossless)
    assert summary.episodes == 4 and summary.frames == sum(e.length for e in episodes)
    source = read_replay_buffer(out)
    assert source.spec == spec and len(source) == 4 and source.warnings == []
    exact_images = lossless or codec == "none"
    for i, (a, b) in enumerate(zip(episodes, source)):
        for name, feature in spec.features.items():
            assert b.data[name].dtype == a.data[name].dtype
            if feature.kind == "image" and not exact_images:
                diff = np.abs(b.data[name].astype(int) - a.data[name].astype(int))
                assert diff.mean() < 2.0, (codec, name, diff.mean())
            else:
                np.testing.assert_array_equal(b.data[name], a.data[name], err_msg=name)
        got = b.meta.to_dict()
        assert got.pop("origin") == {"format": "replay_buffer", "path": str(out), "episode": i}
        assert got == a.meta.to_dict()
        assert b.id == a.id


def test_zip_store_round_trip(tmp_path, spec, episodes):
    out = tmp_path / "dataset.zarr.zip"
    export_replay_buffer(spec, episodes[:2], out, image_codec="none")
    assert out.is_file()
    source = read_replay_buffer(out)
    back = list(source)
    np.testing.assert_array_equal(back[1].data["observation.images.wrist"], episodes[1].data["observation.images.wrist"])
    # zarr's own ZipStore reads it too (UMI opens dataset.zarr.zip this way)
    with zarr.storage.ZipStore(out, mode="r") as store:
        ends = zarr.open_group(store, mode="r")["meta/episode_ends"][:].tolist()
    assert ends == [episodes[0].length, episodes[0].length + episodes[1].length]


def test_on_disk_layout_is_diffusion_policy(tmp_path, spec, episodes):
    out = tmp_path / "rb.zarr"
    export_replay_buffer(spec, episodes, out, image_codec="jpegxl")
    assert json.loads((out / ".zgroup").read_text())["zarr_format"] == 2
    zarray = {p.parent.name: json.loads(p.read_text()) for p in (out / "data").glob("*/.zarray")}
    assert set(zarray) == {"state", "action", "front_image", "wrist_image", "front_depth", "reward"}
    img = zarray["front_image"]
    assert img["zarr_format"] == 2 and img["chunks"] == [1, 24, 32, 3] and img["dtype"] == "|u1"
    assert img["compressor"]["id"] == "imagecodecs_jpegxl" and img["compressor"]["lossless"] is False
    assert set(img["compressor"]) - {"id"} <= OLD_SHIM_KWARGS["imagecodecs_jpegxl"]
    assert zarray["state"]["compressor"]["id"] == "blosc" and zarray["state"]["compressor"]["cname"] == "zstd"
    total = sum(e.length for e in episodes)
    assert all(z["shape"][0] == total for z in zarray.values())
    ends = json.loads((out / "meta" / "episode_ends" / ".zarray").read_text())
    assert ends["dtype"] == "<i8" and ends["compressor"] is None
    # read the way diffusion_policy's ReplayBuffer does: plain zarr, slice by episode_ends
    root = zarr.open_group(str(out), mode="r")
    ends = root["meta/episode_ends"][:]
    np.testing.assert_array_equal(root["data/state"][ends[0]:ends[1]], episodes[1].data["observation.state"])
    export_replay_buffer(spec, episodes[:1], tmp_path / "j2k.zarr", image_codec="jpeg2k")
    j2k = json.loads((tmp_path / "j2k.zarr" / "data" / "front_image" / ".zarray").read_text())["compressor"]
    assert j2k["id"] == "imagecodecs_jpeg2k" and set(j2k) - {"id"} <= OLD_SHIM_KWARGS["imagecodecs_jpeg2k"]


def test_export_appends_one_write_per_array_per_episode(tmp_path, spec, episodes, monkeypatch):
    writes: list[tuple] = []
    original = zarr.Array.__setitem__

    def counting(self, selection, value):
        writes.append((self.path, selection))
        return original(self, selection, value)

    monkeypatch.setattr(zarr.Array, "__setitem__", counting)
    consumed = []

    def stream():
        for ep in episodes:
            consumed.append(len(writes))
            yield ep

    export_replay_buffer(spec, stream(), tmp_path / "rb.zarr", image_codec="none")
    per_episode = len(spec.features)
    data_writes = [w for w in writes if w[0].startswith("data/")]
    assert len(data_writes) == per_episode * len(episodes)
    # episode k was asked for only after episode k-1 was written (streaming, not collected first)
    assert consumed == [per_episode * k for k in range(len(episodes))]


def test_overwrite_and_failure_leave_old_store(tmp_path, spec, episodes):
    out = tmp_path / "rb.zarr"
    export_replay_buffer(spec, episodes[:1], out, image_codec="none")
    with pytest.raises(FormatError, match="already exists"):
        export_replay_buffer(spec, episodes, out)

    def failing():
        yield episodes[0]
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        export_replay_buffer(spec, failing(), out, overwrite=True)
    assert len(read_replay_buffer(out)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rb.zarr"]
    export_replay_buffer(spec, episodes, out, overwrite=True, image_codec="none")
    assert len(read_replay_buffer(out)) == 4


# --------------------------------------------------------------------------------------- foreign stores


def _foreign(path: Path, n_steps: int = 12, ends=(5, 10, 12), zip_store: bool = False) -> Path:
    """A diffusion_policy-style buffer written with plain zarr (pusht-like keys), not by demoforge."""
    rng = np.random.default_rng(1)
    store = zarr.storage.ZipStore(path, mode="w") if zip_store else zarr.storage.LocalStore(path)
    root = zarr.open_group(store, mode="w", zarr_format=2)
    data = root.require_group("data")
    data.create_array("img", data=rng.integers(0, 255, (n_steps, 8, 8, 3), dtype=np.uint8), chunks=(1, 8, 8, 3))
    data.create_array("agent_pos", data=rng.normal(size=(n_steps, 2)).astype(np.float32))
    data.create_array("action", data=rng.normal(size=(n_steps, 2)).astype(np.float32))
    data.create_array("n_contacts", data=rng.integers(0, 3, (n_steps, 1)).astype(np.float32))
    root.require_group("meta").create_array("episode_ends", data=np.asarray(ends, dtype=np.int64))
    store.close()
    return path


def test_foreign_store_imports_with_guesses_and_overrides(tmp_path):
    path = _foreign(tmp_path / "pusht_cchi_v7_replay.zarr")
    source = read_replay_buffer(path)
    f = source.spec.features
    assert f["observation.images.img"].kind == "image"
    assert f["observation.agent_pos"].kind == "state" and f["action"].kind == "action"
    assert source.lengths == [5, 5, 2] and source.task == "pusht_cchi_v7_replay"
    assert any("fps" in w for w in source.warnings)
    eps = list(source)
    raw = zarr.open_group(str(path), mode="r")
    np.testing.assert_array_equal(eps[1].data["observation.agent_pos"], raw["data/agent_pos"][5:10])
    overridden = read_replay_buffer(path, task="push the T", kinds={"n_contacts": "scalar", "img": "skip"}, fps=10)
    assert overridden.spec.features["observation.n_contacts"].kind == "scalar"
    assert "observation.images.img" not in overridden.spec.features
    assert next(iter(overridden)).meta.task == "push the T"


def test_foreign_zip_store(tmp_path):
    path = _foreign(tmp_path / "dataset.zarr.zip", zip_store=True)
    source = read_replay_buffer(path, task="cup arrangement")
    assert [e.length for e in source] == [5, 5, 2]


# --------------------------------------------------------------------------------------- refusals


def _one_line(info, path: Path) -> str:
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path))
    return message


def test_refuses_orphaned_trailing_steps_or_salvages(tmp_path):
    path = _foreign(tmp_path / "crashed.zarr", n_steps=15, ends=(5, 10, 12))
    with pytest.raises(FormatError, match="3 trailing steps belong to no episode") as info:
        read_replay_buffer(path)
    message = _one_line(info, path)
    assert "data/action (15 steps)" in message and "salvage=True" in message
    salvaged = read_replay_buffer(path, salvage=True, task="t")
    assert [e.length for e in salvaged] == [5, 5, 2]
    assert any("salvage" in w for w in salvaged.warnings)


def test_refuses_short_arrays(tmp_path):
    path = _foreign(tmp_path / "short.zarr", n_steps=12, ends=(5, 10, 14))
    with pytest.raises(FormatError, match=r"data/action holds 12 steps, but meta/episode_ends ends at 14") as info:
        read_replay_buffer(path)
    _one_line(info, path)


def test_refuses_missing_or_bad_episode_ends(tmp_path):
    path = _foreign(tmp_path / "noends.zarr")
    root = zarr.open_group(str(path), mode="a")
    del root["meta/episode_ends"]
    with pytest.raises(FormatError, match="meta/episode_ends is missing") as info:
        read_replay_buffer(path)
    _one_line(info, path)
    bad = _foreign(tmp_path / "unsorted.zarr", ends=(5, 3, 12))
    with pytest.raises(FormatError, match=r"episode_ends\[1\] = 3 after 5") as info:
        read_replay_buffer(bad)
    _one_line(info, bad)


def test_refuses_what_is_not_a_zarr_store(tmp_path):
    text = tmp_path / "notes.zarr"
    text.write_text("hello")
    with pytest.raises(FormatError, match="not a zarr store") as info:
        read_replay_buffer(text)
    _one_line(info, text)
    empty = tmp_path / "empty.zarr"
    empty.mkdir()
    with pytest.raises(FormatError, match="not a zarr group") as info:
        read_replay_buffer(empty)
    _one_line(info, empty)
    with pytest.raises(FormatError, match="no such file"):
        read_replay_buffer(tmp_path / "missing.zarr")
    with pytest.raises(FormatError, match="kinds"):
        read_replay_buffer(_foreign(tmp_path / "ok.zarr"), kinds={"img": "video"})
