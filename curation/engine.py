"""Engines: where a per-episode map runs (this process, a local process pool, a Dask cluster).

An engine runs a **job** over **batches of episode ids** and yields each batch's ``Outcome`` as soon as
it completes, so the caller reduces on the fly and holds only the small per-episode results. A job is
a picklable object with two methods:

- ``open() -> context``: once per worker process, e.g. open the store by its path (never a live
  handle: workers read the episodes themselves, so episode arrays never travel to or from the client);
- ``run(context, ids) -> list``: one batch, e.g. read those episodes and score them; it returns small
  results only. An episode it cannot read is a result too (the job decides how to say so).

A context with a ``close()`` method is closed when the job ends (in this process) or is forgotten.

``LocalEngine`` is the default: in this process for one worker, else a forkserver process pool.
``DaskEngine`` submits batches to a Dask distributed cluster: a ``LocalCluster`` it starts
(``--scheduler local``) or an existing one (``--scheduler tcp://HOST:PORT``). At most ``in_flight``
batches are submitted at a time, so the client's and the workers' memory stays bounded whatever the
size of the dataset. A batch whose worker dies is resubmitted up to ``retries`` times; after that its
episodes come back as a failed ``Outcome`` with the reason, and the caller decides what to keep
(the curation runner saves nothing until every batch has an outcome). An exception the job itself
raises is a bug and propagates, as it does locally.

Dask is an optional extra (``demoforge[distributed]``): it is imported only when a Dask engine is made.
"""

from __future__ import annotations

import importlib.util
import logging
import multiprocessing
import os
import threading
import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from toolkit.errors import DemoforgeError, one_line

R = TypeVar("R")
INSTALL_HINT = "install demoforge[distributed] (pip install 'demoforge[distributed]')"
DEFAULT_RETRIES = 3  # Dask's own default for distributed.scheduler.allowed-failures


class Job(Protocol[R]):
    def open(self) -> Any:
        """Per worker process, once: what every batch needs (e.g. the store opened by path)."""

    def run(self, context: Any, ids: list[str]) -> list[R]:
        """One batch: small results for these episodes."""


@dataclass
class Outcome(Generic[R]):
    """A batch's results, or (``results is None``) why none of its episodes were processed."""

    ids: list[str]
    results: list[R] | None
    error: str | None = None


@runtime_checkable
class Engine(Protocol):
    name: str  # for messages: "1 process", "Dask LocalCluster", "Dask tcp://..."

    @property
    def workers(self) -> int:
        """How many batches run at once."""

    def map(self, job: Job[R], batches: Sequence[list[str]]) -> Iterator[Outcome[R]]:
        """Run ``job`` over ``batches``; yield each batch's outcome as it completes (in any order)."""

    def close(self) -> None:
        """Release what the engine started (processes, a cluster)."""


def batches(ids: Sequence[str], workers: int, most: int = 32) -> list[list[str]]:
    """Split ``ids`` into batches: about 8 per worker (so a slow batch does not leave the others idle),
    at most ``most`` episodes each (results reach the reduce and the progress bar steadily)."""
    size = max(1, min(most, len(ids) // (workers * 8) or 1))
    return [list(ids[i:i + size]) for i in range(0, len(ids), size)]


def _close(context: Any) -> None:
    close = getattr(context, "close", None)
    if close is not None:
        close()


# -- local: this process or a process pool --------------------------------------------------------

_POOL_JOB: dict[str, Any] = {}  # in a pool worker process: the job and its context


def _install(job: Job) -> None:
    _POOL_JOB.update(job=job, context=job.open())


def _run_installed(ids: list[str]) -> list[Any]:
    return _POOL_JOB["job"].run(_POOL_JOB["context"], ids)


class LocalEngine:
    """Today's map: in this process (``workers <= 1``) or a pool of forkserver processes.

    Forkserver, not fork: the parent may hold threads (zarr's event loop) that a fork would copy
    mid-lock. A pool worker that dies breaks the whole pool (Python's ``ProcessPoolExecutor``): the
    batches without a result are reported as failed.
    """

    def __init__(self, workers: int = 1) -> None:
        self._workers = max(1, workers)
        self.name = "1 process" if self._workers == 1 else f"{self._workers} processes"

    @property
    def workers(self) -> int:
        return self._workers

    def map(self, job: Job[R], batches: Sequence[list[str]]) -> Iterator[Outcome[R]]:
        if self._workers <= 1:
            context = job.open()
            try:
                for ids in batches:
                    yield Outcome(list(ids), job.run(context, list(ids)))
            finally:
                _close(context)
            return
        context = multiprocessing.get_context("forkserver")
        with ProcessPoolExecutor(self._workers, mp_context=context, initializer=_install, initargs=(job,)) as pool:
            futures = {pool.submit(_run_installed, list(ids)): list(ids) for ids in batches}
            try:
                for future in as_completed(futures):
                    try:
                        yield Outcome(futures[future], future.result())
                    except BrokenProcessPool as e:
                        yield Outcome(futures[future], None, f"a worker process died ({one_line(e)})")
            finally:
                for future in futures:
                    future.cancel()

    def close(self) -> None:
        pass

    def __enter__(self) -> LocalEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- Dask distributed --------------------------------------------------------------------------------

@dataclass
class _Shipped:
    """The job as the workers hold it: one copy per worker (a task result, fetched once), plus a token
    naming this run so each worker process opens the job's context once and can forget it after."""

    token: str
    job: Any


_CONTEXTS: dict[str, Any] = {}  # in a Dask worker process: token -> the job's context
_CONTEXTS_LOCK = threading.Lock()


def _hold(shipped: _Shipped) -> _Shipped:
    return shipped


def _dask_run(shipped: _Shipped, ids: list[str]) -> list[Any]:
    with _CONTEXTS_LOCK:  # a worker may run several threads; the context is opened once per process
        context = _CONTEXTS.get(shipped.token)
        if context is None:
            context = _CONTEXTS[shipped.token] = shipped.job.open()
    return shipped.job.run(context, ids)


def _forget(token: str) -> None:
    with _CONTEXTS_LOCK:
        context = _CONTEXTS.pop(token, None)
    if context is not None:
        _close(context)


def dask_available() -> bool:
    """Whether the ``distributed`` extra is installed (without importing it: that takes a second)."""
    try:
        return importlib.util.find_spec("distributed") is not None
    except (ImportError, ValueError):  # a broken or blocked install
        return False


class DaskEngine:
    """Batches on a Dask distributed cluster: ``address`` (``tcp://HOST:PORT``) or, when None, a
    ``LocalCluster`` of ``workers`` processes with one thread each and no dashboard.

    ``retries``: how often a batch whose worker died is resubmitted before its episodes are reported
    as failed (a cluster's scheduler may already have retried it under its own
    ``distributed.scheduler.allowed-failures``; the local cluster counts every death here).
    ``in_flight``: most batches submitted at once (default: two per worker thread, so no thread waits).
    ``connect_timeout``: seconds to reach a scheduler (default: Dask config ``demoforge.connect-timeout``,
    else 10).
    """

    def __init__(self, address: str | None = None, workers: int = 2, retries: int = DEFAULT_RETRIES,
                 in_flight: int | None = None, connect_timeout: float | None = None) -> None:
        try:
            import dask
            from distributed import Client, LocalCluster
        except ImportError:
            where = address or "local"
            raise DemoforgeError(f"--scheduler {where}: Dask is not installed; {INSTALL_HINT}") from None
        if retries < 0:
            raise DemoforgeError(f"--retries {retries}: expected 0 or more")
        self.retries = retries
        self.address = address
        self.peak_in_flight = 0  # most batches submitted at once during the last map (tests read it)
        self._cluster = None
        if address is None:
            self.name = "Dask LocalCluster"
            # Every worker death reaches this client at once (allowed-failures 0); ``retries`` counts them.
            with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
                self._cluster = LocalCluster(
                    n_workers=max(1, workers), threads_per_worker=1, processes=True,
                    dashboard_address=None, silence_logs=logging.CRITICAL,
                    # the scheduler's HTTP server (health, metrics) always starts: on loopback, any port
                    scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
            self.client = Client(self._cluster, set_as_default=False)
        else:
            if not address.startswith(("tcp://", "tls://", "ucx://", "inproc://")):
                raise DemoforgeError(f"--scheduler {address}: expected 'local' or a scheduler address such as "
                                     "tcp://HOST:8786")
            self.name = f"Dask {address}"
            timeout = connect_timeout if connect_timeout is not None else _seconds(
                dask.config.get("demoforge.connect-timeout", 10))
            try:
                self.client = Client(address, timeout=timeout, set_as_default=False)
            except (OSError, TimeoutError) as e:
                raise DemoforgeError(f"--scheduler {address}: cannot reach the Dask scheduler within {timeout:g} s "
                                     f"({one_line(e)}); is it running?") from None
            try:
                self.client.wait_for_workers(1, timeout=timeout)
            except (OSError, TimeoutError):
                self.close()
                raise DemoforgeError(f"--scheduler {address}: the Dask cluster has no workers "
                                     f"(waited {timeout:g} s); start some with 'dask worker {address}'") from None
        self.in_flight = in_flight or max(2, 2 * self.workers)

    @property
    def workers(self) -> int:
        return max(1, sum(self.client.nthreads().values()))

    @property
    def scheduler_address(self) -> str:
        """Where the scheduler listens (a LocalCluster's too: other clients can use it)."""
        return self.client.scheduler.address

    def pids(self) -> dict[str, int]:
        """Each worker's process id (to watch or kill one in a test)."""
        return self.client.run(os.getpid)

    def map(self, job: Job[R], batches: Sequence[list[str]]) -> Iterator[Outcome[R]]:
        from distributed import KilledWorker, as_completed as dask_completed

        token = f"demoforge-{uuid.uuid4().hex[:12]}"
        client = self.client
        package = _Shipped(token, job)
        shipped = [client.submit(_hold, package, key=f"{token}-job-0", pure=False)]
        waiting = deque(range(len(batches)))
        attempts = [0] * len(batches)
        running: dict[str, int] = {}  # future key -> batch index
        futures: dict[str, Any] = {}
        completed = dask_completed(loop=client.loop)
        self.peak_in_flight = 0

        def submit(index: int) -> None:
            if shipped[-1].status in ("error", "cancelled"):
                # the job's holder died while starting (a lost result is recomputed by Dask itself)
                shipped.append(client.submit(_hold, package, key=f"{token}-job-{len(shipped)}", pure=False))
            key = f"{token}-batch-{index}-{attempts[index]}"
            future = client.submit(_dask_run, shipped[-1], list(batches[index]), key=key, pure=False)
            running[key], futures[key] = index, future
            completed.add(future)
            self.peak_in_flight = max(self.peak_in_flight, len(running))

        lost = _lost_cluster_errors()
        try:
            while waiting and len(running) < self.in_flight:
                submit(waiting.popleft())
            for future in completed:
                index = running.pop(future.key)
                futures.pop(future.key)
                try:
                    results = future.result()
                except KilledWorker as e:
                    if attempts[index] < self.retries:
                        attempts[index] += 1
                        waiting.appendleft(index)
                    else:
                        yield Outcome(list(batches[index]), None,
                                      f"its Dask worker died {attempts[index] + 1} time(s) while running it "
                                      f"(last: {_worker_of(e)})")
                else:
                    yield Outcome(list(batches[index]), results)
                finally:
                    del future
                while waiting and len(running) < self.in_flight:
                    submit(waiting.popleft())
        except lost as e:
            raise DemoforgeError(f"{self.name}: lost the Dask cluster mid-job ({type(e).__name__}: {one_line(e)}); "
                                 "the job did not finish") from None
        finally:
            try:  # best effort: a closed client has nothing left to cancel
                client.cancel([*futures.values(), *shipped])
                client.run(_forget, token)
            except Exception:  # noqa: BLE001 - a worker's context is also dropped when it exits
                pass

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            if self._cluster is not None:
                self._cluster.close()
                self._cluster = None

    def __enter__(self) -> DaskEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _lost_cluster_errors() -> tuple[type[BaseException], ...]:
    # the scheduler went away: the client cancels every future it holds, or is closed
    from concurrent.futures import CancelledError

    from distributed.client import ClosedClientError
    from distributed.comm.core import CommClosedError
    return (CancelledError, CommClosedError, ClosedClientError)


def _worker_of(e: BaseException) -> str:
    worker = getattr(e, "last_worker", None)
    return str(getattr(worker, "address", worker)) if worker is not None else type(e).__name__


def _seconds(value: Any) -> float:
    from dask.utils import parse_timedelta
    return float(parse_timedelta(value, default="s"))


def make_engine(scheduler: str | None, workers: int, retries: int = DEFAULT_RETRIES) -> Engine | None:
    """The engine ``--scheduler`` and ``--workers`` ask for; None for today's default (the caller sizes
    a ``LocalEngine`` by the job).

    - ``None``: a Dask ``LocalCluster`` when more than one worker is asked for and Dask is installed,
      else the local default (one process, or a process pool for big jobs);
    - ``"pool"``: the local process pool (``workers``, 0: by job size), never Dask;
    - ``"local"``: a Dask ``LocalCluster`` of ``workers`` processes (0: one per core, at most 8);
    - ``"tcp://HOST:PORT"``: an existing Dask cluster (``workers`` is the cluster's business).
    """
    if scheduler in (None, ""):
        return DaskEngine(None, workers, retries) if workers > 1 and dask_available() else None
    if scheduler == "pool":
        return None
    if scheduler == "local":
        return DaskEngine(None, workers or min(os.cpu_count() or 1, 8), retries)
    return DaskEngine(scheduler, workers, retries)
