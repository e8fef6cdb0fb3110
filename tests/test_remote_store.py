"""Stores on object storage (toolkit/remote.py) against a real S3 API on loopback: moto's server, started
as a subprocess on 127.0.0.1 at a free port. Recorders are separate processes with their own handles;
kills are SIGKILL."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("s3fs")
pytest.importorskip("moto")

import boto3  # noqa: E402

from toolkit.errors import StoreError  # noqa: E402
from toolkit.remote import RemoteStore  # noqa: E402
from toolkit.sample import sample_episode, sample_episodes, sample_spec  # noqa: E402
from toolkit.store import StorageOptions, Store  # noqa: E402

SPEC = sample_spec(cameras=1, height=32, width=48)
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3():
    """A moto S3 server on loopback; yields its endpoint URL. The process environment points s3fs at it
    (credentials, and the endpoint through botocore's AWS_ENDPOINT_URL_S3) for this module."""
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                pytest.fail("moto server did not start")
            time.sleep(0.1)
    saved = {k: os.environ.get(k) for k in [*CREDENTIALS, "AWS_ENDPOINT_URL_S3"]}
    os.environ.update(CREDENTIALS, AWS_ENDPOINT_URL_S3=endpoint)
    try:
        yield endpoint
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        server.kill()
        server.wait()


@pytest.fixture
def bucket(s3) -> str:
    """A fresh bucket for one test."""
    name = f"lab-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=s3, **_boto_credentials()).create_bucket(Bucket=name)
    return name


def _boto_credentials() -> dict:
    return {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}


def _child_env(endpoint: str) -> dict:
    """A recorder's environment: credentials, and the endpoint as fsspec's config variable."""
    env = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL_S3"}
    env.update(CREDENTIALS, FSSPEC_S3_ENDPOINT_URL=endpoint)
    return env


def _objects(endpoint: str, bucket: str, prefix: str) -> dict[str, bytes]:
    client = boto3.client("s3", endpoint_url=endpoint, **_boto_credentials())
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            out[item["Key"][len(prefix):]] = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
    return out


def _same_episode(a, b) -> None:
    assert set(a.data) == set(b.data)
    for name in a.data:
        assert a.data[name].dtype == b.data[name].dtype and np.array_equal(a.data[name], b.data[name]), name


def test_s3_round_trip_matches_a_local_store(s3, bucket, tmp_path):
    """Arrays, metadata and filters read back from S3 exactly as from a local store holding the same
    episodes, and every array object is byte for byte the local store's file."""
    episodes = sample_episodes(SPEC, 6)
    url = f"s3://{bucket}/lab.zarr"
    remote = Store.create(url, SPEC)
    assert isinstance(remote, RemoteStore) and remote.root == url
    ids = remote.append_many(episodes[:4]) + [remote.append(e) for e in episodes[4:]]
    assert ids == [f"{i:06d}" for i in range(6)]
    local = Store.create(tmp_path / "local.zarr", SPEC)
    assert local.append_many(episodes) == ids

    with Store.open(url) as reader:
        assert isinstance(reader, RemoteStore) and not reader.writable
        assert len(reader) == 6 and reader.ids() == ids and "000003" in reader and "000099" not in reader
        for where in ('operator == "alice"', "success", "length > 30", 'factors.object_color == "red"'):
            assert reader.ids(where) == local.ids(where), where
        for episode_id, source in zip(ids, episodes):
            got = reader.read(episode_id)
            _same_episode(got, local.read(episode_id))  # images: JPEG, decoded from identical bytes
            for name, feature in SPEC.features.items():
                if feature.kind != "image":
                    assert np.array_equal(got.data[name], source.data[name]), name
            assert reader.meta(episode_id) == local.meta(episode_id) == source.meta
            assert reader.entry(episode_id)["length"] == source.length
            stored = _objects(s3, bucket, f"lab.zarr/episodes/{episode_id}/")
            files = {p.relative_to(local.root / "episodes" / episode_id).as_posix(): p.read_bytes()
                     for p in (local.root / "episodes" / episode_id).rglob("*") if p.is_file()}
            assert {k: v for k, v in stored.items() if k != "zarr.json"} == {k: v for k, v in files.items()
                                                                            if k != "zarr.json"}
        frame = reader.array("000002", "action")[5]
        assert np.array_equal(frame, episodes[2].data["action"][5])
        batch = list(reader.episodes(features=["action", "observation.state"]))
        assert [e.id for e in batch] == ids and reader.read_batch(["action"]) == 16
        rows = reader.catalog.rows(["000000"])
        assert rows[0]["operator"] == episodes[0].meta.operator
        with pytest.raises(StoreError, match="read-only"):
            reader.append(episodes[0])


def test_s3_create_refuses_existing_and_opens_with_exist_ok(s3, bucket):
    url = f"s3://{bucket}/lab.zarr"
    Store.create(url, SPEC).append(sample_episode(SPEC, 0))
    with pytest.raises(StoreError, match="already exists"):
        Store.create(url, SPEC)
    again = Store.create(url, SPEC, exist_ok=True)
    assert again.writable and len(again) == 1
    with pytest.raises(StoreError, match="no such store"):
        Store.open(f"s3://{bucket}/missing.zarr")


def test_memory_store_round_trip_edits_and_folded_urls():
    """memory:// through the same code: lossless images read back exactly; a URL folded by pathlib
    (``memory:/x``, as the command line's Path arguments give it) opens the same store; update_meta and
    delete (committed document first, then objects; the id is never reused)."""
    url = f"memory://lab-{uuid.uuid4().hex[:8]}.zarr"
    episodes = sample_episodes(SPEC, 4)
    store = Store.create(url, SPEC, StorageOptions(image_codec="lossless"))
    ids = store.append_many(episodes)
    reader = Store.open(Path(url), mode="a")  # Path("memory://x") == "memory:/x"
    assert isinstance(reader, RemoteStore) and reader.ids() == ids
    for episode_id, source in zip(ids, episodes):
        _same_episode(reader.read(episode_id), source)
        assert reader.meta(episode_id) == source.meta
    meta = reader.update_meta("000001", tags=["keep"], success=False)
    assert meta.tags == ["keep"] and reader.ids('"keep" in tags') == ["000001"]
    reader.delete(["000002"])
    with pytest.raises(StoreError, match="nothing was deleted"):
        reader.delete(["000002"])
    fresh = Store.open(url, mode="a")
    assert fresh.ids() == ["000000", "000001", "000003"] and fresh.meta("000001").tags == ["keep"]
    assert fresh.unreadable() == {} and fresh.append(episodes[0]) == "000004"
    with pytest.raises(StoreError, match="trim is not supported"):
        fresh.trim("000000", 1, 5)


def test_file_url_opens_the_local_store(tmp_path):
    """file:// maps to the local store (atomic rename commits), not to the object-storage protocol."""
    store = Store.create(f"file://{tmp_path}/lab.zarr", SPEC)
    assert type(store) is Store and store.root == tmp_path / "lab.zarr"
    store.append(sample_episode(SPEC, 0))
    assert Store.open(f"file://{tmp_path}/lab.zarr").ids() == ["000000"]


def test_uncommitted_episode_is_ignored_until_an_explicit_cleanup(s3, bucket):
    """An id whose arrays are written but whose group document is missing, or lacks ``committed``, is
    invisible to readers (never deleted by them); ``cleanup`` removes its arrays; ids are not reused."""
    url = f"s3://{bucket}/lab.zarr"
    writer = Store.create(url, SPEC)
    episodes = sample_episodes(SPEC, 3)
    writer.append(episodes[0])
    half = writer._claim()  # a writer that died after uploading its arrays
    writer._upload(half, writer._encode(episodes[1].data))
    unmarked = writer._claim()  # a group document without the committed mark
    writer._upload(unmarked, writer._encode(episodes[2].data))
    writer.fs.pipe_file(f"{bucket}/lab.zarr/episodes/{unmarked}/zarr.json",
                        b'{"zarr_format": 3, "node_type": "group", "attributes": {}}')

    reader = Store.open(url)
    assert reader.ids() == ["000000"] and len(reader) == 1
    assert half not in reader and unmarked not in reader
    with pytest.raises(StoreError, match="no committed episode"):
        reader.read(half)
    assert set(reader.unreadable()) == {half, unmarked}
    assert _objects(s3, bucket, f"lab.zarr/episodes/{half}/")  # the reader removed nothing

    other = Store.open(url, mode="a")
    assert other.cleanup() == []  # fresh claims: maybe a live writer; left alone
    assert sorted(other.cleanup(older_than=0)) == [half, unmarked]
    assert _objects(s3, bucket, f"lab.zarr/episodes/{half}/") == {}
    assert other.append(episodes[1]) == "000003"  # the claimed ids stay taken
    assert Store.open(url).ids() == ["000000", "000003"]


RECORDER = textwrap.dedent(
    """
    import sys
    from toolkit.sample import sample_episode, sample_spec
    from toolkit.store import Store
    spec = sample_spec(cameras=1, height=32, width=48)
    url, writer, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    store = Store.open(url, mode="a")
    print("ready", flush=True)
    for i in range(count):
        episode = sample_episode(spec, writer * 1000 + i)
        episode.meta.extra = {"writer": writer, "index": writer * 1000 + i}
        print("committed", store.append(episode), flush=True)
    """
)


def _recorder(endpoint: str, url: str, writer: int, count: int, code: str = RECORDER) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, url, str(writer), str(count)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_child_env(endpoint))


def _check_against_sources(store, ids: list[str]) -> None:
    """Every episode is complete and equal to the sample it was made from (found by its index)."""
    reference = Store.create(f"memory://ref-{uuid.uuid4().hex[:8]}.zarr", SPEC)  # same encoding, same bytes
    for episode_id in ids:
        got = store.read(episode_id)
        index = got.meta.extra["index"]
        source = sample_episode(SPEC, index)
        source.meta.extra = dict(got.meta.extra)
        _same_episode(got, reference.read(reference.append(source)))
        assert got.meta == source.meta


def test_concurrent_recorders_get_distinct_ids_and_lose_nothing(s3, bucket):
    """Four recorder processes, each with its own handle, append to one S3 store at once."""
    url = f"s3://{bucket}/lab.zarr"
    Store.create(url, SPEC).close()
    writers, count = 4, 5
    procs = [_recorder(s3, url, w, count) for w in range(writers)]
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (stdout, stderr) in zip(procs, outputs):
        assert proc.returncode == 0, stderr
    claimed = [line.split()[1] for stdout, _ in outputs for line in stdout.splitlines() if line.startswith("committed")]
    assert len(claimed) == writers * count and len(set(claimed)) == len(claimed)

    store = Store.open(url)
    assert sorted(store.ids()) == sorted(claimed) and store.unreadable() == {}
    indices = sorted(store.meta(i).extra["index"] for i in store.ids())
    assert indices == sorted(w * 1000 + i for w in range(writers) for i in range(count))
    _check_against_sources(store, store.ids())


def test_concurrent_threads_on_memory_store():
    """Threads with separate handles on one memory:// store (the process lock stands in for If-None-Match)."""
    from concurrent.futures import ThreadPoolExecutor

    url = f"memory://lab-{uuid.uuid4().hex[:8]}.zarr"
    Store.create(url, SPEC).close()

    def record(writer: int) -> list[str]:
        store = Store.open(url, mode="a")
        out = []
        for i in range(4):
            episode = sample_episode(SPEC, writer * 1000 + i)
            episode.meta.extra = {"writer": writer, "index": writer * 1000 + i}
            out.append(store.append(episode))
        return out

    with ThreadPoolExecutor(4) as pool:
        ids = [i for chunk in pool.map(record, range(4)) for i in chunk]
    assert len(set(ids)) == 16
    store = Store.open(url)
    assert sorted(store.ids()) == sorted(ids)
    _check_against_sources(store, store.ids())


PAUSING_RECORDER = textwrap.dedent(
    """
    import sys, time
    from toolkit import remote
    from toolkit.sample import sample_episode, sample_spec
    from toolkit.store import Store
    spec = sample_spec(cameras=1, height=32, width=48)
    url, writer, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    commit = remote.RemoteStore._commit_entry
    def paused(self, entry, document=None):
        if entry["meta"]["extra"]["index"] == count - 1:  # the last episode: arrays are up, commit pending
            print("arrays-written", entry["id"], flush=True)
            time.sleep(600)
        commit(self, entry, document)
    remote.RemoteStore._commit_entry = paused
    store = Store.open(url, mode="a")
    for i in range(count):
        episode = sample_episode(spec, i)
        episode.meta.extra = {"writer": writer, "index": i}
        print("committed", store.append(episode), flush=True)
    """
)


def test_recorder_killed_between_arrays_and_commit(s3, bucket):
    """SIGKILL a recorder after its last episode's arrays are uploaded, before its committed document:
    the store opens with every committed episode and nothing of the partial one."""
    url = f"s3://{bucket}/lab.zarr"
    Store.create(url, SPEC).close()
    proc = _recorder(s3, url, 0, 3, PAUSING_RECORDER)
    lines = []
    for line in proc.stdout:
        lines.append(line.split())
        if line.startswith("arrays-written"):
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert lines[-1][0] == "arrays-written", (lines, proc.stderr.read())
    partial = lines[-1][1]
    committed = [words[1] for words in lines if words[0] == "committed"]
    assert len(committed) == 2
    assert _objects(s3, bucket, f"lab.zarr/episodes/{partial}/")  # its arrays are there ...
    store = Store.open(url)
    assert store.ids() == committed and partial not in store  # ... and ignored
    _check_against_sources(store, committed)
    assert Store.open(url, mode="a").append(sample_episode(SPEC, 9)) not in committed + [partial]


def test_recorder_killed_at_random_moments(s3, bucket):
    """SIGKILL a looping recorder at random moments, three times: after each kill the store holds every
    episode it reported committed (and at most one more), each complete; recording then goes on."""
    url = f"s3://{bucket}/lab.zarr"
    Store.create(url, SPEC).close()
    rng = random.Random(7)
    reported: list[str] = []
    for round_ in range(3):
        proc = _recorder(s3, url, round_, 10_000)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.3, 1.5))
        proc.send_signal(signal.SIGKILL)
        stdout, _ = proc.communicate(timeout=30)
        reported += [line.split()[1] for line in stdout.splitlines() if line.startswith("committed")]
        store = Store.open(url)
        ids = store.ids()
        assert set(reported) <= set(ids) and len(ids) <= len(reported) + round_ + 1
        _check_against_sources(store, ids)
    assert len(reported) > 0


def _cli(endpoint: str, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "toolkit.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL, env=_child_env(endpoint))
    assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc


def test_cli_info_ls_export_on_s3(s3, bucket, tmp_path):
    """``demoforge info``, ``ls`` and ``export`` read an S3 store: credentials from AWS_* variables, the
    endpoint from FSSPEC_S3_ENDPOINT_URL (fsspec's per-protocol configuration variable)."""
    url = f"s3://{bucket}/lab.zarr"
    store = Store.create(url, SPEC)
    episodes = sample_episodes(SPEC, 4)
    store.append_many(episodes)
    info = _cli(s3, "info", url).stdout
    assert url in info and "4 episodes" in info
    listed = _cli(s3, "ls", url, "--where", 'operator == "alice"').stdout
    shown = {line.split("│")[1].strip() for line in listed.splitlines() if line.startswith("│")}
    assert shown == {"000000", "000003"} and "2 episodes" in listed  # alice recorded episodes 0 and 3
    out = tmp_path / "lerobot"
    exported = _cli(s3, "export", url, "--to", "lerobot", "--out", out, "--vcodec", "h264").stdout
    assert "exported 4 episodes" in exported
    assert (out / "meta" / "info.json").exists()
