"""Embedded tabletop cost: physics step plus rendering, per camera and per image type.

    python benchmarks/bench_sim.py [--quick]

Each row times ``TabletopEnv.step`` (20 physics substeps of 5 ms = one 10 Hz control step, then every
configured render) over small random actions, after a warm-up (the first render of a renderer is slow).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import table  # noqa: E402

from teleop.sim.tabletop import TabletopConfig, TabletopEnv  # noqa: E402

CONFIGS = (
    ("physics only", dict(cameras=(), depth=False, masks=False, pointcloud_cameras=())),
    ("1 camera RGB", dict(cameras=("front",), depth=False, masks=False, pointcloud_cameras=())),
    ("2 cameras RGB", dict(cameras=("front", "wrist"), depth=False, masks=False, pointcloud_cameras=())),
    ("2 cameras RGB + depth", dict(cameras=("front", "wrist"), depth=True, masks=False, pointcloud_cameras=())),
    ("2 cameras RGB + depth + seg + point cloud", dict(cameras=("front", "wrist"), depth=True, masks=True,
                                                       pointcloud_cameras=("front",))),
)


def step_ms(height: int, width: int, steps: int, **options) -> float:
    env = TabletopEnv(TabletopConfig(height=height, width=width, **options))
    env.reset(0)
    actions = np.random.default_rng(0).uniform(-0.01, 0.01, (steps + 10, 7)).astype(np.float32)
    for a in actions[:10]:
        env.step(a)
    t0 = time.perf_counter()
    for a in actions[10:]:
        env.step(a)
    env.close()
    return (time.perf_counter() - t0) / steps * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one resolution, fewer steps (~15 s)")
    args = parser.parse_args(argv)
    sizes = ((240, 320),) if args.quick else ((120, 160), (240, 320), (480, 640))
    steps = 20 if args.quick else 60
    rows = []
    for h, w in sizes:
        for label, options in CONFIGS:
            print(f"[bench_sim] {h}x{w} {label}", file=sys.stderr, flush=True)
            ms = step_ms(h, w, steps, **options)
            rows.append([f"{h}x{w}", label, f"{ms:.1f}", f"{1000 / ms:.0f}"])
    print("# embedded tabletop: ms per 10 Hz control step (MUJOCO_GL=egl, CPU)\n")
    print(table(["resolution", "rendering", "ms per step", "max Hz"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
