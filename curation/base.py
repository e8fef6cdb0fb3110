"""What a curation pass is: a per-episode map (``score``) and a dataset reduce (``reduce``).

A pass is a small object with a ``name``, a ``version`` and frozen ``params`` (a dataclass). The runner
(``curation.runner``) reads each episode once, hands it to every pass's ``score`` (in a process pool
locally; on Dask later, unchanged: ``score`` is pure and picklable, holds no global state and does no
I/O), collects the ``EpisodeResult`` objects and calls ``reduce`` once. The catalog stores the final
per-episode scores and flags keyed by pass name, version and a hash of the parameters, so a re-run is
reproducible and a stale score is visible.

A pass that needs a model fitted on part of the data first (compatibility's base policy) also has
``fit(episodes, spec)``; the runner calls it in the parent process before the map.

Every flag points at the frames that caused it (``[start, stop)`` ranges), so the dashboard can shade
them and an operator can see why.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from toolkit.episode import Episode
from toolkit.scores import json_default
from toolkit.spec import DatasetSpec

Scalar = float | int | bool | str | None


@dataclass
class Flag:
    """Something wrong with an episode: which frames (``[start, stop)`` ranges) and why, in one line."""

    frames: list[list[int]]
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"frames": [[int(a), int(b)] for a, b in self.frames], "detail": self.detail}


@dataclass
class EpisodeResult:
    """One pass's verdict on one episode.

    ``scores`` become catalog columns named ``<pass>.<key>`` (numbers, booleans or short strings);
    ``flags`` are named problems with frame ranges; ``payload`` is whatever the reduce needs from this
    episode (small numpy arrays, descriptors). The payload is never stored.
    """

    id: str
    scores: dict[str, Scalar] = field(default_factory=dict)
    flags: dict[str, Flag] = field(default_factory=dict)
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass
class Finding:
    """A dataset-level conclusion worth a person's attention, with what to do about it."""

    severity: str  # "high", "medium", "low", "info"
    title: str  # one line: what was found
    detail: str = ""  # the numbers behind it
    fix: str = ""  # what would fix it (collect this, augment that)
    episodes: list[str] = field(default_factory=list)  # the episodes concerned, if any

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class DatasetResult:
    """A pass's reduce output: final per-episode results (the reduce may add scores and flags, e.g. a
    length outlier or a near duplicate, which need the whole dataset), dataset-level numbers for the
    report (JSON-friendly), and findings."""

    episodes: dict[str, EpisodeResult]
    summary: dict[str, Any] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)


@runtime_checkable
class Pass(Protocol):
    name: ClassVar[str]
    version: ClassVar[str]
    params: Any  # a frozen dataclass

    def features(self, spec: DatasetSpec) -> list[str]:
        """The features ``score`` needs loaded (the runner reads only these)."""

    def score(self, episode: Episode, spec: DatasetSpec) -> EpisodeResult:
        """Per-episode map: pure, no I/O, deterministic."""

    def reduce(self, results: list[EpisodeResult], spec: DatasetSpec) -> DatasetResult:
        """Dataset reduce over every episode's result (in id order)."""


def params_dict(params: Any) -> dict[str, Any]:
    """A pass's parameters as plain JSON values."""
    return json.loads(json.dumps(dataclasses.asdict(params), default=json_default))


def params_hash(params: Any) -> str:
    """A short stable hash of the parameters (first 12 hex digits of SHA-256 over sorted JSON)."""
    text = json.dumps(params_dict(params), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def ranges(mask: np.ndarray, min_length: int = 1) -> list[list[int]]:
    """``[start, stop)`` ranges of the True runs in a 1-D boolean mask, keeping runs of ``min_length``+."""
    padded = np.concatenate([[False], np.asarray(mask, bool), [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [[int(a), int(b)] for a, b in zip(edges[::2], edges[1::2]) if b - a >= min_length]


def features_of_kind(spec: DatasetSpec, kind: str) -> list[str]:
    """Names of the spec's features of one kind (``state``, ``action``, ``image``, ``mask`` ...)."""
    return [name for name, f in spec.features.items() if f.kind == kind]


def state_action(episode: Episode, spec: DatasetSpec) -> tuple[np.ndarray, np.ndarray]:
    """The episode's state and action as float64 (T, ds) and (T, da), concatenating features of each kind
    in spec order ((T, 0) when a kind is absent)."""
    def stack(kind: str) -> np.ndarray:
        parts = [_rows(np.asarray(episode.data[n], np.float64), episode.length)
                 for n in features_of_kind(spec, kind) if n in episode.data]
        return np.concatenate(parts, axis=1) if parts else np.zeros((episode.length, 0))
    return stack("state"), stack("action")


def _rows(array: np.ndarray, length: int) -> np.ndarray:
    """(T, ...) -> (T, D); also for T = 0, where ``reshape(0, -1)`` is ambiguous."""
    return array.reshape(length, int(np.prod(array.shape[1:], dtype=int)))


def column_names(spec: DatasetSpec, kind: str) -> list[str]:
    """Names of the stacked columns of ``kind`` (as ``state_action`` stacks them): each feature's
    ``names`` when they fit its size, else ``<feature>.<i>``."""
    names: list[str] = []
    for feature in features_of_kind(spec, kind):
        f = spec.features[feature]
        size = int(np.prod(f.shape)) if f.shape else 1
        given = list(f.names or [])
        names += given if len(given) == size else [f"{feature}.{i}" for i in range(size)]
    return names


def position_columns(spec: DatasetSpec) -> list[int]:
    """Columns of the stacked state holding the end-effector position (names ``ee.x/y/z``, ``x/y/z``
    or ending in ``.x/.y/.z``); the first three state columns when no names say."""
    names = column_names(spec, "state")
    found = []
    for axis in ("x", "y", "z"):
        for i, n in enumerate(names):
            if n in (f"ee.{axis}", axis, f"eef_pos.{axis}") or n.endswith(f"ee.{axis}"):
                found.append(i)
                break
    return found if len(found) == 3 else list(range(min(3, len(names))))


def gripper_column(spec: DatasetSpec, kind: str = "action") -> int | None:
    """Column of the stacked ``kind`` features named ``gripper`` (None when there is none)."""
    for i, n in enumerate(column_names(spec, kind)):
        if "gripper" in n:
            return i
    return None


def load_for(passes: Iterable[Pass], spec: DatasetSpec) -> list[str]:
    """Union of the features the passes need, in spec order."""
    wanted = {f for p in passes for f in p.features(spec)}
    return [name for name in spec.features if name in wanted]
