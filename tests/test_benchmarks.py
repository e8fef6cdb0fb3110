"""The benchmark scripts must keep running (their figures are read by people, not asserted here)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.slow
@pytest.mark.parametrize("script, writes_files, expected", [
    ("bench_store.py", True, "Append cost vs store size"),
    ("bench_lerobot_export.py", True, "lerobot/ours"),
    ("bench_recorder.py", True, "highest sustained rate"),
    ("bench_sim.py", False, "ms per step"),
    ("bench_curation.py", True, "episodes/s"),
    ("bench_pointcloud.py", True, "demos/s"),
    ("bench_greenscreen.py", True, "frames/s"),
    ("bench_dashboard.py", True, "Time to first rows"),
    ("bench_catalog.py", True, "Dashboard grid: filter + first block"),
    ("bench_scaling.py", True, "map efficiency"),
    ("bench_growth.py", True, "Curate cost vs dataset size"),
])
def test_benchmark_quick_run_prints_its_table(script, writes_files, expected, tmp_path):
    args = ["--quick", "--tmpdir", str(tmp_path)] if writes_files else ["--quick"]
    proc = subprocess.run([sys.executable, str(BENCH / script), *args],
                          capture_output=True, text=True, timeout=600, env=os.environ.copy())
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert expected in proc.stdout
    assert "| " in proc.stdout  # a markdown table was printed
