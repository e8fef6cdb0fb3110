"""The episode store on a real local zarr v3 store: round trips, edits, catalog, refusals."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import zarr
from zarr.core.sync import sync

from toolkit.checks import validate_store
from toolkit.episode import Episode, EpisodeMeta
from toolkit.errors import DemoforgeError, SchemaError, SpecMismatch, StoreError
from toolkit.sample import sample_episode, sample_spec
from toolkit.spec import DatasetSpec, Feature
from toolkit.store import StorageOptions, Store, merge_stores


def _spec() -> DatasetSpec:
    base = sample_spec(cameras=2, height=48, width=64, depth=True)
    features = dict(base.features)
    features["observation.pointcloud"] = Feature("float32", (64, 6), "pointcloud")
    features["observation.mask.front"] = Feature("uint8", (48, 64), "mask")
    return DatasetSpec(fps=base.fps, features=features, robot_type=base.robot_type)


@pytest.fixture
def spec() -> DatasetSpec:
    return _spec()


def _episode(spec: DatasetSpec, i: int, length: int | None = None) -> Episode:
    episode = sample_episode(sample_spec(cameras=2, height=48, width=64, depth=True), i, length=length)
    rng = np.random.default_rng(i)
    n = episode.length
    episode.data["observation.pointcloud"] = rng.standard_normal((n, 64, 6)).astype(np.float32)
    episode.data["observation.mask.front"] = rng.integers(0, 4, (n, 48, 64), dtype=np.uint8)
    episode.data = {k: episode.data[k] for k in spec.features}
    return episode


def test_round_trip_keeps_lossless_features_exact_and_jpeg_close(tmp_path, spec):
    store = Store.create(tmp_path / "s.zarr", spec)
    originals = [_episode(spec, i) for i in range(4)]
    ids = [store.append(e) for e in originals]
    assert ids == ["000000", "000001", "000002", "000003"]
    reopened = Store.open(tmp_path / "s.zarr")
    assert reopened.ids() == ids
    for episode_id, original in zip(ids, originals):
        back = reopened.read(episode_id)
        for name in ("observation.state", "action", "observation.depth.front", "observation.pointcloud",
                     "observation.mask.front", "next.reward"):
            np.testing.assert_array_equal(back.data[name], original.data[name])
        for cam in spec.of_kind("image"):
            err = np.abs(back.data[cam].astype(int) - original.data[cam]).mean()
            assert 0 < err < 3, f"JPEG q90 error {err} out of the expected range"
        assert back.meta == original.meta


def test_lossless_image_option_is_exact_and_jpegxl_is_close(tmp_path, spec):
    lossless = Store.create(tmp_path / "a.zarr", spec, StorageOptions(image_codec="lossless"))
    jxl = Store.create(tmp_path / "b.zarr", spec, StorageOptions(image_codec="jpegxl", image_quality=90))
    episode = _episode(spec, 1)
    cam = "observation.images.front"
    np.testing.assert_array_equal(lossless.read(lossless.append(episode)).data[cam], episode.data[cam])
    err = np.abs(jxl.read(jxl.append(episode)).data[cam].astype(int) - episode.data[cam]).mean()
    assert err < 3


def test_plain_zarr_reads_everything_but_lossy_images(tmp_path, spec):
    store = Store.create(tmp_path / "s.zarr", spec)
    episode = _episode(spec, 0)
    episode_id = store.append(episode)
    group = zarr.open_group(str(tmp_path / "s.zarr" / "episodes" / episode_id), mode="r")
    np.testing.assert_array_equal(group["observation.depth.front"][:], episode.data["observation.depth.front"])
    codecs = json.loads((tmp_path / "s.zarr/episodes" / episode_id / "observation.images.front/zarr.json").read_text())
    assert codecs["codecs"][0]["configuration"]["codecs"][0]["name"] == "demoforge.jpeg"


def test_random_frame_read_matches_episode(tmp_path, spec):
    store = Store.create(tmp_path / "s.zarr", spec, StorageOptions(image_codec="lossless"))
    episode = _episode(spec, 2)
    episode_id = store.append(episode)
    arr = store.array(episode_id, "observation.images.wrist")
    np.testing.assert_array_equal(arr[7], episode.data["observation.images.wrist"][7])


def test_trim_slices_without_reencoding_and_shifts_flags(tmp_path, spec):
    store = Store.create(tmp_path / "s.zarr", spec)
    episode = _episode(spec, 3, length=30)
    episode.data["action"][20, 1] = np.inf
    episode_id = store.append(episode)
    before = store.read(episode_id)
    assert store.meta(episode_id).flags["nonfinite"]["frames"] == [[20, 21]]
    assert store.trim(episode_id, 5, 25) == 20
    after = store.read(episode_id)
    for name in spec.features:  # decoded JPEG frames are bit-identical: no second generation loss
        np.testing.assert_array_equal(after.data[name], before.data[name][5:25])
    assert after.meta.flags["nonfinite"]["frames"] == [[15, 16]]
    assert store.catalog.rows([episode_id])[0]["length"] == 20
    with pytest.raises(StoreError, match=r"frame range \[0, 99\)"):
        store.trim(episode_id, 0, 99)


def test_delete_touches_nothing_else(tmp_path, spec):
    store = Store.create(tmp_path / "s.zarr", spec)
    ids = [store.append(_episode(spec, i)) for i in range(3)]
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "s.zarr/episodes/000002").rglob("*")}
    store.delete([ids[1]])
    assert store.ids() == [ids[0], ids[2]]
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "s.zarr/episodes/000002").rglob("*")} == mtimes
    with pytest.raises(StoreError, match="nothing was deleted"):
        store.delete([ids[0], "999999"])
    assert store.ids() == [ids[0], ids[2]]
    assert store.append(_episode(spec, 5)) == "000003"  # ids are never reused


def test_catalog_filters_and_rebuilds_after_loss(tmp_path, spec):
    store = Store.create(tmp_path / "s.zarr", spec)
    for i in range(6):
        store.append(_episode(spec, i))
    store.update_meta("000004", tags=["review"])
    alice = store.ids('operator == "alice"')
    assert alice == ["000000", "000003"]
    assert store.ids('"review" in tags') == ["000004"]
    assert store.ids('factors.object_color in ["red", "blue"] and not success') == [
        i for i in store.ids() if store.meta(i).factors["object_color"] in ("red", "blue") and not store.meta(i).success
    ]
    store.close()
    (tmp_path / "s.zarr" / "catalog.sqlite").unlink()
    for extra in ("catalog.sqlite-wal", "catalog.sqlite-shm"):
        (tmp_path / "s.zarr" / extra).unlink(missing_ok=True)
    reader = Store.open(tmp_path / "s.zarr")  # read-only: indexes in memory, writes nothing
    assert reader.ids('"review" in tags') == ["000004"]
    assert not (tmp_path / "s.zarr" / "catalog.sqlite").exists()
    writer = Store.open(tmp_path / "s.zarr", mode="a")
    assert writer.ids('operator == "alice"') == alice
    assert (tmp_path / "s.zarr" / "catalog.sqlite").exists()


def test_catalog_catches_up_with_episodes_committed_behind_its_back(tmp_path, spec):
    store = Store.create(tmp_path / "s.zarr", spec)
    store.append(_episode(spec, 0))
    # A crash between the commit rename and the catalog insert: the catalog lags one episode.
    db = sqlite3.connect(tmp_path / "s.zarr" / "catalog.sqlite")
    store.append(_episode(spec, 1))
    db.execute("DELETE FROM episodes WHERE id = '000001'")
    db.commit()
    db.close()
    store.close()
    assert Store.open(tmp_path / "s.zarr").ids() == ["000000", "000001"]


def test_merge_and_split_copy_bytes_and_check_specs(tmp_path, spec):
    a = Store.create(tmp_path / "a.zarr", spec)
    b = Store.create(tmp_path / "b.zarr", spec)
    for i in range(3):
        a.append(_episode(spec, i))
        b.append(_episode(spec, 10 + i))
    merged = merge_stores([a, b], tmp_path / "m.zarr")
    assert len(merged) == 6
    src = a.read("000001").data["observation.images.front"]
    np.testing.assert_array_equal(merged.read("000001").data["observation.images.front"], src)
    assert merged.meta("000004").extra["copied_from"] == {"store": str(b.root), "id": "000001"}
    chosen = merge_stores([merged], tmp_path / "split.zarr", "success")
    assert len(chosen) == sum(bool(merged.meta(i).success) for i in merged.ids())
    other = Store.create(tmp_path / "o.zarr", sample_spec(cameras=1, height=48, width=64))
    with pytest.raises(SpecMismatch, match="features differ"):
        merge_stores([a, other], tmp_path / "bad.zarr")
    assert not (tmp_path / "bad.zarr").exists()


def test_bad_input_is_refused_and_store_unchanged(tmp_path, spec):
    store = Store.create(tmp_path / "s.zarr", spec)
    store.append(_episode(spec, 0))
    before = sorted(p.relative_to(tmp_path) for p in (tmp_path / "s.zarr").rglob("*") if "catalog" not in p.name)

    wrong_dtype = _episode(spec, 1)
    wrong_dtype.data["action"] = wrong_dtype.data["action"].astype(np.float64)
    with pytest.raises(SpecMismatch, match="feature 'action' has dtype float64, the spec expects float32"):
        store.append(wrong_dtype)
    wrong_shape = _episode(spec, 1)
    wrong_shape.data["observation.state"] = wrong_shape.data["observation.state"][:, :3]
    with pytest.raises(SpecMismatch, match=r"step shape \[3\]"):
        store.append(wrong_shape)
    ragged = _episode(spec, 1)
    ragged.data["action"] = ragged.data["action"][:-1]
    with pytest.raises(SpecMismatch, match="different lengths"):
        store.append(ragged)
    bad_meta = _episode(spec, 1)
    bad_meta.meta = EpisodeMeta(task="")
    with pytest.raises(SchemaError, match="field 'task'"):
        store.append(bad_meta)
    nan = _episode(spec, 1)
    nan.data["action"][3] = np.nan
    with pytest.raises(SpecMismatch, match=r"NaN or inf in frames \[\[3, 4\]\]"):
        store.append(nan, nonfinite="refuse")

    after = sorted(p.relative_to(tmp_path) for p in (tmp_path / "s.zarr").rglob("*") if "catalog" not in p.name)
    assert after == before and store.ids() == ["000000"]


def test_open_refuses_newer_format_and_non_stores(tmp_path, spec):
    Store.create(tmp_path / "s.zarr", spec).close()
    meta_path = tmp_path / "s.zarr" / "zarr.json"
    meta = json.loads(meta_path.read_text())
    meta["attributes"]["demoforge"]["format_version"] = 99
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(StoreError, match="format_version 99 is newer"):
        Store.open(tmp_path / "s.zarr")
    (tmp_path / "plain").mkdir()
    with pytest.raises(StoreError, match="not a demoforge store"):
        Store.open(tmp_path / "plain")
    with pytest.raises(StoreError, match="no such store"):
        Store.open(tmp_path / "missing")
    Store.create(tmp_path / "ro.zarr", spec).close()
    with pytest.raises(StoreError, match="opened read-only"):
        Store.open(tmp_path / "ro.zarr").append(_episode(spec, 0))


def test_bad_spec_is_refused_naming_the_field():
    bad = {"fps": 10, "features": {"observation.images.front": {"dtype": "uint8", "shape": [48, 64, 4], "kind": "image"}}}
    with pytest.raises(SchemaError, match=r"spec.json: field 'features.observation.images.front.shape.2'"):
        DatasetSpec.from_dict(bad, "spec.json")
    with pytest.raises(SchemaError, match="field 'fps'"):
        DatasetSpec.from_dict({"fps": -1, "features": {"a": {"dtype": "float32", "shape": [1], "kind": "scalar"}}}, "x")
    with pytest.raises(SchemaError, match="'index'"):
        DatasetSpec.from_dict({"fps": 5, "features": {"index": {"dtype": "int64", "shape": [1], "kind": "scalar"}}}, "x")


def test_concurrent_writers_never_share_an_id(tmp_path, spec):
    Store.create(tmp_path / "s.zarr", spec).close()
    a = Store.open(tmp_path / "s.zarr", mode="a")
    b = Store.open(tmp_path / "s.zarr", mode="a")
    ids = [a.append(_episode(spec, 0)), b.append(_episode(spec, 1)), a.append(_episode(spec, 2))]
    assert len(set(ids)) == 3
    assert Store.open(tmp_path / "s.zarr").ids() == sorted(ids)


def test_text_features_round_trip(tmp_path):
    spec = DatasetSpec(fps=5, features={
        "action": Feature("float32", (2,), "action"),
        "language.instruction": Feature("string", (), "text"),
    })
    store = Store.create(tmp_path / "t.zarr", spec)
    text = np.array(["reach", "grasp", "lift"], dtype=object)
    episode_id = store.append(Episode({"action": np.zeros((3, 2), np.float32), "language.instruction": text},
                                      EpisodeMeta(task="t")))
    assert list(store.read(episode_id).data["language.instruction"]) == ["reach", "grasp", "lift"]
    store.trim(episode_id, 1, 3)
    assert list(store.read(episode_id).data["language.instruction"]) == ["grasp", "lift"]


def test_create_refuses_a_foreign_directory(tmp_path, spec):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "notes.txt").write_text("mine")
    with pytest.raises(DemoforgeError, match="not empty"):
        Store.create(tmp_path / "x", spec)
    assert (tmp_path / "x" / "notes.txt").read_text() == "mine"
    shutil.rmtree(tmp_path / "x")


def test_catalog_catches_up_with_a_trim_interrupted_before_its_catalog_row(tmp_path, spec):
    store = Store.create(tmp_path / "s.zarr", spec)
    episode_id = store.append(_episode(spec, 0, length=30))
    # Simulate a crash right after the trimmed episode was swapped in: the catalog still says 30 frames.
    def die(entries):
        raise KeyboardInterrupt  # the process is stopped before it writes the row

    store.catalog.upsert = die
    with pytest.raises(KeyboardInterrupt):
        store.trim(episode_id, 0, 20)
    assert (tmp_path / "s.zarr" / ".pending" / episode_id).exists()
    reader = Store.open(tmp_path / "s.zarr")
    assert reader.catalog.rows([episode_id])[0]["length"] == 20
    writer = Store.open(tmp_path / "s.zarr", mode="a")
    assert writer.catalog.rows([episode_id])[0]["length"] == 20
    assert not (tmp_path / "s.zarr" / ".pending" / episode_id).exists()


# -- the direct array writer and the commit protocol's flush -------------------------------------

def _files(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("image_codec", ["jpeg", "jpegxl", "lossless"])
def test_arrays_are_written_byte_for_byte_as_zarr_writes_them(tmp_path, spec, image_codec, monkeypatch):
    from toolkit import arrayfiles

    features = dict(spec.features)
    features["observation.cloud"] = Feature("float32", (1024, 6), "pointcloud")  # 42 frames per inner chunk
    big = DatasetSpec(fps=spec.fps, features=features, robot_type=spec.robot_type)
    store = Store.create(tmp_path / "s.zarr", big, StorageOptions(image_codec=image_codec))
    zarr_write_group = arrayfiles.write_group
    monkeypatch.setattr(arrayfiles, "write_group", lambda *a: pytest.fail("an array went through zarr"))
    for length in (1, 2, 43, 100):  # 43 and 100: the last inner chunk is padded with the fill value
        episode = _episode(spec, length, length=length)
        cloud = np.random.default_rng(length).standard_normal((length, 1024, 6))
        episode.data["observation.cloud"] = cloud.astype(np.float32)
        ours, theirs = tmp_path / f"ours-{length}", tmp_path / f"zarr-{length}"
        store._write_arrays(ours, episode.data)
        layouts = {n: store._layout(big.features[n], a) for n, a in episode.data.items()}
        sync(zarr_write_group(theirs, episode.data, layouts))
        expected = _files(theirs)
        del expected["zarr.json"]  # the group document is _set_entry's
        assert _files(ours) == expected
        cloud = zarr.open_array(str(ours / "observation.cloud"), mode="r")  # and plain zarr reads it back
        np.testing.assert_array_equal(cloud[:], episode.data["observation.cloud"])


class _FlushWitness:
    """Records, at every flush, the state (inode, size, mtime) of every file under the trees flushed, and
    checks at every commit rename that the renamed tree is exactly as it was when last flushed."""

    def __init__(self, monkeypatch, root):
        from toolkit import fsops

        self.flushed: dict[str, tuple] = {}
        self.renames = 0
        witness = self
        flush, flush_file = fsops.Flusher.flush, fsops.Flusher.flush_file

        def on_flush(flusher, trees):
            flush(flusher, trees)
            for tree in trees:
                witness.flushed.update(witness.state(tree))

        def on_flush_file(flusher, path):
            flush_file(flusher, path)
            witness.flushed.update(witness.state(path.parent))

        rename = fsops.rename_noreplace

        def on_rename(src, dst):
            now = witness.state(src)
            assert now and all(witness.flushed.get(p) == s for p, s in now.items()), \
                f"{src} holds bytes not flushed before its commit rename"
            rename(src, dst)
            witness.renames += 1

        monkeypatch.setattr(fsops.Flusher, "flush", on_flush)
        monkeypatch.setattr(fsops.Flusher, "flush_file", on_flush_file)
        monkeypatch.setattr(fsops, "rename_noreplace", on_rename)

    @staticmethod
    def state(tree):
        out = {}
        for p in [tree, *tree.rglob("*")]:
            st = p.stat()
            out[str(p.relative_to(tree.parent))] = (st.st_ino, st.st_size, st.st_mtime_ns) if p.is_file() else ()
        return out


def test_nothing_of_an_episode_is_written_after_the_flush_before_its_commit(tmp_path, spec, monkeypatch):
    store = Store.create(tmp_path / "s.zarr", spec)
    witness = _FlushWitness(monkeypatch, tmp_path / "s.zarr")
    ids = store.append_many([_episode(spec, i) for i in range(3)])
    assert ids == ["000000", "000001", "000002"] and witness.renames == 3
    # Another writer takes the next id between our flush and our rename: the episode takes the next
    # free id, its zarr.json rewritten and flushed again before the rename.
    (tmp_path / "s.zarr" / "episodes" / "000003").mkdir()
    (tmp_path / "s.zarr" / "episodes" / "000003" / "zarr.json").write_text("{}")
    assert store.append(_episode(spec, 3)) == "000004"
    assert witness.renames == 4
    assert store.entry("000004")["id"] == "000004"
    copy = Store.create(tmp_path / "c.zarr", spec)
    _FlushWitness(monkeypatch, tmp_path / "c.zarr")
    assert copy.copy_from(store, "000001") == "000000"
    assert copy.entry("000000")["id"] == "000000"


def test_without_syncfs_every_file_and_folder_is_fsynced_before_the_commit(tmp_path, spec, monkeypatch):
    from toolkit import fsops

    monkeypatch.setattr(fsops, "_syncfs_works", lambda root: False)
    synced: list[str] = []
    fsync_path = fsops.fsync_path
    monkeypatch.setattr(fsops, "fsync_path", lambda p: (synced.append(str(p)), fsync_path(p)))
    rename = fsops.rename_noreplace

    def on_rename(src, dst):
        tree = [str(p) for p in [src, *src.rglob("*")]]
        missing = set(tree) - set(synced)
        assert not missing, f"not fsynced before the commit: {sorted(missing)[:3]}"
        rename(src, dst)

    monkeypatch.setattr(fsops, "rename_noreplace", on_rename)
    store = Store.create(tmp_path / "s.zarr", spec)
    assert store.append_many([_episode(spec, i) for i in range(2)]) == ["000000", "000001"]
    assert len(synced) > 20


def test_syncfs_flushes_a_batch_once_and_a_flush_error_leaves_the_store_unchanged(tmp_path, spec, monkeypatch):
    import ctypes
    import errno

    from toolkit import fsops

    if not fsops._syncfs_works(tmp_path):
        pytest.skip("syncfs is not used on this filesystem")
    calls = []
    real = fsops._libc_syncfs
    monkeypatch.setattr(fsops, "_libc_syncfs", lambda fd: (calls.append(fd), real(fd))[1])
    store = Store.create(tmp_path / "s.zarr", spec)
    store.append_many([_episode(spec, i) for i in range(4)])
    assert len(calls) == 1  # one flush for the batch's 4 episodes and their ~30 files

    def failing(fd):
        ctypes.set_errno(errno.EIO)
        return -1

    monkeypatch.setattr(fsops, "_libc_syncfs", failing)
    with pytest.raises(OSError, match="syncfs"):
        store.append_many([_episode(spec, 10 + i) for i in range(2)])
    assert store.ids() == ["000000", "000001", "000002", "000003"]
    assert not any((tmp_path / "s.zarr" / ".staging").iterdir())
    assert Store.open(tmp_path / "s.zarr").ids() == store.ids()


def test_an_interrupt_while_a_batch_is_written_leaves_the_store_unchanged(tmp_path, spec, monkeypatch):
    from toolkit import arrayfiles

    store = Store.create(tmp_path / "s.zarr", spec)
    store.append(_episode(spec, 0))
    write, calls = arrayfiles.write_chunk_file, []

    def interrupted(*args):
        calls.append(1)
        if len(calls) == 9:  # some files of the batch are written, others still encoding
            raise KeyboardInterrupt
        write(*args)

    monkeypatch.setattr(arrayfiles, "write_chunk_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        store.append_many([_episode(spec, i) for i in range(1, 5)])
    assert store.ids() == ["000000"]
    assert not any((tmp_path / "s.zarr" / ".staging").iterdir())
    assert sorted(p.name for p in (tmp_path / "s.zarr" / "episodes").iterdir() if p.is_dir()) == ["000000"]
    monkeypatch.setattr(arrayfiles, "write_chunk_file", write)
    assert store.append(_episode(spec, 5)) == "000001"


def test_metadata_edits_are_flushed_before_they_replace_the_old_document(tmp_path, spec, monkeypatch):
    store = Store.create(tmp_path / "s.zarr", spec)
    episode_id = store.append(_episode(spec, 0))
    events = []
    fsync, replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append("replace"), replace(a, b))[1])
    store.update_meta(episode_id, tags=["keep"])
    assert events[:2] == ["fsync", "replace"] and events[2:] == ["fsync"]  # the file, then its folder
    assert Store.open(tmp_path / "s.zarr").meta(episode_id).tags == ["keep"]


BATCH_WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    sys.path.insert(0, sys.argv[3])
    from test_store import _episode, _spec
    from toolkit.store import Store
    spec = _spec()
    store = Store.open(sys.argv[1], mode="a")
    start = int(sys.argv[2])
    print("ready", flush=True)
    for first in range(start, start + 10_000, 3):
        batch = []
        for i in range(first, first + 3):
            episode = _episode(spec, i)
            episode.meta.extra = {"index": i}
            batch.append(episode)
        store.append_many(batch)
        print(*range(first, first + 3), flush=True)
    """
)


@pytest.mark.slow
def test_sigkill_during_append_many_keeps_exactly_the_committed_episodes(tmp_path):
    spec = _spec()
    root = tmp_path / "s.zarr"
    Store.create(root, spec).close()
    rng = random.Random(7)
    tests_dir = str(Path(__file__).resolve().parent)
    printed: list[int] = []
    next_index = 0
    for _ in range(12):
        proc = subprocess.Popen([sys.executable, "-c", BATCH_WRITER, str(root), str(next_index), tests_dir],
                                stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.8))
        os.kill(proc.pid, signal.SIGKILL)
        printed += [int(x) for x in proc.stdout.read().split()]
        proc.wait()
        store = Store.open(root, mode="a")
        indices = []
        for episode_id in store.ids():
            back = store.read(episode_id)
            index = back.meta.extra["index"]
            assert store.entry(episode_id)["id"] == episode_id
            original = _episode(spec, index)
            for name in ("observation.state", "observation.depth.front", "observation.pointcloud",
                         "observation.mask.front"):
                np.testing.assert_array_equal(back.data[name], original.data[name])
            indices.append(index)
        assert indices == sorted(indices), "episodes were committed out of order"
        assert set(printed) <= set(indices), "a committed episode was lost"
        unprinted = sorted(set(indices) - set(printed))
        assert len(unprinted) <= 3, f"more than the in-flight batch appeared: {unprinted}"
        assert unprinted == list(range(max(printed, default=-1) + 1, max(printed, default=-1) + 1 + len(unprinted)))
        assert not store.unreadable()
        printed = indices
        next_index = max(indices, default=-1) + 1
        staging = root / ".staging"
        assert not staging.exists() or not any(staging.iterdir()), "the dead writer's staging was not cleaned"
        store.close()
    assert len(printed) > 6, "the writer never got far enough for the test to mean anything"
    assert validate_store(root, deep=True).startswith(f"{root}: {len(printed)} episodes")
