"""The passes ``demoforge curate`` knows, by name, built with their default parameters.

Each entry names the module, the pass class and its parameter dataclass; modules are imported only
when their pass is asked for.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

from curation.base import Pass
from toolkit.errors import DemoforgeError

PASSES: dict[str, tuple[str, str, str]] = {
    "quality": ("curation.quality", "QualityPass", "QualityParams"),
    "diversity": ("curation.diversity", "DiversityPass", "DiversityParams"),
    "compatibility": ("curation.compatibility", "CompatibilityPass", "CompatibilityParams"),
    "shortcuts": ("curation.shortcuts", "ShortcutPass", "ShortcutParams"),
}
DEFAULT_PASSES = ("quality", "diversity", "shortcuts")  # compatibility joins when a base set is given
# Parameters that switch a pass onto images (camera frames are the slow part of curation).
IMAGE_PARAMS = {"diversity": "images", "shortcuts": "background_probe"}


def parse_names(text: str) -> list[str]:
    """``"quality,diversity"`` -> the pass names, checked."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in PASSES]
    if unknown or not names:
        raise DemoforgeError(f"--passes {text!r}: expected a comma-separated list of {', '.join(PASSES)}")
    return list(dict.fromkeys(names))


def make_pass(name: str, **overrides: Any) -> Pass:
    """The pass called ``name`` with default parameters, except ``overrides`` (unknown keys refused)."""
    module_name, class_name, params_name = PASSES[name]
    module = importlib.import_module(module_name)
    params_type = getattr(module, params_name)
    known = {f.name for f in dataclasses.fields(params_type)}
    bad = sorted(set(overrides) - known)
    if bad:
        raise DemoforgeError(f"pass {name}: unknown parameter(s) {bad} (known: {sorted(known)})")
    return getattr(module, class_name)(params_type(**overrides))


def make_passes(names: list[str], images: bool = False) -> list[Pass]:
    """The named passes; ``images`` turns on their image-based parts (visual diversity, background probe)."""
    return [make_pass(n, **({IMAGE_PARAMS[n]: True} if images and n in IMAGE_PARAMS else {})) for n in names]
