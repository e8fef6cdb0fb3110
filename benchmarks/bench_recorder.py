"""Recorder overhead: how fast the fixed-rate loop runs with a synthetic camera source, and its jitter.

    python benchmarks/bench_recorder.py [--quick]

Source: 2 RGB cameras 480x640 + depth + state (teleop.synthetic.SyntheticEnv: frames pre-rendered,
so the cost measured is the recorder's own: frame copies, timing, handing episodes to the writer, which
encodes and commits them on a second thread while the next episode records).
For each target rate: episodes of ``seconds`` each; overruns, dropped frames, p50/p99 of |period - target|.
The highest sustained rate is the highest target with zero dropped frames.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import table  # noqa: E402

from teleop.device import END, Command  # noqa: E402
from teleop.recorder import Recorder, RecorderConfig, recording_spec  # noqa: E402
from teleop.synthetic import SyntheticEnv  # noqa: E402
from toolkit.store import Store  # noqa: E402


class Steady:
    """An operator that moves steadily and ends each episode after ``frames`` ticks."""

    name = "steady"

    def __init__(self, frames: int) -> None:
        self.frames, self.tick = frames, 0

    def connect(self) -> None:
        pass

    def close(self) -> None:
        pass

    def read(self, observation):
        self.tick += 1
        return Command(np.full(7, 0.001, np.float32), frozenset({END}) if self.tick % self.frames == 0 else frozenset())


def measure(rate: float, seconds: float, episodes: int, work: Path) -> dict:
    env = SyntheticEnv(cameras=2, height=480, width=640, depth=True)
    store = Store.create(work / f"r{rate:g}.zarr", recording_spec(env.spec, rate))
    recorder = Recorder(env, Steady(int(rate * seconds)), store, RecorderConfig(fps=rate, max_steps=10**6))
    jitter, overruns, dropped, backpressure = [], 0, 0, 0.0
    for i in range(episodes):
        result = recorder.record_episode(i)
        overruns += result.timing["overruns"]
        dropped += result.timing["dropped_frames"]
        backpressure += result.timing["writer_backpressure_s"]
    recorder.close()
    for episode_id in store.ids():
        wall = store.read(episode_id, ["observation.wall_time"]).data["observation.wall_time"][:, 0]
        jitter.extend(np.abs(np.diff(wall) - 1 / rate))
    j = np.array(jitter) * 1000
    return {"rate": rate, "overruns": overruns, "dropped": dropped, "p50": np.percentile(j, 50),
            "p99": np.percentile(j, 99), "backpressure": backpressure}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rates, shorter episodes (~20 s)")
    parser.add_argument("--tmpdir", default=None, help="scratch directory (default: system temp)")
    args = parser.parse_args(argv)
    rates = (30, 60) if args.quick else (10, 30, 60, 90, 120, 150)
    seconds, episodes = (1.0, 2) if args.quick else (3.0, 3)
    rows, best = [], 0.0
    with tempfile.TemporaryDirectory(dir=args.tmpdir) as tmp:
        for rate in rates:
            print(f"[bench_recorder] {rate} Hz", file=sys.stderr, flush=True)
            m = measure(rate, seconds, episodes, Path(tmp))
            if m["dropped"] == 0:
                best = max(best, rate)
            rows.append([f"{rate:g}", str(m["overruns"]), str(m["dropped"]), f"{m['p50']:.2f}", f"{m['p99']:.2f}",
                         f"{m['backpressure']:.2f}"])
    print("# recorder benchmark (2 x 480x640 RGB + depth + state, synthetic source)\n")
    print(f"{episodes} episodes of {seconds:g} s per rate; jitter = |tick period - target| in ms\n")
    print(table(["target Hz", "overruns", "dropped", "jitter p50 ms", "jitter p99 ms", "writer wait s"], rows))
    print(f"\nhighest sustained rate with zero dropped frames: {best:g} Hz")
    return 0


if __name__ == "__main__":
    sys.exit(main())
