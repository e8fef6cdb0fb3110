"""Green-screen compositing speed at 480x640 on one core: ``Keyer`` (a 64 KiB chroma table settles almost
every pixel, the exact formula runs on the rest, the composite is uint8) next to the formula written
straight from the GreenAug paper (float64, unfused, one image at a time).

    python benchmarks/bench_greenscreen.py [--quick] [--tmpdir DIR]

Three frame sets: the embedded tabletop's front camera (green backdrop) rendered at 480x640, whose screen
is flat with hard edges (no pixel in the soft band); the same frames made camera-like (edges softened by a
0.8 px blur, sensor noise of sigma 2); and a worst case, the key colour plus noise of sigma 35 in every
pixel, which leaves a large share of the pixels to the exact formula. The background is one procedural
texture per episode, as ``GreenScreen`` does by default. Ours must equal the reference byte for byte
(checked before timing). Methods are timed in turns, best pass of each, so a busy machine slows all of
them alike. Run with OMP/BLAS threads at 1 for one core.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")  # before numpy loads its BLAS
os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco picks a GL backend

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from scipy.ndimage import gaussian_filter  # noqa: E402

from common import table  # noqa: E402
from curation.greenscreen import (GreenScreen, GreenScreenParams, Keyer, estimate_key, key_hex,  # noqa: E402
                                  prepare_backdrop, reference_composite)
from curation.textures import ProceduralBank, crop_resize  # noqa: E402
from teleop.sim.tabletop import TabletopConfig, TabletopEnv  # noqa: E402
from toolkit.episode import Episode, EpisodeMeta  # noqa: E402
from toolkit.spec import DatasetSpec, Feature  # noqa: E402

HEIGHT, WIDTH = 480, 640
TOLA, TOLB = 30.0, 35.0
FEATURE = "observation.images.front"


def render_frames(n: int) -> np.ndarray:
    env = TabletopEnv(TabletopConfig(cameras=("front",), height=HEIGHT, width=WIDTH, depth=False, masks=False,
                                     pointcloud_cameras=()))
    try:
        return np.stack([env.reset(s)[FEATURE] for s in range(n)])
    finally:
        env.close()


def camera_like(frames: np.ndarray, seed: int = 0) -> np.ndarray:
    """Soft edges (a lens and demosaicing blur them) and sensor noise, which the renderer has neither of."""
    soft = gaussian_filter(frames.astype(np.float32), (0, 0.8, 0.8, 0))
    noise = np.random.default_rng(seed).normal(0, 2, frames.shape).astype(np.float32)
    return np.clip(soft + noise + 0.5, 0, 255).astype(np.uint8)


def near_key(frames: np.ndarray, key: np.ndarray, seed: int = 0) -> np.ndarray:
    """The worst case for the table: every pixel the key plus noise, so many land near the tolerances."""
    noise = np.random.default_rng(seed).normal(0, 35, frames.shape)
    return np.clip(key + noise + 0.5, 0, 255).astype(np.uint8)


def best_rates(fns: dict[str, Callable[[np.ndarray], object]], frames: np.ndarray, repeat: int) -> dict[str, float]:
    """Frames per second of each function over the frames: ``repeat`` rounds, each a pass of every function
    in turn, and each function's fastest pass counts. Whole passes, because the methods stream frames
    (interleaving them frame by frame makes each one pay for the memory the one before let go of)."""
    best = dict.fromkeys(fns, float("inf"))
    for fn in fns.values():
        fn(frames[0])  # warm-up: tables, allocations
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for f in frames:
                fn(f)
            best[name] = min(best[name], time.perf_counter() - t0)
    return {name: len(frames) / s for name, s in best.items()}


def generate_rate(frames: np.ndarray, key: np.ndarray, per_frame: bool, repeat: int) -> float:
    """Frames per second of ``GreenScreen.generate`` (texture, crop, key, composite, spill, coverage)."""
    aug = GreenScreen(GreenScreenParams(key=key_hex(key), per_frame=per_frame))
    spec = DatasetSpec(fps=10, features={FEATURE: Feature("uint8", (HEIGHT, WIDTH, 3), "image")})
    episode = Episode(data={FEATURE: frames}, meta=EpisodeMeta(task="bench"))
    best = float("inf")
    for _ in range(repeat):  # one seed: the same textures (a Perlin one costs more than a solid colour)
        t0 = time.perf_counter()
        list(aug.generate(episode, spec, 0))
        best = min(best, time.perf_counter() - t0)
    return len(frames) / best


def measure(frames: np.ndarray, background: np.ndarray, repeat: int) -> tuple[dict[str, float], dict[str, float]]:
    """(frames/s per method, facts: shares of the pixels in the soft band and left to the exact formula,
    build time of the table) for one frame set."""
    key = estimate_key(frames[:4])
    t0 = time.perf_counter()
    plain = Keyer(key, TOLA, TOLB)
    build_ms = (time.perf_counter() - t0) * 1e3
    spill, blur = Keyer(key, TOLA, TOLB, spill=0.5), Keyer(key, TOLA, TOLB, blur_sigma=1.5)
    backdrop = prepare_backdrop(background, key)  # once per episode: one background per episode copy
    band = 0.0
    for f in frames:
        ref, alpha = reference_composite(f, key, TOLA, TOLB, background)
        ours, matte = plain(f, backdrop)
        assert np.array_equal(ours, ref), "ours and the reference differ"
        assert np.array_equal(matte, np.rint(alpha * 255).astype(np.uint8)), "mattes differ"
        band += float(((alpha > 0) & (alpha < 1)).mean()) / len(frames)
    rates = best_rates({
        "reference (float64, unfused)": lambda f: reference_composite(f, key, TOLA, TOLB, background),
        "ours: key + composite": lambda f: plain(f, backdrop),
        "ours + spill suppression 0.5": lambda f: spill(f, backdrop),
        "ours + matte blur sigma 1.5": lambda f: blur(f, backdrop),
    }, frames, repeat)
    rates["GreenScreen.generate, texture per episode"] = generate_rate(frames, key, False, repeat)
    rates["GreenScreen.generate, texture per frame"] = generate_rate(frames, key, True, repeat)
    facts = {"band": band, "exact": plain.undecided_share(frames),
             "exact_spill": spill.undecided_share(frames), "build_ms": build_ms}
    return rates, facts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer frames and passes")
    parser.add_argument("--tmpdir", default=None, help="unused (no store is written); kept for symmetry")
    args = parser.parse_args()
    if args.tmpdir:
        tempfile.tempdir = args.tmpdir
    n, repeat = (3, 1) if args.quick else (12, 5)
    sim = render_frames(n)
    texture = ProceduralBank().draw(np.random.default_rng(0))[0]
    background, _ = crop_resize(texture, HEIGHT, WIDTH, (0.5, 1.0), np.random.default_rng(1))
    sets = {"sim": sim, "camera-like": camera_like(sim), "worst case": near_key(sim, estimate_key(sim[:4]))}
    measured = {name: measure(frames, background, repeat) for name, frames in sets.items()}
    ref = "reference (float64, unfused)"
    rows = [[label] + [f"{rates[label]:.0f} ({rates[label] / rates[ref]:.1f}x)" for rates, _ in measured.values()]
            for label in measured["sim"][0]]
    shares = "; ".join(f"{name} {facts['band']:.2%} / {facts['exact']:.2%} / {facts['exact_spill']:.2%}"
                       for name, (_, facts) in measured.items())
    print(f"green screen at {HEIGHT}x{WIDTH}, {n} frames per set, one core, best of {repeat}; ours equals the "
          f"reference byte for byte; chroma table built in {measured['sim'][1]['build_ms']:.1f} ms per key\n"
          f"pixels in the soft band / left to the exact formula / the same with spill suppression: {shares}\n")
    print(table(["method", *(f"{name}: frames/s (vs reference)" for name in sets)], rows))


if __name__ == "__main__":
    main()
