"""Motion and skill segments of a demonstration (DemoGen step 2, Xue et al. 2025).

DemoGen splits a source trajectory into object-centric segments: ``motion-1 -> skill-1`` (one object) or
``motion-1 -> skill-1 -> motion-2 -> skill-2`` (an object, then a target). A *motion* segment is free-space
travel towards the next object and is re-planned; a *skill* segment is contact-rich and is moved rigidly
with its object. Boundaries are given by hand (DemoGen's recommended way: ``frames = (skill1, motion2,
skill2)``) or found here from gripper events and object proximity.

Where we depart from DemoGen's ``parse_frames_two_stage``: it thresholds the mean distance between the end
effector and the object's *points* (0.15 / 0.235 / 0.275 m, tuned to its real setups); we use the gripper
close and open events and a horizontal radius around each object's centre, which does not depend on the
scale of the scene: skill-1 is the run of frames up to the grasp during which the end effector stays above
the object, motion-2 starts when it leaves that radius after the grasp, skill-2 is the run up to the
release during which it stays above the target.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Segment:
    """Frames ``[start, stop)``; ``kind`` "motion" (re-planned) or "skill" (rigid with ``obj``); ``obj`` is
    the index of the object the segment manipulates (skill) or travels to (motion): 0 object, 1 target."""

    kind: str
    start: int
    stop: int
    obj: int


def segments_from_frames(frames: Sequence[int], length: int) -> list[Segment]:
    """Segments from boundary frames: ``(skill1,)`` or ``(skill1, motion2, skill2)``."""
    f = [int(x) for x in frames]
    if len(f) not in (1, 3) or any(not 0 <= x <= length for x in f) or f != sorted(f):
        raise ValueError(f"segment frames: expected (skill1,) or increasing (skill1, motion2, skill2) "
                         f"within 0..{length}, got {tuple(f)}")
    segments = [Segment("motion", 0, f[0], 0), Segment("skill", f[0], f[1] if len(f) == 3 else length, 0)]
    if len(f) == 3:
        segments += [Segment("motion", f[1], f[2], 1), Segment("skill", f[2], length, 1)]
    return [s for s in segments if s.stop > s.start]


def _run_up_to(near: np.ndarray, end: int) -> int:
    """First frame of the run of True values that ends at ``end`` (``end`` itself if it is False)."""
    t = end
    while t > 0 and near[t - 1]:
        t -= 1
    return t


def gripper_events(gripper: np.ndarray, closed: float = 0.5) -> tuple[int | None, int | None]:
    """The first frame the gripper command is closed (``> closed``; 0 open .. 1 closed, or -1 .. 1) and the
    first frame after it that it is open again; None for an event that never happens."""
    shut = np.asarray(gripper) > closed
    if not shut.any():
        return None, None
    grasp = int(np.argmax(shut))
    opened = np.flatnonzero(~shut[grasp:])
    return grasp, (grasp + int(opened[0]) if len(opened) else None)


def auto_frames(ee: np.ndarray, gripper: np.ndarray, centres: Sequence[np.ndarray], radius: float = 0.05,
                closed: float = 0.5) -> tuple[int, ...]:
    """Boundary frames from gripper events (``gripper`` the commanded closure per frame, 0 open .. 1 closed)
    and horizontal proximity of the end effector ``ee`` (T, 3) to each object centre; raises ``ValueError``
    when the demonstration has no grasp or does not fit the pattern."""
    grasp, release = gripper_events(gripper, closed)
    if grasp is None:
        raise ValueError("no grasp (the gripper never closes)")
    near_obj = np.linalg.norm(ee[:, :2] - np.asarray(centres[0])[:2], axis=1) <= radius
    skill1 = _run_up_to(near_obj, grasp)
    if len(centres) < 2:
        return (skill1,)
    after = np.flatnonzero(~near_obj[grasp:])
    if not len(after) or release is None:
        raise ValueError("the end effector never leaves the object, or never releases it")
    motion2 = grasp + int(after[0])
    near_tgt = np.linalg.norm(ee[:, :2] - np.asarray(centres[1])[:2], axis=1) <= radius
    skill2 = max(_run_up_to(near_tgt, release), motion2)
    if not skill1 < motion2 <= skill2:
        raise ValueError(f"segments out of order (skill-1 {skill1}, motion-2 {motion2}, skill-2 {skill2})")
    return skill1, motion2, skill2


def state_after_action(position: np.ndarray, delta: np.ndarray) -> bool:
    """Whether ``state[t]`` is logged after ``action[t]`` (DemoGen's data: ``state[t] - state[t-1] ==
    action[t]``) rather than before it (our recorder: ``state[t+1] ~ state[t] + action[t]``)."""
    step = np.diff(position, axis=0)
    if len(step) == 0:
        return False
    after = float(np.abs(step - delta[1:]).mean())
    before = float(np.abs(step - delta[:-1]).mean())
    return after < before
