"""DemoGen-style point-cloud generation speed: demos generated per second from the real DemoGen flower
sources (1024-point clouds, ~100 frames each), in memory and written into a store.

    python benchmarks/bench_pointcloud.py [--quick] [--grid N] [--tmpdir DIR]

DemoGen (Xue et al. 2025) reports about 2,200 demos in 22 s (~100 demos/s); the issue's aim is to beat
100 demos per second on 2 cores. "Generate" runs ``PointCloudEdit.generate`` on the three sources
(``grid`` x ``grid`` object x ``grid`` x ``grid`` target translations each); "generate + store" is
``augment_store`` writing every demo into a new zarr store (lossless point clouds).
"""

from __future__ import annotations

import argparse
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

FLOWER = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "demogen" / "flower" / "flower.zarr"
BOXES = ((0.4076, -0.0024, 0.0, 0.5187, 0.2575, 0.2004), (0.3870, -0.2246, 0.0, 0.5238, -0.0879, 0.2357))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a 2 x 2 grid (48 demos) instead of 4 x 4 (768)")
    ap.add_argument("--grid", type=int, default=None, help="grid points per axis (object and target)")
    ap.add_argument("--tmpdir", type=Path, default=None)
    args = ap.parse_args()
    n = args.grid or (2 if args.quick else 4)
    with tempfile.TemporaryDirectory(dir=args.tmpdir) as tmp:
        store, ids = import_dataset(FLOWER, Path(tmp) / "flower", task="put the flowers into the vase")
        sources = [store.read(i) for i in ids]
        edit = PointCloudEdit(PointCloudParams(boxes=BOXES, frames=(6, 68, 83), object_grid=n, target_grid=n))
        start = time.perf_counter()
        demos = frames = 0
        for seed, episode in enumerate(sources):
            for sample in edit.generate(episode, store.spec, seed):
                demos += 1
                frames += sample.episode.length
        gen = time.perf_counter() - start
        start = time.perf_counter()
        summary = augment_store(store, Path(tmp) / "out", edit)
        stored = time.perf_counter() - start
    rows = [["generate (in memory)", str(demos), str(frames), f"{gen:.2f}", f"{demos / gen:.0f}", f"{frames / gen:,.0f}"],
            ["generate + store", str(summary.generated), str(frames), f"{stored:.2f}",
             f"{summary.generated / stored:.0f}", f"{frames / stored:,.0f}"]]
    print(f"Point-cloud generation: 3 DemoGen flower sources, 1024 points/frame, {n}x{n} object x {n}x{n} target grid\n")
    print(table(["step", "demos", "frames", "seconds", "demos/s", "frames/s"], rows))


if __name__ == "__main__":
    main()
