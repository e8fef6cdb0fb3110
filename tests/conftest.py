"""Shared pytest fixtures.

``lerobot_oracle``: the real lerobot 0.6.1 as the judge of LeRobot datasets (shared/tools/lerobot-oracle,
beside the repository). Skips when LEROBOT_ORACLE_PYTHON is unset, fails when it is set but unusable.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

ORACLE_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "tools" / "lerobot-oracle"


@dataclass(frozen=True)
class LeRobotOracle:
    """Runs the oracle's scripts with its own python (lerobot never enters our venv)."""

    python: str
    directory: Path

    def check_load(self, root: Path) -> dict:
        """``check_load.py ROOT --json``; fails the test unless real lerobot loads every frame."""
        proc = subprocess.run([self.python, str(self.directory / "check_load.py"), str(root), "--json"],
                              capture_output=True, text=True, timeout=900)
        try:
            report = json.loads(proc.stdout)
        except json.JSONDecodeError:
            pytest.fail(f"check_load.py crashed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
        assert proc.returncode == 0, f"real lerobot rejects {root}: {report.get('error')} {report.get('hints', [])}"
        return report

    def make_fixture(self, out: Path, *args: str) -> dict:
        """``make_fixture.py OUT ARGS...``: a dataset written by real lerobot; returns its JSON summary."""
        proc = subprocess.run([self.python, str(self.directory / "make_fixture.py"), str(out), *args],
                              capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            pytest.fail(f"make_fixture.py failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
        return json.loads(proc.stdout)


@pytest.fixture(scope="session")
def lerobot_oracle() -> LeRobotOracle:
    python = os.environ.get("LEROBOT_ORACLE_PYTHON")
    if not python:
        pytest.skip("LEROBOT_ORACLE_PYTHON is not set: run shared/tools/lerobot-oracle/setup.sh and export the "
                    "path it prints to check datasets against the real lerobot 0.6.1")
    if not os.access(python, os.X_OK):
        pytest.fail(f"LEROBOT_ORACLE_PYTHON={python} is not executable; re-run shared/tools/lerobot-oracle/setup.sh")
    if not (ORACLE_DIR / "check_load.py").is_file():
        pytest.fail(f"{ORACLE_DIR.resolve()} has no check_load.py; shared/ must sit beside the repository")
    return LeRobotOracle(python, ORACLE_DIR.resolve())
