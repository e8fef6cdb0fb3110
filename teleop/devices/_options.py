"""Building a device's config from an optional config object plus keyword options (``make_device(name, **flags)``)."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from toolkit.errors import DemoforgeError

C = TypeVar("C")


def config_from(config: C | None, overrides: dict[str, Any], cls: type[C], device: str) -> C:
    """``config`` (or ``cls()``) with ``overrides`` applied; an unknown option is a one-line error."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    if bad := sorted(set(overrides) - names):
        raise DemoforgeError(f"--device {device}: unknown option {bad[0]!r}; expected one of {', '.join(sorted(names))}")
    return dataclasses.replace(config or cls(), **overrides)  # type: ignore[type-var]
