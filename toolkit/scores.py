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


def _load(root: Path, name: str) -> tuple[dict[str, Any], pa.Table] | None:
    """A pass's run description and score table as stored (None when it never ran on this store)."""
    folder = _dir(root)
    table_path, info_path = folder / f"{name}.parquet", folder / f"{name}.json"
    if not table_path.exists() or not info_path.exists():
        return None
    try:
        return json.loads(info_path.read_text()), pq.read_table(table_path)
    except (OSError, ValueError, pa.ArrowException) as e:
        raise StoreError(f"{table_path}: unreadable scores ({e}); re-run 'demoforge curate'") from None


def read_pass_scores(root: Path, name: str) -> PassScores | None:
    """A pass's stored scores, or None when it never ran on this store."""
    loaded = _load(root, name)
    if loaded is None:
        return None
    info, arrow = loaded
    table = arrow.to_pydict()
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


@dataclass
class _ScoreArrays:
    """One pass's table as columns, as the catalog joins it (read straight from the parquet file)."""

    ids: np.ndarray
    scores: dict[str, np.ndarray]
    flag_names: np.ndarray  # object array of sorted name lists
    current: np.ndarray  # bool: scored by the latest run's version and parameters
    revisions: np.ndarray  # object array of str


def _flag_names(text: str | None) -> list[str]:
    # Most episodes have no flags: skip the JSON parser for them (it dominated at 100k rows).
    return [] if not text or text == "{}" else sorted(json.loads(text))


def _read_arrays(root: Path, name: str) -> _ScoreArrays | None:
    loaded = _load(root, name)
    if loaded is None:
        return None
    info, table = loaded
    plain = {c: table.column(c).to_pylist() for c in ("id", "revision", "version", "params_hash", "flags")}
    flags = np.empty(table.num_rows, dtype=object)
    flags[:] = [_flag_names(t) for t in plain["flags"]]
    current = ((np.asarray(plain["version"], dtype=object) == info["version"])
               & (np.asarray(plain["params_hash"], dtype=object) == info["params_hash"]))
    scores = {key: _to_array(table.column(key).to_pylist()) for key in table.column_names if key not in _RESERVED}
    return _ScoreArrays(ids=np.asarray(plain["id"], dtype=object), scores=scores, flag_names=flags,
                        current=current.astype(bool), revisions=np.asarray(plain["revision"], dtype=object))


def _blank(template: np.ndarray, n: int) -> np.ndarray:
    """A column of ``n`` missing values of the template's kind (NaN for numbers, None otherwise)."""
    if template.dtype.kind == "f":
        return np.full(n, np.nan)
    return np.full(n, None, dtype=object)


class ScoreColumns:
    """Score columns aligned to the catalog's episode order. A pass's file is read once per change; aligning
    it to the catalog's ids is one vectorised lookup, so a catalog refresh with unchanged scores is cheap."""

    def __init__(self, root: Path | None) -> None:
        self.root = root
        self._loaded: tuple[tuple, dict[str, PassScores]] | None = None
        self._arrays: tuple[tuple, dict[str, _ScoreArrays]] | None = None

    def _per_pass(self, slot: str, read: Any) -> dict[str, Any]:
        """``read(root, name)`` for every pass with stored scores, cached in ``slot`` until a file changes."""
        if self.root is None:
            return {}
        stamp = _stamp(self.root)
        cached = getattr(self, slot)
        if cached is None or cached[0] != stamp:
            cached = (stamp, {n: v for n in pass_names(self.root) if (v := read(self.root, n))})
            setattr(self, slot, cached)
        return cached[1]

    def tables(self) -> dict[str, PassScores]:
        """Each pass's stored scores in full (rows, flags with frames, run info)."""
        return self._per_pass("_loaded", read_pass_scores)

    def stamp(self) -> tuple:
        return _stamp(self.root) if self.root is not None else ()

    def _score_arrays(self) -> dict[str, _ScoreArrays]:
        return self._per_pass("_arrays", _read_arrays)

    def columns(self, ids: np.ndarray, revisions: np.ndarray) -> dict[str, np.ndarray]:
        """``<pass>.<key>``, ``<pass>.flags`` and ``<pass>.stale`` for the episodes ``ids``."""
        out: dict[str, np.ndarray] = {}
        n = len(ids)
        for name, arrays in self._score_arrays().items():
            position = {episode_id: p for p, episode_id in enumerate(arrays.ids)}
            rows = np.fromiter((position.get(i, -1) for i in ids), dtype=np.int64, count=n)
            scored = rows >= 0
            take = rows[scored]
            for key, values in arrays.scores.items():
                column = _blank(values, n)
                column[scored] = values[take]
                out[f"{name}.{key}"] = column
            flags = np.empty(n, dtype=object)
            flags[:] = [[] for _ in range(n)]
            flags[scored] = arrays.flag_names[take]
            out[f"{name}.flags"] = flags
            stale = np.ones(n, bool)
            stale[scored] = ~arrays.current[take] | (arrays.revisions[take] != np.asarray(revisions, dtype=object)[scored])
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
