"""A scripted operator for the tabletop: solves pick-and-place and push from the simulator's ground truth.

``OperatorStyle`` makes operators that differ the way people do: speed, a top or a side approach (two
valid but conflicting ways to grasp), hesitation pauses and hand tremor (action noise). Each style is
seeded, so a (style, env seed) pair always gives the same episode.

Events: START on the first tick of an episode, END + SUCCESS once the task is done (pick-and-place:
object placed, released and the gripper lifted clear; push: object on the goal), END + FAILURE when
``max_steps`` ticks pass first. A new episode (the env's step counter back at 0) restarts the script.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from teleop.device import END, FAILURE, START, SUCCESS, Command, register
from teleop.sim.tabletop import TabletopEnv


@dataclass(frozen=True)
class OperatorStyle:
    speed: float = 1.0  # scales the per-tick translation (0.025 m at 1.0, capped by the env's 0.05)
    approach: str = "top"  # "top": descend onto the object; "side": descend beside it and slide in
    pause_prob: float = 0.0  # chance per tick of starting a hesitation
    pause_steps: tuple[int, int] = (3, 8)  # hesitation length, inclusive range of ticks
    noise: float = 0.0  # std of Gaussian noise on translation deltas (m)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.approach not in ("top", "side"):
            raise ValueError(f"OperatorStyle.approach: expected 'top' or 'side', got {self.approach!r}")

    @property
    def label(self) -> str:
        return f"scripted:{self.approach}:speed{self.speed:g}"


def _wrap(a: float) -> float:
    return float((a + np.pi) % (2 * np.pi) - np.pi)


def _object_yaw(quat: np.ndarray) -> float:
    w, x, y, z = quat
    return float(np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))


@register("scripted")
class ScriptedOperator:
    """Implements ``teleop.device.Device`` for a ``TabletopEnv``."""

    name = "scripted"

    def __init__(self, env: TabletopEnv, style: OperatorStyle | None = None, max_steps: int = 250) -> None:
        self.env = env
        self.style = style or OperatorStyle()
        self.max_steps = max_steps
        self._episode = 0
        self._restart()

    def _restart(self) -> None:
        self._rng = np.random.default_rng([self.style.seed, self._episode, self.env.factors().get("seed", 0)])
        self._episode += 1
        self._tick = 0
        self._phase = 0
        self._wait = 0
        self._pause = 0
        self._done = False
        self._grip = 0.0
        self._plan: dict[str, Any] = {}

    def connect(self) -> None:
        pass

    def close(self) -> None:
        pass

    def info(self) -> dict[str, Any]:
        """Operator metadata for the episode (JSON-friendly)."""
        s = self.style
        return {"operator": s.label, "approach": s.approach, "speed": s.speed, "pause_prob": s.pause_prob,
                "noise": s.noise, "style_seed": s.seed}

    # ------------------------------------------------------------------------------------------ tick
    def read(self, observation: dict[str, np.ndarray] | None = None) -> Command:
        p = self.env.privileged()
        if self._done or (self._tick > 0 and p["step"] == 0):
            self._restart()
        events: set[str] = set()
        if self._tick == 0:
            events.add(START)
        self._tick += 1
        finished = self._finished(p)
        if finished or self._tick > self.max_steps:
            self._done = True
            events |= {END, SUCCESS if finished else FAILURE}
            return Command(self._hold(), frozenset(events))
        if self._pause > 0:
            self._pause -= 1
            return Command(self._hold(), frozenset(events))
        if self.style.pause_prob > 0 and self._rng.random() < self.style.pause_prob:
            lo, hi = self.style.pause_steps
            self._pause = int(self._rng.integers(lo, hi + 1)) - 1
            return Command(self._hold(), frozenset(events))
        if p["task_kind"] == "push":
            action = self._push(p)
        else:
            action = self._pick_place(p)
        return Command(action, frozenset(events))

    def _hold(self) -> np.ndarray:
        a = np.zeros(7, np.float32)
        a[6] = self._grip
        return a

    def _finished(self, p: dict[str, Any]) -> bool:
        if not self.env.success():
            return False
        if p["task_kind"] == "push":
            return True
        return self._plan.get("released", False) and p["tcp"][2] - p["object_pos"][2] > 0.04

    def _move(self, p: dict[str, Any], target: np.ndarray, yaw: float | None = None, tol: float = 0.006) -> tuple[np.ndarray, bool]:
        """Action towards ``target`` (tcp, world) and whether the tcp is there."""
        err = target - p["tcp"]
        dist = float(np.linalg.norm(err))
        vmax = 0.025 * self.style.speed
        dp = err if dist <= vmax else err * (vmax / dist)
        if self.style.noise > 0:
            dp = dp + self._rng.normal(0.0, self.style.noise, 3)
        a = np.zeros(7, np.float32)
        a[:3] = dp
        yaw_ok = True
        if yaw is not None:
            dyaw = _wrap(yaw - p["tcp_yaw"])
            a[5] = np.clip(dyaw, -0.15, 0.15)
            yaw_ok = abs(dyaw) < 0.05
        a[6] = self._grip
        settled = float(np.linalg.norm(target - p["tcp_target"])) < max(tol, 0.004)  # the tcp lags the mocap
        return a, dist < tol and settled and yaw_ok

    # ------------------------------------------------------------------------------- pick and place
    def _pick_place(self, p: dict[str, Any]) -> np.ndarray:
        obj, goal, table = p["object_pos"], p["goal"], p["table_height"]
        if "yaw" not in self._plan:
            yaw = _object_yaw(p["object_quat"]) if p["object_type"] == "box" else 0.0
            yaw = (yaw + np.pi / 4) % (np.pi / 2) - np.pi / 4  # a box is symmetric every 90 degrees
            self._plan["yaw"] = float(yaw)
            # side approach: slide in along the gripper's x axis (fingers close along its y axis)
            self._plan["side_dir"] = np.array([np.cos(yaw), np.sin(yaw), 0.0])
        yaw = self._plan["yaw"]
        grasp_z = obj[2] + 0.005
        side = self.style.approach == "side"
        offset = self._plan["side_dir"] * 0.09 if side else np.zeros(3)
        safe = table + 0.15
        phases = [
            # 0: above the approach point
            lambda: self._move(p, np.array([*(obj[:2] + offset[:2]), grasp_z + 0.08]), yaw, tol=0.01),
            # 1: down to grasp height (side: beside the object)
            lambda: self._move(p, np.array([*(obj[:2] + offset[:2]), grasp_z]), yaw),
            # 2: side only: slide in; top: already there
            lambda: self._move(p, np.array([*obj[:2], grasp_z]), yaw),
            # 3: close
            lambda: self._close(p),
            # 4: lift
            lambda: self._move(p, np.array([*p["tcp"][:2], safe]), yaw, tol=0.01),
            # 5: carry above the goal
            lambda: self._move(p, np.array([*goal[:2], safe]), yaw, tol=0.008),
            # 6: lower
            lambda: self._move(p, np.array([*goal[:2], table + p["object_half_height"] + 0.012]), yaw),
            # 7: open
            lambda: self._open(p),
            # 8: retreat (side: slide out first) then up
            lambda: self._move(p, self._plan["retreat"], yaw, tol=0.01),
            lambda: self._move(p, np.array([*p["tcp"][:2], table + 0.15]), yaw, tol=0.01),
        ]
        action, reached = phases[min(self._phase, len(phases) - 1)]()
        if reached and self._phase < len(phases) - 1:
            self._phase += 1
            if self._phase == 8:
                self._plan["released"] = True
                self._plan["retreat"] = np.array([*(p["tcp"][:2] + offset[:2]), p["tcp"][2] + (0.0 if side else 0.08)])
        return action

    def _close(self, p: dict[str, Any]) -> tuple[np.ndarray, bool]:
        self._grip = 1.0
        self._wait += 1
        a = np.zeros(7, np.float32)
        a[6] = 1.0
        if self._wait >= 4:
            self._wait = 0
            return a, True
        return a, False

    def _open(self, p: dict[str, Any]) -> tuple[np.ndarray, bool]:
        self._grip = 0.0
        self._wait += 1
        a = np.zeros(7, np.float32)
        if self._wait >= 3:
            self._wait = 0
            return a, True
        return a, False

    # ----------------------------------------------------------------------------------------- push
    def _push(self, p: dict[str, Any]) -> np.ndarray:
        self._grip = 1.0  # a closed gripper is a better pusher
        obj, goal, table, tcp = p["object_pos"], p["goal"], p["table_height"], p["tcp"]
        to_goal = goal[:2] - obj[:2]
        dist = float(np.linalg.norm(to_goal))
        u = to_goal / max(dist, 1e-6)
        radius = 0.03  # object half-width plus finger half-thickness
        push_z = table + 0.025
        safe = table + 0.1
        back = 0.10 if self.style.approach == "side" else 0.05
        pre = np.array([*(obj[:2] - u * (radius + back)), push_z])
        rel = tcp[:2] - obj[:2]
        along, lateral = float(rel @ u), float(abs(rel[0] * u[1] - rel[1] * u[0]))
        behind = along < -radius + 0.005 and lateral < 0.015
        if self._phase == 0:  # go up and over to the pre-push point
            target = np.array([*pre[:2], safe]) if tcp[2] < safe - 0.01 and np.linalg.norm(tcp[:2] - pre[:2]) > 0.02 \
                else pre
            if tcp[2] < safe - 0.01 and np.linalg.norm(tcp[:2] - pre[:2]) > 0.02:
                target = np.array([*tcp[:2], safe])
            action, reached = self._move(p, target, 0.0, tol=0.01)
            if reached and np.allclose(target, pre):
                self._phase = 1
            return action
        # 1: push along u, steering towards the line through the object and the goal
        if not behind and along > -radius - 0.02 and lateral > 0.025 or along > 0.0:
            self._phase = 0  # lost the object: lift and re-approach
            return self._hold()
        aim = obj[:2] - u * radius + u * min(0.03, dist + 0.005)
        action, _ = self._move(p, np.array([*aim, push_z]), 0.0, tol=0.0)
        # slow down near the goal so the object does not slide past
        if dist < 0.04:
            action[:3] *= 0.5
        return action


# Named operator styles for ``demoforge record --style``: distinct, partly conflicting ways to solve a task.
STYLES: dict[str, OperatorStyle] = {
    "careful": OperatorStyle(speed=0.8, approach="top"),
    "fast": OperatorStyle(speed=1.6, approach="top"),
    "side": OperatorStyle(speed=1.0, approach="side"),
    "hesitant": OperatorStyle(speed=1.0, approach="top", pause_prob=0.08, pause_steps=(3, 8)),
    "noisy": OperatorStyle(speed=1.0, approach="top", noise=0.004),
}


def scripted_operator(env: TabletopEnv, style: str, seed: int = 0, max_steps: int = 250) -> ScriptedOperator:
    """A scripted operator in one of the named ``STYLES`` (seeded), for ``demoforge record``."""
    from dataclasses import replace

    from toolkit.errors import DemoforgeError

    if style not in STYLES:
        raise DemoforgeError(f"--style {style!r}: expected one of {', '.join(STYLES)}")
    return ScriptedOperator(env, replace(STYLES[style], seed=seed), max_steps=max_steps)
