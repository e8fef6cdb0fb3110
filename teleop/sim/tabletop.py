"""The embedded MuJoCo tabletop: a mocap parallel gripper, one object, a goal, cameras; headless.

Contract (``Environment``): ``reset(seed)`` draws every factor of variation from ``seed`` (same seed,
same bytes), ``step(action)`` applies ``float32[7] = [dx, dy, dz, droll, dpitch, dyaw, gripper]`` for one
control period (1 / ``control_hz`` s, ``substeps`` physics steps). Translations move the tool centre
point in the world frame (clipped to ``max_translation`` m per step); rotations are world-frame
roll/pitch/yaw increments applied as ``Rz(dyaw) Ry(dpitch) Rx(droll) @ R`` about the tool centre point
(clipped to ``max_rotation`` rad per step). ``gripper`` is the finger target, 0 open .. 1 closed.

Observations: ``observation.state`` float32[7] (tcp x, y, z, roll, pitch, yaw, gripper opening 0..1,
angles extrinsic xyz / ``R = Rz(yaw) Ry(pitch) Rx(roll)``), per camera ``observation.images.<cam>`` uint8
(H, W, 3), ``observation.depth.<cam>`` float32 metres along the optical axis (H, W),
``observation.mask.<cam>`` uint8 (H, W) with the ids of ``scene.MASK_IDS``, and for the cameras in
``pointcloud_cameras`` ``observation.pointcloud.<cam>`` float32 (N, 6) world-frame xyz + rgb in 0..1.

Camera calibration (``spec.cameras``, keyed by camera feature name) uses the OpenCV convention: K maps
camera-frame points (x right, y down, z forward) to pixel coordinates whose integer values are pixel
centres; extrinsics are camera-to-world 4x4. The wrist camera moves: its entry holds the pose at reset,
``camera_extrinsics("wrist")`` gives the current one.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import json  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

import mujoco  # noqa: E402
import numpy as np  # noqa: E402

from teleop.sim import scene  # noqa: E402
from toolkit.spec import DatasetSpec, Feature  # noqa: E402

STATE_NAMES = ("ee.x", "ee.y", "ee.z", "ee.roll", "ee.pitch", "ee.yaw", "gripper")
ACTION_NAMES = ("delta.x", "delta.y", "delta.z", "delta.roll", "delta.pitch", "delta.yaw", "gripper")
COLOURS = {
    "red": (0.85, 0.1, 0.1), "blue": (0.1, 0.25, 0.9), "yellow": (0.95, 0.85, 0.1),
    "orange": (1.0, 0.5, 0.05), "purple": (0.55, 0.15, 0.75), "white": (0.95, 0.95, 0.95),
}
BACKDROPS = {"green": (0.0, 1.0, 0.0), "blue": (0.0, 0.0, 1.0), "grey": (0.5, 0.5, 0.5),
             "white": (1.0, 1.0, 1.0)}
OBJECT_NAMES = {"box": "cube", "cylinder": "cylinder"}
_GEOM = int(mujoco.mjtObj.mjOBJ_GEOM)


@dataclass
class TabletopConfig:
    """Everything fixed for an environment instance; the per-episode factors come from the seed.

    The tuples are the choices a seed draws from: narrow one to plant a property (one backdrop colour per
    task, say), widen it for diversity.
    """

    height: int = 240
    width: int = 320
    cameras: tuple[str, ...] = ("front", "wrist")
    pointcloud_cameras: tuple[str, ...] = ("front",)
    pointcloud_points: int = 2048
    depth: bool = True
    masks: bool = True
    task: str = "pick_place"  # or "push"
    seed: int = 0
    control_hz: float = 10.0
    substeps: int = 20  # physics steps of 5 ms per control step (20 -> 10 Hz)
    max_translation: float = 0.05
    max_rotation: float = 0.3
    object_types: tuple[str, ...] = ("box", "cylinder")
    object_colours: tuple[str, ...] = ("red", "blue", "yellow", "orange", "purple")
    backdrop_colours: tuple[str, ...] = ("green",)
    # uint8 (h, w, 3) image on the backdrop's faces instead of a flat colour (the green-screen ground
    # truth renders the scene behind a known texture); rows top to bottom as seen from the front camera.
    backdrop_texture: np.ndarray | None = field(default=None, repr=False)
    table_height: tuple[float, float] = (0.70, 0.80)
    max_distractors: int = 2
    light_intensity: tuple[float, float] = (0.45, 0.9)
    camera_jitter: float = 0.03  # metres, uniform per axis, front camera position
    object_yaw: bool = True  # random object yaw (boxes)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task not in ("pick_place", "push"):
            raise ValueError(f"TabletopConfig.task: expected 'pick_place' or 'push', got {self.task!r}")
        for cam in (*self.cameras, *self.pointcloud_cameras):
            if cam not in ("front", "wrist"):
                raise ValueError(f"TabletopConfig.cameras: expected 'front' or 'wrist', got {cam!r}")
        if self.max_distractors > scene.MAX_DISTRACTORS:
            raise ValueError(f"TabletopConfig.max_distractors: expected <= {scene.MAX_DISTRACTORS}")


def _euler_to_mat(roll: float, pitch: float, yaw: float) -> np.ndarray:
    cr, sr, cp, sp, cy, sy = np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
    return np.array([[cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
                     [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
                     [-sp, cp * sr, cp * cr]])


def _mat_to_euler(R: np.ndarray) -> tuple[float, float, float]:
    pitch = np.arcsin(np.clip(-R[2, 0], -1.0, 1.0))
    roll = np.arctan2(R[2, 1], R[2, 2])
    yaw = np.arctan2(R[1, 0], R[0, 0])
    return float(roll), float(pitch), float(yaw)


def _mat_to_quat(R: np.ndarray) -> np.ndarray:
    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, np.ascontiguousarray(R, dtype=np.float64).ravel())
    return q  # w, x, y, z (MuJoCo order)


def _lookat(pos: np.ndarray, target: np.ndarray) -> np.ndarray:
    """MuJoCo camera rotation (columns x right, y up, z backwards) looking from pos at target."""
    f = target - pos
    f /= np.linalg.norm(f)
    x = np.cross(f, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    z = -f
    y = np.cross(z, x)
    return np.stack([x, y, z], axis=1)


def intrinsics(fovy_deg: float, height: int, width: int) -> np.ndarray:
    """OpenCV K (pixel centres at integers) of a MuJoCo camera with vertical field of view ``fovy_deg``."""
    f = 0.5 * height / np.tan(np.deg2rad(fovy_deg) / 2)
    return np.array([[f, 0.0, (width - 1) / 2], [0.0, f, (height - 1) / 2], [0.0, 0.0, 1.0]])


def depth_to_points(depth: np.ndarray, K: np.ndarray, extrinsics: np.ndarray) -> np.ndarray:
    """World-frame points (H, W, 3) float32 of a depth image (metres along the optical axis)."""
    h, w = depth.shape
    u = np.arange(w, dtype=np.float32)
    v = np.arange(h, dtype=np.float32)
    x = (u[None, :] - K[0, 2]) / K[0, 0] * depth
    y = (v[:, None] - K[1, 2]) / K[1, 1] * depth
    cam = np.stack([x, y, depth], axis=-1)
    R, t = extrinsics[:3, :3].astype(np.float32), extrinsics[:3, 3].astype(np.float32)
    return cam @ R.T + t


class TabletopEnv:
    """The embedded tabletop (implements ``teleop.env.Environment``)."""

    robot_type = "demoforge_mocap_gripper"

    def __init__(self, config: TabletopConfig | None = None) -> None:
        self.config = cfg = config or TabletopConfig()
        tex = cfg.backdrop_texture
        self.model = mujoco.MjModel.from_xml_string(
            scene.build_mjcf(cfg.width, cfg.height, backdrop_texture=None if tex is None else tex.shape[:2]))
        if tex is not None:  # before the renderer: it uploads textures when its context is made
            self.model.tex_data[:tex.size] = np.ascontiguousarray(tex, np.uint8)[::-1].ravel()
        self.data = mujoco.MjData(self.model)
        m = self.model
        self._gid = {name: mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, name)
                     for name in ("floor", "backdrop", "table", "goal", "object_box", "object_cyl",
                                  *(f"distractor{i}" for i in range(scene.MAX_DISTRACTORS)))}
        self._bid = {name: mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, name)
                     for name in ("object", "gripper", "mocap", "table", *(f"distractor{i}" for i in range(scene.MAX_DISTRACTORS)))}
        self._cam = {name: mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_CAMERA, name) for name in ("front", "wrist")}
        self._tcp = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, "tcp")
        self._mocap = m.body_mocapid[self._bid["mocap"]]
        self._table_mocap = m.body_mocapid[self._bid["table"]]
        self._obj_qadr = m.jnt_qposadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, "object_joint")]
        self._obj_dadr = m.jnt_dofadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, "object_joint")]
        self._grip_qadr = m.jnt_qposadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, "gripper_joint")]
        self._finger_qadr = [m.jnt_qposadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, n)]
                             for n in ("finger_left", "finger_right")]
        self._dist_qadr = [m.jnt_qposadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, f"distractor{i}_joint")]
                           for i in range(scene.MAX_DISTRACTORS)]
        self._front_fovy = float(m.cam_fovy[self._cam["front"]])
        # Segmentation: geom id -> MASK_IDS value (index 0 holds MuJoCo's -1, "no geom").
        lut = np.zeros(m.ngeom + 1, np.uint8)
        for g in range(m.ngeom):
            body = m.geom_bodyid[g]
            name = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_GEOM, g) or ""
            root = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, m.body_rootid[body]) or ""
            if name in ("table", "backdrop", "goal", "floor"):  # before the root test: table is a body
                lut[g + 1] = scene.MASK_IDS[name]
            elif root == "gripper":
                lut[g + 1] = scene.MASK_IDS["gripper"]
            elif root == "object":
                lut[g + 1] = scene.MASK_IDS["object"]
            elif root.startswith("distractor"):
                lut[g + 1] = scene.MASK_IDS["distractor"]
        self._lut = lut
        self._renderer = mujoco.Renderer(m, cfg.height, cfg.width)  # created once: context creation is slow
        self._opt = mujoco.MjvOption()
        self._opt.geomgroup[scene.HIDDEN_GROUP] = 0
        self._rgb = np.empty((cfg.height, cfg.width, 3), np.uint8)
        self._depth = np.empty((cfg.height, cfg.width), np.float32)
        self._seg = np.empty((cfg.height, cfg.width, 2), np.int32)
        self._dt = 1.0 / cfg.control_hz
        m.opt.timestep = self._dt / cfg.substeps
        self._factors: dict[str, Any] = {}
        self._episode = 0
        self._seed = cfg.seed
        self._steps = 0
        self._gripper_target = 0.0
        self.task = ""
        self.spec = self._make_spec()
        self.reset(cfg.seed)

    # ----------------------------------------------------------------------------------------- spec
    def _make_spec(self) -> DatasetSpec:
        cfg = self.config
        hw = (cfg.height, cfg.width)
        ids = json.dumps(scene.MASK_IDS)
        features = {
            "observation.state": Feature("float32", (7,), "state", STATE_NAMES,
                                         "tcp position (m, world), roll/pitch/yaw (rad, R = Rz Ry Rx), gripper opening 0..1"),
            "action": Feature("float32", (7,), "action", ACTION_NAMES,
                              "world-frame tcp deltas per control step (m, rad) and gripper target 0 open..1 closed"),
        }
        for cam in cfg.cameras:
            features[f"observation.images.{cam}"] = Feature("uint8", (*hw, 3), "image", ("height", "width", "channels"))
            if cfg.depth:
                features[f"observation.depth.{cam}"] = Feature("float32", hw, "depth", ("height", "width"),
                                                               "metres along the optical axis")
            if cfg.masks:
                features[f"observation.mask.{cam}"] = Feature("uint8", hw, "mask", ("height", "width"),
                                                              f"segmentation ids {ids}")
        for cam in cfg.pointcloud_cameras:
            features[f"observation.pointcloud.{cam}"] = Feature(
                "float32", (cfg.pointcloud_points, 6), "pointcloud", ("x", "y", "z", "r", "g", "b"),
                f"world-frame xyz (m) + rgb 0..1 from the {cam} depth, {cfg.pointcloud_points} points sampled per step")
        cameras: dict[str, dict[str, Any]] = {}
        for cam in cfg.cameras:
            calib = {"intrinsics": self.camera_intrinsics(cam).tolist(),
                     "extrinsics": self.camera_extrinsics(cam).tolist()}
            for kind in ("images", "depth", "mask"):
                if f"observation.{kind}.{cam}" in features:
                    cameras[f"observation.{kind}.{cam}"] = calib
        return DatasetSpec(fps=cfg.control_hz, features=features, robot_type=self.robot_type, cameras=cameras)

    def camera_intrinsics(self, cam: str) -> np.ndarray:
        return intrinsics(float(self.model.cam_fovy[self._cam[cam]]), self.config.height, self.config.width)

    def camera_extrinsics(self, cam: str) -> np.ndarray:
        """Current camera-to-world 4x4 in the OpenCV camera convention (x right, y down, z forward)."""
        c = self._cam[cam]
        T = np.eye(4)
        T[:3, :3] = self.data.cam_xmat[c].reshape(3, 3) @ np.diag([1.0, -1.0, -1.0])
        T[:3, 3] = self.data.cam_xpos[c]
        return T

    # ---------------------------------------------------------------------------------------- reset
    def _set_live(self, geom: str, live: bool, rgba: tuple[float, ...] | None = None) -> None:
        g = self._gid[geom]
        m = self.model
        m.geom_group[g] = 0 if live else scene.HIDDEN_GROUP
        m.geom_contype[g] = m.geom_conaffinity[g] = 1 if live else 0
        if rgba is not None:
            m.geom_rgba[g] = (*rgba, 1.0)

    def reset(self, seed: int | None = None, overrides: dict[str, float] | None = None) -> dict[str, np.ndarray]:
        """Draw every factor from ``seed``; ``overrides`` then places the object and goal at given poses
        (keys ``object_x``, ``object_y``, ``object_yaw``, ``goal_x``, ``goal_y``; other draws unchanged),
        e.g. to replay a generated demonstration open-loop at its new poses."""
        cfg, m, d = self.config, self.model, self.data
        if seed is None:
            seed = cfg.seed + self._episode
        self._seed, self._episode, self._steps = int(seed), self._episode + 1, 0
        rng = np.random.default_rng(self._seed)
        mujoco.mj_resetData(m, d)

        table_h = float(rng.uniform(*cfg.table_height))
        obj_type = str(cfg.object_types[rng.integers(len(cfg.object_types))])
        colour = str(cfg.object_colours[rng.integers(len(cfg.object_colours))])
        backdrop = str(cfg.backdrop_colours[rng.integers(len(cfg.backdrop_colours))])
        n_dist = int(rng.integers(0, cfg.max_distractors + 1))
        light = float(rng.uniform(*cfg.light_intensity))
        light_xy = rng.uniform(-0.5, 0.5, 2)
        cam_jit = rng.uniform(-cfg.camera_jitter, cfg.camera_jitter, 3)
        # Object and goal on the table, in reach, at least 12 cm apart.
        while True:
            obj_xy = rng.uniform([-0.15, -0.2], [0.15, 0.2])
            goal_xy = rng.uniform([-0.15, -0.2], [0.15, 0.2])
            if np.linalg.norm(goal_xy - obj_xy) >= 0.12:
                break
        obj_yaw = float(rng.uniform(-np.pi / 4, np.pi / 4)) if cfg.object_yaw and obj_type == "box" else 0.0
        placed = [obj_xy, goal_xy]
        dist_xy = []
        for _ in range(n_dist):
            for _attempt in range(100):
                p = rng.uniform([-0.25, -0.35], [0.25, 0.35])
                if all(np.linalg.norm(p - q) > 0.1 for q in placed):
                    break
            placed.append(p)
            dist_xy.append(p)
        dist_colours = [COLOURS["white"], (0.3, 0.3, 0.3), (0.6, 0.45, 0.3)]
        if overrides:
            o = overrides
            obj_xy = np.array([o.get("object_x", obj_xy[0]), o.get("object_y", obj_xy[1])], float)
            goal_xy = np.array([o.get("goal_x", goal_xy[0]), o.get("goal_y", goal_xy[1])], float)
            obj_yaw = float(o.get("object_yaw", obj_yaw))

        # Scene parameters (model fields; the renderer reads them every frame).
        d.mocap_pos[self._table_mocap] = (0.0, 0.0, table_h)
        m.geom_pos[self._gid["goal"]] = (goal_xy[0], goal_xy[1], 0.0008)  # in the table's frame
        m.geom_pos[self._gid["backdrop"]][2] = table_h + 0.25
        m.geom_rgba[self._gid["backdrop"]] = (*BACKDROPS[backdrop], 1.0)
        if cfg.backdrop_texture is not None:  # white, so the texture shows its own colours
            m.geom_rgba[self._gid["backdrop"]] = (1.0, 1.0, 1.0, 1.0)
        m.light_diffuse[0] = (light, light, light)
        m.light_pos[0] = (light_xy[0], light_xy[1], table_h + 1.6)
        cam_pos = np.array([0.85, 0.0, table_h + 0.55]) + cam_jit
        m.cam_pos[self._cam["front"]] = cam_pos
        m.cam_quat[self._cam["front"]] = _mat_to_quat(_lookat(cam_pos, np.array([-0.05, 0.0, table_h + 0.05])))
        self._set_live("object_box", obj_type == "box", COLOURS[colour])
        self._set_live("object_cyl", obj_type == "cylinder", COLOURS[colour])
        half_h = scene.BOX_HALF if obj_type == "box" else scene.CYL_HALF
        q = self._obj_qadr
        d.qpos[q:q + 3] = (obj_xy[0], obj_xy[1], table_h + half_h + 0.001)
        d.qpos[q + 3:q + 7] = (np.cos(obj_yaw / 2), 0.0, 0.0, np.sin(obj_yaw / 2))
        for i in range(scene.MAX_DISTRACTORS):
            live = i < n_dist
            self._set_live(f"distractor{i}", live, dist_colours[i] if live else None)
            a = self._dist_qadr[i]
            if live:
                d.qpos[a:a + 3] = (dist_xy[i][0], dist_xy[i][1], table_h + scene.DISTRACTOR_HALF + 0.001)
            else:
                d.qpos[a:a + 3] = (3.0 + i, 3.0, -5.0)
            d.qpos[a + 3:a + 7] = (1.0, 0.0, 0.0, 0.0)
        # Gripper: tcp 25 cm above the table centre, fingers open.
        body = np.array([0.0, 0.0, table_h + 0.25 + scene.TCP_OFFSET])
        g = self._grip_qadr
        d.qpos[g:g + 3] = body
        d.qpos[g + 3:g + 7] = (1.0, 0.0, 0.0, 0.0)
        d.mocap_pos[self._mocap] = body
        d.mocap_quat[self._mocap] = (1.0, 0.0, 0.0, 0.0)
        for a in self._finger_qadr:
            d.qpos[a] = scene.FINGER_RANGE
        self._gripper_target = 0.0
        d.ctrl[:] = scene.FINGER_RANGE
        mujoco.mj_forward(m, d)
        # Let the objects settle for a few physics steps so the first frame is at rest.
        for _ in range(20):
            mujoco.mj_step(m, d)

        self._table_h = table_h
        self._goal = np.array([goal_xy[0], goal_xy[1], table_h])
        self._obj_type, self._obj_half_h = obj_type, half_h
        name = OBJECT_NAMES[obj_type]
        self.task = (f"pick up the {colour} {name} and place it on the goal" if cfg.task == "pick_place"
                     else f"push the {colour} {name} to the goal")
        self._factors = {
            "seed": self._seed, "task_kind": cfg.task, "object_type": obj_type, "object_colour": colour,
            "object_x": float(obj_xy[0]), "object_y": float(obj_xy[1]), "object_yaw": obj_yaw,
            "goal_x": float(goal_xy[0]), "goal_y": float(goal_xy[1]),
            "light_intensity": light, "light_x": float(light_xy[0]), "light_y": float(light_xy[1]),
            "camera_dx": float(cam_jit[0]), "camera_dy": float(cam_jit[1]), "camera_dz": float(cam_jit[2]),
            "table_height": table_h, "distractors": n_dist, "backdrop_colour": backdrop,
        }
        self.spec = DatasetSpec(fps=self.spec.fps, features=self.spec.features, robot_type=self.spec.robot_type,
                                cameras=self._make_spec().cameras)
        return self._observe()

    # ----------------------------------------------------------------------------------------- step
    def step(self, action: np.ndarray) -> dict[str, np.ndarray]:
        cfg, m, d = self.config, self.model, self.data
        a = np.nan_to_num(np.asarray(action, np.float64).reshape(7))
        dp = np.clip(a[:3], -cfg.max_translation, cfg.max_translation)
        dr = np.clip(a[3:6], -cfg.max_rotation, cfg.max_rotation)
        self._gripper_target = float(np.clip(a[6], 0.0, 1.0))
        # New mocap pose: rotate about the tcp, translate the tcp; keep the tcp inside the workspace.
        R0 = np.zeros(9)
        mujoco.mju_quat2Mat(R0, d.mocap_quat[self._mocap])
        R0 = R0.reshape(3, 3)
        p0 = d.mocap_pos[self._mocap].copy()
        tcp0 = p0 + R0 @ np.array([0.0, 0.0, -scene.TCP_OFFSET])
        Rd = _euler_to_mat(*dr)
        R1 = Rd @ R0
        tcp1 = tcp0 + dp
        lo = np.array([-0.45, -0.55, self._table_h + 0.005])
        hi = np.array([0.45, 0.55, self._table_h + 0.6])
        tcp1 = np.clip(tcp1, lo, hi)
        p1 = tcp1 - R1 @ np.array([0.0, 0.0, -scene.TCP_OFFSET])
        q0, q1 = d.mocap_quat[self._mocap].copy(), _mat_to_quat(R1)
        if np.dot(q0, q1) < 0:
            q1 = -q1
        d.ctrl[:] = (1.0 - self._gripper_target) * scene.FINGER_RANGE
        n = cfg.substeps
        for i in range(1, n + 1):
            s = i / n  # interpolate the mocap target so the weld never jumps 5 cm in one physics step
            d.mocap_pos[self._mocap] = p0 + s * (p1 - p0)
            qi = q0 + s * (q1 - q0)
            d.mocap_quat[self._mocap] = qi / np.linalg.norm(qi)
            mujoco.mj_step(m, d)
        self._steps += 1
        return self._observe()

    # ------------------------------------------------------------------------------------ observing
    def state(self) -> np.ndarray:
        d = self.data
        R = d.site_xmat[self._tcp].reshape(3, 3)
        opening = np.mean([d.qpos[a] for a in self._finger_qadr]) / scene.FINGER_RANGE
        return np.array([*d.site_xpos[self._tcp], *_mat_to_euler(R), np.clip(opening, 0.0, 1.0)], np.float32)

    def _observe(self) -> dict[str, np.ndarray]:
        cfg = self.config
        r = self._renderer
        obs: dict[str, np.ndarray] = {"observation.state": self.state()}
        for cam in cfg.cameras:
            r.update_scene(self.data, camera=self._cam[cam], scene_option=self._opt)
            rgb = r.render(out=self._rgb).copy()
            obs[f"observation.images.{cam}"] = rgb
            depth = None
            if cfg.depth or cam in cfg.pointcloud_cameras:
                r.enable_depth_rendering()
                depth = r.render(out=self._depth).copy()
                r.disable_depth_rendering()
                if cfg.depth:
                    obs[f"observation.depth.{cam}"] = depth
            if cfg.masks:
                r.enable_segmentation_rendering()
                seg = r.render(out=self._seg)
                r.disable_segmentation_rendering()
                ids = np.where(seg[..., 1] == _GEOM, seg[..., 0], -1)
                obs[f"observation.mask.{cam}"] = self._lut[ids + 1]
            if cam in cfg.pointcloud_cameras:
                obs[f"observation.pointcloud.{cam}"] = self._pointcloud(cam, depth, rgb)
        return obs

    def _pointcloud(self, cam: str, depth: np.ndarray, rgb: np.ndarray) -> np.ndarray:
        pts = depth_to_points(depth, self.camera_intrinsics(cam), self.camera_extrinsics(cam)).reshape(-1, 3)
        valid = np.flatnonzero(depth.ravel() < 0.99 * self.model.vis.map.zfar * self.model.stat.extent)
        n = self.config.pointcloud_points
        # Deterministic per (episode seed, step, camera): the same seed gives the same bytes.
        rng = np.random.default_rng([self._seed, self._steps, self._cam[cam]])
        if len(valid) == 0:
            return np.zeros((n, 6), np.float32)
        pick = valid[rng.choice(len(valid), n, replace=len(valid) < n)]
        colours = rgb.reshape(-1, 3)[pick].astype(np.float32) / 255.0
        return np.concatenate([pts[pick], colours], axis=1).astype(np.float32)

    # ------------------------------------------------------------------------------- ground truth
    def privileged(self) -> dict[str, Any]:
        """Simulator ground truth for scripted operators and tests (world frame, metres)."""
        d, q = self.data, self._obj_qadr
        return {
            "object_pos": d.qpos[q:q + 3].copy(), "object_quat": d.qpos[q + 3:q + 7].copy(),  # w, x, y, z
            "object_vel": d.qvel[self._obj_dadr:self._obj_dadr + 6].copy(),
            "object_type": self._obj_type, "object_half_height": self._obj_half_h,
            "goal": self._goal.copy(), "table_height": self._table_h, "tcp": d.site_xpos[self._tcp].copy(),
            "tcp_yaw": _mat_to_euler(d.site_xmat[self._tcp].reshape(3, 3))[2], "step": self._steps,
            "gripper_opening": float(self.state()[6]), "task_kind": self.config.task,
            "tcp_target": self._tcp_target(),  # where the mocap drives the tcp (the tcp lags it)
        }

    def _tcp_target(self) -> np.ndarray:
        R = np.zeros(9)
        mujoco.mju_quat2Mat(R, self.data.mocap_quat[self._mocap])
        return self.data.mocap_pos[self._mocap] + R.reshape(3, 3) @ np.array([0.0, 0.0, -scene.TCP_OFFSET])

    def factors(self) -> dict[str, Any]:
        return dict(self._factors)

    def success(self) -> bool:
        p = self.privileged()
        obj, goal = p["object_pos"], p["goal"]
        near = float(np.linalg.norm(obj[:2] - goal[:2])) < 0.03
        if self.config.task == "push":
            return near
        resting = (abs(obj[2] - (self._table_h + self._obj_half_h)) < 0.01
                   and float(np.linalg.norm(p["object_vel"][:3])) < 0.05)
        return bool(near and resting)

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
