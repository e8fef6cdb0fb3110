"""DemoGen-style point-cloud edits (``curation.pointcloud``): real DemoGen source demos (the flower fixture,
its first-frame masks lifted with the shipped calibration) and real sim episodes checked against physics."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

from pathlib import Path

import imagecodecs
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from curation.augment import augment_store
from curation.pointcloud import PointCloudEdit, PointCloudParams, box_of, chamfer, columns, lift_mask, prepare
from teleop.sim.tabletop import TabletopConfig, TabletopEnv
from toolkit.convert import import_dataset
from toolkit.episode import Episode
from toolkit.store import Store

FLOWER = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "demogen" / "flower"
CLOUD = "observation.point_cloud"
SIM_CLOUD = "observation.pointcloud.front"
SIM = {"cameras": ("front",), "pointcloud_cameras": ("front",), "height": 120, "width": 160,
       "max_distractors": 0, "camera_jitter": 0.0}
CHAMFER_TOLERANCE = 0.005  # metres, mean over the frames of a replay (object + gripper points)


def flower_camera() -> tuple[np.ndarray, np.ndarray]:
    """K and the robot-to-optical-frame matrix F^-1 V^-1 M^-1 of the fixture README."""
    K = np.array([[1354.796875, 0, 986.0130004882812], [0, 1354.6197509765625, 548.7333374023438], [0, 0, 1]])
    M = np.eye(4)
    M[:3, 3] = np.array([1.2274124573982026, -0.009193338733170697, 0.3683118830445561]) + [0.0, -0.01, 0.008]
    r = Rotation.from_quat([0.015873920322366883, -0.18843429010734952, -0.009452363954531973, 0.9819120071477938])
    for axis, deg in (("x", -1.1), ("y", 1.1), ("z", -1.6)):
        r = r * Rotation.from_euler(axis, deg, degrees=True)
    M[:3, :3] = r.as_matrix()
    V = np.array([[0, 0, 1, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]], float)
    return K, np.linalg.inv(np.diag([1.0, -1, -1, 1])) @ np.linalg.inv(V) @ np.linalg.inv(M)


def _off(moved: np.ndarray, delta: np.ndarray) -> bool:
    """Every row of ``moved`` (points or positions minus the source's) equals ``delta``."""
    return len(moved) > 0 and float(np.abs(moved - delta).max()) < 1e-5


@pytest.fixture(scope="module")
def flower(tmp_path_factory) -> Store:
    store, _ = import_dataset(FLOWER / "flower.zarr", tmp_path_factory.mktemp("flower") / "store",
                              task="put the flowers into the vase")
    return store


@pytest.fixture(scope="module")
def flower_boxes(flower) -> tuple:
    """DemoGen step 1 on real data: source 0's SAM masks lifted into its first cloud."""
    K, world_to_cam = flower_camera()
    first = flower.read(flower.ids()[0]).data[CLOUD][0, :, :3]
    boxes = []
    for name in ("flowers_tied_with_twine", "white_vase"):
        mask = imagecodecs.imread(FLOWER / "sam_mask" / "0" / f"{name}.jpg")
        mask = (mask[..., 0] if mask.ndim == 3 else mask) > 128
        inside = lift_mask(first, mask, K, world_to_cam)
        assert inside.sum() > 200  # a few hundred of the 1024 points
        boxes.append(box_of(first[inside]))
    return tuple(boxes)


def test_flower_mask_boxes_are_the_flowers_and_the_vase(flower_boxes):
    flowers, vase = flower_boxes
    assert flowers[2] == vase[2] == 0.0  # DemoGen: bottom at z = 0
    assert flowers[1] > vase[4]  # the flowers lie left (+y) of the vase
    assert 0.10 < flowers[5] < 0.30 and 0.15 < vase[5] < 0.30


def test_flower_grid_gives_48_episodes_with_points_at_translated_positions(flower, flower_boxes, tmp_path):
    params = PointCloudParams(boxes=flower_boxes, frames=(6, 68, 83))
    summary = augment_store(flower, tmp_path / "gen", PointCloudEdit(params), seed=0)
    assert summary.generated == 48 and not summary.rejected
    out = Store.open(tmp_path / "gen")
    lengths = {}
    for eid in out.ids():
        meta = out.meta(eid)
        lengths.setdefault(meta.provenance["source_id"], set()).add(out.read(eid).length)
    assert [sorted(v) for _, v in sorted(lengths.items())] == [[106], [103], [102]]
    edit = PointCloudEdit(params)
    source = flower.read(flower.ids()[0])
    src = prepare(source, flower.spec, params, CLOUD, columns(flower.spec))
    pts = source.data[CLOUD][..., :3]
    for sample in edit.generate(source, flower.spec, 0):
        g, p = sample.episode.data, sample.params
        d_obj = np.array([p["object_dx"], p["object_dy"], 0.0])
        d_tgt = np.array([p["target_dx"], p["target_dy"], 0.0])
        moved = g[CLOUD][..., :3] - pts
        assert g[CLOUD].shape == (106, 1024, 6)
        assert _off(moved[0][src.labels[0] == 2], d_obj)  # object, frame 0
        assert _off(moved[0][src.labels[0] == 3], d_tgt)  # target, every frame
        vase = src.labels[40] == 3
        assert _off(moved[40][~vase], d_obj) and _off(moved[40][vase], d_tgt)  # skill-1: flowers + ee with the object
        assert _off(moved[95], d_tgt)  # skill-2: everything with the vase
        ee = g["observation.state"][:, :3] - source.data["observation.state"][:, :3]
        assert _off(ee[6:68], d_obj)
        assert _off(ee[83:], d_tgt)
        np.testing.assert_allclose(g["action"][6:68], source.data["action"][6:68])  # skill deltas copied
        np.testing.assert_allclose(g["action"][:, 3:], source.data["action"][:, 3:])  # rotation, gripper
        # motion deltas sum to the source's plus the needed correction
        np.testing.assert_allclose(g["action"][:6, :3].sum(0), source.data["action"][:6, :3].sum(0) + d_obj, atol=1e-5)


def test_zero_translation_reproduces_the_source(flower, flower_boxes):
    params = PointCloudParams(boxes=flower_boxes, frames=(6, 68, 83), object_grid=1, target_grid=1)
    source = flower.read(flower.ids()[1])
    (sample,) = PointCloudEdit(params).generate(source, flower.spec, 0)
    for name, array in source.data.items():
        np.testing.assert_array_equal(sample.episode.data[name], array)


def test_rejections_say_why(flower, flower_boxes):
    source = flower.read(flower.ids()[0])
    narrow = PointCloudParams(boxes=flower_boxes, frames=(6, 68, 83), object_range=(0.3, 0.3),
                              workspace=(0.2, -0.3, 0.0, 0.8, 0.3, 0.45))
    reasons = [s.rejected for s in PointCloudEdit(narrow).generate(source, flower.spec, 0)]
    said = {r.split(" (")[0] for r in reasons if r}
    assert sum(map(bool, reasons)) >= 8 and said <= {"object leaves the workspace", "end effector leaves the workspace"}
    low = PointCloudParams(boxes=flower_boxes, frames=(6, 68, 83), object_grid=1, target_grid=1, table_z=0.2)
    (sample,) = PointCloudEdit(low).generate(source, flower.spec, 0)
    assert sample.rejected.startswith("end effector goes into the table")
    still = Episode(data={**source.data, "action": source.data["action"] * np.r_[np.ones(6), 0.0]}, meta=source.meta)
    auto = PointCloudParams(boxes=flower_boxes, object_grid=1, target_grid=1)  # automatic segments need a grasp
    (sample,) = PointCloudEdit(auto).generate(still, flower.spec, 0)
    assert sample.rejected == "cannot segment the source: no grasp (the gripper never closes)"


def test_viewpoint_edit_moves_the_cloud_rigidly_and_is_seeded(flower, flower_boxes):
    params = PointCloudParams(boxes=flower_boxes, frames=(6, 68, 83), object_grid=1, target_grid=1,
                              viewpoint_translation=0.02, viewpoint_rotation=5.0)
    source = flower.read(flower.ids()[0])
    (a,) = PointCloudEdit(params).generate(source, flower.spec, 7)
    (b,) = PointCloudEdit(params).generate(source, flower.spec, 7)
    np.testing.assert_array_equal(a.episode.data[CLOUD], b.episode.data[CLOUD])
    x, y = source.data[CLOUD][5, :, :3], a.episode.data[CLOUD][5, :, :3]
    assert np.abs(y - x).max() > 0.005
    # rigid: pairwise distances kept
    i, j = np.arange(0, 1020, 7), np.arange(3, 1023, 7)
    np.testing.assert_allclose(np.linalg.norm(y[i] - y[j], axis=1), np.linalg.norm(x[i] - x[j], axis=1), atol=1e-5)
    np.testing.assert_array_equal(a.episode.data["observation.state"], source.data["observation.state"])
    assert abs(a.params["view_yaw_deg"]) <= 5.0


def _crop(points: np.ndarray, table_z: float) -> np.ndarray:
    """Object and gripper points: above the table plane."""
    return points[points[:, 2] > table_z + 0.004]


def test_sim_generated_demos_succeed_open_loop_and_match_rendered_clouds(sim_store, block, tmp_path):
    store = sim_store(tmp_path / "sim", [block(count=5, config=SIM)])
    assert all(store.meta(i).success for i in store.ids())
    params = PointCloudParams(segmentation="mask", background="table", box_floor=None, object_range=(0.04, 0.04),
                              target_range=(0.04, 0.04), workspace=(-0.4, -0.5, 0.5, 0.4, 0.5, 1.5))
    edit = PointCloudEdit(params)
    blind = TabletopEnv(TabletopConfig(**{**SIM, "cameras": (), "pointcloud_cameras": ()}))
    seeing = TabletopEnv(TabletopConfig(**SIM))
    successes, tries, distances, baselines = 0, 0, [], []
    try:
        for eid in store.ids():
            source = store.read(eid)
            seed = source.meta.factors["seed"]
            src = prepare(source, store.spec, params, SIM_CLOUD, columns(store.spec))
            samples = list(edit.generate(source, store.spec, 0))
            assert len(samples) == 16 and not any(s.rejected for s in samples)
            for k, sample in enumerate(samples):
                f = sample.episode.meta.factors
                poses = {key: f[key] for key in ("object_x", "object_y", "object_yaw", "goal_x", "goal_y")}
                blind.reset(seed, poses)
                for action in sample.episode.data["action"]:
                    blind.step(action)
                tries, successes = tries + 1, successes + blind.success()
                if k == 15:  # the farthest corner: replay with rendering, compare every frame's cloud
                    obs = seeing.reset(seed, poses)
                    for t, action in enumerate(sample.episode.data["action"]):
                        rendered = _crop(obs[SIM_CLOUD][:, :3], src.table_z)
                        distances.append(chamfer(_crop(sample.episode.data[SIM_CLOUD][t, :, :3], src.table_z), rendered))
                        baselines.append(chamfer(_crop(source.data[SIM_CLOUD][t, :, :3], src.table_z), rendered))
                        obs = seeing.step(action)
    finally:
        blind.close()
        seeing.close()
    print(f"open-loop success {successes}/{tries}; Chamfer synthesised vs rendered mean {np.mean(distances):.4f} m "
          f"(median {np.median(distances):.4f}), source vs rendered {np.mean(baselines):.4f} m")
    assert successes >= 0.8 * tries
    assert np.mean(distances) < CHAMFER_TOLERANCE
    assert np.mean(distances) < 0.5 * np.mean(baselines)
