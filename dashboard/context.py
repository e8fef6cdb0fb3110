"""The running app's state, for callbacks and routes: its ``Library`` and ``JobManager`` (in the Flask config,
so several apps can live in one process)."""

from __future__ import annotations

from flask import current_app

from dashboard.data import Library
from dashboard.jobs import JobManager


def library() -> Library:
    return current_app.config["DEMOFORGE_LIBRARY"]


def jobs() -> JobManager:
    return current_app.config["DEMOFORGE_JOBS"]
