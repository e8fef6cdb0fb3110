"""The benchmark scripts must keep running (their figures are read by people, not asserted here)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.slow
@pytest.mark.parametrize("script, expected", [
    ("bench_store.py", "Append cost vs store size"),
    ("bench_lerobot_export.py", "lerobot/ours"),
    ("bench_recorder.py", "highest sustained rate"),
])
def test_benchmark_quick_run_prints_its_table(script, expected, tmp_path):
    proc = subprocess.run([sys.executable, str(BENCH / script), "--quick", "--tmpdir", str(tmp_path)],
                          capture_output=True, text=True, timeout=600, env=os.environ.copy())
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert expected in proc.stdout
    assert "| " in proc.stdout  # a markdown table was printed
