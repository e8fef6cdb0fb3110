"""Replay: play back the recorded actions of one stored episode, one per tick.

Useful to re-record an episode in another environment (new cameras, lighting, a changed scene) or to
check that a recording reproduces. Tick 0 carries START; the last action carries END, because the
recorder records the frame of the END tick and does not step the environment on it: an episode of N
actions replays into exactly N frames, each with the action that was recorded. Reads after the end
return an idle command (gripper held) with QUIT, so a session ends instead of looping.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from teleop.device import END, QUIT, START, Command, register
from teleop.devices._options import config_from
from toolkit.errors import DemoforgeError


@dataclass
class ReplayConfig:
    store_path: str = ""  # a demoforge store (``Store.open``)
    episode_id: str = ""  # a committed episode in it
    feature: str = "action"  # which float32[7] feature to play


@register("replay")
class Replay:
    """A stored episode's actions as a demoforge ``Device``."""

    name = "replay"

    def __init__(self, store_path: str | Path | None = None, episode_id: str | None = None,
                 config: ReplayConfig | None = None, **overrides: Any) -> None:
        if store_path is not None:
            overrides["store_path"] = str(store_path)
        if episode_id is not None:
            overrides["episode_id"] = str(episode_id)
        self.config: ReplayConfig = config_from(config, overrides, ReplayConfig, "replay")
        self._actions: np.ndarray | None = None
        self._tick = 0

    def connect(self) -> None:
        from toolkit.store import Store

        cfg = self.config
        if not cfg.store_path or not cfg.episode_id:
            raise DemoforgeError("--device replay: needs store_path and episode_id")
        with Store.open(cfg.store_path) as store:
            feature = store.spec.features.get(cfg.feature)
            if feature is None:
                raise DemoforgeError(f"{cfg.store_path}: no feature '{cfg.feature}' to replay")
            if tuple(feature.shape) != (7,):
                raise DemoforgeError(
                    f"{cfg.store_path}: feature '{cfg.feature}' has shape {tuple(feature.shape)}, expected (7,) "
                    "[dx, dy, dz, droll, dpitch, dyaw, gripper]"
                )
            actions = np.asarray(store.read(cfg.episode_id, [cfg.feature]).data[cfg.feature], np.float32)
        if len(actions) == 0:
            raise DemoforgeError(f"{cfg.store_path}: episode '{cfg.episode_id}' has no frames to replay")
        self._actions = actions
        self._tick = 0

    def read(self, observation: dict[str, np.ndarray] | None = None) -> Command:
        if self._actions is None:
            raise DemoforgeError("replay: read() before connect()")
        n, i = len(self._actions), self._tick
        self._tick += 1
        if i >= n:
            return Command(Command.idle(float(self._actions[-1, 6])).action, frozenset({QUIT}))
        events = set()
        if i == 0:
            events.add(START)
        if i == n - 1:
            events.add(END)
        return Command(self._actions[i].copy(), frozenset(events))

    @property
    def remaining(self) -> int:
        """Actions not yet played."""
        return 0 if self._actions is None else max(0, len(self._actions) - self._tick)

    def close(self) -> None:
        self._actions = None
