"""Curation on Dask distributed: a LocalCluster and a tcp:// scheduler give exactly the single-process
results; a worker killed mid-job is retried or its episodes reported, and nothing partial is saved;
the client never reads episodes and keeps a bounded number of batches in flight.

Real parts throughout: episodes recorded in the MuJoCo tabletop or the procedural sample written to a
real store, a real LocalCluster of worker processes, real SIGKILLs, the real command line.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

pytest.importorskip("distributed")

from cli_helpers import demoforge, refused  # noqa: E402
from curation.base import DatasetResult, EpisodeResult, Flag  # noqa: E402
from curation.engine import DaskEngine, batches  # noqa: E402
from curation.registry import make_passes  # noqa: E402
from curation.runner import CurationJob, curate_store  # noqa: E402
from toolkit.episode import Episode  # noqa: E402
from toolkit.errors import DemoforgeError  # noqa: E402
from toolkit.progress import reporting_to  # noqa: E402
from toolkit.sample import sample_episodes, sample_spec  # noqa: E402
from toolkit.scores import json_default  # noqa: E402
from toolkit.spec import DatasetSpec  # noqa: E402
from toolkit.store import Store  # noqa: E402

BASE = 'operator == "careful"'


@dataclass(frozen=True)
class SlowParams:
    delay: float = 0.0  # seconds of sleep per episode: keeps a job running long enough to kill a worker


class SlowPeak:
    """Known per-episode answers (the largest |action| and its frame), optionally slow."""

    name: ClassVar[str] = "peak"
    version: ClassVar[str] = "1"

    def __init__(self, params: SlowParams | None = None) -> None:
        self.params = params or SlowParams()

    def features(self, spec: DatasetSpec) -> list[str]:
        return ["action"]

    def score(self, episode: Episode, spec: DatasetSpec) -> EpisodeResult:
        time.sleep(self.params.delay)
        norm = np.abs(episode.data["action"]).max(axis=1)
        frame = int(norm.argmax())
        return EpisodeResult(id=episode.id, scores={"peak": float(norm[frame])},
                             flags={"peak": Flag([[frame, frame + 1]], f"largest action {norm[frame]:.3f}")},
                             payload={"peak": float(norm[frame])})

    def reduce(self, results: list[EpisodeResult], spec: DatasetSpec) -> DatasetResult:
        return DatasetResult(episodes={r.id: r for r in results},
                             summary={"mean_peak": float(np.mean([r.payload["peak"] for r in results]))})


# -- fixtures ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cluster():
    """One LocalCluster (2 worker processes, 1 thread each) for the tests that leave it working."""
    with DaskEngine(None, workers=2) as engine:
        yield engine


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, sim_store, block) -> Path:
    """Careful (the base) and side operators on pick-and-place, recorded in the simulator."""
    root = tmp_path_factory.mktemp("dask") / "sim.zarr"
    sim_store(root, [block(style="careful", count=10, seed=0), block(style="side", count=4, seed=100)]).close()
    return root


@pytest.fixture
def sample(tmp_path) -> Store:
    """24 procedural episodes with a camera (so an episode is far larger than its results)."""
    spec = sample_spec(cameras=1, height=48, width=64)
    store = Store.create(tmp_path / "sample.zarr", spec)
    store.append_many(sample_episodes(spec, 24, seed=5))
    return store


def copy(root: Path, to: Path) -> Store:
    shutil.copytree(root, to)
    return Store.open(to, mode="a")


def as_json(value) -> str:
    return json.dumps(without_timings(json.loads(json.dumps(value, default=json_default))), sort_keys=True)


def without_timings(value):
    """The value less wall-clock timings (compatibility reports its ``fit_seconds``)."""
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if not k.endswith("seconds")}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def assert_same(one: dict[str, DatasetResult], two: dict[str, DatasetResult]) -> None:
    """Every pass's per-episode scores and flags, reduce summary and findings are identical."""
    assert list(one) == list(two)
    for name in one:
        a, b = one[name], two[name]
        assert list(a.episodes) == list(b.episodes), name
        for i in a.episodes:
            assert as_json(a.episodes[i].scores) == as_json(b.episodes[i].scores), (name, i)
            assert ({k: f.to_dict() for k, f in a.episodes[i].flags.items()}
                    == {k: f.to_dict() for k, f in b.episodes[i].flags.items()}), (name, i)
        assert as_json(a.summary) == as_json(b.summary), name
        assert as_json([f.to_dict() for f in a.findings]) == as_json([f.to_dict() for f in b.findings]), name


def saved(store: Store, name: str) -> dict[str, float]:
    columns = Store.open(store.root).catalog.columns()
    return dict(zip(columns["id"], columns[f"{name}.peak"])) if f"{name}.peak" in columns else {}


def kill_a_busy_worker(engine: DaskEngine) -> tuple[int, str, list[str]]:
    """SIGKILL a worker process that is running (or holds) batches of the job; returns its pid, its
    address and the keys of the batches it held."""
    pids = engine.pids()
    for _ in range(100):
        busy = {w: [k for k in keys if "-batch-" in str(k)] for w, keys in engine.client.processing().items()}
        busy = {w: keys for w, keys in busy.items() if keys}
        if busy:
            worker, keys = next(iter(busy.items()))
            os.kill(pids[worker], signal.SIGKILL)
            return pids[worker], worker, keys
        time.sleep(0.02)
    raise AssertionError("no worker was running a batch")


def killing_sink(engine: DaskEngine, after: int, record: dict):
    """A progress sink that kills a busy worker once ``after`` batches are done."""
    def sink(description: str, done: int, total: int | None) -> None:
        if done == after and "pid" not in record:
            record["pid"], record["worker"], record["keys"] = kill_a_busy_worker(engine)
    return sink


def wait_for_two_workers(engine: DaskEngine) -> None:
    engine.client.wait_for_workers(2, timeout=60)


# -- identical results ---------------------------------------------------------------------------------

def test_local_cluster_gives_the_single_process_results(recorded, cluster, tmp_path):
    """Every pass (compatibility fitted here, shipped to the workers) on sim-recorded episodes."""
    passes = ["quality", "diversity", "shortcuts", "compatibility"]
    one = curate_store(copy(recorded, tmp_path / "one.zarr"), make_passes(passes), base=BASE, workers=1)
    store = copy(recorded, tmp_path / "dask.zarr")
    two = curate_store(store, make_passes(passes), base=BASE, engine=cluster)
    assert not one.failed and not two.failed
    assert_same(one.results, two.results)
    assert two.report["workers"] == 2
    assert as_json(one.report["passes"]) == as_json(two.report["passes"])
    # what was saved is what a single process saves
    a = Store.open(tmp_path / "one.zarr").catalog.columns()
    b = Store.open(tmp_path / "dask.zarr").catalog.columns()
    for column in ("quality.ok", "diversity.contribution", "compatibility.score", "shortcuts.isolated"):
        assert as_json(list(a[column])) == as_json(list(b[column])), column


def test_cli_on_a_tcp_scheduler_and_on_a_local_cluster(recorded, cluster, tmp_path):
    """``--scheduler tcp://...`` (this module's cluster, as a user's would be) and ``--workers 2``
    (a LocalCluster the command starts) save what a single process saves."""
    one = tmp_path / "one.zarr"
    shutil.copytree(recorded, one)
    demoforge("curate", one, "--workers", "1")
    address = cluster.scheduler_address
    assert address.startswith("tcp://")
    for flags in (["--scheduler", address], ["--workers", "2"]):
        root = tmp_path / f"run{len(flags[1])}.zarr"
        shutil.copytree(recorded, root)
        proc = demoforge("curate", root, *flags)
        assert "curated 14 episodes" in proc.stdout and "Dask" in proc.stdout, proc.stdout
        a, b = Store.open(one).catalog.columns(), Store.open(root).catalog.columns()
        for column in ("quality.ok", "quality.jerk_rms", "diversity.contribution", "shortcuts.isolated"):
            if column in a:
                assert as_json(list(a[column])) == as_json(list(b[column])), (flags, column)
        report = json.loads((root / "curation" / "report.json").read_text())
        assert report["workers"] == 2 and report["failed"] == {}


def test_cli_refusals_are_one_line(recorded, monkeypatch, tmp_path):
    root = tmp_path / "s.zarr"
    shutil.copytree(recorded, root)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("DASK_DEMOFORGE__CONNECT_TIMEOUT", "1s")
    line = refused("curate", root, "--scheduler", f"tcp://127.0.0.1:{port}")
    assert "cannot reach the Dask scheduler" in line
    assert "expected 'local' or a scheduler address" in refused("curate", root, "--scheduler", "nowhere")
    assert not (root / "curation").exists()


def test_without_dask_local_is_refused_and_workers_use_the_process_pool(recorded, tmp_path):
    """The core runs without the extra: ``--scheduler local`` says what to install, ``--workers 2``
    falls back to local processes."""
    root = tmp_path / "s.zarr"
    shutil.copytree(recorded, root)
    blocked = ("import sys; sys.modules['distributed'] = None; sys.modules['dask'] = None; "
               "from toolkit.cli import main; sys.argv[0] = 'demoforge'; main()")

    def run(*args):
        return subprocess.run([sys.executable, "-c", blocked, *map(str, args)], capture_output=True, text=True,
                              timeout=300, stdin=subprocess.DEVNULL)

    proc = run("curate", root, "--scheduler", "local")
    assert proc.returncode == 1 and proc.stderr.strip().splitlines() == [
        "error: --scheduler local: Dask is not installed; install demoforge[distributed] "
        "(pip install 'demoforge[distributed]')"], proc.stderr
    proc = run("curate", root, "--workers", "2", "--passes", "quality")
    assert proc.returncode == 0, proc.stderr
    assert "(2 workers)" in proc.stdout and "Dask" not in proc.stdout


# -- a worker killed mid-job ---------------------------------------------------------------------------

def test_a_killed_worker_is_retried_and_the_results_are_identical(sample, cluster):
    wait_for_two_workers(cluster)
    expected = curate_store(sample, [SlowPeak()], workers=1).results
    record: dict = {}
    with reporting_to(killing_sink(cluster, after=2, record=record)):
        run = curate_store(sample, [SlowPeak(SlowParams(delay=0.15))], engine=cluster)
    assert record["pid"] not in cluster.pids().values()  # the worker really died (its nanny started another)
    assert run.failed == {}
    assert {i: r.scores for i, r in run.results["peak"].episodes.items()} == \
        {i: r.scores for i, r in expected["peak"].episodes.items()}
    assert run.results["peak"].summary == expected["peak"].summary
    wait_for_two_workers(cluster)


def test_a_batch_whose_worker_died_is_reported_and_only_finished_episodes_are_saved(sample, cluster):
    """With no retries the batches on the killed worker fail: their episodes are listed in ``failed``
    (and the report), get no score, and every other episode is saved with its exact score."""
    wait_for_two_workers(cluster)
    expected = {i: r.scores["peak"] for i, r in curate_store(
        copy(sample.root, sample.root.with_name("expected.zarr")), [SlowPeak()], workers=1
    ).results["peak"].episodes.items()}
    record: dict = {}
    cluster.retries = 0
    try:
        with reporting_to(killing_sink(cluster, after=2, record=record)):
            run = curate_store(sample, [SlowPeak(SlowParams(delay=0.15))], engine=cluster)
    finally:
        cluster.retries = 3
    ids = sample.ids()
    chunks = batches(ids, 2)
    held = {e for key in record["keys"] for e in chunks[int(str(key).split("-batch-")[1].split("-")[0])]}
    # the batches the worker held when it died failed (and maybe one the scheduler gave it just after)
    assert run.failed and set(run.failed) & held
    assert all(f"worker died 1 time(s) while running it (last: {record['worker']})" in why
               for why in run.failed.values()), run.failed
    assert run.report["failed"] == run.failed
    scores = saved(sample, "peak")
    for i in ids:
        if i in run.failed:
            assert np.isnan(scores[i]), i
        else:
            assert scores[i] == pytest.approx(expected[i], abs=0), i
    assert set(run.results["peak"].episodes) == set(ids) - set(run.failed)
    wait_for_two_workers(cluster)


def test_an_interrupted_or_lost_job_saves_nothing(sample, tmp_path):
    """Ctrl-C mid-job, and a cluster that goes away mid-job: no score file is written or changed."""
    with DaskEngine(None, workers=2) as engine:
        curate_store(sample, [SlowPeak()], engine=engine)  # scores from an earlier run
        before = {p.name: p.read_bytes() for p in (sample.root / "curation").iterdir()}

        def interrupt(description, done, total):
            if done == 2:
                raise KeyboardInterrupt

        with reporting_to(interrupt), pytest.raises(KeyboardInterrupt):
            curate_store(sample, [SlowPeak(SlowParams(delay=0.1))], engine=engine)
        assert {p.name: p.read_bytes() for p in (sample.root / "curation").iterdir()} == before
        # the interrupted job's batches were cancelled: the cluster is idle again
        deadline = time.monotonic() + 10
        while any(engine.client.processing().values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(engine.client.processing().values())

        def lose_the_cluster(description, done, total):
            if done == 2:
                engine._cluster.close()

        with reporting_to(lose_the_cluster), pytest.raises(DemoforgeError, match="lost the Dask cluster"):
            curate_store(sample, [SlowPeak(SlowParams(delay=0.1))], engine=engine)
        assert {p.name: p.read_bytes() for p in (sample.root / "curation").iterdir()} == before


# -- memory: episodes stay on the workers, a bounded number of batches in flight ------------------------

def test_the_client_never_reads_episodes_and_keeps_few_batches_in_flight(sample, monkeypatch):
    expected = curate_store(sample, make_passes(["quality", "diversity", "shortcuts"]), workers=1).results
    episode_bytes = {e.id: sum(a.nbytes for a in e.data.values()) for e in sample.episodes()}

    def no_reading(*args, **kwargs):
        raise AssertionError("the client read episode arrays")

    monkeypatch.setattr(Store, "read_many", no_reading)  # in this process only: the workers are others
    monkeypatch.setattr(Store, "read", no_reading)
    with DaskEngine(None, workers=2, in_flight=3) as engine:
        passes = make_passes(["quality", "diversity", "shortcuts"])
        run = curate_store(sample, passes, engine=engine)
        assert_same(expected, run.results)
        chunks = [[i] for i in sample.ids()]  # one episode a batch: many more batches than in flight
        assert len(chunks) > 3 * engine.in_flight
        job = CurationJob(str(sample.root), tuple(passes), ("observation.state", "action", "observation.images.front"))
        seen = 0
        for outcome in engine.map(job, chunks):
            for episode_id, results in outcome.results:
                assert set(results) == {"quality", "diversity", "shortcuts"}
                assert all(isinstance(r, EpisodeResult) for r in results.values())
                # what comes back is a small summary of the episode, not its arrays (camera frames included)
                assert len(pickle.dumps(results)) < episode_bytes[episode_id] / 4, episode_id
                seen += 1
        assert seen == len(sample)
        assert engine.peak_in_flight == 3
