"""Fixtures for curation tests: real episodes recorded on the embedded MuJoCo tabletop.

``record_sim(path, blocks)`` records blocks of episodes with scripted operators through the real
recorder into a real store (no rendering unless a block asks for cameras: 1 ms per step). A block can
wrap the operator in a ``plant`` function (``Command -> Command`` per tick, with the tick index and the
episode seed) to plant a known property: a pause, jitter, gripper chatter, a NaN.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco's first import picks a GL backend

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from teleop.device import Command
from teleop.recorder import Recorder, RecorderConfig, recording_spec
from teleop.sim.scripted import STYLES, OperatorStyle, ScriptedOperator
from teleop.sim.tabletop import TabletopConfig, TabletopEnv
from toolkit.store import Store

Plant = Callable[[Command, int, int], Command]  # (command, tick, episode seed) -> command


@dataclass
class Block:
    """``count`` episodes by one operator style on seeds ``seed``, ``seed+1`` ...; ``config`` overrides
    ``TabletopConfig`` fields (no cameras by default); ``operator`` is the name stored in the metadata."""

    style: str | OperatorStyle = "careful"
    count: int = 5
    seed: int = 0
    task: str = "pick_place"
    operator: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    plant: Plant | None = None
    extra_factors: dict[str, Any] = field(default_factory=dict)
    max_steps: int = 250


class _Planted:
    """A device wrapper that lets a test alter each command (the planted property)."""

    def __init__(self, device: ScriptedOperator, plant: Plant) -> None:
        self.device, self.plant = device, plant
        self.tick, self.seed = 0, 0

    def connect(self) -> None:
        self.device.connect()

    def close(self) -> None:
        self.device.close()

    def read(self, observation: Any = None) -> Command:
        command = self.device.read(observation)
        out = self.plant(command, self.tick, self.seed)
        self.tick += 1
        return out


def record_sim(path: Path, blocks: list[Block]) -> Store:
    """Record every block into the store at ``path`` (created on first use); returns it open for append."""
    store: Store | None = None
    for block in blocks:
        options = {"cameras": (), "pointcloud_cameras": (), "task": block.task, **block.config}
        env = TabletopEnv(TabletopConfig(**options))
        try:
            if store is None:
                store = Store.create(path, recording_spec(env.spec, env.spec.fps), exist_ok=True)
            style = STYLES[block.style] if isinstance(block.style, str) else block.style
            operator = block.operator or (block.style if isinstance(block.style, str) else style.label)
            device = ScriptedOperator(env, replace(style, seed=block.seed), max_steps=block.max_steps)
            wrapped = _Planted(device, block.plant) if block.plant else device
            config = RecorderConfig(fps=env.spec.fps, max_steps=block.max_steps + 5, operator=operator,
                                    realtime=False, extra_factors=block.extra_factors)
            recorder = Recorder(env, wrapped, store, config)
            for i in range(block.count):
                if isinstance(wrapped, _Planted):
                    wrapped.tick, wrapped.seed = 0, block.seed + i
                recorder.record_episode(block.seed + i)
            recorder.close()
        finally:
            env.close()
    assert store is not None
    return store


@pytest.fixture(scope="session")
def sim_store():
    """``sim_store(path, blocks)`` -> Store: see ``record_sim``."""
    return record_sim


@pytest.fixture(scope="session")
def block():
    """The ``Block`` class, for building recording plans."""
    return Block
