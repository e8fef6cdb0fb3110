"""The runner: map passes over episodes, then reduce.

``map_episode`` and ``reduce_results`` are the two halves every engine uses; ``run_episodes`` is the
serial form for episodes already in memory, ``curate_store`` the whole job on a store: fit (passes with a
base set) here, map on an engine (``curation.engine``: this process, a local process pool or Dask; the
workers read the episodes, only small results come back), reduce here, save the scores into the store
and write the JSON report (``schemas/curation_report.schema.json``).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from curation.base import DatasetResult, EpisodeResult, Pass, load_for, params_dict, params_hash
from curation.engine import Engine, LocalEngine, batches
from toolkit.episode import Episode
from toolkit.errors import DemoforgeError, StoreError, one_line
from toolkit.progress import track
from toolkit.scores import SCORES_DIR, PassScores, json_default, read_pass_scores, write_pass_scores
from toolkit.spec import DatasetSpec
from toolkit.store import Store
from toolkit.validation import validate


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


# -- stores: an engine maps (this process, a process pool, Dask), scores saved into the store, a report --

@dataclass
class CurationRun:
    """What ``curate_store`` did: each pass's dataset result, the report (as written), episodes that
    were not processed (unreadable, or their batch's worker died too often) with the reason."""

    results: dict[str, DatasetResult]
    report: dict[str, Any]
    failed: dict[str, str] = field(default_factory=dict)
    report_path: Path | None = None


def default_workers(episodes: int) -> int:
    """One process for small jobs (starting a pool costs more than it saves), else every core."""
    return 1 if episodes < 200 else max(1, min(os.cpu_count() or 1, 8))


Mapped = tuple[str, "dict[str, EpisodeResult] | str"]  # (episode id, every pass's result or why it failed)


@dataclass(frozen=True)
class CurationJob:
    """The per-episode map as an engine job: workers open the store by path and read their episodes
    themselves; only the small ``EpisodeResult`` objects come back."""

    root: str
    passes: tuple[Pass, ...]
    features: tuple[str, ...]

    def open(self) -> Store:
        return Store.open(self.root, mode="r")

    def run(self, store: Store, ids: list[str]) -> list[Mapped]:
        """Map every pass over each episode; an unreadable episode gives its error text instead."""
        batch = store.read_batch(self.features)
        out: list[Mapped] = []
        for start in range(0, len(ids), batch):
            out += self._map_batch(store, ids[start:start + batch])
        return out

    def _map_batch(self, store: Store, ids: list[str]) -> list[Mapped]:
        # A damaged chunk fails in the codec with any exception type (blosc raises RuntimeError), so
        # reading catches them all: the episode is reported as not processed instead of stopping the run.
        try:
            episodes = store.read_many(ids, self.features)
        except Exception:
            episodes = None  # one of them is unreadable: read them one by one to name it
        out: list[Mapped] = []
        for p, episode_id in enumerate(ids):
            try:
                episode = episodes[p] if episodes is not None else store.read(episode_id, self.features)
            except Exception as e:
                out.append((episode_id, one_line(e)))
                continue
            out.append((episode_id, map_episode(self.passes, episode, store.spec)))
        return out


def map_store(store: Store, passes: Sequence[Pass], ids: list[str], workers: int = 1,
              description: str = "curating", engine: Engine | None = None,
              ) -> tuple[list[dict[str, EpisodeResult]], dict[str, str]]:
    """Per-episode results for ``ids`` (sorted by id) and the episodes not processed, with the reason.

    ``engine`` runs the map (default: ``LocalEngine(workers)``, in this process or a process pool).
    Results stream back batch by batch; episode arrays stay on the workers.
    """
    engine = engine or LocalEngine(workers)
    job = CurationJob(str(store.root), tuple(passes), tuple(load_for(passes, store.spec)))
    chunks = batches(ids, engine.workers)
    done: list[tuple[str, dict[str, EpisodeResult]]] = []
    failed: dict[str, str] = {}
    for outcome in track(engine.map(job, chunks), len(chunks), description):
        if outcome.results is None:
            failed.update({episode_id: outcome.error or "not processed" for episode_id in outcome.ids})
            continue
        for episode_id, result in outcome.results:
            if isinstance(result, str):
                failed[episode_id] = result
            else:
                done.append((episode_id, result))
    done.sort(key=lambda item: item[0])
    return [r for _, r in done], dict(sorted(failed.items()))


def fit_passes(store: Store, passes: Sequence[Pass], base: str | None) -> list[Pass]:
    """Fit the passes that need a base set (``fit``) on the episodes ``base`` selects."""
    fitted: list[Pass] = []
    for p in passes:
        fit = getattr(p, "fit", None)
        if fit is None:
            fitted.append(p)
            continue
        if not base:
            raise DemoforgeError(f"the {p.name} pass needs a base set: add --base FILTER "
                                 "(e.g. --base 'operator == \"alice\"')")
        ids = store.ids(base)
        if not ids:
            raise DemoforgeError(f"--base {base!r}: selects no episodes in {store.root}")
        episodes = list(store.episodes(ids, load_for([p], store.spec)))
        result = fit(episodes, store.spec)
        fitted.append(result if result is not None else p)
    return fitted


def curate_store(store: Store, passes: Sequence[Pass], where: str | None = None, base: str | None = None,
                 workers: int = 0, report_path: Path | None = None, engine: Engine | None = None) -> CurationRun:
    """Run ``passes`` over the episodes ``where`` selects; save scores into the store; write the report.

    ``engine`` runs the per-episode map (default: this process, or a process pool of ``workers``, 0:
    sized by the job; see ``curation.engine`` for Dask). Fits and the reduce run here.

    Nothing is saved unless every batch has an outcome and every pass finished (Ctrl-C, a crash or a
    lost cluster leaves the previous scores). Episodes that could not be processed (unreadable, or
    their worker died more than the engine's retries) are listed in ``failed`` and the report, keep
    their previous scores, and are left out of the reduce. Scores go to ``STORE/curation/<pass>.parquet``
    (merged with earlier runs on other episodes), the report to ``STORE/curation/report.json`` and, if
    given, ``report_path``.
    """
    started = time.perf_counter()
    if not store.writable:
        raise StoreError(f"{store.root}: opened read-only; curation writes scores into the store")
    ids = store.ids(where)
    if not ids:
        raise DemoforgeError(f"--where {where!r}: selects no episodes in {store.root}")
    engine = engine or LocalEngine(workers or default_workers(len(ids)))
    workers = engine.workers
    passes = fit_passes(store, passes, base)
    results, failed = map_store(store, passes, ids, engine=engine)
    if not results:
        first = next(iter(failed.items()))
        raise DemoforgeError(f"{store.root}: none of the {len(ids)} episodes could be processed "
                             f"(e.g. {first[0]}: {first[1]}); nothing was saved")
    timings: dict[str, float] = {}
    datasets: dict[str, DatasetResult] = {}
    for p in passes:
        t0 = time.perf_counter()
        datasets.update(reduce_results([p], ({p.name: r[p.name]} for r in results), store.spec))
        timings[p.name] = time.perf_counter() - t0
    revisions = dict(zip(store.catalog.columns()["id"], store.catalog.columns()["revision"]))
    for p in passes:
        _save(store, p, datasets[p.name], revisions, base if hasattr(p, "fit") else None)
    report = build_report(store, passes, datasets, where, base, len(ids), failed, workers,
                          time.perf_counter() - started)
    path = store.root / SCORES_DIR / "report.json"
    write_report(report, path)
    if report_path is not None:
        write_report(report, report_path)
    return CurationRun(results=datasets, report=report, failed=failed, report_path=report_path or path)


def _save(store: Store, p: Pass, result: DatasetResult, revisions: dict[str, str], base: str | None) -> None:
    table = PassScores(name=p.name, version=p.version, params=params_dict(p.params),
                       params_hash=params_hash(p.params), created=_now(), summary=result.summary,
                       findings=[f.to_dict() for f in result.findings], extra={"base": base})
    for episode_id, r in result.episodes.items():
        table.rows[episode_id] = dict(r.scores)
        table.flags[episode_id] = {name: flag.to_dict() for name, flag in r.flags.items()}
        table.revisions[episode_id] = revisions.get(episode_id, "")
        table.versions[episode_id] = (p.version, table.params_hash)
    write_pass_scores(store.root, table.merge_into(read_pass_scores(store.root, p.name)))


_SEVERITY = {"high": 0, "medium": 1, "low": 2, "info": 3}


def build_report(store: Store, passes: Sequence[Pass], datasets: dict[str, DatasetResult], where: str | None,
                 base: str | None, episodes: int, failed: dict[str, str], workers: int,
                 seconds: float) -> dict[str, Any]:
    """The JSON report (``schemas/curation_report.schema.json``)."""
    section: dict[str, Any] = {}
    findings: list[dict[str, Any]] = []
    for p in passes:
        result = datasets[p.name]
        keys = sorted({k for r in result.episodes.values() for k in r.scores})
        section[p.name] = {"version": p.version, "params": params_dict(p.params), "params_hash": params_hash(p.params),
                           "base": base if hasattr(p, "fit") else None, "scores": keys,
                           "summary": _json_ready(result.summary),
                           "findings": [f.to_dict() for f in result.findings]}
        findings += [{"pass": p.name, **f.to_dict()} for f in result.findings]
    findings.sort(key=lambda f: _SEVERITY.get(f["severity"], 9))
    return {"format": "demoforge.curation_report", "format_version": 1, "demoforge_version": _version(),
            "store": str(store.root), "created": _now(), "where": where, "episodes": episodes, "failed": failed,
            "workers": workers, "seconds": round(seconds, 3), "passes": section, "findings": findings}


def write_report(report: dict[str, Any], path: Path) -> None:
    """Validate against the schema and write atomically."""
    validate(report, "curation_report", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(report, indent=1))
    os.replace(tmp, path)


def _json_ready(value: Any) -> Any:
    return json.loads(json.dumps(value, default=json_default))


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _version() -> str:
    try:
        return importlib.metadata.version("demoforge")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
