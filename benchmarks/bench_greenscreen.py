"""Green-screen compositing speed at 480x640 on one core: ours (RGB -> alpha table, float32 composite)
next to the formula written straight from the GreenAug paper (float64, unfused, one image at a time).

    python benchmarks/bench_greenscreen.py [--quick] [--tmpdir DIR]

Frames are the embedded tabletop's front camera (green backdrop) rendered at 480x640; the background is
one procedural texture per episode, as ``GreenScreen`` does by default. Ours and the reference must agree
within 1 grey level (checked before timing). Run with OMP/BLAS threads at 1 for one core.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")
os.environ.setdefault("MUJOCO_GL", "egl")

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import table  # noqa: E402

import numpy as np  # noqa: E402

from curation.greenscreen import (GreenScreen, GreenScreenParams, background_delta, composite, estimate_key, matte,  # noqa: E402
                                  reference_composite, suppress_spill)
from curation.textures import ProceduralBank, crop_resize  # noqa: E402
from teleop.sim.tabletop import TabletopConfig, TabletopEnv  # noqa: E402


def render_frames(n: int) -> np.ndarray:
    env = TabletopEnv(TabletopConfig(cameras=("front",), height=480, width=640, depth=False, masks=False,
                                     pointcloud_cameras=()))
    try:
        return np.stack([env.reset(s)["observation.images.front"] for s in range(n)])
    finally:
        env.close()


def rate(fn, frames: np.ndarray, repeat: int) -> float:
    """Frames per second over ``repeat`` passes (best pass, after one warm-up frame)."""
    fn(frames[0])
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for f in frames:
            fn(f)
        best = min(best, time.perf_counter() - t0)
    return len(frames) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer frames and passes")
    parser.add_argument("--tmpdir", default=None, help="unused (no store is written); kept for symmetry")
    args = parser.parse_args()
    if args.tmpdir:
        tempfile.tempdir = args.tmpdir
    n, repeat = (4, 1) if args.quick else (12, 3)
    frames = render_frames(n)
    key = estimate_key(frames[:4])
    tola, tolb = 30.0, 35.0
    background, _ = crop_resize(ProceduralBank().draw(np.random.default_rng(0))[0], 480, 640, (0.5, 1.0),
                                np.random.default_rng(1))
    t0 = time.perf_counter()
    matte(frames[0], key, tola, tolb)  # builds the alpha table once per key
    table_s = time.perf_counter() - t0

    worst = max(int(np.abs(composite(f, matte(f, key, tola, tolb), background, key).astype(int)
                           - reference_composite(f, key, tola, tolb, background)[0]).max()) for f in frames)
    assert worst <= 1, f"ours and the reference differ by {worst} grey levels"

    delta = background_delta(background, key)  # once per episode: one background per episode copy

    def ours(f: np.ndarray) -> np.ndarray:
        return composite(f, matte(f, key, tola, tolb), background, key, delta)

    def ours_spill(f: np.ndarray) -> np.ndarray:
        return suppress_spill(ours(f), f, key, tola, tolb, 0.5)

    def ours_blur(f: np.ndarray) -> np.ndarray:
        return composite(f, matte(f, key, tola, tolb, 1.5), background, key, delta)

    def reference(f: np.ndarray) -> np.ndarray:
        return reference_composite(f, key, tola, tolb, background)[0]

    aug = GreenScreen(GreenScreenParams(key="#" + "".join(f"{c:02x}" for c in key)))
    ref_fps = rate(reference, frames, repeat)
    rows = []
    for label, fn in (("reference (float64, unfused)", reference), ("ours: key + composite", ours),
                      ("ours + spill suppression 0.5", ours_spill), ("ours + matte blur sigma 1.5", ours_blur)):
        fps = ref_fps if fn is reference else rate(fn, frames, repeat)
        rows.append([label, f"{fps:.0f}", f"{fps / ref_fps:.1f}x"])
    t0 = time.perf_counter()
    for copy in range(repeat):
        from toolkit.episode import Episode, EpisodeMeta
        ep = Episode(data={"observation.images.front": frames}, meta=EpisodeMeta(task="bench"))
        from toolkit.spec import DatasetSpec, Feature
        spec = DatasetSpec(fps=10, features={"observation.images.front": Feature("uint8", (480, 640, 3), "image")})
        list(aug.generate(ep, spec, copy))
    fps = n * repeat / (time.perf_counter() - t0)
    rows.append(["GreenScreen.generate (texture, crop, spill)", f"{fps:.0f}", f"{fps / ref_fps:.1f}x"])
    print(f"green screen at 480x640, {n} frames, one core; alpha table built in {table_s:.2f} s per key; "
          f"ours vs reference max difference {worst} grey level(s)\n")
    print(table(["method", "frames/s", "vs reference"], rows))


if __name__ == "__main__":
    main()
