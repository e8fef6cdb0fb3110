"""The catalog: one row per committed episode (metadata, factors, tags, flags, later scores).

It lives in ``catalog.sqlite`` at the store's root (SQLite in WAL mode, so a dashboard can read while a
recorder appends). The episodes themselves are the truth: the catalog is a fast index over their
metadata, rebuilt from the episode groups whenever it is missing, unreadable or out of step
(``Store.open`` reconciles the two). Nested metadata is flattened into dotted columns
(``factors.object_color``, ``provenance.augmentation``, ``flags.nonfinite``) that the filter
language in ``toolkit.query`` addresses by name.

Reading at scale: ``columns()`` keeps every row as numpy columns and, when the catalog changes, fetches
only what changed since. Each write takes the next number of a sequence (``catalog_meta.seq``) and
stamps the rows it writes with it (``episodes._seq``); a removed row leaves a tombstone with the number
of its removal (``catalog_removed``). A reader asks for the rows and tombstones newer than its columns
and patches them in (append, replace, drop), so a dashboard sees what a recorder commits on its next
call, at a cost that follows the change rather than the catalog. Triggers keep the numbers right for
any writer, plain SQL included. ``clear`` changes ``catalog_meta.epoch``, which sends readers back to a
full load. A catalog from before (no ``_seq``) is migrated in place when opened writable; opened
read-only it is never written, and read in full whenever it changed, as it always was.
"""

from __future__ import annotations

import gc
import itertools
import json
import sqlite3
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from toolkit import query
from toolkit.query import Columns
from toolkit.scores import ScoreColumns, revision

# Columns every catalog has; flattened metadata adds more as it appears.
BASE_COLUMNS = ("id", "length", "task", "operator", "success", "created", "tags", "revision")
_JSON_COLUMNS = ("tags",)
SEQ = "_seq"  # bookkeeping, not a catalog column: the write that last touched the row

_BUMP = "UPDATE catalog_meta SET value = value + 1 WHERE key = 'seq';"
_CURRENT = "(SELECT value FROM catalog_meta WHERE key = 'seq')"
# Executed in order by _ensure_schema (all idempotent). A row written without a number (by an older
# demoforge or plain SQL) gets the next one from the first two triggers; every removal bumps the
# sequence itself, so a tombstone is always newer than anything a reader has seen.
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS catalog_meta (key TEXT PRIMARY KEY, value)",
    "INSERT OR IGNORE INTO catalog_meta (key, value) VALUES ('seq', 0)",
    f"CREATE INDEX IF NOT EXISTS episodes_seq ON episodes ({SEQ})",
    "CREATE TABLE IF NOT EXISTS catalog_removed (id TEXT PRIMARY KEY, seq INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS catalog_removed_seq ON catalog_removed (seq)",
    f"CREATE TRIGGER IF NOT EXISTS episodes_seq_insert AFTER INSERT ON episodes WHEN NEW.{SEQ} IS NULL BEGIN "
    f"{_BUMP} UPDATE episodes SET {SEQ} = {_CURRENT} WHERE rowid = NEW.rowid; END",
    f"CREATE TRIGGER IF NOT EXISTS episodes_seq_update AFTER UPDATE ON episodes WHEN NEW.{SEQ} IS OLD.{SEQ} BEGIN "
    f"{_BUMP} UPDATE episodes SET {SEQ} = {_CURRENT} WHERE rowid = NEW.rowid; END",
    "CREATE TRIGGER IF NOT EXISTS episodes_seq_delete AFTER DELETE ON episodes BEGIN "
    f"{_BUMP} INSERT OR REPLACE INTO catalog_removed (id, seq) VALUES (OLD.id, {_CURRENT}); END",
)
_SCHEMA_OBJECTS = frozenset({"episodes", "catalog_meta", "catalog_removed", "episodes_seq", "catalog_removed_seq",
                             "episodes_seq_insert", "episodes_seq_update", "episodes_seq_delete"})
_CREATE_EPISODES = (
    "CREATE TABLE IF NOT EXISTS episodes (id TEXT PRIMARY KEY, length INTEGER, task TEXT, "
    f"operator TEXT, success INTEGER, created TEXT, tags TEXT, {SEQ} INTEGER)"
)


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


def _new_epoch() -> str:
    return uuid.uuid4().hex


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a load makes millions of container objects (a tuple
    per fetched row, the score tables' lists): each would-be collection walks the whole heap of a big
    process, which cost a third of a million-row load. Reference counting still frees everything."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


# ------------------------------------------------------------------------------------------------
# Columns from SQLite values. A plain column is int64 when every value is an integer, float64 (None as
# NaN) when every value is a number or None and one is not None, else an object array of the values.
# Patching must land on the same type a full load would give, so each plain column keeps a census of
# its values' kinds, and a float column remembers which of its values were integers.
# ------------------------------------------------------------------------------------------------
_NONE, _INT, _FLOAT, _OTHER = range(4)
_KIND = {type(None): _NONE, int: _INT, float: _FLOAT}


def _kinds(values: Iterable[Any], n: int) -> np.ndarray:
    return np.fromiter(map(_KIND.get, map(type, values), itertools.repeat(_OTHER)), np.int8, n)


def _dtype(census: np.ndarray, n: int) -> str:
    if n and census[_INT] == n:
        return "i"
    if census[_OTHER] == 0 and census[_NONE] < n:
        return "f"
    return "O"


def _objects(values: Iterable[Any], n: int) -> np.ndarray:
    return np.fromiter(values, dtype=object, count=n)


@dataclass
class _Col:
    """One column as ``columns()`` returns it (``values``), plus what patching it needs. ``values`` may be
    the head of a longer ``buffer`` whose spare room takes appended rows without copying the column."""

    values: np.ndarray
    plain: bool = False  # typed by its values' kinds (not tags, success, flags.* or scores)
    census: np.ndarray | None = None  # plain columns: counts of None, int, float and other values
    ints: np.ndarray | None = None  # float columns: where the value was an integer
    buffer: np.ndarray | None = None
    ints_buffer: np.ndarray | None = None

    @staticmethod
    def from_raw(raw: np.ndarray, kinds: np.ndarray | None = None) -> _Col:
        """A plain column from an object array of SQLite values (with room to append, see _Plan.apply)."""
        kinds = _kinds(raw, len(raw)) if kinds is None else kinds
        census = np.bincount(kinds, minlength=4)
        dtype = _dtype(census, len(raw))
        values, ints = _typed(raw, kinds, dtype)
        buffer, ints_buffer = _roomy(values), None if ints is None else _roomy(ints)
        return _Col(buffer[:len(raw)], True, census, None if ints is None else ints_buffer[:len(raw)],
                    buffer, ints_buffer)

    def census_at(self, positions: np.ndarray) -> np.ndarray:
        kind = self.values.dtype.kind
        if kind == "i":
            return np.array([0, len(positions), 0, 0])
        if kind == "f":
            nan = int(np.isnan(self.values[positions]).sum())
            ints = int(self.ints[positions].sum())
            return np.array([nan, ints, len(positions) - nan - ints, 0])
        return np.bincount(_kinds(self.values[positions], len(positions)), minlength=4)

    def exact(self) -> np.ndarray:
        """The SQLite values as Python objects again (ints stay ints, NaN goes back to None)."""
        kind = self.values.dtype.kind
        if kind == "O":
            return self.values
        out = self.values.astype(object)
        if kind == "f":
            out[np.isnan(self.values)] = None
            out[self.ints] = self.values[self.ints].astype(np.int64).astype(object)
        return out


def _repetitive(raw: np.ndarray) -> bool:
    """Whether a column repeats a few values (tasks, operators, factor values), not ids or timestamps."""
    sample = raw[:: max(1, len(raw) // 1000)]
    return len(set(sample)) <= len(sample) // 4


def _load_columns(table: list[str], rows: list[tuple]) -> dict[str, _Col]:
    """The columns of fetched rows. The passes that touch every value object (their kinds, sharing equal
    texts) go row by row over all columns at once: a row's values were allocated together, so this stays
    in cache, about twice as fast as column by column."""
    grid = _grid(rows, len(table))
    kinds = _kinds(grid.ravel(), grid.size).reshape(grid.shape)
    # Equal texts become one object in columns of texts that repeat: a fraction of the memory, and copies
    # and comparisons that stay in cache (about 10x faster at a million rows). Texts and None only, where
    # equal values are interchangeable (1, 1.0 and True are equal but not the same catalog value).
    texts = [j for j, name in enumerate(table) if name != SEQ and not _special(name) and len(rows)
             and not np.isin(kinds[:, j], (_INT, _FLOAT)).any() and _repetitive(grid[:, j])]
    if texts:
        flat = grid[:, texts].ravel()
        same: dict[Any, Any] = {}
        grid[:, texts] = np.fromiter(map(same.setdefault, flat, flat), object, len(flat)).reshape(len(rows), -1)
    return {name: _column(name, grid[:, j], kinds[:, j]) for j, name in enumerate(table) if name != SEQ}


def _typed(raw: np.ndarray, kinds: np.ndarray, dtype: str) -> tuple[np.ndarray, np.ndarray | None]:
    if dtype == "i":
        return raw.astype(np.int64), None
    if dtype == "f":
        return raw.astype(float), kinds == _INT
    return raw, None


def _bools(raw: np.ndarray) -> np.ndarray:
    """None, True or False (Python's) per row."""
    out = np.full(len(raw), None, dtype=object)
    present = np.not_equal(raw, None).astype(bool)
    out[present] = raw[present].astype(bool).astype(object)
    return out


def _tag_lists(raw: np.ndarray) -> np.ndarray:
    """JSON tag lists, each distinct text decoded once: a few combinations repeat over many rows, and
    rows with the same tags share one list (cells are read-only, see ``Catalog.columns``)."""
    decoded: dict[Any, list] = {None: [], "[]": []}
    for text in set(raw) - decoded.keys():
        decoded[text] = json.loads(text)
    return _objects(map(decoded.__getitem__, raw), len(raw))


def _roomy(values: np.ndarray) -> np.ndarray:
    """A copy of ``values`` with room to append (a contiguous copy, never a view of a fetched grid)."""
    buffer = _room(len(values), values.dtype)
    buffer[:len(values)] = values
    return buffer


def _special(name: str) -> bool:
    return name in _JSON_COLUMNS or name == "success" or name.startswith("flags.")


def _column(name: str, raw: np.ndarray, kinds: np.ndarray | None = None) -> _Col:
    if name in _JSON_COLUMNS:
        values = _tag_lists(raw)
    elif name == "success" or name.startswith("flags."):
        values = _bools(raw)
    else:
        return _Col.from_raw(raw, kinds)
    buffer = _roomy(values)
    return _Col(buffer[:len(values)], buffer=buffer)


def _blank(name: str, n: int) -> _Col:
    """A column that appeared after ``n`` rows were loaded: what those rows read as in a full load."""
    return _column(name, np.full(n, None, dtype=object))


def _grid(rows: list[tuple], width: int) -> np.ndarray:
    grid = np.empty((len(rows), width), dtype=object)
    if rows:
        grid[:] = rows
    return grid


def _room(n: int, dtype: np.dtype) -> np.ndarray:
    """An array for ``n`` rows with room for more (about 1/8) to append into."""
    return np.empty(n + n // 8 + 256, dtype=dtype)


_PIECES = 2048  # up to this many changed rows, a version is spliced from slices (a copy with no index arrays)


@dataclass
class _Plan:
    """How cached rows become the next version's. The fetched rows (sorted by id) go where their ids sort;
    old rows at ``dropped`` (removed, or replaced by a fetched row) leave. ``append``: nothing leaves and
    everything fetched sorts last. Otherwise ``pieces`` lists the output as slices, ``(from_fetched, start,
    stop)``, or for many changes ``kept`` rows go to ``dest_kept`` and fetched ones to ``dest_new``."""

    size: int
    dropped: np.ndarray
    append: bool = False
    pieces: list[tuple[bool, int, int]] | None = None
    kept: np.ndarray | None = None
    dest_kept: np.ndarray | None = None
    dest_new: np.ndarray | None = None

    @staticmethod
    def build(ids: np.ndarray, removed: np.ndarray, new_ids: np.ndarray) -> _Plan:
        n, k = len(ids), len(new_ids)
        if n == 0:
            return _Plan(k, np.zeros(0, np.int64), append=True)
        pos = np.searchsorted(ids, new_ids).astype(np.int64)
        exists = (pos < n) & (ids[np.minimum(pos, n - 1)] == new_ids).astype(bool)
        gone = np.zeros(0, np.int64)
        if len(removed):
            at = np.searchsorted(ids, removed).astype(np.int64)
            gone = at[(at < n) & (ids[np.minimum(at, n - 1)] == removed).astype(bool)]
        dropped = np.union1d(gone, pos[exists]).astype(np.int64)
        size = n - len(dropped) + k
        if not len(dropped) and (k == 0 or new_ids[0] > ids[-1]):
            return _Plan(size, dropped, append=True)
        if len(dropped) + k <= _PIECES:
            return _Plan(size, dropped, pieces=_pieces(n, dropped.tolist(), pos.tolist()))
        drop = np.zeros(n, bool)
        drop[dropped] = True
        kept = np.flatnonzero(~drop)
        insert_at = pos - np.concatenate(([0], np.cumsum(drop)))[pos]  # among the kept rows
        dest_kept = np.arange(len(kept)) + np.searchsorted(insert_at, np.arange(len(kept)), side="right")
        return _Plan(size, dropped, kept=kept, dest_kept=dest_kept, dest_new=insert_at + np.arange(k))

    def apply(self, old: np.ndarray, new: np.ndarray, buffer: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray | None]:
        """The next version of a column (``new``: its fetched rows) and the buffer it heads, if any. An
        append writes into ``buffer``'s spare room past ``old`` (which nobody sees), so a recorder's
        append costs its rows, not the catalog's; earlier versions, shorter heads, never change."""
        if self.append:
            n, k = len(old), len(new)
            if k == 0:
                return old, buffer
            if buffer is None or len(buffer) < n + k:
                buffer = _room(n + k, old.dtype)
                buffer[:n] = old
            buffer[n:n + k] = new
            return buffer[:n + k], buffer
        buffer = _room(self.size, old.dtype)
        if self.pieces is not None:
            at = 0
            for fetched, a, b in self.pieces:
                buffer[at:at + b - a] = new[a:b] if fetched else old[a:b]
                at += b - a
        else:
            buffer[self.dest_kept] = old[self.kept]
            buffer[self.dest_new] = new
        return buffer[:self.size], buffer

    def apply_col(self, col: _Col, new: np.ndarray) -> _Col:
        values, buffer = self.apply(col.values, new, col.buffer)
        return _Col(values, buffer=buffer)

    def patch(self, name: str, col: _Col, raw: np.ndarray) -> _Col:
        """``col`` with the fetched values ``raw`` (object array, in the fetched rows' order) patched in."""
        if not col.plain:
            return self.apply_col(col, _column(name, raw).values)
        kinds = _kinds(raw, len(raw))
        dropped = col.census_at(self.dropped) if len(self.dropped) else 0
        census = col.census - dropped + np.bincount(kinds, minlength=4)
        dtype = _dtype(census, self.size)
        if dtype == col.values.dtype.kind:
            values, ints = _typed(raw, kinds, dtype)
            values, buffer = self.apply(col.values, values, col.buffer)
            if ints is None:
                return _Col(values, True, census, buffer=buffer)
            ints, ints_buffer = self.apply(col.ints, ints, col.ints_buffer)
            return _Col(values, True, census, ints, buffer, ints_buffer)
        # The column changes type (a text among numbers, the last None gone...): rare, rebuild it exactly
        return _Col.from_raw(self.apply(col.exact(), raw)[0])


def _pieces(n: int, dropped: list[int], pos: list[int]) -> list[tuple[bool, int, int]]:
    """Slices making the next version: old rows up to each change, then the fetched rows that sort there
    (``pos``: their insertion points among the old ids, ascending), skipping old rows that leave."""
    leaving = set(dropped)
    pieces = []
    start = j = 0
    for cut in sorted(leaving.union(pos)):
        if start < cut:
            pieces.append((False, start, cut))
        first = j
        while j < len(pos) and pos[j] == cut:
            j += 1
        if j > first:
            pieces.append((True, first, j))
        start = cut + 1 if cut in leaving else cut
    if start < n:
        pieces.append((False, start, n))
    return pieces


@dataclass
class _Rows:
    """The stored columns at one point of the catalog's history."""

    epoch: str | None  # None: a catalog without change tracking (older format), read in full
    seq: int
    names: list[str]  # stored columns in table order (without _seq)
    cols: dict[str, _Col]

    def __len__(self) -> int:
        return len(self.cols["id"].values) if "id" in self.cols else 0


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
        self.readonly = readonly
        self._writes = 0  # this handle's own writes (PRAGMA data_version counts other connections')
        self._rows: _Rows | None = None
        self._scores: tuple[tuple, _Rows, dict[str, _Col]] | None = None  # (stamp, rows, joined columns)
        self._score_index: dict[str, tuple[Any, np.ndarray, np.ndarray]] = {}
        self._columns_cache: tuple[tuple, Columns] | None = None
        if not readonly and not self._schema_ok():
            with self._write():
                pass  # creates the tables, or migrates a catalog of the older format

    def close(self) -> None:
        self.db.close()

    # -- schema --------------------------------------------------------------------------------
    def _table_columns(self) -> list[str]:
        return [r[1] for r in self.db.execute("PRAGMA table_info(episodes)")]

    def _schema_ok(self) -> bool:
        return _SCHEMA_OBJECTS <= {r[0] for r in self.db.execute("SELECT name FROM sqlite_master")}

    def _ensure_schema(self) -> None:
        """Create what is missing (inside a write transaction): a new catalog, or one written by an older
        demoforge, which gets ``_seq`` (NULL for its rows: loaded in full, never fetched as changes)."""
        if self._schema_ok():
            return
        self.db.execute(_CREATE_EPISODES)
        migrated = SEQ not in self._table_columns()
        if migrated:
            self.db.execute(f"ALTER TABLE episodes ADD COLUMN {SEQ} INTEGER")
        for statement in _SCHEMA:
            self.db.execute(statement)
        self.db.execute("INSERT OR IGNORE INTO catalog_meta (key, value) VALUES ('epoch', ?)", (_new_epoch(),))
        if migrated:  # whatever a reader holds predates the numbering: have it load everything again
            self.db.execute("UPDATE catalog_meta SET value = ? WHERE key = 'epoch'", (_new_epoch(),))

    @contextmanager
    def _write(self) -> Iterator[None]:
        """One write transaction, holding SQLite's write lock from the start (so the sequence number taken
        inside is the next one even with other writers), with the schema checked first."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self._ensure_schema()
            yield
            self.db.commit()
        except BaseException:
            self.db.rollback()
            raise
        finally:
            self._writes += 1

    def _next_seq(self) -> int:
        self.db.execute(_BUMP)
        return self.db.execute(_CURRENT[1:-1]).fetchone()[0]

    # -- writing -------------------------------------------------------------------------------
    def column_names(self) -> list[str]:
        """The stored columns (without the joined score columns)."""
        return [name for name in self._table_columns() if name != SEQ]

    def _ensure_columns(self, names: Iterable[str]) -> None:
        existing = set(self._table_columns())
        for name in names:
            if name not in existing:
                self.db.execute(f'ALTER TABLE episodes ADD COLUMN "{name}"')

    def upsert(self, entries: Iterable[Mapping[str, Any]]) -> None:
        """Add or replace rows for the given episode entries (see ``flatten``)."""
        rows = {}
        for entry in entries:
            row = flatten(entry)
            rows[row["id"]] = row  # the last entry of an id wins, as it would one by one
        if not rows:
            return
        shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row in rows.values():
            shapes.setdefault(tuple(row), []).append(row)
        with self._write():
            self._ensure_columns(sorted({k for r in rows.values() for k in r}))
            seq = self._next_seq()
            for cols, group in shapes.items():
                quoted = ",".join(f'"{c}"' for c in cols)
                placeholders = ",".join("?" * (len(cols) + 1))
                self.db.executemany(
                    f"INSERT OR REPLACE INTO episodes ({quoted},{SEQ}) VALUES ({placeholders})",
                    ([*(_sql_value(c, row[c]) for c in cols), seq] for row in group),
                )

    def remove(self, ids: Iterable[str]) -> None:
        ids = [(i,) for i in ids]
        if not ids:
            return
        with self._write():
            self.db.executemany("DELETE FROM episodes WHERE id = ?", ids)  # tombstones: episodes_seq_delete

    def clear(self) -> None:
        with self._write():
            self.db.execute("DROP TABLE IF EXISTS episodes")
            self._ensure_schema()
            self.db.execute("DELETE FROM catalog_removed")
            self.db.execute("UPDATE catalog_meta SET value = ? WHERE key = 'epoch'", (_new_epoch(),))

    # -- reading -------------------------------------------------------------------------------
    def ids(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT id FROM episodes ORDER BY id")]

    def __len__(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM episodes").fetchone()[0]

    def max_id(self) -> str | None:
        return self.db.execute("SELECT MAX(id) FROM episodes").fetchone()[0]

    def columns(self) -> dict[str, np.ndarray]:
        """All rows as columns (sorted by id) with the curation scores joined, cached until either changes.

        The result is a :class:`toolkit.query.Columns`: a new one (new arrays) per change, never modified
        after it is returned; treat its arrays as read-only."""
        version = (self.db.execute("PRAGMA data_version").fetchone()[0], self.db.total_changes, self._writes,
                   self.scores.stamp())
        if self._columns_cache and self._columns_cache[0] == version:
            return self._columns_cache[1]
        before = self._rows
        with _collector_paused():
            plan, fetched = self._sync()
            rows = self._rows
            stored = {name: rows.cols[name].values for name in rows.names}
            scores = self._joined(stored, rows, before, plan, fetched, version[3])
        columns = Columns(stored)
        columns.update((name, col.values) for name, col in scores.items())
        self._columns_cache = (version, columns)
        return columns

    def _state(self) -> tuple[str, int] | None:
        """(epoch, last sequence number), or None for a catalog without change tracking."""
        try:
            meta = dict(self.db.execute("SELECT key, value FROM catalog_meta"))
        except sqlite3.OperationalError:
            return None
        if SEQ not in self._table_columns() or "epoch" not in meta:
            return None
        return str(meta["epoch"]), int(meta.get("seq") or 0)

    def _sync(self) -> tuple[_Plan | None, dict[str, np.ndarray] | None]:
        """Bring ``self._rows`` up to the database, in one read snapshot. Returns the plan that patched
        the rows and the fetched rows' columns (both None after a full load; an empty plan and None
        when nothing changed)."""
        own = not self.db.in_transaction
        if own:
            self.db.execute("BEGIN")
        try:
            state = self._state()
            old = self._rows
            if old is None or state is None or old.epoch != state[0] or old.seq > state[1]:
                self._rows = self._load_all(state)
                return None, None
            names = [n for n in self._table_columns() if n != SEQ]
            if old.seq == state[1] and names == old.names:
                return _Plan(len(old), np.zeros(0, np.int64), append=True), None
            changed = self.db.execute(f"SELECT COUNT(*) FROM episodes WHERE {SEQ} > ?", (old.seq,)).fetchone()[0]
            removed = [r[0] for r in self.db.execute("SELECT id FROM catalog_removed WHERE seq > ?", (old.seq,))]
            if changed + len(removed) > max(len(old) // 2, 1000) or not set(old.names) <= set(names):
                self._rows = self._load_all(state)
                return None, None
            # Sorted here: with ORDER BY, SQLite walks the whole id index instead of the _seq one
            cursor = self.db.execute(f"SELECT * FROM episodes WHERE {SEQ} > ?", (old.seq,))
            table = [d[0] for d in cursor.description]
            at = table.index("id")
            grid = _grid(sorted(cursor.fetchall(), key=lambda row: row[at]), len(table))
            fetched = {name: grid[:, j] for j, name in enumerate(table) if name != SEQ}
            plan = _Plan.build(old.cols["id"].values, _objects(removed, len(removed)), fetched["id"])
            cols = {name: plan.patch(name, old.cols.get(name) or _blank(name, len(old)), fetched[name])
                    for name in names}
            self._rows = _Rows(state[0], state[1], names, cols)
            return plan, fetched
        finally:
            if own:
                self.db.commit()

    def _load_all(self, state: tuple[str, int] | None) -> _Rows:
        cursor = self.db.execute("SELECT * FROM episodes ORDER BY id")
        table = [d[0] for d in cursor.description]
        cols = _load_columns(table, cursor.fetchall())
        names = [n for n in table if n != SEQ]
        epoch, seq = state if state is not None else (None, 0)
        return _Rows(epoch, seq, names, cols)

    # -- scores --------------------------------------------------------------------------------
    def _joined(self, stored: dict[str, np.ndarray], rows: _Rows, before: _Rows | None, plan: _Plan | None,
                fetched: dict[str, np.ndarray] | None, stamp: tuple) -> dict[str, _Col]:
        """The score columns for ``rows``: kept when neither changed, patched like the rows when only the
        rows changed (``before`` -> ``rows`` by ``plan``), joined afresh otherwise."""
        if "id" not in stored:
            self._scores = None
            return {}
        cached = self._scores
        if cached is not None and cached[0] == stamp:
            if cached[1] is rows:
                return cached[2]
            if cached[1] is before and plan is not None and fetched is not None:
                k = len(fetched["id"])
                new = self._join(fetched["id"], fetched.get("revision", np.full(k, None, dtype=object)))
                if new.keys() == cached[2].keys():
                    scores = {name: plan.apply_col(col, new[name]) for name, col in cached[2].items()}
                    self._scores = (stamp, rows, scores)
                    return scores
        ids = stored["id"]
        joined = self._join(ids, stored.get("revision", np.full(len(ids), None, dtype=object)))
        scores = {name: _Col(buffer[:len(ids)], buffer=buffer) for name, buffer in
                  ((name, _roomy(values)) for name, values in joined.items())}
        self._scores = (stamp, rows, scores)
        return scores

    def _join(self, ids: np.ndarray, revisions: np.ndarray) -> dict[str, np.ndarray]:
        """``ScoreColumns.columns(ids, revisions)``, with each pass's ids indexed once (sorted, binary
        search) instead of hashed on every call, so patching a few rows does not cost a whole table."""
        score_arrays = getattr(self.scores, "_score_arrays", None)
        if score_arrays is None:
            return self.scores.columns(ids, revisions)
        out: dict[str, np.ndarray] = {}
        n = len(ids)
        revisions = np.asarray(revisions, dtype=object)
        wanted = ids.astype(str)
        for name, arrays in score_arrays().items():
            rows = self._lookup(name, arrays, wanted)
            scored = rows >= 0
            take = rows[scored]
            for key, values in arrays.scores.items():
                column = np.full(n, np.nan) if values.dtype.kind == "f" else np.full(n, None, dtype=object)
                column[scored] = values[take]
                out[f"{name}.{key}"] = column
            flags = np.full(n, None, dtype=object)
            flags[:] = [[]]  # one shared empty list (cells are read-only)
            flags[scored] = arrays.flag_names[take]
            out[f"{name}.flags"] = flags
            stale = np.ones(n, bool)
            stale[scored] = ~arrays.current[take] | (arrays.revisions[take] != revisions[scored]).astype(bool)
            out[f"{name}.stale"] = stale
        return out

    def _lookup(self, name: str, arrays: Any, wanted: np.ndarray) -> np.ndarray:
        """Row of each wanted id in a pass's table, -1 where it has none."""
        index = self._score_index.get(name)
        if index is None or index[0] is not arrays:
            keys = np.asarray(arrays.ids, dtype=object).astype(str)
            order = np.argsort(keys, kind="stable")
            index = (arrays, keys[order], order)
            self._score_index[name] = index
        _, keys, order = index
        if not len(keys) or not len(wanted):
            return np.full(len(wanted), -1, np.int64)
        at = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
        return np.where(keys[at] == wanted, order[at], -1).astype(np.int64)

    # -- queries -------------------------------------------------------------------------------
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
        all_ids = columns.get("id", np.array([], dtype=object))
        if ids is None:
            positions: Iterable[int] = range(len(all_ids))
        else:
            wanted = _objects(ids, -1) if not isinstance(ids, np.ndarray) else ids.astype(object)
            at = np.minimum(np.searchsorted(all_ids, wanted), max(len(all_ids) - 1, 0)) if len(all_ids) else None
            for j, episode_id in enumerate(wanted):
                if at is None or all_ids[at[j]] != episode_id:
                    raise KeyError(episode_id)
            positions = [] if at is None else at.tolist()
        out = []
        for p in positions:
            row = {}
            for name, col in columns.items():
                v = col[p]
                if v is None or (isinstance(v, float) and np.isnan(v)):
                    continue
                if isinstance(v, list):
                    v = list(v)  # the caller's to keep or change, not the cached cell
                row[name] = v.item() if isinstance(v, np.generic) else v
            out.append(row)
        return out
