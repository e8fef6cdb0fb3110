"""Our dotted feature names as the flat keys of formats without dots (robomimic obs keys, replay-buffer data keys).

``observation.`` is dropped, ``images.<cam>`` becomes ``<cam>_image`` and ``depth.<cam>`` becomes
``<cam>_depth`` (robosuite's names, which robomimic and diffusion_policy use), then ``.`` becomes ``_``:
``observation.images.front -> front_image``, ``observation.state -> state``.
"""

from __future__ import annotations

from pathlib import Path

from toolkit.errors import FormatError


def flat_key(name: str) -> str:
    """The flat key for a feature name (see the module docstring)."""
    key = name.removeprefix("observation.")
    if key.startswith("images."):
        key = key[len("images."):] + "_image"
    elif key.startswith("depth."):
        key = key[len("depth."):] + "_depth"
    return key.replace(".", "_")


def check_distinct(layout: dict[str, str], out: Path, target: str) -> None:
    """Refuse a layout (feature name -> key) where two features land on one key.

    ``target`` formats a key for the message, e.g. ``"data/{}"``.
    """
    seen: dict[str, str] = {}
    for name, key in layout.items():
        if key in seen:
            where = target.format(key)
            raise FormatError(f"{out}: features '{seen[key]}' and '{name}' both map to {where}; rename one")
        seen[key] = name
