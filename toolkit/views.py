"""Saved views: named filters kept inside a store (``views.json`` at its root).

A view is a filter expression (``toolkit.query``) with a note and the time it was saved, so a curated
subset can be named once ("train-v1: quality.ok and compatibility.score > 0.8"), selected again later,
exported, and shown in the dashboard. The file is replaced atomically; a view never holds episode ids,
so it stays valid as the store grows (select again to see what it matches now).
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from toolkit.errors import DemoforgeError

VIEWS_FILE = "views.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


def load_views(root: Path) -> dict[str, dict[str, Any]]:
    """The store's views: name -> {"where", "note", "saved"} (empty when none were saved)."""
    path = Path(root) / VIEWS_FILE
    if not path.exists():
        return {}
    try:
        views = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DemoforgeError(f"{path}: not valid JSON ({e}); fix or delete the file") from None
    if not isinstance(views, dict) or not all(isinstance(v, dict) and isinstance(v.get("where"), str)
                                              for v in views.values()):
        raise DemoforgeError(f"{path}: expected an object of name -> {{\"where\": \"...\"}}")
    return views


def view_filter(root: Path, name: str) -> str:
    """The filter of the view called ``name``."""
    views = load_views(root)
    if name not in views:
        known = ", ".join(sorted(views)) or "none saved"
        raise DemoforgeError(f"{Path(root) / VIEWS_FILE}: no view '{name}' (views: {known})")
    return views[name]["where"]


def save_view(root: Path, name: str, where: str, note: str = "") -> None:
    """Save (or replace) a view; the caller checks the filter parses against the store first."""
    if not _NAME.match(name):
        raise DemoforgeError(f"view name {name!r}: expected letters, digits, '_', '-' or '.', at most 64")
    views = load_views(root)
    views[name] = {"where": where, "note": note,
                   "saved": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    _write(Path(root) / VIEWS_FILE, views)


def delete_view(root: Path, name: str) -> None:
    views = load_views(root)
    if views.pop(name, None) is None:
        raise DemoforgeError(f"{Path(root) / VIEWS_FILE}: no view '{name}'")
    _write(Path(root) / VIEWS_FILE, views)


def _write(path: Path, views: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(views, indent=1, sort_keys=True))
    os.replace(tmp, path)
