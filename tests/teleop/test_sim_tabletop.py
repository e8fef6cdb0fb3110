"""The embedded MuJoCo tabletop and its scripted operator, checked against simulator ground truth."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco's first import picks a GL backend
pytest.importorskip("mujoco")

from teleop.device import END, START, SUCCESS, make_device  # noqa: E402
from teleop.env import Environment  # noqa: E402
from teleop.sim import scene  # noqa: E402
from teleop.sim.scripted import OperatorStyle, ScriptedOperator  # noqa: E402
from teleop.sim.tabletop import TabletopConfig, TabletopEnv, depth_to_points  # noqa: E402


@pytest.fixture(scope="module")
def env():
    e = TabletopEnv(TabletopConfig(height=120, width=160, cameras=("front", "wrist"), pointcloud_cameras=("front",)))
    yield e
    e.close()


def _run(env, seed, actions):
    obs = [env.reset(seed)]
    obs += [env.step(a) for a in actions]
    return obs


def test_protocol_and_spec(env):
    assert isinstance(env, Environment)
    obs = env.reset(1)
    assert set(obs) == set(env.spec.features) - {"action"}
    for name, value in obs.items():
        f = env.spec.features[name]
        assert value.dtype == f.numpy_dtype and value.shape == f.shape, name
    env.spec.validated()
    cal = env.spec.cameras["observation.images.front"]
    assert np.array(cal["intrinsics"]).shape == (3, 3) and np.array(cal["extrinsics"]).shape == (4, 4)
    assert "object" in env.spec.features["observation.mask.front"].description


def test_same_seed_same_bytes_and_factors_vary(env):
    actions = np.random.default_rng(0).uniform(-0.03, 0.03, (5, 7)).astype(np.float32)
    a, b = _run(env, 7, actions), _run(env, 7, actions)
    for oa, ob in zip(a, b):
        for k in oa:
            np.testing.assert_array_equal(oa[k], ob[k], err_msg=k)
    f7 = env.reset(7) and env.factors()
    factors = [env.reset(s) and env.factors() for s in range(8)]
    assert env.reset(7) and env.factors() == f7
    for key in ("object_x", "object_colour", "table_height", "light_intensity", "camera_dx"):
        assert len({f[key] for f in factors}) > 1, key
    assert all(isinstance(v, (int, float, str, bool)) for v in f7.values())


@pytest.mark.parametrize("cam", ["front", "wrist"])
def test_depth_points_match_ground_truth(env, cam):
    for seed in (2, 5):
        obs = env.reset(seed)
        # bring the wrist camera over the object so it sees it well
        if cam == "wrist":
            for _ in range(15):
                p = env.privileged()
                target = p["object_pos"] + [0.08, 0.0, 0.12]
                obs = env.step(np.r_[np.clip(target - p["tcp"], -0.05, 0.05), 0, 0, 0, 0].astype(np.float32))
        K, T = env.camera_intrinsics(cam), env.camera_extrinsics(cam)
        pts = depth_to_points(obs[f"observation.depth.{cam}"], K, T)
        mask = obs[f"observation.mask.{cam}"] == scene.MASK_IDS["object"]
        assert mask.sum() > 30, (cam, seed, mask.sum())
        obj = env.privileged()["object_pos"]
        half = env.privileged()["object_half_height"]
        centroid = pts[mask].mean(axis=0)
        # visible surface points sit on the camera's side of the centre: xy within 1.5 cm, z within the object
        assert np.linalg.norm(centroid[:2] - obj[:2]) < 0.015, (cam, seed, centroid, obj)
        assert obj[2] - half - 0.003 < centroid[2] < obj[2] + half + 0.003
        # and every object point lies on the object (within 4 mm of its bounding cylinder/box)
        rel = pts[mask] - obj
        inside = (np.linalg.norm(rel[:, :2], axis=1) < np.sqrt(2) * 0.02 + 0.004) & (np.abs(rel[:, 2]) < half + 0.004)
        assert inside.mean() > 0.95
        # the table top is where the simulator put it
        table = obs[f"observation.mask.{cam}"] == scene.MASK_IDS["table"]
        assert abs(np.median(pts[table][:, 2]) - env.privileged()["table_height"]) < 0.003


def test_pointcloud_feature_is_sampled_from_depth(env):
    obs = env.reset(3)
    pc = obs["observation.pointcloud.front"]
    assert pc.shape == (2048, 6) and np.isfinite(pc).all() and (pc[:, 3:] >= 0).all() and (pc[:, 3:] <= 1).all()
    full = depth_to_points(obs["observation.depth.front"], env.camera_intrinsics("front"),
                           env.camera_extrinsics("front")).reshape(-1, 3)
    # each sampled point is one of the full-resolution back-projected points
    d = np.min(np.linalg.norm(full[None, ::7, :] - pc[:50, None, :3], axis=2), axis=1)
    assert np.median(d) < 0.05
    np.testing.assert_array_equal(pc, env.reset(3)["observation.pointcloud.front"])


def _episode(env, op, seed):
    obs = env.reset(seed)
    events = []
    for _ in range(400):
        c = op.read(obs)
        events.append(c.events)
        if END in c.events:
            return SUCCESS in c.events, env.success(), events
        obs = env.step(c.action)
    raise AssertionError("operator never ended the episode")


@pytest.mark.parametrize("task", ["pick_place", "push"])
@pytest.mark.parametrize("style", [OperatorStyle(approach="top", noise=0.002, seed=1),
                                   OperatorStyle(approach="side", speed=1.5, pause_prob=0.05, seed=2)])
def test_scripted_operator_solves_task(task, style):
    env = TabletopEnv(TabletopConfig(task=task, height=48, width=64, cameras=("front",), pointcloud_cameras=(),
                                     depth=False, masks=False))
    op = make_device("scripted", env=env, style=style)
    assert isinstance(op, ScriptedOperator)
    wins = 0
    for seed in range(5):
        ok, sim_ok, events = _episode(env, op, seed)
        assert START in events[0]
        assert ok == sim_ok or not ok
        wins += ok
    env.close()
    assert wins >= 4, (task, style, wins)
