"""Curation cost: quality + diversity (no images) + shortcuts over N episodes of 200 steps, and the
compatibility pass's base-policy fit and scoring.

    python benchmarks/bench_curation.py [--quick] [--episodes N] [--tmpdir DIR]

The dataset is the procedural sample (7-D state and action, no cameras, factors and operators that
vary) written into a real store; every run reads the episodes from it, as ``demoforge curate`` does.
"Read only" maps a pass that does nothing, to show what reading the store costs by itself. The issue's
aim: the whole non-image curation of 1,000 episodes in under 10 s on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import table  # noqa: E402

from curation.base import DatasetResult, EpisodeResult  # noqa: E402
from curation.registry import make_pass, make_passes  # noqa: E402
from curation.runner import curate_store, map_store  # noqa: E402
from toolkit.sample import sample_episode, sample_spec  # noqa: E402
from toolkit.store import Store  # noqa: E402

STEPS = 200


@dataclass(frozen=True)
class NoParams:
    pass


class ReadOnly:
    """Reads state and action and returns nothing: the floor set by the store."""

    name: ClassVar[str] = "read"
    version: ClassVar[str] = "1"
    params = NoParams()

    def features(self, spec):
        return ["observation.state", "action"]

    def score(self, episode, spec):
        return EpisodeResult(id=episode.id)

    def reduce(self, results, spec):
        return DatasetResult(episodes={r.id: r for r in results})


def build(root: Path, episodes: int) -> Store:
    spec = sample_spec(cameras=0)
    store = Store.create(root, spec)
    for i in range(episodes):
        store.append(sample_episode(spec, i, seed=7, length=STEPS))
    return store


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    value = fn()
    return time.perf_counter() - t0, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100 episodes (~20 s)")
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--tmpdir", type=Path, default=None)
    args = parser.parse_args(argv)
    n = 100 if args.quick else args.episodes
    with tempfile.TemporaryDirectory(dir=args.tmpdir) as tmp:
        print(f"[bench_curation] writing {n} episodes of {STEPS} steps", file=sys.stderr, flush=True)
        store = build(Path(tmp) / "bench.zarr", n)
        ids = store.ids()
        rows = []
        for workers in (1, 2):
            seconds, _ = timed(lambda: map_store(store, [ReadOnly()], ids, workers))
            rows.append(["read only (store floor)", str(workers), f"{seconds:.2f}", f"{n / seconds:.0f}"])
            for names in (["quality"], ["diversity"], ["shortcuts"], ["quality", "diversity", "shortcuts"]):
                print(f"[bench_curation] {'+'.join(names)} on {workers} worker(s)", file=sys.stderr, flush=True)
                seconds, _ = timed(lambda: curate_store(store, make_passes(names), workers=workers))
                rows.append([" + ".join(names), str(workers), f"{seconds:.2f}", f"{n / seconds:.0f}"])
        print(f"# curation of {n} episodes x {STEPS} steps (no images), whole `curate` run incl. reading and saving\n")
        print(table(["passes", "workers", "seconds", "episodes/s"], rows))

        base = 'operator == "alice"'
        base_n = len(store.ids(base))
        compat = make_pass("compatibility")
        fit_s, fitted = timed(lambda: compat.fit(list(store.episodes(store.ids(base), compat.features(store.spec))),
                                                 store.spec))
        fitted = fitted or compat
        episode = store.read(ids[-1], compat.features(store.spec))
        score_s, _ = timed(lambda: [fitted.score(episode, store.spec) for _ in range(20)])
        run_s, _ = timed(lambda: curate_store(store, [compat], base=base, workers=2))
        print(f"\n# compatibility: base set = {base_n} episodes ({base_n * STEPS} steps)\n")
        print(table(["step", "seconds"], [
            ["ensemble fit on the base set", f"{fit_s:.2f}"],
            [f"score one {STEPS}-step episode", f"{score_s / 20 * 1000:.1f} ms"],
            [f"whole run over {n} episodes (fit + score + save, 2 workers)", f"{run_s:.2f}"],
        ]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
