"""The environment interface: actions in, observations (feature arrays) out.

The embedded MuJoCo tabletop, any Gymnasium environment (through an adapter) and a real robot all
implement it, so the recorder never knows which one it drives.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from toolkit.spec import DatasetSpec


@runtime_checkable
class Environment(Protocol):
    """A controllable scene. ``spec`` lists every observation feature and the ``action`` feature."""

    spec: DatasetSpec
    task: str

    def reset(self, seed: int | None = None) -> dict[str, np.ndarray]:
        """Start a new episode (factors drawn from ``seed``); returns the first observation."""

    def step(self, action: np.ndarray) -> dict[str, np.ndarray]:
        """Apply one action for one control period; returns the next observation."""

    def factors(self) -> dict[str, Any]:
        """Factors of variation of the current episode (object, colour, lighting, camera pose ...)."""

    def success(self) -> bool:
        """Whether the current episode's task is achieved (from the simulator or a robot's sensor)."""

    def close(self) -> None:
        """Release renderers and hardware."""
