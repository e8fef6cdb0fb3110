"""DemoGen-style point-cloud demonstration generation (Xue et al. 2025, "DemoGen: Synthetic Demonstration
Generation for Data-Efficient Visuomotor Policy Learning", RSS 2025; code TEA-Lab/DemoGen).

From one source episode with a point-cloud observation, an end-effector state and delta end-effector
actions, ``PointCloudEdit`` makes new episodes with the object and the target moved:

1. **Segment the objects** on the first frame: hand-given boxes (``segmentation="boxes"``), or a first-frame
   mask lifted into the cloud (``lift_mask``; in the embedded sim the ``observation.mask.<cam>`` ids with the
   spec's camera calibration) giving an axis-aligned box grown by ``box_grow`` with its bottom at
   ``box_floor``; or, with neither masks nor boxes (``segmentation="plane"``, ``segment_tabletop``), the
   table plane is fitted and removed, what stands on it is clustered, the end effector's cluster dropped
   and the object and target told apart by where the gripper closes and opens, each lifted to a box the
   same way. In every frame, points inside the object box are the object, inside the target box the
   target, the rest the end effector (plus, with ``background="table"``, a static background: points on the
   table plane or farther than ``ee_radius`` from the end effector, for uncropped clouds like the sim's).
2. **Split the trajectory** into motion and skill segments (``curation.segments``).
3. **Target configurations**: a translation grid (``n x n`` for the object times ``n x n`` for the target)
   times a list of object yaw angles, or ``count`` uniform samples each with a yaw drawn from the list.
4. **Adapt the actions**: a skill segment moves rigidly with its object (``E' = T_k E``; delta actions are
   rotated by the object's yaw, so a pure translation copies them unchanged); a motion segment is re-planned
   between the transformed segment ends, keeping its frame count.
5. **Synthesise observations**: object and target points move with their transforms, end-effector (and
   in-hand) points and the proprioceptive state move with the per-frame end-effector transform.

Where we depart from DemoGen: yaw edits for every task (DemoGen's generic code is translation only); the
default motion re-plan (``motion="offset"``) keeps the source motion and spreads the needed correction
evenly over it, so a zero translation reproduces the source exactly (DemoGen's linear and L-shaped plans
are ``motion="linear"`` / ``"lshape"``; our L shares the frames between its legs by length instead of
DemoGen's fixed 1.5 cm z steps, which suit only its own teleop speed); mask-free segmentation by plane
fitting and clustering (DemoGen asks for masks or boxes); generated demos that leave the workspace or go
into the table are rejected with the reason; an optional viewpoint edit applies a perturbed camera pose (a
calibration error: the whole cloud moves rigidly, occlusion is not re-simulated); the state convention
(logged before or after the action) is detected from the data.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from curation.augment import Synthetic
from curation.segments import Segment, auto_frames, gripper_events, segments_from_frames, state_after_action
from toolkit.episode import Episode
from toolkit.spec import DatasetSpec, Feature

Box = tuple[float, float, float, float, float, float]  # xmin, ymin, zmin, xmax, ymax, zmax (metres)
CHOICES = {"mode": ("grid", "random"), "segmentation": ("boxes", "mask", "plane"),
           "background": ("none", "table"), "motion": ("offset", "linear", "lshape")}


@dataclass(frozen=True)
class PointCloudParams:
    """One field per command-line flag (``demoforge augment pointcloud``)."""

    cloud: str | None = None  # point-cloud feature; None = the spec's only one
    mode: str = "grid"  # "grid" or "random"
    object_grid: int = 2  # grid points per axis (x, y) for the object
    object_range: tuple[float, float] = (0.10, 0.10)  # +- metres in x, y
    target_grid: int = 2
    target_range: tuple[float, float] = (0.10, 0.10)
    count: int = 16  # samples per source in random mode
    yaw: tuple[float, ...] = (0.0,)  # object yaw edits, degrees: grid, each with every translation; random, one drawn
    frames: tuple[int, ...] | None = None  # manual (skill1,) or (skill1, motion2, skill2); None = automatic
    skill_radius: float = 0.05  # automatic segmentation: horizontal radius around an object centre (m)
    segmentation: str = "boxes"  # "boxes" (hand-given), "mask" (first-frame mask lifted) or "plane" (no labels)
    boxes: tuple[Box, ...] = ()  # object, then target
    mask_feature: str | None = None  # segmentation="mask": mask feature with calibration in spec.cameras
    mask_ids: tuple[int, ...] = (4, 5)  # mask values of the object, then the target (sim: object 4, goal 5)
    plane_threshold: float = 0.005  # segmentation="plane": table inlier distance (m); 0 = cloud already cropped
    cluster_radius: float = 0.015  # segmentation="plane": neighbour distance of Euclidean clustering (m)
    min_cluster: int = 10  # segmentation="plane": smaller clusters are noise (points)
    objects: int = 2  # segmentation="plane": 1 (object) or 2 (object, then target)
    box_grow: float = 0.01  # metres added on every side of a lifted box (DemoGen: 1 cm)
    box_floor: float | None = 0.0  # z of a lifted box's bottom (DemoGen: 0); None = its lowest point - grow
    background: str = "none"  # "none" (cloud cropped to objects + robot) or "table" (uncropped)
    table_z: float | None = None  # table height (m); None = box_floor, the fitted plane, or frame 0's densest z
    table_margin: float = 0.004  # background="table": points below table_z + margin are static
    ee_radius: float = 0.12  # background="table": end-effector points lie within this of the ee (m)
    motion: str = "offset"  # motion re-plan: "offset", "linear" or "lshape" (DemoGen's default)
    workspace: Box | None = None  # bounds for the end effector and object centres; None = no check
    table_clearance: float = 0.0  # reject when the end effector goes below table_z + this
    viewpoint_translation: float = 0.0  # viewpoint edit: +- metres per axis, one draw per episode
    viewpoint_rotation: float = 0.0  # +- degrees about x, y, z through the frame-0 centroid

    def __post_init__(self) -> None:
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"PointCloudParams.{name}: expected one of {allowed}, got {getattr(self, name)!r}")
        if self.segmentation == "boxes" and len(self.boxes) not in (1, 2):
            raise ValueError("PointCloudParams.boxes: expected 1 or 2 boxes (object, target) with segmentation='boxes'")
        if self.objects not in (1, 2):
            raise ValueError(f"PointCloudParams.objects: expected 1 or 2, got {self.objects!r}")
        if self.plane_threshold < 0 or self.cluster_radius <= 0 or self.min_cluster < 1:
            raise ValueError("PointCloudParams: expected plane_threshold >= 0, cluster_radius > 0, min_cluster >= 1")


# ------------------------------------------------------------------------------------ geometry
def rot_z(theta: float) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _euler(roll: float, pitch: float, yaw: float) -> np.ndarray:
    return rot_z(yaw) @ np.array([[np.cos(pitch), 0, np.sin(pitch)], [0, 1, 0], [-np.sin(pitch), 0, np.cos(pitch)]]) \
        @ np.array([[1, 0, 0], [0, np.cos(roll), -np.sin(roll)], [0, np.sin(roll), np.cos(roll)]])


def in_box(points: np.ndarray, box: Box | np.ndarray) -> np.ndarray:
    """Which of ``points`` (..., 3) lie in the axis-aligned ``box``."""
    b = np.asarray(box, np.float32)
    return np.all((points >= b[:3]) & (points <= b[3:]), axis=-1)


def lift_mask(points: np.ndarray, mask: np.ndarray, K: np.ndarray, world_to_camera: np.ndarray) -> np.ndarray:
    """Which of ``points`` (N, 3, world frame) project into ``mask`` (H, W, True = object) through a pinhole
    camera (OpenCV: x right, y down, z forward; ``K`` with pixel centres at integers)."""
    cam = points @ world_to_camera[:3, :3].T + world_to_camera[:3, 3]
    z = cam[:, 2]
    front = z > 1e-6
    u = np.rint(K[0, 0] * cam[:, 0] / np.where(front, z, 1) + K[0, 2]).astype(np.int64)
    v = np.rint(K[1, 1] * cam[:, 1] / np.where(front, z, 1) + K[1, 2]).astype(np.int64)
    h, w = mask.shape[:2]
    ok = front & (u >= 0) & (u < w) & (v >= 0) & (v < h)
    out = np.zeros(len(points), bool)
    out[ok] = mask[v[ok], u[ok]]
    return out


def box_of(points: np.ndarray, grow: float = 0.01, floor: float | None = 0.0) -> Box:
    """DemoGen's object box: the points' axis-aligned box grown by ``grow``, bottom at ``floor``."""
    if len(points) == 0:
        raise ValueError("no points to make a box from (empty mask?)")
    lo, hi = points.min(axis=0) - grow, points.max(axis=0) + grow
    if floor is not None:
        lo[2] = floor
    return tuple(float(x) for x in (*lo, *hi))  # type: ignore[return-value]


def table_level(points: np.ndarray, bin_size: float = 0.002) -> float:
    """The densest z level of a cloud: the table plane of an uncropped tabletop view."""
    z = points[:, 2]
    edges = np.arange(z.min(), z.max() + 2 * bin_size, bin_size)
    counts, edges = np.histogram(z, edges)
    i = int(np.argmax(counts))
    return float(edges[i + 1])


def chamfer(a: np.ndarray, b: np.ndarray) -> float:
    """Symmetric Chamfer distance (metres): mean of the two mean nearest-neighbour distances."""
    da, _ = cKDTree(b).query(a)
    db, _ = cKDTree(a).query(b)
    return float(0.5 * (da.mean() + db.mean()))


# ------------------------------------------------------------------------------------ features
@dataclass(frozen=True)
class Columns:
    """Where the end-effector position, yaw and gripper sit in the state and action features."""

    state: str
    action: str
    state_pos: list[int]
    state_yaw: int | None
    action_pos: list[int]
    action_rot: list[int] | None  # roll, pitch, yaw deltas
    gripper: int | None


def _named(feature: Feature, want: tuple[str, ...], default: list[int]) -> list[int]:
    names = list(feature.names or [])
    found = [next((i for i, n in enumerate(names) if n.split(".")[-1] == w), -1) for w in want]
    return found if all(i >= 0 for i in found) else default


def columns(spec: DatasetSpec) -> Columns:
    """The first state and action features' columns (by name: ``x y z``/``roll pitch yaw``/``gripper``;
    else positions first, rotations next, gripper last, as DemoGen's 7-D Panda layout)."""
    state = next(n for n, f in spec.features.items() if f.kind == "state")
    action = next(n for n, f in spec.features.items() if f.kind == "action")
    fs, fa = spec.features[state], spec.features[action]
    ds, da = int(fs.shape[0]), int(fa.shape[0])
    yaw = _named(fs, ("yaw",), [5] if ds >= 7 else [])
    rot = _named(fa, ("roll", "pitch", "yaw"), [3, 4, 5] if da >= 7 else [])
    grip = [i for i, n in enumerate(fa.names or []) if "gripper" in n] or [da - 1]
    return Columns(state, action, _named(fs, ("x", "y", "z"), [0, 1, 2]), yaw[0] if yaw else None,
                   _named(fa, ("x", "y", "z"), [0, 1, 2]), rot or None, grip[0] if da > 3 else None)


# ------------------------------------------------------------------------------------ the plan
@dataclass(frozen=True)
class Transform:
    """A rigid edit of one object: yaw ``theta`` (rad) about ``centre``, then translation ``delta``."""

    theta: float
    centre: np.ndarray
    delta: np.ndarray

    def apply(self, p: np.ndarray) -> np.ndarray:
        return (p - self.centre) @ rot_z(self.theta).T + self.centre + self.delta


IDENTITY = Transform(0.0, np.zeros(3), np.zeros(3))


def _motion_deltas(src: np.ndarray, total: np.ndarray, how: str, first: bool) -> np.ndarray:
    """Re-planned per-frame position deltas of one motion segment summing to ``total``."""
    n = len(src)
    if how == "offset":
        return src + (total - src.sum(axis=0)) / n
    if how == "linear":
        return np.repeat(total[None] / n, n, axis=0)
    return _lshape(total, n, first)


def _lshape(total: np.ndarray, n: int, first: bool) -> np.ndarray:
    """DemoGen's L-shaped plan: the z leg and the xy leg one after the other, at one constant speed.

    DemoGen gives z fixed 1.5 cm steps (its keyboard teleop's step) and xy whatever frames remain; on data
    moving faster than 1.5 cm per step that leaves xy one or two frames and steps a robot clips (the sim
    caps 5 cm), so the gripper misses the object. Here the frames are shared in proportion to the legs'
    lengths; a leg too short for a frame of its own makes the plan a straight line."""
    dz, dxy = abs(float(total[2])), float(np.linalg.norm(total[:2]))
    nz = int(round(n * dz / (dz + dxy))) if dz + dxy > 0 else 0
    if nz in (0, n):
        return np.repeat(total[None] / n, n, axis=0)
    out = np.zeros((n, 3))
    z_rows = slice(n - nz, n) if first else slice(0, nz)  # approach: xy then down; transport: up then xy
    xy_rows = slice(0, n - nz) if first else slice(nz, n)
    out[z_rows, 2] = total[2] / nz
    out[xy_rows, :2] = total[:2] / (n - nz)
    return out


def plan(q: np.ndarray, delta: np.ndarray, segments: list[Segment], transforms: list[Transform],
         how: str = "offset") -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Generated command poses ``q_new`` (T+1, 3), yaw offsets ``phi`` (T+1,), position deltas (T, 3) and
    per-frame yaw-delta corrections (T,) from source command poses ``q`` (pose before each action, plus the
    last) and source deltas (T, 3)."""
    T = len(delta)
    q_new, phi = q.copy(), np.zeros(T + 1)
    d_new, yaw_fix = delta.copy(), np.zeros(T)
    prev = IDENTITY
    for seg in segments:
        s, e, tf = seg.start, seg.stop, transforms[seg.obj]
        if seg.kind == "skill":
            q_new[s:e + 1] = tf.apply(q[s:e + 1])
            phi[s:e + 1] = tf.theta
            d_new[s:e] = delta[s:e] @ rot_z(tf.theta).T
            prev = tf
            continue
        start = prev.apply(q[s]) if seg.start > 0 else q[s]
        total = tf.apply(q[e]) - start
        d_new[s:e] = _motion_deltas(delta[s:e], total, how, first=seg.start == 0)
        q_new[s:e + 1] = start + np.concatenate([[np.zeros(3)], np.cumsum(d_new[s:e], axis=0)])
        step = (tf.theta - prev.theta) / (e - s)
        yaw_fix[s:e] = step
        phi[s:e + 1] = prev.theta + step * np.arange(e - s + 1)
    return q_new, phi, d_new, yaw_fix


# ------------------------------------------------------------------------------------ segmentation
@dataclass
class Source:
    """Everything about one source episode that does not depend on the edit (computed once)."""

    points: np.ndarray  # (T, N, 3) float32
    labels: np.ndarray  # (T, N) int8: 0 static, 1 end effector, 2 object, 3 target
    boxes: list[Box]
    segments: list[Segment]
    q: np.ndarray  # (T+1, 3) command poses
    after: bool  # state logged after the action
    table_z: float | None


def _object_boxes(episode: Episode, spec: DatasetSpec, p: PointCloudParams, cloud: str, ee: np.ndarray,
                  gripper: np.ndarray) -> tuple[list[Box], float | None]:
    """The object (then target) boxes, and the table height when ``segmentation="plane"`` fitted one."""
    first = np.asarray(episode.data[cloud][0, :, :3], np.float64)
    if p.segmentation == "boxes":
        return [tuple(float(x) for x in b) for b in p.boxes], None  # type: ignore[misc]
    if p.segmentation == "plane":
        dense = _cloud_depth_points(episode, spec, cloud)
        grasp, release = gripper_events(gripper)
        scene = segment_tabletop(first if dense is None else dense, ee, grasp, release, p)
        return [box_of(o, p.box_grow, p.box_floor) for o in scene.objects], scene.table_z
    return _mask_boxes(episode, spec, p, first), None


def _mask_boxes(episode: Episode, spec: DatasetSpec, p: PointCloudParams, first: np.ndarray) -> list[Box]:
    name = p.mask_feature or next(n for n, f in spec.features.items() if f.kind == "mask")
    cameras = (episode.meta.extra or {}).get("cameras") or spec.cameras  # per-episode calibration first
    calib = cameras.get(name)
    if not calib:
        raise ValueError(f"segmentation='mask': no calibration for {name!r} in the episode's or spec's cameras")
    K, cam_to_world = np.asarray(calib["intrinsics"], float), np.asarray(calib["extrinsics"], float)
    mask = np.asarray(episode.data[name][0])
    depth = _depth_for(episode, spec, cameras, calib)
    if depth is not None:  # every masked pixel, not only the sampled cloud's few points on a small object
        return [box_of(_backproject(depth, mask == i, K, cam_to_world), p.box_grow, p.box_floor) for i in p.mask_ids]
    world_to_cam = np.linalg.inv(cam_to_world)
    return [box_of(first[lift_mask(first, mask == i, K, world_to_cam)], p.box_grow, p.box_floor)
            for i in p.mask_ids]


def _depth_for(episode: Episode, spec: DatasetSpec, cameras: dict[str, Any], calib: dict[str, Any]) -> np.ndarray | None:
    """The first depth frame of the camera with the same calibration as the mask, if recorded."""
    for name, f in spec.features.items():
        if f.kind == "depth" and cameras.get(name) == calib and name in episode.data:
            return np.asarray(episode.data[name][0], np.float64)
    return None


def _backproject(depth: np.ndarray, mask: np.ndarray, K: np.ndarray, cam_to_world: np.ndarray) -> np.ndarray:
    """World points (M, 3) of the masked pixels of a depth image (metres along the optical axis)."""
    v, u = np.nonzero(mask)
    z = depth[v, u]
    cam = np.stack([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, z], axis=1)
    return cam @ cam_to_world[:3, :3].T + cam_to_world[:3, 3]


def _cloud_depth_points(episode: Episode, spec: DatasetSpec, cloud: str) -> np.ndarray | None:
    """Every pixel of the first depth frame of the cloud's camera (``observation.depth.<cam>`` beside
    ``observation.pointcloud.<cam>``) in the world frame, when it was recorded with calibration: an
    uncropped cloud samples a small object with a handful of points, too few to cluster."""
    cam = cloud.rsplit(".", 1)[-1]
    cameras = (episode.meta.extra or {}).get("cameras") or spec.cameras
    for name, f in spec.features.items():
        calib = cameras.get(name)
        if f.kind == "depth" and name.rsplit(".", 1)[-1] == cam and calib and name in episode.data:
            depth = np.asarray(episode.data[name][0], np.float64)
            valid = np.isfinite(depth) & (depth > 0)
            return _backproject(depth, valid, np.asarray(calib["intrinsics"], float),
                                np.asarray(calib["extrinsics"], float))
    return None


# ------------------------------------------------------------------------------------ plane segmentation
MAX_TILT_DEG = 20.0  # a table's normal lies within this of +z (world frame, z up)
MIN_TABLE_FRACTION = 0.2  # a table top holding fewer of the points is no table (a cropped cloud has none)


@dataclass(frozen=True)
class Plane:
    """The plane ``normal . x + offset = 0``; ``normal`` is a unit vector with z > 0."""

    normal: np.ndarray
    offset: float

    def height(self, points: np.ndarray) -> np.ndarray:
        """Signed distance (m) of ``points`` (N, 3) above the plane."""
        return points @ self.normal + self.offset


def fit_plane(points: np.ndarray, threshold: float, seed: int = 0, iterations: int = 500) -> Plane | None:
    """RANSAC (Open3D's ``segment_plane``): of ``iterations`` planes through 3 random points, the one with
    the most points within ``threshold`` among those tilted at most ``MAX_TILT_DEG`` from horizontal, then
    refitted by least squares to its inliers. Deterministic under ``seed``; None when no sample is flat."""
    pts = np.asarray(points, np.float64)
    if len(pts) < 3:
        return None
    idx = np.random.default_rng(seed).integers(0, len(pts), (iterations, 3))
    a = pts[idx[:, 0]]
    n = np.cross(pts[idx[:, 1]] - a, pts[idx[:, 2]] - a)
    length = np.linalg.norm(n, axis=1)
    flat = length > 1e-12
    n[flat] /= length[flat, None]
    flat &= np.abs(n[:, 2]) >= np.cos(np.deg2rad(MAX_TILT_DEG))
    if not flat.any():
        return None
    n, d = n[flat], -np.einsum("ij,ij->i", n[flat], a[flat])
    counts = np.concatenate([(np.abs(pts @ n[i:i + 64].T + d[i:i + 64]) <= threshold).sum(axis=0)
                             for i in range(0, len(n), 64)])  # chunks: (N, 64) at a time
    best = int(np.argmax(counts))
    inliers = pts[np.abs(pts @ n[best] + d[best]) <= threshold]
    centre = inliers.mean(axis=0)
    normal = np.linalg.svd(inliers - centre, full_matrices=False)[2][-1]  # least-squares normal
    normal = normal if normal[2] > 0 else -normal
    return Plane(normal, float(-normal @ centre))


def euclidean_clusters(points: np.ndarray, radius: float, min_size: int) -> list[np.ndarray]:
    """Indices of the connected components of the graph joining points closer than ``radius`` (DBSCAN with
    ``eps = radius``, ``min_samples = 1``), largest first; components under ``min_size`` points are noise."""
    if len(points) == 0:
        return []
    pairs = cKDTree(points).query_pairs(radius, output_type="ndarray")
    graph = coo_matrix((np.ones(len(pairs), bool), (pairs[:, 0], pairs[:, 1])), shape=(len(points), len(points)))
    _, label = connected_components(graph, directed=False)
    sizes = np.bincount(label)
    return [np.flatnonzero(label == k) for k in np.argsort(-sizes, kind="stable") if sizes[k] >= min_size]


@dataclass(frozen=True)
class Tabletop:
    """What ``segment_tabletop`` found: object (then target) points and the table height (None: no table)."""

    objects: list[np.ndarray]
    table_z: float | None


def _on_table(points: np.ndarray, p: PointCloudParams) -> tuple[np.ndarray, float | None]:
    """The points standing on the table: above its plane by more than ``plane_threshold`` and over the xy
    extent of the table top (walls, floor and whatever is beside or below the table go)."""
    plane = fit_plane(points, p.plane_threshold) if p.plane_threshold > 0 else None
    if plane is None:
        return points, None
    h = plane.height(points)
    inliers = np.flatnonzero(np.abs(h) <= p.plane_threshold)
    if len(inliers) < MIN_TABLE_FRACTION * len(points):
        return points, None
    # the top is the largest connected patch of inliers: a wall crossing the table's height is another
    top = points[inliers[euclidean_clusters(points[inliers], p.cluster_radius, 1)[0]]]
    if len(top) < MIN_TABLE_FRACTION * len(points):
        return points, None
    lo, hi = top[:, :2].min(axis=0), top[:, :2].max(axis=0)
    over = np.all((points[:, :2] >= lo) & (points[:, :2] <= hi), axis=1)
    return points[(h > p.plane_threshold) & over], float(top[:, 2].mean())


def _gap(cluster: np.ndarray, at: np.ndarray) -> float:
    """Distance from the nearest of ``at`` (M, 3) to the nearest point of ``cluster``."""
    return float(cKDTree(cluster).query(np.atleast_2d(at))[0].min())


def segment_tabletop(first: np.ndarray, ee: np.ndarray, grasp: int | None, release: int | None,
                     p: PointCloudParams) -> Tabletop:
    """Object and target points of a first frame without masks or boxes (Open3D's plane segmentation and
    DBSCAN recipe, in numpy/scipy): fit the table plane (``fit_plane``) and keep what stands on it, cluster
    it (``euclidean_clusters``), drop the cluster nearest the end effector's first position ``ee[0]`` (the
    gripper; one that falls apart into pieces needs a larger ``cluster_radius``). Of the other clusters the
    **object** is the one nearest the end effector at the first gripper close (``grasp``; with none, at its
    closest approach over the episode) and the **target** the one nearest it at the first opening after
    that (``release``; with none, the largest left). Raises ``ValueError`` when too few clusters remain.

    A flat target thinner than ``plane_threshold`` (a mark on the table) is part of the plane: lower the
    threshold below its thickness (the sim's goal disc is 1.6 mm). ``plane_threshold=0`` skips the plane
    for clouds already cropped to the scene (DemoGen's), and so does a table top (the largest connected
    patch of the plane's inliers) holding under ``MIN_TABLE_FRACTION`` of the points."""
    points, table_z = _on_table(np.asarray(first, np.float64), p)
    clusters = [points[i] for i in euclidean_clusters(points, p.cluster_radius, p.min_cluster)]
    if clusters:
        clusters.pop(int(np.argmin([_gap(c, ee[0]) for c in clusters])))
    if len(clusters) < p.objects:
        raise ValueError(f"segmentation='plane': {len(clusters)} cluster(s) besides the end effector, expected "
                         f"{p.objects} (try another plane threshold, cluster radius or minimum cluster size)")
    obj = int(np.argmin([_gap(c, ee if grasp is None else ee[grasp]) for c in clusters]))
    objects = [clusters.pop(obj)]
    if p.objects == 2:  # clusters stay largest first, so argmin's first tie and index 0 are the largest
        tgt = int(np.argmin([_gap(c, ee[release]) for c in clusters])) if release is not None else 0
        objects.append(clusters[tgt])
    return Tabletop(objects, table_z)


def _labels(points: np.ndarray, ee: np.ndarray, boxes: list[Box], p: PointCloudParams,
            table_z: float | None) -> np.ndarray:
    labels = np.ones(points.shape[:2], np.int8)
    if p.background == "table":
        far = np.linalg.norm(points - ee[:, None, :], axis=-1) > p.ee_radius
        labels[far | (points[..., 2] < (table_z or 0.0) + p.table_margin)] = 0
    for k in reversed(range(len(boxes))):  # the object box wins over the target's
        labels[in_box(points, boxes[k])] = 2 + k
    return labels


def prepare(episode: Episode, spec: DatasetSpec, p: PointCloudParams, cloud: str, cols: Columns) -> Source:
    """DemoGen steps 1-2 for one source: boxes, per-point labels, segments, command poses."""
    points = np.asarray(episode.data[cloud][..., :3], np.float32)
    state = np.asarray(episode.data[cols.state], np.float64)
    action = np.asarray(episode.data[cols.action], np.float64)
    pos, dpos = state[:, cols.state_pos], action[:, cols.action_pos]
    grip = action[:, cols.gripper] if cols.gripper is not None else np.zeros(len(action))
    boxes, plane_z = _object_boxes(episode, spec, p, cloud, pos, grip)
    table_z = next((z for z in (p.table_z, p.box_floor, plane_z) if z is not None), None)
    table_z = table_level(points[0]) if table_z is None else table_z
    if p.frames is not None:
        frames = tuple(p.frames)
    else:
        centres = [0.5 * (np.asarray(b[:3]) + np.asarray(b[3:])) for b in boxes]
        frames = auto_frames(pos, grip, centres, p.skill_radius)
    after = state_after_action(pos, dpos)
    q0 = pos[0] - dpos[0] if after else pos[0]
    q = np.concatenate([[q0], q0 + np.cumsum(dpos, axis=0)])
    labels = _labels(points, pos, boxes, p, table_z)
    return Source(points, labels, boxes, segments_from_frames(frames, len(action)), q, after, table_z)


# ------------------------------------------------------------------------------------ synthesis
def edits(p: PointCloudParams, rng: np.random.Generator, two: bool) -> list[dict[str, float]]:
    """The target configurations of one source. Grid: the translation grid times the yaw list. Random:
    exactly ``count`` samples, each with uniform translations and a yaw drawn from the yaw list (so
    ``count`` is the number per source whatever the list's length)."""
    def grid(n: int, r: tuple[float, float]) -> list[tuple[float, float]]:
        xs, ys = (np.linspace(-r[i], r[i], n) if n > 1 else np.zeros(1) for i in (0, 1))
        return [(float(x), float(y)) for x in xs for y in ys]
    def edit(o: tuple[float, float], t: tuple[float, float], yaw: float) -> dict[str, float]:
        return {"object_dx": o[0], "object_dy": o[1], "target_dx": t[0], "target_dy": t[1], "yaw_deg": float(yaw)}
    if p.mode == "grid":
        pairs = itertools.product(grid(p.object_grid, p.object_range),
                                  grid(p.target_grid, p.target_range) if two else [(0.0, 0.0)])
        return [edit(o, t, y) for (o, t), y in itertools.product(pairs, p.yaw)]
    o = rng.uniform(-np.asarray(p.object_range), p.object_range, (p.count, 2))
    t = rng.uniform(-np.asarray(p.target_range), p.target_range, (p.count, 2)) if two else np.zeros((p.count, 2))
    # a one-entry list draws nothing, so the translations of a seed do not depend on the list
    yaw = rng.choice(np.asarray(p.yaw, float), p.count) if len(p.yaw) > 1 else np.full(p.count, p.yaw[0])
    return [edit((float(a), float(b)), (float(c), float(d)), y) for (a, b), (c, d), y in zip(o, t, yaw)]


def _check(p: PointCloudParams, src: Source, ee: np.ndarray, tfs: list[Transform],
           moved_ee_z: np.ndarray) -> str | None:
    """Why a generated demo is rejected (None when it is kept)."""
    if p.workspace is not None:
        lo, hi = np.asarray(p.workspace[:3]), np.asarray(p.workspace[3:])
        for k, (box, tf) in enumerate(zip(src.boxes, tfs)):
            c = tf.apply(0.5 * (np.asarray(box[:3]) + np.asarray(box[3:])))
            if np.any(c[:2] < lo[:2]) or np.any(c[:2] > hi[:2]):
                return f"{('object', 'target')[k]} leaves the workspace"
        out = np.flatnonzero(np.any((ee < lo) | (ee > hi), axis=1))
        if len(out):
            return f"end effector leaves the workspace (frame {int(out[0])})"
    if src.table_z is not None:
        low = np.flatnonzero(ee[:, 2] < src.table_z + p.table_clearance)
        if len(low):
            return f"end effector goes into the table (frame {int(low[0])})"
        if moved_ee_z.size and float(moved_ee_z.min()) < src.table_z - 0.01:
            return "gripper or held object goes into the table"
    return None


def _viewpoint(p: PointCloudParams, rng: np.random.Generator, pivot: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
    t = rng.uniform(-p.viewpoint_translation, p.viewpoint_translation, 3)
    angles = np.deg2rad(rng.uniform(-p.viewpoint_rotation, p.viewpoint_rotation, 3))
    R = _euler(*angles)
    drawn = {"view_dx": float(t[0]), "view_dy": float(t[1]), "view_dz": float(t[2]),
             **{f"view_{a}_deg": float(np.rad2deg(v)) for a, v in zip(("roll", "pitch", "yaw"), angles)}}
    return R, pivot - pivot @ R.T + t, drawn


def synthesise(episode: Episode, src: Source, cols: Columns, cloud: str, edit: dict[str, float],
               p: PointCloudParams, rng: np.random.Generator) -> Synthetic:
    """DemoGen steps 4-5 for one target configuration."""
    centres = [0.5 * (np.asarray(b[:3]) + np.asarray(b[3:])) for b in src.boxes]
    theta = np.deg2rad(edit["yaw_deg"])
    tfs = [Transform(theta, centres[0], np.array([edit["object_dx"], edit["object_dy"], 0.0]))]
    if len(centres) > 1:
        tfs.append(Transform(0.0, centres[1], np.array([edit["target_dx"], edit["target_dy"], 0.0])))
    action = np.asarray(episode.data[cols.action], np.float64)
    q_new, phi, d_new, yaw_fix = plan(src.q, action[:, cols.action_pos], src.segments, tfs, p.motion)
    T = len(action)
    k = np.arange(T) + (1 if src.after else 0)  # the command pose each observation shows
    state = np.array(episode.data[cols.state], np.float64)
    pos = state[:, cols.state_pos]
    R = np.stack([rot_z(a) for a in phi[k]])  # per-frame ee transform G_t(x) = R_t (x - q_t) + q'_t
    off = q_new[k] - np.einsum("tij,tj->ti", R, src.q[k])
    ee_new = np.einsum("tij,tj->ti", R, pos) + off
    xyz = _move_points(src, R, off, phi[k], tfs)
    reason = _check(p, src, ee_new, tfs, xyz[..., 2][src.labels == 1])
    if reason:
        return Synthetic(None, edit, reason)
    drawn: dict[str, Any] = {}
    if p.viewpoint_translation > 0 or p.viewpoint_rotation > 0:
        Rv, tv, drawn = _viewpoint(p, rng, xyz[0].mean(axis=0))
        xyz = xyz @ Rv.T.astype(np.float32) + tv.astype(np.float32)
    data = dict(episode.data)
    data[cloud] = np.concatenate([xyz, np.asarray(episode.data[cloud][..., 3:], np.float32)], axis=-1)
    state[:, cols.state_pos] = ee_new
    if cols.state_yaw is not None:
        state[:, cols.state_yaw] = np.angle(np.exp(1j * (state[:, cols.state_yaw] + phi[k])))
    data[cols.state] = state.astype(episode.data[cols.state].dtype)
    action_new = action.copy()
    action_new[:, cols.action_pos] = d_new
    if cols.action_rot is not None:
        action_new[:, cols.action_rot] = _conjugate(action[:, cols.action_rot], phi[:T]) 
        action_new[:, cols.action_rot[2]] += yaw_fix
    data[cols.action] = action_new.astype(episode.data[cols.action].dtype)
    meta = replace(episode.meta, success=None, factors=_moved_factors(episode.meta.factors, edit))
    return Synthetic(Episode(data=data, meta=meta), {**edit, **drawn})


def _move_points(src: Source, R: np.ndarray, off: np.ndarray, phi: np.ndarray, tfs: list[Transform]) -> np.ndarray:
    """Every frame's points moved by their label: static, end effector (``R_t x + off_t``), object, target."""
    pts, T = src.points, len(src.points)
    if not np.any(phi) and not any(tf.theta for tf in tfs):  # translations only: one gather and one add
        shift = np.zeros((T, 2 + len(tfs), 3), np.float32)
        shift[:, 1] = off
        for j, tf in enumerate(tfs):
            shift[:, 2 + j] = tf.delta
        return pts + shift[np.arange(T)[:, None], src.labels]
    moved_ee = np.einsum("tij,tnj->tni", R.astype(np.float32), pts) + off[:, None, :].astype(np.float32)
    xyz = np.where((src.labels == 1)[..., None], moved_ee, pts)
    for j, tf in enumerate(tfs):
        sel = src.labels == 2 + j
        xyz[sel] = tf.apply(pts[sel]).astype(np.float32)
    return xyz


def _conjugate(rot: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """World-frame rotation deltas seen by an end effector turned by ``phi`` about z: Rz(phi) D Rz(-phi)
    (a pure yaw delta is unchanged; roll and pitch rotate with the yaw)."""
    if not np.any(phi) or not np.any(rot[:, :2]):
        return rot
    out = rot.copy()
    c, s = np.cos(phi), np.sin(phi)
    out[:, 0] = c * rot[:, 0] - s * rot[:, 1]  # small-angle: (roll, pitch) rotate as a vector
    out[:, 1] = s * rot[:, 0] + c * rot[:, 1]
    return out


def _moved_factors(factors: dict[str, Any], edit: dict[str, float]) -> dict[str, Any]:
    """Known pose factors (the sim's ``object_x/y/yaw``, ``goal_x/y``) updated to the new poses."""
    out = dict(factors)
    moves = {"object_x": "object_dx", "object_y": "object_dy", "goal_x": "target_dx", "goal_y": "target_dy"}
    for key, d in moves.items():
        if isinstance(out.get(key), (int, float)):
            out[key] = float(out[key]) + edit[d]
    if isinstance(out.get("object_yaw"), (int, float)):
        out["object_yaw"] = float(out["object_yaw"]) + float(np.deg2rad(edit["yaw_deg"]))
    return out


# ------------------------------------------------------------------------------------ augmentation
class PointCloudEdit:
    """The DemoGen augmentation (``curation.augment.Augmentation``)."""

    name: ClassVar[str] = "pointcloud"
    version: ClassVar[str] = "1"

    def __init__(self, params: PointCloudParams | None = None) -> None:
        self.params = params or PointCloudParams()

    def output_spec(self, spec: DatasetSpec) -> DatasetSpec:
        return spec

    def cloud(self, spec: DatasetSpec) -> str:
        if self.params.cloud:
            return self.params.cloud
        clouds = spec.of_kind("pointcloud")
        if len(clouds) != 1:
            raise ValueError(f"PointCloudParams.cloud: name one of the point-cloud features {clouds}")
        return clouds[0]

    def generate(self, episode: Episode, spec: DatasetSpec, seed: int) -> Iterator[Synthetic]:
        p, cloud, cols = self.params, self.cloud(spec), columns(spec)
        rng = np.random.default_rng(seed)
        try:
            src = prepare(episode, spec, p, cloud, cols)
        except ValueError as exc:
            yield Synthetic(None, {}, f"cannot segment the source: {exc}")
            return
        for edit in edits(p, rng, len(src.boxes) > 1):
            yield synthesise(episode, src, cols, cloud, edit, p, rng)
