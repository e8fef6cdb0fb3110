"""GymnasiumEnv on real Gymnasium environments, recorded through the real Recorder into a real Store.

The operator is a seeded random device that ends each episode after a fixed number of ticks (a human
cannot exist in a test); everything else (environments, wrappers, recorder, store) is the real thing.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.wrappers import AddRenderObservation

from teleop.device import END, Command
from teleop.env import Environment
from teleop.gym_adapter import GymnasiumEnv, default_observation_map
from teleop.recorder import WALL_TIME, Recorder, RecorderConfig, recording_spec
from toolkit.errors import DemoforgeError
from toolkit.store import Store


class RandomDevice:
    """Uniform random actions in ``[low, high]``; raises END on tick ``ticks`` of every episode."""

    name = "random"

    def __init__(self, low, high, ticks: int, seed: int = 0) -> None:
        self.low, self.high = np.asarray(low, np.float32), np.asarray(high, np.float32)
        self.ticks, self.tick = ticks, 0
        self.rng = np.random.default_rng(seed)

    def connect(self) -> None:
        pass

    def read(self, observation):
        assert observation is not None
        self.tick += 1
        action = self.rng.uniform(self.low, self.high).astype(np.float32)
        events = frozenset({END}) if self.tick % self.ticks == 0 else frozenset()
        return Command(action, events)

    def close(self) -> None:
        pass


def _record(tmp_path, env: GymnasiumEnv, device, seeds, **config):
    store = Store.create(tmp_path / "gym.zarr", recording_spec(env.spec, env.spec.fps))
    rec = Recorder(env, device, store, RecorderConfig(fps=env.spec.fps, realtime=False, operator="bot", **config))
    results = [rec.record_episode(seed=s) for s in seeds]
    ids = rec.close()
    env.close()
    return Store.open(tmp_path / "gym.zarr"), ids, results


def test_box_observation_pendulum_records_and_replays(tmp_path):
    env = GymnasiumEnv(gym.make("Pendulum-v1"), action_names=["torque"])
    assert isinstance(env, Environment)
    f = env.spec.features
    assert set(f) == {"observation.state", "action"}
    assert (f["observation.state"].dtype, f["observation.state"].shape, f["observation.state"].kind) == ("float32", (3,), "state")
    assert (f["action"].shape, f["action"].kind, f["action"].names) == ((1,), "action", ("torque",))
    assert env.spec.robot_type == "Pendulum-v1" and env.spec.fps == 30 and env.task == "gymnasium Pendulum-v1"

    store, ids, results = _record(tmp_path, env, RandomDevice([-2.0], [2.0], ticks=6), seeds=[3, 4])
    assert len(ids) == 2 and all(r.kept and r.frames == 6 for r in results)
    for episode_id, seed in zip(ids, [3, 4]):
        ep = store.read(episode_id)
        assert ep.data["observation.state"].shape == (6, 3) and ep.data["observation.state"].dtype == np.float32
        assert ep.data["action"].shape == (6, 1) and ep.data[WALL_TIME].shape == (6, 1)
        assert ep.meta.factors == {"seed": seed} and ep.meta.task == "gymnasium Pendulum-v1"
        assert ep.meta.success is False  # Pendulum never terminates and reports no success
        # the stored observations are the environment's: replaying the stored actions from the same seed
        # reproduces them (frame t holds the observation the action of frame t was taken from)
        replay = gym.make("Pendulum-v1")
        obs, _ = replay.reset(seed=seed)
        for t in range(6):
            np.testing.assert_allclose(ep.data["observation.state"][t], obs, rtol=1e-6)
            obs, *_ = replay.step(ep.data["action"][t])
        replay.close()
    a, b = (store.read(i).data["observation.state"][0] for i in ids)
    assert not np.allclose(a, b)  # different seeds, different start states


def test_dict_observation_with_rendered_pixels(tmp_path):
    inner = gym.make("Pendulum-v1", render_mode="rgb_array")
    wrapped = AddRenderObservation(inner, render_only=False)  # Dict(pixels: uint8 500x500x3, state: Box(3))
    assert isinstance(wrapped.observation_space, spaces.Dict)
    env = GymnasiumEnv(wrapped)
    f = env.spec.features
    assert set(f) == {"observation.images.pixels", "observation.state", "action"}
    img = f["observation.images.pixels"]
    assert (img.dtype, img.shape, img.kind) == ("uint8", (500, 500, 3), "image")
    assert f["observation.state"].shape == (3,)

    store, ids, results = _record(tmp_path, env, RandomDevice([-2.0], [2.0], ticks=3), seeds=[0, 1])
    assert len(ids) == 2 and [r.frames for r in results] == [3, 3]
    ep = store.read(ids[1])
    pixels = ep.data["observation.images.pixels"]
    assert pixels.shape == (3, 500, 500, 3) and pixels.dtype == np.uint8
    assert pixels.min() < 100 and pixels.max() > 200  # a drawn pendulum on a white background, not a blank
    # the rendered frame tracks the state: the pendulum moved between frames
    assert np.abs(pixels[0].astype(int) - pixels[2].astype(int)).mean() > 0.01
    assert ep.data["observation.state"].shape == (3, 3) and ep.meta.factors == {"seed": 1}


def test_discrete_actions_termination_and_hold(tmp_path):
    env = GymnasiumEnv(gym.make("CartPole-v1"))
    assert env.spec.features["action"].shape == (1,) and env.spec.features["observation.state"].shape == (4,)
    # always push right: CartPole terminates well within 40 steps; the recorder keeps ticking after that
    store, ids, results = _record(tmp_path, env, RandomDevice([0.9], [1.0], ticks=40), seeds=[7])
    ep = store.read(ids[0])
    assert results[0].frames == 40 and env.terminated and env.done
    assert ep.meta.success is True  # no success in info: terminated stands in for it
    states = ep.data["observation.state"]
    assert np.all(np.diff(states[:8, 1]) > 0)  # cart velocity grows under a constant push right (action 1)
    np.testing.assert_array_equal(states[-1], states[-2])  # held after the episode ended


class NestedArm(gym.Env):
    """A small real Gymnasium env with nested Dict observations and ``info['is_success']``."""

    metadata = {"render_fps": 20}

    def __init__(self) -> None:
        self.observation_space = spaces.Dict({
            "robot": spaces.Dict({"qpos": spaces.Box(-1, 1, (2,), np.float64),
                                  "qvel": spaces.Box(-1, 1, (2,), np.float64)}),
            "goal": spaces.Box(-1, 1, (2,), np.float32),
            "phase": spaces.Discrete(3),
            "cam": spaces.Box(0, 255, (8, 6, 3), np.uint8),
        })
        self.action_space = spaces.Box(-0.1, 0.1, (2,), np.float32)

    def _obs(self):
        return {"robot": {"qpos": self.q.copy(), "qvel": np.zeros(2)}, "goal": self.goal,
                "phase": self.t % 3, "cam": np.full((8, 6, 3), self.t, np.uint8)}

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.q, self.t = np.zeros(2), 0
        self.goal = self.np_random.uniform(-0.2, 0.2, 2).astype(np.float32)
        return self._obs(), {}

    def step(self, action):
        self.q += action
        self.t += 1
        near = bool(np.linalg.norm(self.q - self.goal) < 0.05)
        return self._obs(), 0.0, False, False, {"is_success": near}


def test_nested_dict_default_and_custom_maps(tmp_path):
    mapping = default_observation_map(NestedArm().observation_space)
    assert mapping == {"robot.qpos": "observation.state", "robot.qvel": "observation.robot.qvel",
                       "goal": "observation.goal", "phase": "observation.phase", "cam": "observation.images.cam"}
    env = GymnasiumEnv(NestedArm(), task="reach")
    f = env.spec.features
    assert f["observation.phase"].kind == "scalar" and f["observation.phase"].dtype == "int64"
    assert f["observation.robot.qvel"].kind == "state" and env.spec.fps == 20

    custom = GymnasiumEnv(NestedArm(), observation_map={"robot.qpos": "observation.state",
                                                        "cam": "observation.images.wrist"}, task="reach")
    assert set(custom.spec.features) == {"observation.state", "observation.images.wrist", "action"}

    class GoalSeeker(RandomDevice):
        def read(self, observation):  # move toward the goal the env drew from the seed
            command = super().read(observation)
            return Command(np.clip(goal - observation["observation.state"], -0.1, 0.1).astype(np.float32), command.events)

    probe = NestedArm()
    probe.reset(seed=5)
    goal = probe.goal.astype(np.float32)
    store, ids, results = _record(tmp_path, custom, GoalSeeker([0, 0], [0, 0], ticks=5), seeds=[5])
    ep = store.read(ids[0])
    assert ep.meta.success is True and ep.meta.task == "reach"  # from info["is_success"]
    assert ep.data["observation.state"].dtype == np.float32  # float64 qpos stored as float32
    np.testing.assert_allclose(ep.data["observation.images.wrist"][:, 4, 3, 0], np.arange(5), atol=2)  # JPEG

    with pytest.raises(DemoforgeError, match="not in the observation space"):
        GymnasiumEnv(NestedArm(), observation_map={"robot.nope": "observation.state"})
