"""DemoGen-style point-cloud generation speed: demos generated per second from the real DemoGen flower
sources (1024-point clouds, ~100 frames each), in memory and written into a store.

    python benchmarks/bench_pointcloud.py [--quick] [--grid N] [--repeat R] [--tmpdir DIR]

DemoGen (Xue et al. 2025) reports about 2,200 demos in 22 s (100 demos/s); the issue's aim is to beat
100 demos per second on 2 cores, end to end. "generate (in memory)" runs ``PointCloudEdit.generate`` on
the three sources (``grid`` x ``grid`` object x ``grid`` x ``grid`` target translations each) and keeps
nothing; "generate + store" is ``augment_store`` (what ``demoforge augment pointcloud`` runs) writing
every demo into a new zarr store with the store's defaults: lossless point clouds, each episode flushed
to disk before its commit. With ``--repeat`` each step runs R times and the table shows the median run.
CPU ms/demo is the process's CPU time (all threads) per demo: it does not depend on what else the
machine is running, while wall-clock figures do.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import table  # noqa: E402

from curation.augment import augment_store  # noqa: E402
from curation.pointcloud import PointCloudEdit, PointCloudParams  # noqa: E402
from toolkit.convert import import_dataset  # noqa: E402
from toolkit.fsops import Flusher  # noqa: E402
from toolkit.store import Store  # noqa: E402

FLOWER = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "demogen" / "flower" / "flower.zarr"
BOXES = ((0.4076, -0.0024, 0.0, 0.5187, 0.2575, 0.2004), (0.3870, -0.2246, 0.0, 0.5238, -0.0879, 0.2357))
DEMOGEN_DEMOS, DEMOGEN_SECONDS = 2200, 22.0  # DemoGen's reported speed: 100 demos/s
DEMOGEN_RATE = DEMOGEN_DEMOS / DEMOGEN_SECONDS


def timed(step) -> tuple[int, int, float, float]:
    """(demos, frames, wall seconds, CPU seconds) of one run of ``step``."""
    wall, cpu = time.perf_counter(), time.process_time()
    demos, frames = step()
    return demos, frames, time.perf_counter() - wall, time.process_time() - cpu


def median_run(runs: list[tuple[int, int, float, float]]) -> tuple[int, int, float, float]:
    return sorted(runs, key=lambda r: r[2])[len(runs) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a 2 x 2 grid (48 demos) instead of 4 x 4 (768)")
    ap.add_argument("--grid", type=int, default=None, help="grid points per axis (object and target)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per step; the median run is shown")
    ap.add_argument("--tmpdir", type=Path, default=None)
    args = ap.parse_args()
    n = args.grid or (2 if args.quick else 4)
    with tempfile.TemporaryDirectory(dir=args.tmpdir) as tmp:
        store, ids = import_dataset(FLOWER, Path(tmp) / "flower", task="put the flowers into the vase")
        sources = [store.read(i) for i in ids]
        edit = PointCloudEdit(PointCloudParams(boxes=BOXES, frames=(6, 68, 83), object_grid=n, target_grid=n))

        def generate() -> tuple[int, int]:
            demos = frames = 0
            for seed, episode in enumerate(sources):
                for sample in edit.generate(episode, store.spec, seed):
                    demos += 1
                    frames += sample.episode.length
            return demos, frames

        out = Path(tmp) / "out"

        def generate_and_store() -> tuple[int, int]:
            shutil.rmtree(out, ignore_errors=True)
            return augment_store(store, out, edit).generated, 0  # frames: counted below, untimed

        with Flusher(Path(tmp), True) as flusher:
            flush = "one syncfs per batch" if flusher.uses_syncfs else "fsync of every file and folder"
        gen = median_run([timed(generate) for _ in range(args.repeat)])
        stored = median_run([timed(generate_and_store) for _ in range(args.repeat)])
        stored = (stored[0], stored_frames(out), *stored[2:])
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    rows = []
    for step, (demos, frames, wall, cpu) in (("generate (in memory)", gen), ("generate + store (end to end)", stored)):
        rate = demos / wall
        rows.append([step, str(demos), f"{frames:,}", f"{wall:.2f}", f"{rate:.0f}", f"{rate / DEMOGEN_RATE:.2f}x",
                     f"{frames / wall:,.0f}", f"{cpu / demos * 1e3:.1f}"])
    print(f"Point-cloud generation: 3 DemoGen flower sources, 1024 points/frame, {n}x{n} object x {n}x{n} target "
          f"grid; {os.cpu_count()} CPUs, load average {load:.1f} at the end; store flush: {flush}"
          + (f"; median of {args.repeat} runs" if args.repeat > 1 else "") + "\n")
    print(table(["step", "demos", "frames", "seconds", "demos/s", f"vs DemoGen ({DEMOGEN_RATE:.0f}/s)", "frames/s",
                 "CPU ms/demo"], rows))
    print(f"\nDemoGen reference: {DEMOGEN_DEMOS:,} demos in {DEMOGEN_SECONDS:.0f} s = {DEMOGEN_RATE:.0f} demos/s. "
          f"End to end (written to a store): {stored[0] / stored[2]:.0f} demos/s = "
          f"{stored[0] / stored[2] / DEMOGEN_RATE:.2f}x DemoGen; generation alone: {gen[0] / gen[2]:.0f} demos/s = "
          f"{gen[0] / gen[2] / DEMOGEN_RATE:.2f}x.")


def stored_frames(out: Path) -> int:
    with Store.open(out) as written:
        return sum(row["length"] for row in written.catalog.rows(written.ids()))


if __name__ == "__main__":
    main()
