"""The dataset spec: control rate, robot type and the per-step features every episode holds.

Feature names follow LeRobot's conventions (``observation.state``, ``action``,
``observation.images.<camera>``) so an export needs no renaming. The JSON form is defined by
``schemas/dataset_spec.schema.json``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from toolkit.errors import SpecMismatch
from toolkit.validation import validate

Kind = Literal["state", "action", "image", "depth", "pointcloud", "mask", "scalar", "text"]
CAMERA_KINDS = ("image", "depth", "mask")


@dataclass(frozen=True)
class Feature:
    """One per-step array: ``shape`` is one step's shape, the stored array is ``(T, *shape)``."""

    dtype: str
    shape: tuple[int, ...]
    kind: Kind
    names: tuple[str, ...] | None = None
    description: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"dtype": self.dtype, "shape": list(self.shape), "kind": self.kind}
        if self.names is not None:
            out["names"] = list(self.names)
        if self.description:
            out["description"] = self.description
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Feature:
        names = data.get("names")
        return cls(
            dtype=data["dtype"],
            shape=tuple(int(s) for s in data["shape"]),
            kind=data["kind"],
            names=None if names is None else tuple(names),
            description=data.get("description"),
        )

    @property
    def numpy_dtype(self) -> np.dtype:
        return np.dtype(object) if self.dtype == "string" else np.dtype(self.dtype)

    @property
    def is_continuous(self) -> bool:
        """Floating-point features, where NaN and inf can appear."""
        return self.dtype in ("float32", "float64")


@dataclass(frozen=True)
class DatasetSpec:
    """fps, robot type and features (name -> Feature), plus optional camera calibration."""

    fps: float
    features: dict[str, Feature]
    robot_type: str | None = None
    cameras: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "fps": self.fps,
            "robot_type": self.robot_type,
            "features": {name: f.to_dict() for name, f in self.features.items()},
        }
        if self.cameras:
            out["cameras"] = self.cameras
        return out

    @classmethod
    def from_dict(cls, data: Any, source: str = "dataset spec") -> DatasetSpec:
        """Parse and validate against ``schemas/dataset_spec.schema.json``; ``source`` names the file in errors."""
        validate(data, "dataset_spec", source)
        return cls(
            fps=data["fps"],
            robot_type=data.get("robot_type"),
            features={name: Feature.from_dict(f) for name, f in data["features"].items()},
            cameras=data.get("cameras") or {},
        )

    def validated(self, source: str = "dataset spec") -> DatasetSpec:
        """This spec after a round trip through its schema (raises ``SchemaError`` when invalid)."""
        return DatasetSpec.from_dict(self.to_dict(), source)

    def subset(self, names: Iterable[str]) -> DatasetSpec:
        """This spec with only the features in ``names`` (and their camera entries), in spec order."""
        keep = set(names)
        return DatasetSpec(
            fps=self.fps,
            robot_type=self.robot_type,
            features={n: f for n, f in self.features.items() if n in keep},
            cameras={n: c for n, c in self.cameras.items() if n in keep},
        )

    def of_kind(self, *kinds: str) -> list[str]:
        """Names of the features of the given kinds, in spec order."""
        return [name for name, f in self.features.items() if f.kind in kinds]

    def check_compatible(self, other: DatasetSpec, what: str) -> None:
        """Raise ``SpecMismatch`` unless ``other`` has the same fps and features (names, dtypes, shapes)."""
        if self.fps != other.fps:
            raise SpecMismatch(f"{what}: fps {other.fps} does not match the store's fps {self.fps}")
        mine, theirs = set(self.features), set(other.features)
        if mine != theirs:
            missing, extra = sorted(mine - theirs), sorted(theirs - mine)
            raise SpecMismatch(f"{what}: features differ (missing {missing}, unexpected {extra})")
        for name, f in self.features.items():
            g = other.features[name]
            if (f.dtype, f.shape, f.kind) != (g.dtype, g.shape, g.kind):
                raise SpecMismatch(
                    f"{what}: feature '{name}' is {g.kind} {g.dtype}{list(g.shape)}, "
                    f"the store expects {f.kind} {f.dtype}{list(f.shape)}"
                )
