"""``demoforge select``: a curated subset by scores, tags and metadata, as a new store or a saved view.

The subset is reproducible: the new store records where it came from (``selection.json``: source store,
filter, view, time, the source ids) and every copied episode keeps ``extra.copied_from``.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from rich.console import Console

from toolkit.errors import DemoforgeError
from toolkit.report import episode_table
from toolkit.store import Store, merge_stores
from toolkit.views import load_views, save_view, view_filter

SELECTION_FILE = "selection.json"


def stale_scores(store: Store, where: str, ids: list[str]) -> dict[str, int]:
    """For each pass whose scores ``where`` uses: how many of ``ids`` have stale or missing scores."""
    columns = store.catalog.columns()
    passes = {c[:-len(".stale")] for c in columns if c.endswith(".stale")}
    used = sorted(p for p in passes if re.search(rf"(?<![\w.]){re.escape(p)}\.", where))
    if not used or not ids:
        return {}
    chosen = np.isin(columns["id"], ids)
    return {p: int(columns[f"{p}.stale"][chosen].sum()) for p in used if columns[f"{p}.stale"][chosen].any()}


def select_command(store_path: Path, where: str | None, view: str | None, out_store: Path | None,
                   view_name: str | None, note: str, list_views: bool, limit: int, out: Console,
                   err: Console) -> list[str]:
    """Resolve the filter (``--where`` or ``--view``), then copy, save or show; returns the selected ids."""
    if where and view:
        raise DemoforgeError("select: give --where or --view, not both")
    with Store.open(store_path, mode="a" if (out_store or view_name) else "r") as store:
        if list_views:
            for name, v in sorted(load_views(store.root).items()):
                out.print(f"{name}: {v['where']}" + (f"  ({v['note']})" if v.get("note") else "")
                          + f"  -> {len(store.ids(v['where']))} episodes")
            return []
        if view:
            where = view_filter(store.root, view)
        ids = store.ids(where)  # also checks the filter parses against this store's columns
        for name, count in stale_scores(store, where or "", ids).items():
            err.print(f"[yellow]note:[/yellow] {count} selected episode(s) have stale or missing '{name}' "
                      f"scores (changed since, or scored with other parameters): re-run 'demoforge curate'")
        if view_name:
            if not where:
                raise DemoforgeError("select --save-view: give the filter with --where")
            save_view(store.root, view_name, where, note)
            out.print(f"saved view '{view_name}': {where!r} ({len(ids)} episodes now)")
        if out_store:
            subset = select_to_store(store, where, view, out_store)
            out.print(f"selected {len(subset)} of {len(store)} episodes -> {subset.root}")
        if not out_store and not view_name:
            episode_table(store, ids, out, limit)
    return ids


def select_to_store(store: Store, where: str | None, view: str | None, out: Path) -> Store:
    """Copy the episodes matching ``where`` into a new store at ``out`` that records where they came from."""
    ids = store.ids(where)
    if not ids:
        raise DemoforgeError(f"select: {where!r} matches no episodes in {store.root}; nothing written")
    subset = merge_stores([store], out, where)
    _record_selection(subset.root, store, where, view, ids)
    return subset


def _record_selection(root: Path, source: Store, where: str | None, view: str | None, ids: list[str]) -> None:
    record = {"source": str(source.root.resolve()), "where": where, "view": view, "source_ids": ids,
              "selected": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    (root / SELECTION_FILE).write_text(json.dumps(record, indent=1))
