"""Our features <-> LeRobot's ``info.json`` features, both ways.

Export: state / action / numeric scalars become float32 (or integer) columns, RGB images become PNG
bytes or video; depth, point clouds, masks and text have no standard LeRobot feature and are skipped.
Import: numeric columns get a kind from their name (``action*`` -> action, ``observation.state*`` ->
state), cameras become images (3 channels) or depth (1 channel or ``is_depth_map``), and our own
``meta/demoforge_spec.json`` restores kinds, names and shapes when they still fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.errors import FormatError
from toolkit.formats.dtypes import NUMERIC_DTYPES
from toolkit.formats.lerobot_layout import DEFAULT_COLUMNS
from toolkit.spec import DatasetSpec, Feature

# ------------------------------------------------------------------------------------------- export


@dataclass(frozen=True)
class Column:
    """One exported feature: how it is stored (vector / scalar / image / video) and its info.json entry."""

    name: str
    feature: Feature
    storage: str
    info: dict[str, Any]

    @property
    def width(self) -> int:
        return int(np.prod(self.feature.shape)) if self.feature.shape else 1


def plan_columns(spec: DatasetSpec, video: bool) -> tuple[list[Column], list[str]]:
    """Map our features onto LeRobot features; return the exported columns and the skipped names."""
    columns: list[Column] = []
    skipped: list[str] = []
    for name, f in spec.features.items():
        names = list(f.names) if f.names is not None else None
        if f.kind in ("state", "action") and len(f.shape) == 1:
            storage = "scalar" if f.shape == (1,) else "vector"
            columns.append(Column(name, f, storage, {"dtype": "float32", "shape": list(f.shape), "names": names}))
        elif f.kind == "scalar" and len(f.shape) <= 1 and f.dtype != "string":
            dtype = "float32" if f.dtype in ("float32", "float64") else f.dtype
            shape = list(f.shape) or [1]
            storage = "scalar" if shape == [1] else "vector"
            columns.append(Column(name, f, storage, {"dtype": dtype, "shape": shape, "names": names}))
        elif f.kind == "image" and f.dtype == "uint8" and len(f.shape) == 3 and f.shape[2] == 3:
            h, w, c = f.shape
            entry: dict[str, Any] = {"dtype": "video" if video else "image", "shape": [h, w, c],
                                     "names": ["height", "width", "channels"]}
            columns.append(Column(name, f, "video" if video else "image", entry))
        else:
            # depth / pointcloud / mask / text (and odd shapes) have no standard LeRobot feature
            skipped.append(name)
    return columns, skipped


# ------------------------------------------------------------------------------------------- import


def _names_of(raw: Any, size: int) -> tuple[str, ...] | None:
    """``names`` as a flat tuple: a list, a dict such as {"motors": [...]}, or None when it does not fit."""
    if isinstance(raw, dict):
        flat: list[Any] = []
        for value in raw.values():
            flat += value if isinstance(value, list) else [value]
        raw = flat
    if isinstance(raw, list) and len(raw) == size and all(isinstance(n, (str, int, float)) for n in raw):
        return tuple(str(n) for n in raw)
    return None


@dataclass(frozen=True)
class Source:
    """Where one of our features comes from in the LeRobot dataset."""

    name: str
    feature: Feature
    storage: str  # "column", "image" (encoded bytes in the parquet), "video"
    chw: bool = False  # camera shape declared as (C, H, W)


def _camera_source(name: str, f: dict, stored: str) -> Source | None:
    shape = [int(s) for s in f.get("shape") or []]
    names = [str(n) for n in (f.get("names") or [])] if isinstance(f.get("names"), list) else []
    if len(shape) != 3:
        return None
    chw = bool(names) and names[0].startswith("channel")
    h, w, c = (shape[1], shape[2], shape[0]) if chw else shape
    info = f.get("info") or f.get("video_info") or {}
    depth = bool(info.get("is_depth_map") or info.get("video.is_depth_map"))
    if c == 3 and not depth:
        feature = Feature("uint8", (h, w, 3), "image", ("height", "width", "channels"))
    elif c == 1 or depth:
        feature = Feature("uint16", (h, w), "depth", ("height", "width"))
    else:
        return None
    return Source(name, feature, stored, chw)


def _numeric_source(name: str, f: dict) -> Source | None:
    dtype = str(f.get("dtype"))
    shape = tuple(int(s) for s in f.get("shape") or [1])
    if dtype in ("string", "str"):
        return Source(name, Feature("string", (), "text"), "column") if shape in ((), (1,)) else None
    if dtype not in NUMERIC_DTYPES or len(shape) > 1:
        return None
    shape = shape or (1,)
    names = _names_of(f.get("names"), shape[0])
    floating = dtype.startswith("float")
    if floating and (name == "action" or name.startswith("action.")):
        kind = "action"
    elif floating and name.startswith("observation.state"):
        kind = "state"
    elif floating and name.startswith("observation.") and shape != (1,):
        kind = "state"
    else:
        kind = "scalar"
    return Source(name, Feature(dtype, shape, kind, names), "column")


def _apply_sidecar(source: Source, ours: dict | None) -> Source:
    """Restore our kind, names and shape from meta/demoforge_spec.json when they still fit the stored data."""
    if not ours:
        return source
    try:
        f = Feature.from_dict(ours)
    except (KeyError, TypeError, ValueError):
        return source
    stored = source.feature
    vectors = ("state", "action", "scalar")
    same_family = f.kind == stored.kind or (f.kind in vectors and stored.kind in vectors)
    if same_family and int(np.prod(f.shape or (1,))) == int(np.prod(stored.shape or (1,))):
        # the stored dtype wins: float64 state was exported as float32
        return Source(source.name, Feature(stored.dtype, f.shape, f.kind, f.names, f.description),
                      source.storage, source.chw)
    return source


def spec_from_info(info: dict, info_path: Path, sidecar: dict | None) -> tuple[DatasetSpec, list[Source], list[str]]:
    features = info.get("features")
    if not isinstance(features, dict) or not features:
        raise FormatError(f"{info_path}: field 'features' is missing or empty; expected a dict of feature entries")
    ours = (sidecar or {}).get("spec", {}).get("features", {})
    sources: list[Source] = []
    skipped: list[str] = []
    for name, f in features.items():
        if name in DEFAULT_COLUMNS:
            continue
        if not isinstance(f, dict) or "dtype" not in f:
            raise FormatError(f"{info_path}: feature '{name}' has no 'dtype'; expected a dict with dtype and shape")
        if f["dtype"] in ("image", "video"):
            src = _camera_source(name, f, f["dtype"])
        else:
            src = _numeric_source(name, f)
        if src is None:
            skipped.append(name)
            continue
        sources.append(_apply_sidecar(src, ours.get(name)))
    fps = info.get("fps")
    if not isinstance(fps, (int, float)) or fps <= 0:
        raise FormatError(f"{info_path}: field 'fps' is {fps!r}; expected a positive number")
    if not sources:
        raise FormatError(f"{info_path}: no feature demoforge can import (skipped {skipped})")
    spec = DatasetSpec(fps=fps, features={s.name: s.feature for s in sources}, robot_type=info.get("robot_type"))
    return spec.validated(f"{info_path} features"), sources, skipped


def fit_camera(image: np.ndarray, src: Source) -> np.ndarray:
    f = src.feature
    if f.kind == "image":
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        return image[..., :3].astype(np.uint8, copy=False)
    if image.ndim == 3:
        image = image[..., 0]
    return image.astype(f.dtype, copy=False)
