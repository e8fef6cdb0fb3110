"""Any Gymnasium environment as a demoforge ``Environment``.

``GymnasiumEnv`` reads the observation and action spaces once and builds the dataset spec from them:

* a ``Dict`` observation is flattened, nested keys joined with ``.`` (``{"robot": {"qpos": ...}}`` ->
  ``robot.qpos``); a plain ``Box`` observation is one leaf, named ``observation.state`` when it is a
  vector (``observation.images.pixels`` when it is an ``HxWx3`` uint8 image);
* default feature names and kinds: a ``uint8`` ``(H, W, 3)`` or ``(H, W, 1)`` Box is a camera,
  ``observation.images.<key>`` (kind ``image``); a 1-D float Box is a state vector ``observation.<key>``
  (kind ``state``), and one of them becomes ``observation.state``: the first whose key contains
  ``state``, ``qpos`` or ``observation``, else the first 1-D float Box; anything else (``Discrete``,
  ``MultiBinary``, integer vectors, float arrays of other ranks) is kind ``scalar``, flattened to 1-D;
* ``observation_map`` replaces the defaults: it maps observation keys to feature names and selects the
  keys (unmapped keys are not recorded). The kind still follows the space (a ``uint8`` image is an
  ``image`` whatever its name; a 1-D float is a ``state``);
* the ``action`` feature is ``float32[n]``: a ``Box`` action flattened, a ``Discrete`` action as one
  number (rounded to the integer the environment takes), a ``MultiDiscrete`` one as ``n`` numbers.

Floats are stored as float32. ``success()`` is ``info["is_success"]`` or ``info["success"]`` from the last
step when the environment reports it, else whether the episode terminated. Once an episode has
terminated or been truncated, further ``step`` calls return the last observation without stepping the
environment (the recorder keeps ticking until the operator ends the episode; stepping a finished
Gymnasium episode is undefined); ``done`` tells a caller it happened.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from toolkit.errors import DemoforgeError
from toolkit.spec import DatasetSpec, Feature

STATE_HINTS = ("state", "qpos", "observation")
_BAD_CHARS = re.compile(r"[^A-Za-z0-9_.\-]")


def _sanitize(key: str) -> str:
    return _BAD_CHARS.sub("_", key)


def _leaves(space: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted key, leaf space) for every leaf of a (nested) Dict space, in the space's key order."""
    from gymnasium import spaces

    if isinstance(space, spaces.Dict):
        out: list[tuple[str, Any]] = []
        for key, sub in space.spaces.items():
            out.extend(_leaves(sub, f"{prefix}{key}."))
        return out
    if isinstance(space, (spaces.Box, spaces.Discrete, spaces.MultiBinary, spaces.MultiDiscrete)):
        return [(prefix[:-1], space)]
    raise DemoforgeError(
        f"observation space {prefix[:-1] or '(root)'}: {type(space).__name__} is not supported "
        "(expected Box, Discrete, MultiBinary, MultiDiscrete or a Dict of them)"
    )


def _get(obs: Any, key: str) -> Any:
    """The leaf of a (nested) observation dict at a dotted key ('' is the observation itself)."""
    if not key:
        return obs
    value = obs
    for part in key.split("."):
        value = value[part]
    return value


def _is_image(space: Any) -> bool:
    from gymnasium import spaces

    return (isinstance(space, spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3
            and space.shape[2] in (1, 3))


def _is_float_vector(space: Any) -> bool:
    from gymnasium import spaces

    return isinstance(space, spaces.Box) and np.issubdtype(space.dtype, np.floating) and len(space.shape) == 1


def _feature_for(space: Any) -> Feature:
    """The feature a leaf space is stored as (the kind follows the space, not the name)."""
    from gymnasium import spaces

    if _is_image(space):
        return Feature("uint8", tuple(int(s) for s in space.shape), "image", ("height", "width", "channels"))
    if _is_float_vector(space):
        return Feature("float32", (int(space.shape[0]),), "state")
    if isinstance(space, spaces.Discrete):
        return Feature("int64", (1,), "scalar")
    if isinstance(space, spaces.MultiBinary):
        return Feature("int8", (int(np.prod(space.shape)),), "scalar")
    if isinstance(space, spaces.MultiDiscrete):
        return Feature("int64", (int(np.prod(space.shape)),), "scalar")
    size = max(1, int(np.prod(space.shape)))
    if np.issubdtype(space.dtype, np.floating):
        return Feature("float32", (size,), "scalar")
    if space.dtype == np.bool_:
        return Feature("bool", (size,), "scalar")
    dtype = np.dtype(space.dtype).name
    if dtype not in ("int8", "int16", "int32", "int64", "uint8", "uint16"):
        dtype = "int64"
    return Feature(dtype, (size,), "scalar")


def default_observation_map(observation_space: Any) -> dict[str, str]:
    """The default observation key -> feature name mapping for an observation space (see module doc)."""
    leaves = _leaves(observation_space)
    if len(leaves) == 1 and leaves[0][0] == "":
        space = leaves[0][1]
        return {"": "observation.images.pixels" if _is_image(space) else "observation.state"}
    vectors = [key for key, space in leaves if _is_float_vector(space)]
    hinted = [key for key in vectors if any(h in key.lower() for h in STATE_HINTS)]
    state_key = (hinted or vectors or [None])[0]
    mapping: dict[str, str] = {}
    for key, space in leaves:
        if _is_image(space):
            mapping[key] = f"observation.images.{_sanitize(key)}"
        elif key == state_key:
            mapping[key] = "observation.state"
        else:
            mapping[key] = f"observation.{_sanitize(key)}"
    return mapping


class GymnasiumEnv:
    """A Gymnasium environment (Dict or Box observations; Box, Discrete or MultiDiscrete actions) as an
    ``Environment``. ``fps`` defaults to the environment's ``metadata["render_fps"]`` (else 30)."""

    def __init__(self, env: Any, observation_map: dict[str, str] | None = None, task: str | None = None,
                 action_names: tuple[str, ...] | list[str] | None = None, fps: float | None = None,
                 robot_type: str | None = None) -> None:
        from gymnasium import spaces

        self.env = env
        env_id = getattr(getattr(env, "spec", None), "id", None)
        self.task = task or (f"gymnasium {env_id}" if env_id else "gymnasium task")
        leaves = dict(_leaves(env.observation_space))
        mapping = default_observation_map(env.observation_space) if observation_map is None else dict(observation_map)
        if observation_map is not None and len(leaves) == 1 and "" in leaves:
            # a plain Box observation: accept any key for it (it has no key of its own)
            mapping = {"": next(iter(mapping.values()))} if len(mapping) == 1 else mapping
        unknown = sorted(set(mapping) - set(leaves))
        if unknown:
            raise DemoforgeError(f"observation_map: keys {unknown} are not in the observation space "
                                 f"(expected some of {sorted(leaves)})")
        names = list(mapping.values())
        if len(set(names)) != len(names) or "action" in names:
            raise DemoforgeError(f"observation_map: feature names must be distinct and not 'action' (got {names})")
        self._map = mapping
        features: dict[str, Feature] = {name: _feature_for(leaves[key]) for key, name in mapping.items()}

        act = env.action_space
        if isinstance(act, spaces.Box):
            n, self._action_kind = int(np.prod(act.shape)), "box"
        elif isinstance(act, spaces.Discrete):
            n, self._action_kind = 1, "discrete"
        elif isinstance(act, spaces.MultiDiscrete):
            n, self._action_kind = int(np.prod(act.shape)), "multidiscrete"
        else:
            raise DemoforgeError(f"action space {type(act).__name__} is not supported (expected Box, Discrete "
                                 "or MultiDiscrete)")
        if action_names is not None and len(action_names) != n:
            raise DemoforgeError(f"action_names: {len(action_names)} names for an action of {n} numbers")
        names_t = tuple(action_names) if action_names is not None else tuple(f"a{i}" for i in range(n))
        features["action"] = Feature("float32", (n,), "action", names_t)
        render_fps = (getattr(env, "metadata", None) or {}).get("render_fps")
        self.spec = DatasetSpec(fps=float(fps or render_fps or 30), features=features,
                                robot_type=robot_type or env_id or "gymnasium").validated("gymnasium env spec")
        self._seed: int | None = None
        self._last: dict[str, np.ndarray] = {}
        self.terminated = self.truncated = False
        self.info: dict[str, Any] = {}
        self.reward = 0.0

    @property
    def done(self) -> bool:
        """Whether the current episode terminated or was truncated (``step`` then holds the last observation)."""
        return self.terminated or self.truncated

    def _convert(self, obs: Any) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for key, name in self._map.items():
            feature = self.spec.features[name]
            value = np.asarray(_get(obs, key))
            if feature.kind != "image":
                value = value.reshape(feature.shape)
            out[name] = np.ascontiguousarray(value, dtype=feature.numpy_dtype)
        self._last = out
        return out

    def reset(self, seed: int | None = None) -> dict[str, np.ndarray]:
        self._seed = seed
        obs, info = self.env.reset(seed=seed)
        self.terminated = self.truncated = False
        self.info, self.reward = dict(info or {}), 0.0
        return self._convert(obs)

    def _env_action(self, action: np.ndarray) -> Any:
        act = np.asarray(action, np.float64).reshape(-1)
        space = self.env.action_space
        if self._action_kind == "discrete":
            return int(np.clip(np.rint(act[0]), space.start, space.start + space.n - 1))
        if self._action_kind == "multidiscrete":
            return np.clip(np.rint(act).reshape(space.shape), 0, space.nvec - 1).astype(space.dtype)
        return act.reshape(space.shape).astype(space.dtype)

    def step(self, action: np.ndarray) -> dict[str, np.ndarray]:
        if self.done:
            return self._last
        obs, reward, terminated, truncated, info = self.env.step(self._env_action(action))
        self.reward, self.terminated, self.truncated = float(reward), bool(terminated), bool(truncated)
        self.info = dict(info or {})
        return self._convert(obs)

    def factors(self) -> dict[str, Any]:
        return {"seed": self._seed}

    def success(self) -> bool:
        for key in ("is_success", "success"):
            if key in self.info:
                return bool(np.asarray(self.info[key]).any())
        return self.terminated

    def close(self) -> None:
        self.env.close()
