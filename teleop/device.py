"""The device interface: turn operator input into an action command and lifecycle events.

A new device (gamepad, leader arm, phone) is one file with a config dataclass and a class that
implements ``Device``, registered by name with ``register`` (LeRobot's teleoperator pattern, smaller).

Action convention for end-effector control (the embedded sim and the sample data use it):
``float32[7] = [dx, dy, dz, droll, dpitch, dyaw, gripper]``: translation in metres and rotation in
radians per control tick in the world frame (z up), and the gripper target in [0, 1] (0 open, 1 closed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

ACTION_NAMES = ("delta.x", "delta.y", "delta.z", "delta.roll", "delta.pitch", "delta.yaw", "gripper")

# Lifecycle events a device may raise on a tick.
START = "start"  # begin recording an episode
END = "end"  # end and keep the episode
DISCARD = "discard"  # end and throw the episode away
RERECORD = "rerecord"  # throw it away and start again at once
SUCCESS = "success"  # mark the current episode successful
FAILURE = "failure"  # mark it failed
QUIT = "quit"  # stop the session
EVENTS = frozenset({START, END, DISCARD, RERECORD, SUCCESS, FAILURE, QUIT})


@dataclass
class Command:
    """One control tick of operator input: the action to apply and any lifecycle events."""

    action: np.ndarray
    events: frozenset[str] = field(default_factory=frozenset)

    @staticmethod
    def idle(gripper: float = 0.0) -> Command:
        action = np.zeros(7, np.float32)
        action[6] = gripper
        return Command(action)


@runtime_checkable
class Device(Protocol):
    """What the recorder needs from an input device."""

    name: str

    def connect(self) -> None:
        """Open the hardware (raise ``DemoforgeError`` with a one-line fix when it cannot)."""

    def read(self, observation: dict[str, np.ndarray] | None) -> Command:
        """The command for this tick; must not block longer than a control period."""

    def close(self) -> None:
        """Release the hardware; safe to call twice."""


_REGISTRY: dict[str, Callable[..., Device]] = {}


def register(name: str) -> Callable[[Callable[..., Device]], Callable[..., Device]]:
    """Class decorator: make a device constructible by name (``demoforge record --device NAME``)."""

    def wrap(factory: Callable[..., Device]) -> Callable[..., Device]:
        _REGISTRY[name] = factory
        return factory

    return wrap


def make_device(name: str, **kwargs: Any) -> Device:
    from toolkit.errors import DemoforgeError

    if name not in _REGISTRY:
        raise DemoforgeError(f"--device {name!r}: expected one of {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name](**kwargs)


def device_names() -> list[str]:
    return sorted(_REGISTRY)
