"""What the dashboard shows, as plain data: the opened stores, grid pages, episode summaries.

No Dash here: pages and routes call these functions, and tests call them directly. Stores are opened
read-only; the few writes the user asks for (tags, views) go through ``Library.writable``, which opens
the store for appending only for the length of the change. Each dataset is named by its folder name
(made unique), and URLs carry only those names, episode ids and feature names: nothing a user types
ever becomes a file path, so a route cannot be led outside the opened stores.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from toolkit import query
from toolkit.errors import DemoforgeError, StoreError
from toolkit.scores import read_pass_scores
from toolkit.store import Store
from toolkit.views import load_views

# Catalog columns shown first in the grid, in this order; every other column follows.
LEAD_COLUMNS = ("id", "task", "operator", "success", "length", "tags")
HIDDEN_COLUMNS = ("revision", "created")
PAGE_CACHE = 16  # filtered-and-sorted orders kept per dataset (scrolling reuses them)


class NotFound(DemoforgeError):
    """A dataset, episode or feature named in a URL does not exist."""


@dataclass
class Dataset:
    """One opened store, re-opened on ``refresh`` so episodes a recorder committed since appear."""

    name: str
    path: Path
    store: Store
    _orders: OrderedDict = field(default_factory=OrderedDict)
    lock: threading.RLock = field(default_factory=threading.RLock)

    @property
    def spec(self):  # noqa: ANN201 - toolkit.spec.DatasetSpec
        return self.store.spec

    def columns(self) -> dict[str, np.ndarray]:
        with self.lock:
            return self.store.catalog.columns()

    def refresh(self) -> None:
        """Re-open the store: committed episodes appear, deleted ones go; never a partial episode."""
        with self.lock:
            if self.store.in_step():
                return  # the SQLite catalog already shows what writers committed (WAL); keep its caches
            # The old handle is dropped, not closed: a frame request in another thread may still be using
            # it, and its SQLite connection closes when the last user lets go.
            self.store = Store.open(self.path)
            self._orders.clear()

    def cameras(self) -> list[str]:
        return [n for n, f in self.spec.features.items() if f.kind == "image"]

    def clouds(self) -> list[str]:
        return [n for n, f in self.spec.features.items() if f.kind == "pointcloud"]


class Library:
    """The stores the dashboard was pointed at, by name."""

    def __init__(self, paths: list[str | Path]) -> None:
        if not paths:
            raise DemoforgeError("dashboard: give at least one store")
        self.datasets: dict[str, Dataset] = {}
        for path in paths:
            self.add(Path(path))

    def add(self, path: Path) -> Dataset:
        """Open a store (read-only) under a unique name; an already opened path returns its dataset."""
        resolved = path.resolve()
        for ds in self.datasets.values():
            if ds.path == resolved:
                return ds
        store = Store.open(resolved)
        base = resolved.name.removesuffix(".zarr") or "store"
        name, k = base, 2
        while name in self.datasets:
            name, k = f"{base}-{k}", k + 1
        self.datasets[name] = Dataset(name=name, path=resolved, store=store)
        return self.datasets[name]

    def get(self, name: str) -> Dataset:
        if name not in self.datasets:
            raise NotFound(f"no dataset '{name}' (open: {', '.join(self.datasets)})")
        return self.datasets[name]

    def names(self) -> list[str]:
        return list(self.datasets)

    def close(self) -> None:
        for ds in self.datasets.values():
            ds.store.close()

    @contextmanager
    def writable(self, name: str) -> Iterator[Store]:
        """The store opened for changes, for one edit; the read-only handle is refreshed after."""
        ds = self.get(name)
        with ds.lock:
            store = Store.open(ds.path, mode="a")
            try:
                yield store
            finally:
                store.close()
                ds.refresh()

    def source_of(self, ds: Dataset, episode_id: str) -> tuple[Dataset, str] | None:
        """The dataset and id of a synthetic episode's source, opening the source store when it exists."""
        prov = ds.store.entry(episode_id)["meta"].get("provenance") or {}
        source_id, source_store = prov.get("source_id"), prov.get("source_store")
        if not source_id:
            return None
        path = Path(source_store) if source_store else ds.path
        if not path.is_absolute():
            path = (ds.path.parent / path).resolve()
        try:
            src = self.add(path)
        except DemoforgeError:
            return None
        return (src, str(source_id)) if source_id in src.store else None


# ---------------------------------------------------------------------------------------- summaries
def dataset_summary(ds: Dataset) -> dict[str, Any]:
    """Counts for the datasets page: episodes, frames, hours, tasks, operators, synthetic, score headlines."""
    cols = ds.columns()
    n = len(cols.get("id", []))
    length = cols.get("length", np.zeros(0))
    frames = int(np.nansum(length.astype(float))) if n else 0
    synthetic = int(sum(bool(v) for v in cols.get("provenance.augmentation", []) if isinstance(v, str)))
    return {
        "name": ds.name,
        "path": str(ds.path),
        "episodes": n,
        "frames": frames,
        "hours": round(frames / ds.spec.fps / 3600, 3),
        "fps": ds.spec.fps,
        "tasks": _counts(cols.get("task")),
        "operators": _counts(cols.get("operator")),
        "synthetic": synthetic,
        "cameras": ds.cameras(),
        "scores": score_headlines(ds),
        "views": len(load_views(ds.path)),
    }


def _counts(values: np.ndarray | None) -> dict[str, int]:
    if values is None:
        return {}
    out: dict[str, int] = {}
    for v in values:
        if v is not None:
            out[str(v)] = out.get(str(v), 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def score_headlines(ds: Dataset) -> dict[str, str]:
    """pass name -> the one-line headline its last run wrote."""
    return {name: str(t.summary.get("headline", f"{len(t.rows)} episodes scored"))
            for name, t in ds.store.catalog.scores.tables().items()}


def pass_run(ds: Dataset, name: str) -> dict[str, Any] | None:
    """A pass's last run: summary, findings, params (None when it never ran on this store)."""
    scores = read_pass_scores(ds.path, name)
    return None if scores is None else scores.run_info()


# --------------------------------------------------------------------------------------------- grid
def grid_column_names(ds: Dataset) -> list[str]:
    """Catalog columns for the grid: the lead columns, then factors, provenance, flags and scores."""
    names = [c for c in ds.columns() if c not in HIDDEN_COLUMNS]
    lead = [c for c in LEAD_COLUMNS if c in names]
    return lead + sorted(c for c in names if c not in lead)


def is_numeric(column: np.ndarray) -> bool:
    return column.dtype.kind in "if"


def _text(column: np.ndarray) -> np.ndarray:
    """A column as lower-case strings, for text filters and quick search (lists joined by commas)."""
    out = np.empty(len(column), dtype=object)
    for i, v in enumerate(column):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            out[i] = ""
        elif isinstance(v, (list, tuple, np.ndarray)):
            out[i] = ",".join(str(x) for x in v).lower()
        else:
            out[i] = str(v).lower()
    return out


def _condition_mask(column: np.ndarray, cond: Mapping[str, Any]) -> np.ndarray:
    """One AG Grid filter condition (number, text or boolean) over a whole column."""
    kind = cond.get("type", "equals")
    if kind in ("blank", "notBlank"):
        blank = _text(column) == ""
        return blank if kind == "blank" else ~blank
    if cond.get("filterType") == "number" and is_numeric(column):
        x = column.astype(float)
        a, b = cond.get("filter"), cond.get("filterTo")
        with np.errstate(invalid="ignore"):
            ops = {"equals": lambda: x == a, "notEqual": lambda: x != a, "lessThan": lambda: x < a,
                   "lessThanOrEqual": lambda: x <= a, "greaterThan": lambda: x > a,
                   "greaterThanOrEqual": lambda: x >= a, "inRange": lambda: (x >= a) & (x <= b)}
            if kind not in ops or a is None:
                return np.ones(len(x), bool)
            return ops[kind]()
    text, needle = _text(column), str(cond.get("filter", "")).lower()
    ops = {"contains": lambda s: needle in s, "notContains": lambda s: needle not in s,
           "equals": lambda s: s == needle, "notEqual": lambda s: s != needle,
           "startsWith": lambda s: s.startswith(needle), "endsWith": lambda s: s.endswith(needle)}
    fn = ops.get(kind, ops["contains"])
    return np.fromiter((fn(s) for s in text), bool, len(text))


def filter_mask(columns: Mapping[str, np.ndarray], n: int, filter_model: Mapping[str, Any] | None) -> np.ndarray:
    """The rows passing AG Grid's column filters (``filterModel`` of the infinite row model)."""
    mask = np.ones(n, bool)
    for name, model in (filter_model or {}).items():
        if name not in columns:
            continue
        column = columns[name]
        if "conditions" in model:
            parts = [_condition_mask(column, {**c, "filterType": model.get("filterType")}) for c in model["conditions"]]
            combined = np.logical_or.reduce(parts) if model.get("operator") == "OR" else np.logical_and.reduce(parts)
            mask &= combined
        else:
            mask &= _condition_mask(column, model)
    return mask


_SEARCH_TEXT: dict[int, tuple[Mapping, np.ndarray]] = {}


def _version(columns: Mapping[str, np.ndarray]) -> int:
    """A key unique to this catalog version (``toolkit.query.Columns.version``; ``id()`` can be reused
    once a version is dropped, which served stale orders)."""
    return getattr(columns, "version", None) or id(columns)


def _search_text(columns: Mapping[str, np.ndarray], n: int) -> np.ndarray:
    """Each row's text columns joined and lower-cased, kept while the catalog's columns are unchanged
    (building it is the slow part of a search: a Python pass over every cell)."""
    cached = _SEARCH_TEXT.get(_version(columns))
    if cached is not None and cached[0] is columns:
        return cached[1]
    texts = [_text(c) for name, c in columns.items() if not is_numeric(c) and name not in HIDDEN_COLUMNS]
    joined = np.array([" ".join(parts) for parts in zip(*texts)], dtype=object) if texts else np.full(n, "")
    _SEARCH_TEXT.clear()  # one catalog version at a time is enough
    _SEARCH_TEXT[_version(columns)] = (columns, joined)
    return joined


def search_mask(columns: Mapping[str, np.ndarray], n: int, text: str) -> np.ndarray:
    """Quick search: every word must appear in some text column (id, task, operator, tags, factors...)."""
    words = text.lower().split()
    if not words:
        return np.ones(n, bool)
    joined = _search_text(columns, n)
    mask = np.ones(n, bool)
    for w in words:
        mask &= np.fromiter((w in s for s in joined), bool, n)
    return mask


def _sort_order(columns: Mapping[str, np.ndarray], rows: np.ndarray, sort_model: list[Mapping[str, Any]]) -> np.ndarray:
    """Row positions sorted by the AG Grid sort model (stable; blanks last)."""
    order = rows
    for key in reversed(sort_model or []):
        column = columns.get(key.get("colId", ""))
        if column is None:
            continue
        values = column[order]
        if is_numeric(column):
            v = values.astype(float)
            blank = np.isnan(v)
            v = np.where(blank, 0.0, v)
            keys = -v if key.get("sort") == "desc" else v
        else:
            text = _text(values)
            blank = text == ""
            ranks = np.unique(text, return_inverse=True)[1]
            keys = -ranks if key.get("sort") == "desc" else ranks
        order = order[np.lexsort((keys, blank))]
    return order


def matching_rows(ds: Dataset, where: str = "", search: str = "", filter_model: Mapping | None = None,
                  sort_model: list | None = None, ids: list[str] | None = None) -> np.ndarray:
    """Positions (into the catalog's columns) of the rows to show, filtered and sorted; cached per query.

    Raises ``query.QueryError`` for a bad ``where`` expression (the page shows it as one line).
    """
    columns = ds.columns()
    key = json.dumps([_version(columns), where, search, filter_model, sort_model, ids], sort_keys=True, default=str)
    with ds.lock:
        if key in ds._orders:
            ds._orders.move_to_end(key)
            return ds._orders[key]
    n = len(columns.get("id", []))
    mask = np.ones(n, bool)
    if where.strip():
        mask &= query.evaluate(where, columns, n)
    mask &= search_mask(columns, n, search)
    mask &= filter_mask(columns, n, filter_model)
    if ids is not None:
        mask &= np.isin(columns["id"].astype(str), np.asarray(ids, dtype=str))
    order = _sort_order(columns, np.flatnonzero(mask), sort_model or [])
    with ds.lock:
        ds._orders[key] = order
        while len(ds._orders) > PAGE_CACHE:
            ds._orders.popitem(last=False)
    return order


def json_value(v: Any) -> Any:
    """A catalog cell as JSON: NaN -> None, numpy scalars -> Python, lists -> comma-joined text."""
    if v is None:
        return None
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float):
        return None if np.isnan(v) else round(v, 6)
    if isinstance(v, (list, tuple, np.ndarray)):
        return ", ".join(str(x) for x in v)
    return v


def grid_page(ds: Dataset, start: int, end: int, **query_args: Any) -> dict[str, Any]:
    """One block of the infinite grid: ``{"rowData": [...], "rowCount": total}`` (AG Grid's datasource reply)."""
    order = matching_rows(ds, **query_args)
    columns = ds.columns()
    names = grid_column_names(ds)
    rows = []
    for p in order[start:end]:
        row = {name: json_value(columns[name][p]) for name in names}
        row["thumb"] = thumb_url(ds, row["id"]) if ds.cameras() else None
        rows.append(row)
    return {"rowData": rows, "rowCount": int(len(order))}


# ------------------------------------------------------------------------------------------ episode
def thumb_url(ds: Dataset, episode_id: str) -> str:
    return f"/media/{ds.name}/{episode_id}/thumb.jpg"


def frame_url(ds: Dataset, episode_id: str, feature: str, index: int) -> str:
    return f"/media/{ds.name}/{episode_id}/{feature}/{index}.jpg"


def episode_entry(ds: Dataset, episode_id: str) -> dict[str, Any]:
    try:
        return ds.store.entry(episode_id)
    except StoreError:
        raise NotFound(f"{ds.name}: no episode '{episode_id}'") from None


def episode_flags(ds: Dataset, episode_id: str) -> list[dict[str, Any]]:
    """Every flag on an episode, from its metadata and from each pass's stored scores, with frame ranges."""
    flags = []
    meta = episode_entry(ds, episode_id)["meta"]
    for name, flag in (meta.get("flags") or {}).items():
        flags.append({"source": "episode", "name": name, "frames": flag.get("frames") or [],
                      "detail": flag.get("detail", "")})
    for pass_name, table in ds.store.catalog.scores.tables().items():
        for name, flag in table.flags.get(episode_id, {}).items():
            flags.append({"source": pass_name, "name": name, "frames": flag.get("frames") or [],
                          "detail": flag.get("detail", "")})
    return flags


def episode_scores(ds: Dataset, episode_id: str) -> dict[str, Any]:
    """The episode's score columns (``<pass>.<key>``), blanks left out."""
    columns = ds.columns()
    ids = columns.get("id")
    where = np.flatnonzero(ids == episode_id) if ids is not None else []
    if not len(where):
        return {}
    p = int(where[0])
    passes = set(ds.store.catalog.scores.tables())
    return {name: json_value(col[p]) for name, col in columns.items()
            if name.split(".", 1)[0] in passes and json_value(col[p]) not in (None, "")}


def episode_series(ds: Dataset, episode_id: str) -> dict[str, tuple[np.ndarray, list[str]]]:
    """Per-step numeric features (state, action, scalars) with their dimension names, float32."""
    names = [n for n, f in ds.spec.features.items()
             if f.kind not in ("image", "depth", "mask", "pointcloud", "text") and f.is_continuous
             and not n.endswith("wall_time")]  # the recorder's clock is a straight line: nothing to see
    if not names:
        return {}
    episode = ds.store.read(episode_id, names)
    out = {}
    for n in names:
        values = np.asarray(episode.data[n], dtype=np.float32).reshape(episode.length, -1)
        dims = list(ds.spec.features[n].names or [f"{n}[{i}]" for i in range(values.shape[1])])
        out[n] = (values, dims[: values.shape[1]])
    return out
