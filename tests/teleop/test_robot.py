"""RobotEnv and LeRobotRobot, driven through the real Recorder into a real Store.

No physical robot exists here, so the robot is a small in-test object with LeRobot's ``Robot`` duck
type (flat ``get_observation`` dict of motor positions and camera frames, ``send_action(dict)``
returning what was sent, after clipping). Everything downstream of it is real.
"""

from __future__ import annotations

import numpy as np
import pytest

from teleop.device import END, SUCCESS, Command
from teleop.env import Environment
from teleop.recorder import Recorder, RecorderConfig, recording_spec
from teleop.robot import LeRobotRobot, Robot, RobotEnv
from toolkit.errors import DemoforgeError
from toolkit.spec import DatasetSpec, Feature
from toolkit.store import Store

MOTORS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")


class FakeSO101:
    """LeRobot's Robot duck type: motors follow the commanded positions (clipped to +-max_step per call,
    as lerobot's ``max_relative_target``); two cameras whose frames encode the call count."""

    name = "so101_follower"

    def __init__(self, max_step: float = 5.0) -> None:
        self.max_step = max_step
        self.pos = {m: 0.0 for m in MOTORS}
        self.is_connected = False
        self.connects = self.disconnects = self.reads = 0
        self.sent: list[dict[str, float]] = []

    @property
    def observation_features(self):
        return {**{f"{m}.pos": float for m in MOTORS}, "front": (12, 16, 3), "wrist": (6, 8, 3)}

    @property
    def action_features(self):
        return {f"{m}.pos": float for m in MOTORS}

    def connect(self, calibrate: bool = True) -> None:
        self.is_connected, self.connects = True, self.connects + 1

    def get_observation(self):
        assert self.is_connected
        self.reads += 1
        obs = {f"{m}.pos": self.pos[m] for m in MOTORS}
        obs["front"] = np.full((12, 16, 3), self.reads * 10 % 250, np.uint8)
        obs["wrist"] = np.full((6, 8, 3), 200, np.uint8)
        return obs

    def send_action(self, action):
        assert self.is_connected and list(action) == [f"{m}.pos" for m in MOTORS]
        sent = {}
        for key, goal in action.items():
            motor = key.removesuffix(".pos")
            step = float(np.clip(goal - self.pos[motor], -self.max_step, self.max_step))
            self.pos[motor] += step
            sent[key] = self.pos[motor]
        self.sent.append(sent)
        return sent

    def disconnect(self) -> None:
        self.is_connected, self.disconnects = False, self.disconnects + 1


class Script:
    """Commands a fixed joint target; ends the episode after ``ticks`` with the given extra events."""

    name = "script"

    def __init__(self, target, ticks: int, events=frozenset()) -> None:
        self.target, self.ticks, self.events, self.tick = np.asarray(target, np.float32), ticks, events, 0

    def connect(self) -> None:
        pass

    def read(self, observation):
        self.tick += 1
        done = self.tick % self.ticks == 0
        return Command(self.target, frozenset({END, *self.events}) if done else frozenset())

    def close(self) -> None:
        pass


def _record(tmp_path, env, device, n=2, **config):
    store = Store.create(tmp_path / "robot.zarr", recording_spec(env.spec, env.spec.fps))
    rec = Recorder(env, device, store, RecorderConfig(fps=env.spec.fps, realtime=False, **config))
    results = [rec.record_episode(seed=i) for i in range(n)]
    ids = rec.close()
    env.close()
    return Store.open(tmp_path / "robot.zarr"), ids, results


def test_lerobot_robot_spec_and_mapping():
    fake = FakeSO101()
    robot = LeRobotRobot(fake, fps=30)
    assert isinstance(robot, Robot)
    f = robot.spec.features
    assert set(f) == {"observation.state", "observation.images.front", "observation.images.wrist", "action"}
    assert f["observation.state"].names == tuple(f"{m}.pos" for m in MOTORS) and f["observation.state"].shape == (6,)
    assert f["observation.images.front"].shape == (12, 16, 3) and f["observation.images.front"].kind == "image"
    assert f["action"].names == tuple(f"{m}.pos" for m in MOTORS) and robot.spec.robot_type == "so101_follower"
    robot.connect()
    sent = robot.send_action(np.array([1, -20, 3, 0, 0, 50], np.float32))
    np.testing.assert_allclose(sent, [1, -5, 3, 0, 0, 5])  # clipped by the robot, reported back in order
    obs = robot.observation()
    np.testing.assert_allclose(obs["observation.state"], [1, -5, 3, 0, 0, 5])
    with pytest.raises(DemoforgeError, match="expected 6"):
        robot.send_action(np.zeros(3))
    robot.disconnect()
    assert not fake.is_connected


def test_lerobot_robot_records_through_robot_env(tmp_path):
    fake = FakeSO101(max_step=5.0)
    homed = []
    env = RobotEnv(LeRobotRobot(fake, fps=25), task="pick the cube", factors={"object": "red cube"},
                   reposition=lambda robot, seed: homed.append(seed))
    assert isinstance(env, Environment)
    target = [10, 0, -10, 0, 0, 20]
    store, ids, results = _record(tmp_path, env, Script(target, ticks=4), operator="ana")
    assert len(ids) == 2 and [r.frames for r in results] == [4, 4]
    assert homed == [0, 1] and fake.connects == 1 and fake.disconnects == 1
    ep = store.read(ids[0])
    state = ep.data["observation.state"]
    # frame t is the reading before action t: the arm approaches the target 5 units per tick
    np.testing.assert_allclose(state[:, 0], [0, 5, 10, 10])
    np.testing.assert_allclose(state[:, 5], [0, 5, 10, 15])
    np.testing.assert_allclose(ep.data["action"], np.tile(target, (4, 1)))  # the operator's command
    assert ep.data["observation.images.front"].shape == (4, 12, 16, 3)
    assert ep.data["observation.images.wrist"].shape == (4, 6, 8, 3)
    fronts = ep.data["observation.images.front"][:, 6, 8, 0].astype(int)
    assert np.all(np.diff(fronts) > 5)  # a fresh camera frame every tick
    assert ep.meta.factors == {"object": "red cube"} and ep.meta.task == "pick the cube"
    assert ep.meta.operator == "ana" and ep.meta.success is False  # no sensor, no marking
    assert store.spec.robot_type == "so101_follower" and store.spec.fps == 25
    # the second episode starts where the arm was left (no teleport on a real robot)
    np.testing.assert_allclose(store.read(ids[1]).data["observation.state"][0, 0], 10)


class ArmWithSensor:
    """A native demoforge Robot with a gripper-contact success sensor that is undecided until it trips."""

    def __init__(self) -> None:
        self.spec = DatasetSpec(fps=10, robot_type="native_arm", features={
            "observation.state": Feature("float32", (2,), "state", ("x", "grip")),
            "action": Feature("float32", (2,), "action", ("dx", "grip")),
        })
        self.q = np.zeros(2, np.float32)
        self.connected = False

    def connect(self) -> None:
        self.connected = True

    def observation(self):
        return {"observation.state": self.q.copy()}

    def send_action(self, action):
        self.q = np.array([self.q[0] + np.clip(action[0], -1, 1), action[1]], np.float32)
        return np.array([np.clip(action[0], -1, 1), action[1]], np.float32)

    def success(self):
        return True if self.q[1] > 0.5 else None

    def disconnect(self) -> None:
        self.connected = False


def test_native_robot_success_sensor_and_operator_marking(tmp_path):
    arm = ArmWithSensor()
    env = RobotEnv(arm, task="grasp")
    env.reset()
    env.step(np.array([3.0, 0.0], np.float32))
    np.testing.assert_allclose(env.last_sent, [1.0, 0.0])
    assert env.success() is False  # sensor undecided, nothing marked
    env.mark_success(True)
    assert env.success() is True
    env.reset()
    assert env.success() is False  # marking cleared per episode
    env.close()
    assert not arm.connected

    arm = ArmWithSensor()
    store, ids, _ = _record(tmp_path, RobotEnv(arm, task="grasp"), Script([0.5, 1.0], ticks=3), n=1)
    ep = store.read(ids[0])
    assert ep.meta.success is True  # from the robot's sensor (gripper closed)
    np.testing.assert_allclose(ep.data["observation.state"][:, 0], [0, 0.5, 1.0])


def test_operator_event_wins_and_missing_action_refused(tmp_path):
    env = RobotEnv(LeRobotRobot(FakeSO101()), task="t")
    store, ids, _ = _record(tmp_path, env, Script(np.zeros(6), ticks=2, events={SUCCESS}), n=1)
    assert store.read(ids[0]).meta.success is True
    bad = ArmWithSensor()
    bad.spec = bad.spec.subset(["observation.state"])
    with pytest.raises(DemoforgeError, match="no 'action' feature"):
        RobotEnv(bad, task="t")
