"""An episode: per-step arrays (time on axis 0) plus metadata.

The metadata's JSON form is defined by ``schemas/episode_meta.schema.json``; ``EpisodeMeta`` is its
typed mirror. ``check_episode`` is the one place that decides whether arrays fit a dataset spec.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from toolkit.errors import SpecMismatch
from toolkit.spec import DatasetSpec
from toolkit.validation import validate

FactorValue = str | int | float | bool | None


@dataclass
class EpisodeMeta:
    """What an episode is about; see ``schemas/episode_meta.schema.json`` for each field."""

    task: str
    operator: str | None = None
    success: bool | None = None
    factors: dict[str, FactorValue] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    provenance: dict[str, Any] | None = None
    origin: dict[str, Any] | None = None
    timing: dict[str, Any] | None = None
    flags: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form; empty optional fields are left out."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None and f.name not in ("task",):
                continue
            if isinstance(value, (dict, list)) and not value:
                continue
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Any, source: str = "episode metadata") -> EpisodeMeta:
        """Parse and validate; ``source`` names the file or episode in errors."""
        validate(data, "episode_meta", source)
        return cls(**data)

    def validated(self, source: str = "episode metadata") -> EpisodeMeta:
        return EpisodeMeta.from_dict(self.to_dict(), source)


@dataclass
class Episode:
    """Per-step arrays keyed by feature name, all of the same length, and their metadata."""

    data: dict[str, np.ndarray]
    meta: EpisodeMeta
    id: str | None = None

    @property
    def length(self) -> int:
        return len(next(iter(self.data.values()))) if self.data else 0


def _ranges(mask: np.ndarray) -> list[list[int]]:
    """[start, end) ranges of the True runs in a 1-D boolean mask."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [[int(a), int(b)] for a, b in zip(edges[::2], edges[1::2])]


def nonfinite_frames(array: np.ndarray) -> list[list[int]]:
    """Frame ranges where any value of a float array is NaN or inf (empty for other dtypes)."""
    if array.dtype.kind != "f" or array.size == 0:
        return []
    bad = ~np.isfinite(array.reshape(len(array), -1)).all(axis=1)
    return _ranges(bad)


NonFinitePolicy = Literal["flag", "refuse"]


def check_episode(episode: Episode, spec: DatasetSpec, where: str, nonfinite: NonFinitePolicy = "flag") -> Episode:
    """Check arrays against ``spec`` and metadata against its schema; return the episode ready to store.

    Raises ``SpecMismatch`` for a missing or unexpected feature, a wrong dtype or step shape, or
    arrays of different lengths. NaN/inf in state or action features are flagged in
    ``meta.flags['nonfinite']`` with their frame ranges, or refused when ``nonfinite='refuse'``.
    """
    missing = [n for n in spec.features if n not in episode.data]
    extra = [n for n in episode.data if n not in spec.features]
    if missing or extra:
        raise SpecMismatch(f"{where}: features differ from the spec (missing {missing}, unexpected {extra})")
    lengths = {name: len(a) for name, a in episode.data.items()}
    if len(set(lengths.values())) != 1:
        raise SpecMismatch(f"{where}: features have different lengths {lengths}; time must be axis 0 of every array")
    if episode.length == 0:
        raise SpecMismatch(f"{where}: the episode has no frames")
    data: dict[str, np.ndarray] = {}
    for name, f in spec.features.items():
        array = np.asarray(episode.data[name])
        if f.dtype == "string":
            if array.dtype.kind not in "UO":
                raise SpecMismatch(f"{where}: feature '{name}' must hold strings, got dtype {array.dtype}")
            array = array.astype(object)
        elif array.dtype != f.numpy_dtype:
            raise SpecMismatch(f"{where}: feature '{name}' has dtype {array.dtype}, the spec expects {f.dtype}")
        if tuple(array.shape[1:]) != f.shape:
            raise SpecMismatch(
                f"{where}: feature '{name}' has step shape {list(array.shape[1:])}, the spec expects {list(f.shape)}"
            )
        data[name] = array
    meta = episode.meta.validated(f"{where} metadata")
    bad = {n: nonfinite_frames(data[n]) for n, f in spec.features.items() if f.kind in ("state", "action", "scalar")}
    bad = {n: r for n, r in bad.items() if r}
    if bad:
        if nonfinite == "refuse":
            name, ranges = next(iter(bad.items()))
            raise SpecMismatch(f"{where}: feature '{name}' holds NaN or inf in frames {ranges} (refused by policy)")
        frames = sorted(r for ranges in bad.values() for r in ranges)
        meta.flags = {**meta.flags, "nonfinite": {"frames": frames, "detail": f"NaN or inf in {sorted(bad)}"}}
    return Episode(data=data, meta=meta, id=episode.id)
