"""The catalog: one row per committed episode (metadata, factors, tags, flags, later scores).

It lives in ``catalog.sqlite`` at the store's root (SQLite in WAL mode, so a dashboard can read while a
recorder appends). The episodes themselves are the truth: the catalog is a fast index over their
metadata, rebuilt from the episode groups whenever it is missing, unreadable or out of step
(``Store.open`` reconciles the two). Nested metadata is flattened into dotted columns
(``factors.object_color``, ``provenance.augmentation``, ``flags.nonfinite``) that the filter
language in ``toolkit.query`` addresses by name.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from toolkit import query
from toolkit.scores import ScoreColumns, revision

# Columns every catalog has; flattened metadata adds more as it appears.
BASE_COLUMNS = ("id", "length", "task", "operator", "success", "created", "tags", "revision")
_JSON_COLUMNS = ("tags",)


def flatten(entry: Mapping[str, Any]) -> dict[str, Any]:
    """One catalog row from an episode's stored attributes (``id``, ``length``, ``created``, ``meta``)."""
    meta = entry["meta"]
    row: dict[str, Any] = {
        "id": entry["id"],
        "length": entry["length"],
        "task": meta.get("task"),
        "operator": meta.get("operator"),
        "success": meta.get("success"),
        "created": entry.get("created"),
        "tags": sorted(meta.get("tags") or []),
        "revision": revision(entry),
    }
    for key, value in (meta.get("factors") or {}).items():
        row[f"factors.{key}"] = value
    for group in ("provenance", "origin", "timing"):
        for key, value in (meta.get(group) or {}).items():
            if isinstance(value, (str, int, float, bool)) or value is None:
                row[f"{group}.{key}"] = value
    for name in meta.get("flags") or {}:
        row[f"flags.{name}"] = True
    return row


def _sql_value(column: str, value: Any) -> Any:
    if column in _JSON_COLUMNS:
        return json.dumps(value)
    return value


def _column_array(values: list[Any]) -> np.ndarray:
    """Numeric columns become int or float arrays (None -> NaN) so comparisons run vectorised."""
    if values and all(type(v) is int for v in values):
        return np.array(values, dtype=np.int64)
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) or v is None for v in values) and any(
        v is not None for v in values
    ):
        return np.array([np.nan if v is None else v for v in values], dtype=float)
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


class Catalog:
    """SQLite-backed index of a store's episodes. Usable from any thread, one thread at a time (the
    recorder's writer thread owns it while recording)."""

    def __init__(self, path: Path | None, readonly: bool = False, scores_root: Path | None = None) -> None:
        """``path=None``, or a missing file opened read-only, gives an in-memory catalog. ``scores_root``:
        the store whose curation scores (``toolkit.scores``) join the columns."""
        self.path = path
        self.scores = ScoreColumns(scores_root)
        if path is None or (readonly and not path.exists()):
            self.db = sqlite3.connect(":memory:", check_same_thread=False)
            readonly = False
        elif readonly:
            self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        else:
            self.db = sqlite3.connect(path, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
        self._columns_cache: tuple[Any, dict[str, np.ndarray]] | None = None
        if not readonly:
            self._create()

    def _create(self) -> None:
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS episodes (id TEXT PRIMARY KEY, length INTEGER, task TEXT, "
            "operator TEXT, success INTEGER, created TEXT, tags TEXT)"
        )
        self.db.commit()

    def close(self) -> None:
        self.db.close()

    # -- writing -------------------------------------------------------------------------------
    def column_names(self) -> list[str]:
        """The stored columns (without the joined score columns)."""
        return [r[1] for r in self.db.execute("PRAGMA table_info(episodes)")]

    def _ensure_columns(self, names: Iterable[str]) -> None:
        existing = set(self.column_names())
        for name in names:
            if name not in existing:
                self.db.execute(f'ALTER TABLE episodes ADD COLUMN "{name}"')

    def upsert(self, entries: Iterable[Mapping[str, Any]]) -> None:
        """Add or replace rows for the given episode entries (see ``flatten``)."""
        rows = [flatten(e) for e in entries]
        if not rows:
            return
        self._ensure_columns(sorted({k for r in rows for k in r}))
        for row in rows:
            cols = list(row)
            placeholders = ",".join("?" * len(cols))
            quoted = ",".join(f'"{c}"' for c in cols)
            self.db.execute(
                f"INSERT OR REPLACE INTO episodes ({quoted}) VALUES ({placeholders})",
                [_sql_value(c, row[c]) for c in cols],
            )
        self.db.commit()

    def remove(self, ids: Iterable[str]) -> None:
        self.db.executemany("DELETE FROM episodes WHERE id = ?", [(i,) for i in ids])
        self.db.commit()

    def clear(self) -> None:
        self.db.execute("DROP TABLE IF EXISTS episodes")
        self._create()

    # -- reading -------------------------------------------------------------------------------
    def ids(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT id FROM episodes ORDER BY id")]

    def __len__(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM episodes").fetchone()[0]

    def max_id(self) -> str | None:
        return self.db.execute("SELECT MAX(id) FROM episodes").fetchone()[0]

    def columns(self) -> dict[str, np.ndarray]:
        """All rows as columns (sorted by id) with the curation scores joined, cached until either changes."""
        version = (self.db.execute("PRAGMA data_version").fetchone()[0] + self.db.total_changes, self.scores.stamp())
        if self._columns_cache and self._columns_cache[0] == version:
            return self._columns_cache[1]
        cursor = self.db.execute("SELECT * FROM episodes ORDER BY id")
        names = [d[0] for d in cursor.description]
        rows = cursor.fetchall()
        table = list(zip(*rows)) if rows else [() for _ in names]
        columns: dict[str, np.ndarray] = {}
        for name, values in zip(names, table):
            values = list(values)
            if name in _JSON_COLUMNS:
                values = [[] if v in (None, "[]") else json.loads(v) for v in values]
                arr = np.empty(len(values), dtype=object)
                arr[:] = values
                columns[name] = arr
            elif name == "success" or name.startswith("flags."):
                arr = np.empty(len(values), dtype=object)
                arr[:] = [None if v is None else bool(v) for v in values]
                columns[name] = arr
            else:
                columns[name] = _column_array(values)
        if "id" in columns:
            revisions = columns.get("revision", np.full(len(columns["id"]), None, dtype=object))
            columns.update(self.scores.columns(columns["id"], revisions))
        self._columns_cache = (version, columns)
        return columns

    def select(self, where: str | None = None) -> list[str]:
        """Ids of the episodes matching the filter expression (all when ``where`` is empty)."""
        columns = self.columns()
        ids = columns.get("id", np.array([], dtype=object))
        if not where:
            return list(ids)
        mask = query.evaluate(where, columns, len(ids))
        return list(ids[mask])

    def rows(self, ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Rows as dicts (JSON columns decoded, empty fields left out)."""
        columns = self.columns()
        all_ids = list(columns.get("id", []))
        if ids is None:
            positions: Iterable[int] = range(len(all_ids))
        else:
            where = {episode_id: p for p, episode_id in enumerate(all_ids)}
            positions = [where[i] for i in ids]
        out = []
        for p in positions:
            row = {}
            for name, col in columns.items():
                v = col[p]
                if v is None or (isinstance(v, float) and np.isnan(v)):
                    continue
                row[name] = v.item() if isinstance(v, np.generic) else v
            out.append(row)
        return out
