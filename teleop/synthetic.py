"""A synthetic camera environment: the recorder's load without a simulator.

It produces the shapes a real rig produces (RGB cameras, depth, state) at negligible compute cost, so
the recorder benchmark measures the recorder, and recorder tests run in milliseconds. Frames are
pre-rendered once and cycled; the state integrates the actions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from toolkit.spec import DatasetSpec, Feature
from toolkit.sample import ACTION_NAMES, STATE_NAMES


class SyntheticEnv:
    """``cameras`` RGB cameras (and one depth image) of ``height`` x ``width``; state float32[7]."""

    task = "move the gripper around"

    def __init__(self, cameras: int = 2, height: int = 96, width: int = 128, depth: bool = True, seed: int = 0) -> None:
        features = {
            "observation.state": Feature("float32", (7,), "state", STATE_NAMES),
            "action": Feature("float32", (7,), "action", ACTION_NAMES),
        }
        rng = np.random.default_rng(seed)
        self._frames: dict[str, np.ndarray] = {}
        for name in ("front", "wrist", "side", "top")[:cameras]:
            key = f"observation.images.{name}"
            features[key] = Feature("uint8", (height, width, 3), "image", ("height", "width", "channels"))
            self._frames[key] = rng.integers(0, 256, (8, height, width, 3), dtype=np.uint8)
        if depth:
            features["observation.depth.front"] = Feature("float32", (height, width), "depth", ("height", "width"))
            self._frames["observation.depth.front"] = rng.uniform(0.3, 2.0, (8, height, width)).astype(np.float32)
        self.spec = DatasetSpec(fps=10, features=features, robot_type="synthetic")
        self._state = np.zeros(7, np.float32)
        self._t = 0
        self._seed = seed

    def _observation(self) -> dict[str, np.ndarray]:
        obs = {k: v[self._t % len(v)] for k, v in self._frames.items()}
        obs["observation.state"] = self._state.copy()
        return obs

    def reset(self, seed: int | None = None) -> dict[str, np.ndarray]:
        self._seed = self._seed if seed is None else seed
        self._state = np.zeros(7, np.float32)
        self._t = 0
        return self._observation()

    def step(self, action: np.ndarray) -> dict[str, np.ndarray]:
        self._state[:6] += np.asarray(action[:6], np.float32)
        self._state[6] = action[6]
        self._t += 1
        return self._observation()

    def factors(self) -> dict[str, Any]:
        return {"seed": self._seed}

    def success(self) -> bool:
        return bool(np.linalg.norm(self._state[:3]) > 0.05)

    def close(self) -> None:
        pass
