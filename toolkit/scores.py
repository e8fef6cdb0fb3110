"""Curation scores kept inside a store, one table per pass, and their columns for the catalog.

``curation/<pass>.parquet`` holds one row per scored episode: ``id``, the episode ``revision`` it was
computed on, the pass ``version`` and ``params_hash`` of the run that scored it, one column per score and
a JSON ``flags`` column (``{name: {"frames": [[start, stop), ...], "detail": ...}}``).
``curation/<pass>.json`` holds the latest run: version, parameters, hash, time, dataset summary and
findings. Both are replaced atomically (written aside, renamed), so a crash leaves the previous run.

These files are the truth for scores; the catalog only merges them into its columns (``<pass>.<key>``,
``<pass>.flags`` as a list of flag names, ``<pass>.stale``). A score is *stale* when the episode changed
since (trimmed: its revision differs) or when it came from a run with another version or other
parameters than the pass's latest run (a partial re-run with ``--where``); an episode never scored by a
pass has no value in its columns and counts as stale.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from toolkit.errors import StoreError

SCORES_DIR = "curation"
_RESERVED = ("id", "revision", "version", "params_hash", "flags")
_RUN_KEYS = ("name", "version", "params", "params_hash", "created", "summary", "findings")


def revision(entry: dict[str, Any]) -> str:
    """What identifies an episode's frames: its length and the last trim (metadata edits do not count)."""
    return f"{entry['length']}:{json.dumps(entry.get('trimmed_from'))}"


@dataclass
class PassScores:
    """One pass's stored scores: run description plus per-episode rows."""

    name: str
    version: str
    params: dict[str, Any]
    params_hash: str
    created: str
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> {key: value}
    flags: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> {flag: {frames, detail}}
    revisions: dict[str, str] = field(default_factory=dict)  # id -> episode revision when scored
    versions: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (version, params_hash)
    summary: dict[str, Any] = field(default_factory=dict)
    findings: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. the base filter, episodes scored, seconds

    def run_info(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "params": self.params, "params_hash": self.params_hash,
                "created": self.created, "summary": self.summary, "findings": self.findings, **self.extra}

    def merge_into(self, older: PassScores | None) -> PassScores:
        """This run's rows over an older run's (episodes this run did not score keep their old rows)."""
        if older is None:
            return self
        for attr in ("rows", "flags", "revisions", "versions"):
            merged = dict(getattr(older, attr))
            for episode_id in self.rows:
                merged.pop(episode_id, None)
            merged.update(getattr(self, attr))
            setattr(self, attr, merged)
        return self


def _dir(root: Path) -> Path:
    return Path(root) / SCORES_DIR


def _column(values: list[Any]) -> pa.Array:
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, (bool, np.bool_)) for v in present):
        return pa.array([None if v is None else bool(v) for v in values], pa.bool_())
    if present and all(isinstance(v, (int, float, np.integer, np.floating)) for v in present):
        return pa.array([None if v is None else float(v) for v in values], pa.float64())
    return pa.array([None if v is None else str(v) for v in values], pa.string())


def _replace(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_pass_scores(root: Path, scores: PassScores) -> None:
    """Store a pass's scores (table first, then the run description; each replaced atomically)."""
    folder = _dir(root)
    folder.mkdir(exist_ok=True)
    ids = sorted(scores.rows)
    keys = sorted({k for row in scores.rows.values() for k in row} - set(_RESERVED))
    columns = {
        "id": pa.array(ids, pa.string()),
        "revision": pa.array([scores.revisions.get(i, "") for i in ids], pa.string()),
        "version": pa.array([scores.versions.get(i, (scores.version, scores.params_hash))[0] for i in ids]),
        "params_hash": pa.array([scores.versions.get(i, (scores.version, scores.params_hash))[1] for i in ids]),
        "flags": pa.array([json.dumps(scores.flags.get(i) or {}) for i in ids], pa.string()),
    }
    for key in keys:
        columns[key] = _column([scores.rows[i].get(key) for i in ids])
    table = pa.table(columns)
    _replace(folder / f"{scores.name}.parquet", lambda p: pq.write_table(table, p))
    text = json.dumps(scores.run_info(), indent=1, default=json_default)
    _replace(folder / f"{scores.name}.json", lambda p: p.write_text(text))


def json_default(value: Any) -> Any:
    """``json.dumps(default=...)`` for what curation results hold: numpy scalars and arrays, tuples, sets."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def pass_names(root: Path) -> list[str]:
    """Passes with stored scores in the store at ``root``."""
    folder = _dir(root)
    return sorted(p.stem for p in folder.glob("*.parquet")) if folder.is_dir() else []


def read_pass_scores(root: Path, name: str) -> PassScores | None:
    """A pass's stored scores, or None when it never ran on this store."""
    folder = _dir(root)
    table_path, info_path = folder / f"{name}.parquet", folder / f"{name}.json"
    if not table_path.exists() or not info_path.exists():
        return None
    try:
        info = json.loads(info_path.read_text())
        table = pq.read_table(table_path).to_pydict()
    except (OSError, ValueError, pa.ArrowException) as e:
        raise StoreError(f"{table_path}: unreadable scores ({e}); re-run 'demoforge curate'") from None
    ids = table.pop("id")
    scores = PassScores(name=name, version=info["version"], params=info.get("params", {}),
                        params_hash=info["params_hash"], created=info.get("created", ""),
                        summary=info.get("summary", {}), findings=info.get("findings", []))
    scores.extra = {k: v for k, v in info.items() if k not in _RUN_KEYS}
    revisions, versions, hashes = table.pop("revision"), table.pop("version"), table.pop("params_hash")
    flags = table.pop("flags")
    for p, episode_id in enumerate(ids):
        scores.rows[episode_id] = {k: v[p] for k, v in table.items() if v[p] is not None}
        scores.revisions[episode_id] = revisions[p]
        scores.versions[episode_id] = (versions[p], hashes[p])
        decoded = json.loads(flags[p] or "{}")
        if decoded:
            scores.flags[episode_id] = decoded
    return scores


def _stamp(root: Path) -> tuple:
    folder = _dir(root)
    if not folder.is_dir():
        return ()
    return tuple(sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in folder.glob("*.parquet")))


class ScoreColumns:
    """Score columns aligned to the catalog's episode order, reloaded only when a score file changes."""

    def __init__(self, root: Path | None) -> None:
        self.root = root
        self._loaded: tuple[tuple, dict[str, PassScores]] | None = None

    def tables(self) -> dict[str, PassScores]:
        if self.root is None:
            return {}
        stamp = _stamp(self.root)
        if self._loaded is None or self._loaded[0] != stamp:
            tables = {n: t for n in pass_names(self.root) if (t := read_pass_scores(self.root, n))}
            self._loaded = (stamp, tables)
        return self._loaded[1]

    def stamp(self) -> tuple:
        return _stamp(self.root) if self.root is not None else ()

    def columns(self, ids: np.ndarray, revisions: np.ndarray) -> dict[str, np.ndarray]:
        """``<pass>.<key>``, ``<pass>.flags`` and ``<pass>.stale`` for the episodes ``ids``."""
        out: dict[str, np.ndarray] = {}
        for name, table in self.tables().items():
            keys = sorted({k for row in table.rows.values() for k in row})
            values = {k: [] for k in keys}
            flags, stale = [], np.ones(len(ids), bool)
            latest = (table.version, table.params_hash)
            for p, episode_id in enumerate(ids):
                row = table.rows.get(episode_id)
                for k in keys:
                    values[k].append(None if row is None else row.get(k))
                flags.append(sorted(table.flags.get(episode_id, {})))
                if row is not None:
                    stale[p] = (table.revisions.get(episode_id) != revisions[p]
                                or table.versions.get(episode_id) != latest)
            for k in keys:
                out[f"{name}.{k}"] = _to_array(values[k])
            flag_col = np.empty(len(ids), dtype=object)
            flag_col[:] = flags
            out[f"{name}.flags"] = flag_col
            out[f"{name}.stale"] = stale
        return out


def _to_array(values: list[Any]) -> np.ndarray:
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        arr = np.empty(len(values), dtype=object)
        arr[:] = values
        return arr
    if present and all(isinstance(v, (int, float)) for v in present):
        return np.array([np.nan if v is None else v for v in values], dtype=float)
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return arr
