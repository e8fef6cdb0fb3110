"""JSON Schema files: the single source of truth for a valid dataset spec, episode metadata and report.

``load(name)`` returns the parsed schema ``<name>.schema.json`` that sits beside this file.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

SCHEMA_DIR = Path(__file__).resolve().parent


@cache
def load(name: str) -> dict:
    """The schema called ``name`` (e.g. ``"dataset_spec"``), parsed."""
    return json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text())
