"""``python -m teleop.sim [HEIGHT WIDTH]``: print the tabletop's control-step rate (two cameras, RGB + depth
+ segmentation, front point cloud, 20 physics substeps), measured after warm-up."""

from __future__ import annotations

import sys
import time

import numpy as np

from teleop.sim.tabletop import TabletopConfig, TabletopEnv


def main() -> None:
    h, w = (int(sys.argv[1]), int(sys.argv[2])) if len(sys.argv) == 3 else (240, 320)
    env = TabletopEnv(TabletopConfig(height=h, width=w))
    env.reset(0)
    rng = np.random.default_rng(0)
    actions = rng.uniform(-0.01, 0.01, (60, 7)).astype(np.float32)
    for a in actions[:10]:
        env.step(a)
    t0 = time.perf_counter()
    for a in actions[10:]:
        env.step(a)
    dt = (time.perf_counter() - t0) / 50
    print(f"{h}x{w}, cameras {env.config.cameras}, rgb+depth+mask, pointcloud {env.config.pointcloud_cameras}: "
          f"{dt * 1000:.1f} ms per control step, {1 / dt:.0f} Hz")
    env.close()


if __name__ == "__main__":
    main()
