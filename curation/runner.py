"""The runner: map passes over episodes, then reduce.

``map_episode`` and ``reduce_results`` are the two halves every engine uses (a serial loop here, a local
process pool for stores, Dask later); ``run_episodes`` is the serial form for episodes already in memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from curation.base import DatasetResult, EpisodeResult, Pass
from toolkit.episode import Episode
from toolkit.spec import DatasetSpec


def map_episode(passes: Sequence[Pass], episode: Episode, spec: DatasetSpec) -> dict[str, EpisodeResult]:
    """Every pass's per-episode result for one episode, keyed by pass name."""
    if episode.id is None:
        raise ValueError("map_episode: the episode needs an id")
    return {p.name: p.score(episode, spec) for p in passes}


def reduce_results(passes: Sequence[Pass], results: Iterable[dict[str, EpisodeResult]],
                   spec: DatasetSpec) -> dict[str, DatasetResult]:
    """Each pass's dataset result from the per-episode results (sorted by episode id)."""
    by_pass: dict[str, list[EpisodeResult]] = {p.name: [] for p in passes}
    for result in results:
        for name, r in result.items():
            by_pass[name].append(r)
    return {p.name: p.reduce(sorted(by_pass[p.name], key=lambda r: r.id), spec) for p in passes}


def run_episodes(passes: Sequence[Pass], episodes: Iterable[Episode], spec: DatasetSpec) -> dict[str, DatasetResult]:
    """Serial map and reduce over in-memory episodes (each needs an ``id``)."""
    return reduce_results(passes, (map_episode(passes, e, spec) for e in episodes), spec)
