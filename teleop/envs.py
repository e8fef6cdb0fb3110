"""Environments by name, for ``demoforge record --env NAME`` (imported lazily: MuJoCo only when asked)."""

from __future__ import annotations

from typing import Any

from teleop.env import Environment
from toolkit.errors import DemoforgeError

ENV_NAMES = ("tabletop", "synthetic")


def make_env(name: str, task: str = "pick_place", height: int = 240, width: int = 320, **options: Any) -> Environment:
    """``tabletop``: the embedded MuJoCo scene; ``synthetic``: a camera source with no physics (tests, benchmarks)."""
    if name == "synthetic":
        from teleop.synthetic import SyntheticEnv

        return SyntheticEnv(cameras=2, height=height, width=width)
    if name == "tabletop":
        from teleop.sim.tabletop import TabletopConfig, TabletopEnv

        return TabletopEnv(TabletopConfig(task=task, height=height, width=width, **options))
    raise DemoforgeError(f"--env {name!r}: expected one of {', '.join(ENV_NAMES)}")
