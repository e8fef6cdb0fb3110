"""Background jobs started from the dashboard (export a view, run curation passes), with progress and cancel.

A job is a function run in a thread of the server process. It reports through ``toolkit.progress.track``
like every long command does: the job installs a sink that records (stage, done, total), and a cancel
makes that sink raise ``Cancelled`` at the next item, the same point where Ctrl-C would stop the
command, so a cancelled export or curation leaves the stores as an interrupted command would (nothing
half-committed). The page polls ``JobManager.snapshot()``; results are small summaries, never data.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from toolkit.errors import DemoforgeError
from toolkit.progress import reporting_to


class Cancelled(DemoforgeError):
    """The user cancelled the job."""


@dataclass
class Job:
    id: int
    title: str
    state: str = "running"  # running | done | failed | cancelled
    stage: str = ""
    done: int = 0
    total: int | None = None
    result: str = ""
    started: float = field(default_factory=time.time)
    finished: float | None = None
    cancel: threading.Event = field(default_factory=threading.Event)

    def view(self) -> dict[str, Any]:
        """What the page shows (JSON-safe)."""
        return {"id": self.id, "title": self.title, "state": self.state, "stage": self.stage, "done": self.done,
                "total": self.total, "result": self.result,
                "seconds": round((self.finished or time.time()) - self.started, 1)}


class JobManager:
    """Runs jobs one per thread and keeps their state for the page to poll."""

    def __init__(self) -> None:
        self.jobs: dict[int, Job] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def start(self, title: str, work: Callable[[], str]) -> Job:
        """Run ``work`` (which returns a one-line result) in a thread; returns the job at once."""
        job = Job(id=next(self._ids), title=title)
        with self._lock:
            self.jobs[job.id] = job
        threading.Thread(target=self._run, args=(job, work), name=f"demoforge-job-{job.id}", daemon=True).start()
        return job

    def _run(self, job: Job, work: Callable[[], str]) -> None:
        def sink(stage: str, done: int, total: int | None) -> None:
            if job.cancel.is_set():
                raise Cancelled("cancelled")
            job.stage, job.done, job.total = stage, done, total

        try:
            with reporting_to(sink):
                job.result = work()
            job.state = "done"
        except Cancelled:
            job.state, job.result = "cancelled", f"cancelled at {job.stage} {job.done}/{job.total or '?'}"
        except DemoforgeError as e:
            job.state, job.result = "failed", str(e)
        except Exception as e:  # noqa: BLE001 - a job's bug must reach the page, not kill the server
            job.state, job.result = "failed", f"internal error: {type(e).__name__}: {e}"
        job.finished = time.time()

    def cancel(self, job_id: int) -> None:
        job = self.jobs.get(job_id)
        if job is not None:
            job.cancel.set()

    def wait(self, job_id: int, timeout: float = 60.0) -> Job:
        """Block until the job ends (tests and scripts)."""
        deadline = time.time() + timeout
        job = self.jobs[job_id]
        while job.state == "running" and time.time() < deadline:
            time.sleep(0.05)
        return job

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return [j.view() for j in sorted(self.jobs.values(), key=lambda j: -j.id)]

    def running(self) -> bool:
        return any(j.state == "running" for j in self.jobs.values())
