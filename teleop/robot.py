"""Real hardware as a demoforge ``Environment``.

A robot driver implements the small ``Robot`` protocol below (connect, read named arrays, send an
action vector, disconnect, plus the ``spec`` of what it produces); ``RobotEnv`` turns it into an
``Environment`` the recorder drives like any simulator. ``LeRobotRobot`` wraps a LeRobot ``Robot``
object (``so101_follower``, ``koch_follower`` ...) by duck typing, so every arm LeRobot supports records
into a demoforge store without demoforge importing lerobot.

Unlike a simulator, a robot cannot be teleported to a sampled start state: ``reset`` only calls an
optional ``reposition`` hook (a scripted homing move, or a prompt for the operator) and then reads the
current observation; episode factors are whatever the caller states at construction. Success comes from
the robot when it has a sensor for it (a ``success()`` method returning ``True``/``False``), otherwise
from the operator: the recorder's SUCCESS/FAILURE events, or ``RobotEnv.mark_success``; unmarked is
``False``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np

from toolkit.errors import DemoforgeError
from toolkit.spec import DatasetSpec, Feature

_BAD_CHARS = re.compile(r"[^A-Za-z0-9_.\-]")


@runtime_checkable
class Robot(Protocol):
    """What demoforge needs from a robot driver.

    ``spec`` lists every observation feature ``observation()`` returns (names such as
    ``observation.state`` and ``observation.images.<camera>``, with dtype and shape) and the ``action``
    feature (``float32[n]``, with the joint or axis names) that ``send_action`` takes.
    """

    spec: DatasetSpec

    def connect(self) -> None:
        """Open the buses and cameras (raise ``DemoforgeError`` with a one-line fix when it cannot)."""

    def observation(self) -> dict[str, np.ndarray]:
        """The current reading: one array per observation feature of ``spec``, in its dtype and shape."""

    def send_action(self, action: np.ndarray) -> np.ndarray:
        """Command ``action`` (the ``action`` feature's layout); returns the action actually sent, after any
        clipping or safety limits the driver applies."""

    def disconnect(self) -> None:
        """Release the hardware (torque off as the driver sees fit); safe to call twice."""


class RobotEnv:
    """A ``Robot`` as an ``Environment``.

    ``factors``: the episode's factors of variation as the operator states them (object, lighting ...);
    ``reposition``: called as ``reposition(robot, seed)`` at every ``reset`` before the first observation
    (home the arm, wait for the operator to place objects); ``connect``: connect at the first ``reset``
    (set False when the caller connected the robot itself). ``last_sent`` keeps the action the robot
    reported it actually executed on the last ``step``.
    """

    def __init__(self, robot: Robot, task: str, factors: Mapping[str, Any] | None = None,
                 reposition: Callable[[Robot, int | None], None] | None = None, connect: bool = True) -> None:
        if "action" not in robot.spec.features:
            raise DemoforgeError("robot spec: it has no 'action' feature (expected float32[n] kind action)")
        self.robot, self.task, self.spec = robot, task, robot.spec
        self._factors = dict(factors or {})
        self._reposition = reposition
        self._connected = not connect
        self._marked: bool | None = None
        self.last_sent: np.ndarray | None = None

    def reset(self, seed: int | None = None) -> dict[str, np.ndarray]:
        if not self._connected:
            self.robot.connect()
            self._connected = True
        self._marked = None
        self.last_sent = None
        if self._reposition is not None:
            self._reposition(self.robot, seed)
        return self.robot.observation()

    def step(self, action: np.ndarray) -> dict[str, np.ndarray]:
        self.last_sent = np.asarray(self.robot.send_action(np.asarray(action, np.float32)), np.float32)
        return self.robot.observation()

    def mark_success(self, success: bool | None) -> None:
        """The operator's verdict on the current episode (``None`` clears it)."""
        self._marked = success

    def factors(self) -> dict[str, Any]:
        return dict(self._factors)

    def success(self) -> bool:
        sensor = getattr(self.robot, "success", None)
        verdict = sensor() if callable(sensor) else None
        if verdict is None:
            verdict = self._marked
        return bool(verdict)

    def close(self) -> None:
        if self._connected:
            self.robot.disconnect()
            self._connected = False


def _is_camera(value: Any) -> bool:
    return isinstance(value, tuple) and len(value) == 3 and all(isinstance(v, int) for v in value)


class LeRobotRobot:
    """A LeRobot ``Robot`` (duck-typed: ``observation_features``, ``action_features``, ``connect()``,
    ``get_observation()``, ``send_action(dict) -> dict``, ``disconnect()``) as a demoforge ``Robot``.

    LeRobot's flat observation dict becomes: every scalar key (``observation_features`` value a type such
    as ``float``, e.g. ``"shoulder_pan.pos"``) gathered, in ``observation_features`` order, into one
    ``observation.state`` float32 vector whose ``names`` are those keys; every camera key (value an
    ``(H, W, C)`` tuple, C 1 or 3) becomes ``observation.images.<key>`` uint8. The ``action`` vector follows
    ``action_features`` order and goes back to the robot as a ``{key: float}`` dict; what the robot
    reports it sent comes back as a vector in the same order.
    """

    def __init__(self, robot: Any, fps: float = 30.0, robot_type: str | None = None,
                 connect_kwargs: Mapping[str, Any] | None = None) -> None:
        self.robot = robot
        self._connect_kwargs = dict(connect_kwargs or {})
        obs_features = dict(robot.observation_features)
        self.state_keys = [k for k, v in obs_features.items() if not _is_camera(v)]
        self.camera_keys = [k for k, v in obs_features.items() if _is_camera(v)]
        self.action_keys = list(robot.action_features)
        features: dict[str, Feature] = {}
        if self.state_keys:
            features["observation.state"] = Feature("float32", (len(self.state_keys),), "state",
                                                    tuple(self.state_keys))
        self._camera_names: dict[str, str] = {}
        for key in self.camera_keys:
            shape = tuple(obs_features[key])
            if shape[2] not in (1, 3):
                raise DemoforgeError(f"lerobot robot: camera {key!r} has shape {shape}; expected (H, W, 3) or (H, W, 1)")
            name = f"observation.images.{_BAD_CHARS.sub('_', key)}"
            self._camera_names[key] = name
            features[name] = Feature("uint8", shape, "image", ("height", "width", "channels"))
        if not self.action_keys:
            raise DemoforgeError("lerobot robot: action_features is empty")
        features["action"] = Feature("float32", (len(self.action_keys),), "action", tuple(self.action_keys))
        rtype = robot_type or getattr(robot, "robot_type", None) or getattr(robot, "name", None)
        self.spec = DatasetSpec(fps=fps, features=features, robot_type=rtype).validated("lerobot robot spec")

    def connect(self) -> None:
        if not getattr(self.robot, "is_connected", False):
            self.robot.connect(**self._connect_kwargs)

    def observation(self) -> dict[str, np.ndarray]:
        raw = self.robot.get_observation()
        missing = [k for k in (*self.state_keys, *self.camera_keys) if k not in raw]
        if missing:
            raise DemoforgeError(f"lerobot robot: get_observation() lacks keys {missing}")
        out: dict[str, np.ndarray] = {}
        if self.state_keys:
            out["observation.state"] = np.array([float(raw[k]) for k in self.state_keys], np.float32)
        for key, name in self._camera_names.items():
            frame = np.asarray(raw[key])
            expected = self.spec.features[name].shape
            if frame.shape != expected:
                raise DemoforgeError(f"lerobot robot: camera {key!r} gave a {frame.shape} frame; "
                                     f"observation_features declares {expected}")
            out[name] = np.ascontiguousarray(frame, np.uint8)
        return out

    def send_action(self, action: np.ndarray) -> np.ndarray:
        vector = np.asarray(action, np.float32).reshape(-1)
        if vector.shape[0] != len(self.action_keys):
            raise DemoforgeError(f"lerobot robot: action of {vector.shape[0]} numbers; expected "
                                 f"{len(self.action_keys)} ({', '.join(self.action_keys)})")
        command = {k: float(v) for k, v in zip(self.action_keys, vector)}
        sent = self.robot.send_action(command) or command
        return np.array([float(sent.get(k, command[k])) for k in self.action_keys], np.float32)

    def disconnect(self) -> None:
        if getattr(self.robot, "is_connected", True):
            self.robot.disconnect()
