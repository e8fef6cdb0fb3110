"""A small built-in sample dataset, generated procedurally (no simulator needed).

It stands in for recorded data in ``demoforge demo``, the tests and the benchmarks: a 2-D "gripper"
moves towards a coloured block and carries it to a goal, seen by one or more cameras. Everything is a
function of the seed, so the same arguments give the same bytes.
"""

from __future__ import annotations

import numpy as np

from toolkit.episode import Episode, EpisodeMeta
from toolkit.spec import DatasetSpec, Feature

STATE_NAMES = ("ee.x", "ee.y", "ee.z", "ee.roll", "ee.pitch", "ee.yaw", "gripper")
ACTION_NAMES = ("delta.x", "delta.y", "delta.z", "delta.roll", "delta.pitch", "delta.yaw", "gripper")
TASKS = ("pick up the cube", "push the cube to the goal")
OPERATORS = ("alice", "bob", "scripted:fast")
COLOURS = {"red": (220, 40, 40), "blue": (40, 80, 220), "green": (40, 180, 60)}


def sample_spec(cameras: int = 2, height: int = 96, width: int = 128, fps: float = 10, depth: bool = False) -> DatasetSpec:
    """State and action float32[7] (end-effector pose + gripper), ``cameras`` RGB cameras, optional depth."""
    features = {
        "observation.state": Feature("float32", (7,), "state", STATE_NAMES),
        "action": Feature("float32", (7,), "action", ACTION_NAMES),
    }
    for name in ("front", "wrist", "side", "top")[:cameras]:
        features[f"observation.images.{name}"] = Feature(
            "uint8", (height, width, 3), "image", ("height", "width", "channels")
        )
    if depth:
        features["observation.depth.front"] = Feature("float32", (height, width), "depth", ("height", "width"))
    features["next.reward"] = Feature("float32", (1,), "scalar")
    return DatasetSpec(fps=fps, features=features, robot_type="demoforge_sample")


def _path(rng: np.random.Generator, length: int) -> np.ndarray:
    """A smooth reach-grasp-carry path in metres: (length, 3)."""
    start = np.array([0.0, 0.0, 0.3]) + rng.uniform(-0.05, 0.05, 3)
    block = np.array([rng.uniform(-0.2, 0.2), rng.uniform(0.1, 0.3), 0.02])
    goal = np.array([rng.uniform(-0.2, 0.2), rng.uniform(-0.3, -0.1), 0.02])
    half = length // 2
    s1 = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, half))[:, None]
    s2 = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, length - half))[:, None]
    return np.concatenate([start + s1 * (block - start), block + s2 * (goal - block)])


def _render(xy: np.ndarray, colour: tuple[int, int, int], frame: int, height: int, width: int, view: int) -> np.ndarray:
    """A frame: a vertical gradient background and a square at the projected position."""
    img = np.empty((height, width, 3), np.uint8)
    img[...] = np.linspace(30, 90 + 40 * view, height, dtype=np.uint8)[:, None, None]
    img[..., 2] = np.uint8((frame * 7 + 50 * view) % 256)
    u = int((xy[0] + 0.35) / 0.7 * (width - 1))
    v = int((0.35 - xy[1]) / 0.7 * (height - 1))
    r = max(2, height // 12)
    img[max(0, v - r):v + r, max(0, u - r):u + r] = colour
    return img


def sample_episode(spec: DatasetSpec, index: int, seed: int = 0, length: int | None = None) -> Episode:
    """Episode ``index`` of the sample dataset; lengths vary between 20 and 39 frames unless given."""
    rng = np.random.default_rng([seed, index])
    length = int(length if length is not None else rng.integers(20, 40))
    pos = _path(rng, length)
    state = np.zeros((length, 7), np.float32)
    state[:, :3] = pos
    state[:, 5] = np.linspace(0, rng.uniform(-0.5, 0.5), length)
    state[length // 2:, 6] = 1.0
    action = np.zeros_like(state)
    action[:-1, :6] = np.diff(state[:, :6], axis=0)
    action[:, 6] = state[:, 6]
    colour_name = list(COLOURS)[index % len(COLOURS)]
    data: dict[str, np.ndarray] = {"observation.state": state, "action": action}
    for view, name in enumerate(spec.of_kind("image")):
        h, w, _ = spec.features[name].shape
        data[name] = np.stack([_render(pos[t], COLOURS[colour_name], t, h, w, view) for t in range(length)])
    for name in spec.of_kind("depth"):
        h, w = spec.features[name].shape[:2]
        ramp = np.linspace(0.5, 1.5, h, dtype=np.float32)[:, None] + np.zeros((1, w), np.float32)
        data[name] = np.stack([ramp + np.float32(pos[t, 2]) for t in range(length)])
    reward = np.zeros((length, 1), np.float32)
    reward[-1] = 1.0
    data["next.reward"] = reward
    data = {n: data[n] for n in spec.features}
    meta = EpisodeMeta(
        task=TASKS[index % len(TASKS)],
        operator=OPERATORS[index % len(OPERATORS)],
        success=bool(rng.random() > 0.2),
        factors={"object_color": colour_name, "table_height": round(float(0.70 + 0.05 * (index % 3)), 2)},
    )
    return Episode(data=data, meta=meta)


def sample_episodes(spec: DatasetSpec, count: int, seed: int = 0, length: int | None = None) -> list[Episode]:
    """``count`` sample episodes (see ``sample_episode``)."""
    return [sample_episode(spec, i, seed, length) for i in range(count)]
