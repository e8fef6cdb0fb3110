"""The diversity pass: how much of the space of situations and behaviours a dataset covers, and what each
episode adds to it.

Components (each computed over the *distinct* episodes: exact copies count once, see "Duplicates"):

- **Factors** (Xie et al. 2023, Factor World; Lin et al. 2025). For every factor of variation in
  ``meta.factors``: coverage (values seen / values possible) and the normalised entropy of its values,
  ``H = -sum_v p(v) log p(v) / log K`` in [0, 1], the D3IL behaviour entropy (Jia et al. 2024) applied to
  factor values instead of behaviours. ``K`` is the declared domain (``DiversityParams.domains``) or, when
  none is declared, the values seen; continuous factors are cut into ``factor_bins`` equal bins over the
  declared or observed range. A factor with one value scores 0.
- **Factor pairs** (Lin et al.: environment-object pairs). For each pair of factors that vary, which
  value combinations occur (``pair_coverage`` is the mean share of cells covered; continuous factors are
  cut into ``pair_bins`` bins here). For pairs of categorical factors, a combination of observed values
  is reported missing when independence of the two factors, given their observed frequencies, would
  almost surely have produced it: ``(1 - p(a) p(b))^n < missing_alpha / cells tested`` (a Bonferroni
  bound), so a small dataset is not accused of missing what it could not have had. Pairs with a binned
  continuous factor report their coverage only: their many cells would turn chance gaps into findings.
- **State-action coverage, SACo** (Schweighofer et al. 2022). Every dimension of state ⊕ action is cut
  into ``saco_bins`` (100, as in the paper's code) equal bins between its min and max over the dataset,
  and the distinct cells are counted exactly (the paper's code uses HyperLogLog; datasets here are
  small). The paper normalises by a reference dataset; we use the pooled dataset as the reference, so the
  dataset SACo is 1 by construction and we report the cell count, the cells per step, and per operator
  and per episode the share of the pooled cells. Departure: a dimension whose range is under
  ``saco_bins * saco_min_width`` is binned at ``saco_min_width``, so numerical noise in a nearly
  constant dimension (a fixed wrist roll) does not pass for coverage. In many dimensions at 100 bins
  nearly every step is its own cell; lower ``saco_bins`` for a coarser notion of coverage.
- **Trajectories**. Each end-effector path is resampled to ``path_points`` points (by arc length, so
  speed and pauses do not count as different behaviour; ``path_by="time"`` keeps them) and compared by
  the RMS distance between corresponding points, in metres: a cheap stand-in for DTW, which at 1000
  episodes is half a million 32 x 32 alignments. Reported as the mean pairwise distance ``spread``; the
  diversity component is ``1 - exp(-spread / path_scale)``.
- **Visual** (only with ``images=True``). A descriptor per episode (``curation.descriptors``: a
  deterministic colour-histogram + thumbnail descriptor, or a pretrained network when it is installed
  and cached) and the mean pairwise cosine distance, in [0, 1].

Headline: ``diversity`` is the mean of the factor entropy, the trajectory component and (with images) the
visual component. Pair coverage and SACo are reported beside it but not averaged in: pair coverage falls
with every new factor value until enough episodes arrive (it measures sample size as much as
diversity), and SACo against the pooled reference is 1 by construction.

Per episode: ``contribution`` is the leave-one-out drop of the headline, computed in O(n) per component
from counts and row sums rather than by re-running the reduce, and exact except that continuous factors
keep their bin edges. Negative means the headline rises without the episode: it is over-represented.
``novelty`` is the path distance to the nearest other episode (the term an episode adds to a
nearest-neighbour entropy estimate), ``saco_unique`` the state-action cells only it covers (its exact
leave-one-out drop of the SACo count), ``factor_unique`` the factor values and value pairs only it has.

Score keys (catalog columns ``diversity.<key>``): ``contribution``, ``novelty`` (m), ``saco`` (the
episode's cells / the pooled cells), ``saco_unique``, ``factor_unique``, ``duplicate_of`` (the first copy's
id, or None), and ``visual_novelty`` (nearest cosine distance) with images. Summary keys: ``headline``,
``diversity``, ``factor_entropy``, ``trajectory_diversity``, ``visual_diversity``, ``components``,
``factors`` (per factor: kind, values, covered, coverage, entropy, effective_values = exp(H), counts or
range and bins), ``pair_coverage``, ``pairs``, ``pairs_missing``, ``saco``, ``trajectory``, ``visual``,
``episodes``, ``distinct_episodes``, ``duplicates``.

Departures from D3IL: its entropy is over behaviours of *successful* rollouts; ours is over factor values
of every episode (a failed demonstration still shows its scene to the learner), and behaviour enters
through the trajectory component rather than through discrete behaviour labels.

Duplicates: episodes with identical state, action, task and factors are exact copies; the dataset numbers
are computed once per distinct episode, so adding copies never changes them, and every copy (the first
included) gets ``contribution``, ``novelty``, ``saco_unique`` and ``factor_unique`` of 0, since removing
any one copy loses nothing. Images are not compared for this: a re-encoded JPEG differs in its bytes.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np

from curation import descriptors
from curation.base import (DatasetResult, EpisodeResult, Finding, features_of_kind, position_columns,
                           state_action)
from curation.probes import entropy_of_counts
from toolkit.episode import Episode
from toolkit.errors import DemoforgeError
from toolkit.spec import DatasetSpec

FactorValue = str | int | float | bool
_CHUNK = 1024  # rows per block of the pairwise distance matrices: memory stays O(chunk * n)
_MAX_LISTED = 20  # missing combinations listed per pair in the summary


# ------------------------------------------------------------------------------------------ params
@dataclass(frozen=True)
class DiversityParams:
    """Parameters of the diversity pass.

    ``factors``: the factors to consider (empty: every factor in ``meta.factors`` except
    ``exclude_factors``, which by default drops the seed, an id rather than a factor of variation).
    ``domains``: the values a categorical factor can take (``{"object_colour": ("red", "blue")}`` or the
    equivalent tuple of pairs), so coverage can say "1 of 5"; ``ranges``: the range a continuous factor
    can span (``{"table_height": (0.7, 0.8)}``). Without them the observed values and range are the domain.
    ``factor_bins`` (8): bins of a continuous factor for entropy and coverage: enough to see a gap, few
    enough that a hundred episodes fill them. ``pair_bins`` (3: low, middle, high) for factor pairs.
    ``missing_alpha`` (0.01): family-wise error of the missing-combination test.
    ``saco_bins`` (100, the paper's code), ``saco_min_width`` (1e-4 in the features' units) and
    ``saco_rows`` (256 evenly spaced steps kept per episode, so the payload stays small).
    ``path_points`` (32), ``path_by`` (``arclength`` or ``time``), ``path_scale`` (0.1 m: the spread at
    which the trajectory component reaches 1 - 1/e; tabletop paths spread 0.15-0.2 m) and
    ``near_duplicate`` (5 mm: an episode whose path is closer than this to another's, with the same
    categorical factors, is listed in a "nearly repeats" finding).
    ``images`` (off: reading every frame of a camera is most of the cost of a run), ``camera`` (a camera
    or image feature name; the first image feature when None), ``image_frames`` (3 frames per episode),
    ``descriptor`` (``auto``, ``lightweight`` or ``pretrained``, see ``curation.descriptors``).
    """

    factors: tuple[str, ...] = ()
    exclude_factors: tuple[str, ...] = ("seed",)
    domains: Any = ()  # Mapping[str, Sequence[value]] or tuple of (name, values) pairs; stored as the latter
    ranges: Any = ()  # Mapping[str, (lo, hi)] or tuple of (name, (lo, hi)); stored as the latter
    factor_bins: int = 8
    pair_bins: int = 3
    missing_alpha: float = 0.01
    saco_bins: int = 100
    saco_min_width: float = 1e-4
    saco_rows: int = 256
    path_points: int = 32
    path_by: str = "arclength"
    path_scale: float = 0.1
    near_duplicate: float = 0.005
    images: bool = False
    camera: str | None = None
    image_frames: int = 3
    descriptor: str = "auto"

    def __post_init__(self) -> None:
        # Mappings become sorted tuples so the parameters stay frozen, hashable and hash the same way.
        domains = self.domains.items() if isinstance(self.domains, Mapping) else self.domains
        ranges = self.ranges.items() if isinstance(self.ranges, Mapping) else self.ranges
        object.__setattr__(self, "domains", tuple(sorted((str(k), tuple(v)) for k, v in domains)))
        object.__setattr__(self, "ranges", tuple(sorted((str(k), (float(v[0]), float(v[1]))) for k, v in ranges)))
        object.__setattr__(self, "factors", tuple(self.factors))
        object.__setattr__(self, "exclude_factors", tuple(self.exclude_factors))
        for name in ("factor_bins", "pair_bins", "saco_bins", "saco_rows", "path_points", "image_frames"):
            if int(getattr(self, name)) < 1:
                raise DemoforgeError(f"DiversityParams.{name}: expected a positive integer, "
                                     f"got {getattr(self, name)!r}")
        for name in ("path_scale", "saco_min_width", "missing_alpha"):
            if not float(getattr(self, name)) > 0:
                raise DemoforgeError(f"DiversityParams.{name}: expected a positive number, got {getattr(self, name)!r}")
        if self.path_by not in ("arclength", "time"):
            raise DemoforgeError(f"DiversityParams.path_by: expected 'arclength' or 'time', got {self.path_by!r}")
        if self.descriptor not in descriptors.KINDS:
            raise DemoforgeError(f"DiversityParams.descriptor: expected one of {', '.join(descriptors.KINDS)}, "
                                 f"got {self.descriptor!r}")
        for name, (lo, hi) in self.ranges:
            if not hi > lo:
                raise DemoforgeError(f"DiversityParams.ranges[{name!r}]: expected lo < hi, got ({lo}, {hi})")


# ------------------------------------------------------------------------------------ per episode
def resample_path(points: np.ndarray, count: int, by: str = "arclength") -> np.ndarray:
    """``count`` points along a (T, 3) path, evenly spaced in arc length (or in time), float32.

    A path that never moves (zero length) is resampled in time, i.e. repeated.
    """
    points = np.asarray(points, np.float64)
    points = points[np.isfinite(points).all(axis=1)]
    if len(points) == 0:
        return np.zeros((count, points.shape[1] if points.ndim == 2 else 3), np.float32)
    if len(points) == 1:
        return np.repeat(points, count, axis=0).astype(np.float32)
    t = np.arange(len(points), dtype=np.float64)
    if by == "arclength":
        step = np.linalg.norm(np.diff(points, axis=0), axis=1)
        if step.sum() > 0:
            t = np.concatenate([[0.0], np.cumsum(step)])
    grid = np.linspace(t[0], t[-1], count)
    return np.stack([np.interp(grid, t, points[:, k]) for k in range(points.shape[1])], axis=1).astype(np.float32)


def _scalar_factors(factors: Mapping[str, Any], exclude: Sequence[str]) -> dict[str, FactorValue]:
    return {k: v for k, v in factors.items() if k not in exclude and isinstance(v, (str, int, float, bool))
            and not (isinstance(v, float) and not math.isfinite(v))}


def _fingerprint(episode: Episode, spec: DatasetSpec) -> str:
    """Hash of the state and action bytes, task and factors: equal for exact copies of an episode."""
    h = hashlib.blake2b(digest_size=16)
    for name in (*features_of_kind(spec, "state"), *features_of_kind(spec, "action")):
        if name in episode.data:
            array = np.ascontiguousarray(episode.data[name])
            h.update(name.encode() + str(array.dtype).encode() + str(array.shape).encode())
            h.update(array.tobytes())
    h.update(json.dumps([episode.meta.task, episode.meta.factors], sort_keys=True, default=str).encode())
    return h.hexdigest()


def _even_rows(rows: np.ndarray, limit: int) -> np.ndarray:
    if len(rows) <= limit:
        return rows
    return rows[np.linspace(0, len(rows) - 1, limit).round().astype(np.int64)]


# ----------------------------------------------------------------------------------------- the pass
class DiversityPass:
    """Factor coverage and entropy, factor-pair coverage, SACo, trajectory and visual diversity, and
    each episode's leave-one-out contribution (see the module docstring for the definitions)."""

    name = "diversity"
    version = "1"

    def __init__(self, params: DiversityParams | None = None, **overrides: Any) -> None:
        if params is not None and overrides:
            raise TypeError("DiversityPass: give params or keyword overrides, not both")
        self.params = params if params is not None else DiversityParams(**overrides)
        # Resolved once, in the parent process, so every worker describes images the same way.
        self.descriptor, self.descriptor_note = (descriptors.resolve(self.params.descriptor)
                                                 if self.params.images else ("none", "images off"))

    def image_feature(self, spec: DatasetSpec) -> str:
        """The image feature the visual descriptor reads (``camera`` as a camera or feature name)."""
        images = features_of_kind(spec, "image")
        camera = self.params.camera
        if camera is None:
            if not images:
                raise DemoforgeError("DiversityParams.images: the dataset spec has no image feature")
            return images[0]
        for name in (camera, f"observation.images.{camera}"):
            if name in images:
                return name
        raise DemoforgeError(f"DiversityParams.camera: no image feature {camera!r} (image features: {images})")

    def features(self, spec: DatasetSpec) -> list[str]:
        names = features_of_kind(spec, "state") + features_of_kind(spec, "action")
        return names + ([self.image_feature(spec)] if self.params.images else [])

    def score(self, episode: Episode, spec: DatasetSpec) -> EpisodeResult:
        """The payload the reduce needs: factors, resampled path, state-action rows, image descriptor.

        Scores are set in the reduce: every one of them compares the episode with the rest.
        """
        p = self.params
        state, action = state_action(episode, spec)
        rows = np.concatenate([state, action], axis=1)
        rows = rows[np.isfinite(rows).all(axis=1)]
        cols = position_columns(spec)
        payload: dict[str, Any] = {
            "length": episode.length,
            "fingerprint": _fingerprint(episode, spec),
            "factors": _scalar_factors(episode.meta.factors, p.exclude_factors),
            "operator": episode.meta.operator,
            "path": resample_path(state[:, cols], p.path_points, p.path_by) if cols else None,  # no state: no path
            "sa": _even_rows(rows, p.saco_rows).astype(np.float32),
        }
        if p.images:
            frames = np.asarray(episode.data[self.image_feature(spec)])
            payload["image"] = descriptors.describe(frames[descriptors.frame_indices(len(frames), p.image_frames)],
                                                    self.descriptor)
        return EpisodeResult(id=str(episode.id), payload=payload)

    def reduce(self, results: list[EpisodeResult], spec: DatasetSpec) -> DatasetResult:
        return _Reduction(self, results).run()


# ------------------------------------------------------------------------------------------ factors
@dataclass
class _Factor:
    """One factor over the distinct episodes: integer codes (-1 = absent) into ``labels``."""

    name: str
    kind: str  # "categorical" or "continuous"
    codes: np.ndarray
    labels: list[str]
    declared: bool
    pair_codes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    pair_labels: list[str] = field(default_factory=list)
    range: tuple[float, float] | None = None
    outside: int = 0  # values outside a declared range (clipped into the end bins)

    @property
    def size(self) -> int:
        return len(self.labels)

    def counts(self) -> np.ndarray:
        return np.bincount(self.codes[self.codes >= 0], minlength=self.size)


def _label(value: FactorValue) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _categorical(name: str, values: list[Any], domain: tuple[Any, ...] | None) -> _Factor:
    # Keys go through JSON so True and 1, or 1 and 1.0, stay distinct values.
    order: dict[str, str] = {}
    for v in domain or ():
        order.setdefault(json.dumps(v), _label(v))
    seen = sorted({json.dumps(v): v for v in values if v is not None}.items(),
                  key=lambda kv: (type(kv[1]).__name__, kv[1]))
    for key, v in seen:
        order.setdefault(key, _label(v))
    index = {key: i for i, key in enumerate(order)}
    codes = np.array([-1 if v is None else index[json.dumps(v)] for v in values], np.int64)
    factor = _Factor(name, "categorical", codes, list(order.values()), declared=domain is not None)
    factor.pair_codes, factor.pair_labels = codes, factor.labels
    return factor


def _binned(values: np.ndarray, lo: float, hi: float, bins: int) -> np.ndarray:
    codes = np.floor((values - lo) / (hi - lo) * bins)
    return np.where(np.isfinite(values), np.clip(codes, 0, bins - 1), -1).astype(np.int64)


def _bin_labels(lo: float, hi: float, bins: int) -> list[str]:
    edges = np.linspace(lo, hi, bins + 1)
    return [f"[{a:.4g}, {b:.4g}{']' if i == bins - 1 else ')'}" for i, (a, b) in enumerate(zip(edges[:-1], edges[1:]))]


def _continuous(name: str, values: list[Any], declared: tuple[float, float] | None, bins: int,
                pair_bins: int) -> _Factor:
    x = np.array([np.nan if v is None else float(v) for v in values], np.float64)
    finite = x[np.isfinite(x)]
    lo, hi = declared if declared else ((float(finite.min()), float(finite.max())) if len(finite) else (0.0, 0.0))
    if not hi > lo:  # a constant continuous factor has one value, not `bins` empty bins
        codes = np.where(np.isfinite(x), 0, -1).astype(np.int64)
        factor = _Factor(name, "continuous", codes, [f"{lo:.4g}"], declared=False, range=(lo, hi))
        factor.pair_codes, factor.pair_labels = codes, factor.labels
        return factor
    factor = _Factor(name, "continuous", _binned(x, lo, hi, bins), _bin_labels(lo, hi, bins),
                     declared=declared is not None, range=(lo, hi))
    factor.outside = int(((finite < lo) | (finite > hi)).sum())
    factor.pair_codes, factor.pair_labels = _binned(x, lo, hi, pair_bins), _bin_labels(lo, hi, pair_bins)
    return factor


def _is_continuous(values: list[Any]) -> bool:
    return any(isinstance(v, float) for v in values) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in values if v is not None)


def _norm_entropy(counts: np.ndarray, size: int) -> float:
    """Entropy of the counts divided by log(size): 1 for uniform use of ``size`` values, 0 for one value."""
    if counts.sum() == 0 or size <= 1:
        return 0.0
    return entropy_of_counts(counts) / float(np.log(size))


def _entropy_without(factor: _Factor, counts: np.ndarray) -> np.ndarray:
    """Normalised entropy with one episode of each value removed (indexed by code)."""
    out = np.empty(factor.size)
    for code in range(factor.size):
        if counts[code] == 0:
            out[code] = np.nan
            continue
        fewer = counts.copy()
        fewer[code] -= 1
        # An undeclared categorical domain is the values seen: removing a value's only episode shrinks it.
        size = factor.size if factor.declared or factor.kind == "continuous" else int((fewer > 0).sum())
        out[code] = _norm_entropy(fewer, size)
    return out


@dataclass
class _Gap:
    """An empty combination (code ``i`` of factor ``a``, ``j`` of ``b``), the episodes independence
    predicts there and the probability that it stays empty by chance."""

    a: _Factor
    b: _Factor
    i: int
    j: int
    expected: float
    p_empty: float


# ----------------------------------------------------------------------------------------- reduce
def _pairwise(x: np.ndarray, metric: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row sums, nearest-neighbour distance and index of all pairwise distances between rows of ``x``,
    in blocks of ``_CHUNK`` rows (``euclidean``, or ``cosine`` for unit rows). Needs two or more rows."""
    n = len(x)
    sq = (x * x).sum(axis=1)
    sums, nn, nn_index = np.zeros(n), np.full(n, np.inf), np.zeros(n, np.int64)
    for start in range(0, n, _CHUNK):
        block = slice(start, min(start + _CHUNK, n))
        gram = x[block] @ x.T
        if metric == "cosine":
            d = np.clip(1.0 - gram, 0.0, 2.0)
        else:
            d = np.sqrt(np.clip(sq[block, None] + sq[None, :] - 2.0 * gram, 0.0, None))
        rows = np.arange(block.start, block.stop)
        d[rows - start, rows] = 0.0
        sums[block] = d.sum(axis=1)
        d[rows - start, rows] = np.inf
        nn_index[block] = d.argmin(axis=1)
        nn[block] = d[rows - start, nn_index[block]]
    return sums, nn, nn_index


class _Reduction:
    """One reduce: the distinct episodes, each component, then the per-episode scores and findings."""

    def __init__(self, owner: DiversityPass, results: list[EpisodeResult]) -> None:
        self.p = owner.params
        self.descriptor, self.descriptor_note = owner.descriptor, owner.descriptor_note
        self.results = results
        self.summary: dict[str, Any] = {}
        self.findings: list[Finding] = []

    # -- duplicates ----------------------------------------------------------------------------
    def _dedupe(self) -> None:
        first: dict[str, int] = {}
        self.rep = np.zeros(len(self.results), np.int64)  # index of each episode's first copy
        for i, r in enumerate(self.results):
            self.rep[i] = first.setdefault(r.payload["fingerprint"], i)
        self.unique = np.array(sorted(first.values()), np.int64)
        self.copies = np.bincount(self.rep, minlength=len(self.results))  # > 1 at first copies of duplicates
        self.payloads = [self.results[i].payload for i in self.unique]

    # -- run -----------------------------------------------------------------------------------
    def run(self) -> DatasetResult:
        if not self.results:
            return DatasetResult(episodes={}, summary={"episodes": 0, "diversity": None})
        self._dedupe()
        n = len(self.unique)
        loo: dict[str, np.ndarray] = {}  # component -> its value without each distinct episode
        components: dict[str, float | None] = {}
        components["factor_entropy"], loo_f, factor_unique = self._factors()
        if loo_f is not None:
            loo["factor_entropy"] = loo_f
        pair_unique = self._pairs()
        saco_unique, saco_own = self._saco()
        components["trajectory_diversity"], loo_t, novelty, nn_index = self._trajectories()
        if loo_t is not None:
            loo["trajectory_diversity"] = loo_t
        components["visual_diversity"], loo_v, visual_novelty = self._visual()
        if loo_v is not None:
            loo["visual_diversity"] = loo_v
        used = [k for k, v in components.items() if v is not None]
        diversity = float(np.mean([components[k] for k in used])) if used else None
        without = (np.mean([loo[k] for k in used], axis=0) if used and n > 0 else np.zeros(n))
        contribution = (diversity - without) if diversity is not None else np.zeros(n)

        self.summary = {"headline": _headline(diversity, components, self.summary, len(self.results) - n),
                        "diversity": diversity, **components, "components": used, **self.summary}
        self.summary.update(episodes=len(self.results), distinct_episodes=n,
                            duplicates=int(len(self.results) - n))
        per_unique = {"contribution": contribution, "novelty": novelty, "saco": saco_own,
                      "saco_unique": saco_unique, "factor_unique": factor_unique + pair_unique}
        if visual_novelty is not None:
            per_unique["visual_novelty"] = visual_novelty
        episodes = self._episode_results(per_unique)
        self._finding_redundant(novelty, nn_index)
        return DatasetResult(episodes=episodes, summary=self.summary, findings=self.findings)

    # -- factors -------------------------------------------------------------------------------
    def _factor_names(self) -> list[str]:
        if self.p.factors:
            return list(self.p.factors)
        names: dict[str, None] = {}
        for payload in self.payloads:
            names.update(dict.fromkeys(payload["factors"]))
        return [k for k in names if k not in self.p.exclude_factors]

    def _build_factors(self) -> list[_Factor]:
        domains, ranges = dict(self.p.domains), dict(self.p.ranges)
        factors, absent = [], []
        for name in self._factor_names():
            values = [payload["factors"].get(name) for payload in self.payloads]
            if all(v is None for v in values) and name not in domains:
                absent.append(name)
                continue
            if name in domains or (name not in ranges and not _is_continuous(values)):
                factors.append(_categorical(name, values, domains.get(name)))
            else:
                factors.append(_continuous(name, values, ranges.get(name), self.p.factor_bins, self.p.pair_bins))
        if absent:  # asked for by name (a typo, or metadata that never recorded it)
            self.findings.append(Finding("info", f"factor(s) {', '.join(absent)} in no episode's metadata",
                                         "DiversityParams.factors names them but no episode has a value",
                                         "check the names against the catalog's factors.* columns"))
        return factors

    def _factors(self) -> tuple[float | None, np.ndarray | None, np.ndarray]:
        n = len(self.unique)
        self.factor_list = factors = self._build_factors()
        unique_values = np.zeros(n, np.int64)
        if not factors:
            self.summary["factors"] = {}
            return None, None, unique_values
        report, entropies, loo = {}, [], np.zeros(n)
        for f in factors:
            counts = f.counts()
            h = _norm_entropy(counts, f.size)
            entropies.append(h)
            without = _entropy_without(f, counts)
            loo += np.where(f.codes >= 0, without[np.maximum(f.codes, 0)], h)
            # A value held by one episode alone is lost with it.
            unique_values += (f.codes >= 0) & (counts[np.maximum(f.codes, 0)] == 1)
            report[f.name] = self._factor_report(f, counts, h)
            self._finding_factor(f, counts, h)
        self.summary["factors"] = report
        return float(np.mean(entropies)), loo / len(factors), unique_values

    def _factor_report(self, f: _Factor, counts: np.ndarray, h: float) -> dict[str, Any]:
        n = int(counts.sum())
        p = counts[counts > 0] / max(n, 1)
        out: dict[str, Any] = {
            "kind": f.kind, "values": f.size, "covered": int((counts > 0).sum()),
            "coverage": float((counts > 0).mean()) if f.size else 0.0, "entropy": h,
            "effective_values": float(np.exp(-(p * np.log(p)).sum())) if n else 0.0,
            "declared": f.declared, "episodes": n,
        }
        if f.kind == "categorical":
            out["counts"] = {label: int(c) for label, c in zip(f.labels, counts)}
        else:
            out["range"] = list(f.range) if f.range else None
            out["bins"] = [int(c) for c in counts]
            if f.outside:
                out["outside_range"] = f.outside
        return out

    def _finding_factor(self, f: _Factor, counts: np.ndarray, h: float) -> None:
        covered, n = int((counts > 0).sum()), int(counts.sum())
        missing = [label for label, c in zip(f.labels, counts) if c == 0]
        what = "values" if f.kind == "categorical" else "bins"
        if f.declared and missing:
            self.findings.append(Finding(
                "medium", f"factor {f.name} covers {covered} of {f.size} {what}",
                f"no episode has {f.name} in {', '.join(missing[:10])}; normalised entropy {h:.2f}",
                f"collect episodes with {f.name} = {', '.join(missing[:5])}"))
        elif f.size == 1 and n > 1:
            self.findings.append(Finding(
                "low", f"factor {f.name} takes one value ({f.labels[0]}) in all {n} episodes",
                "a policy trained on it has never seen this factor vary",
                f"collect episodes with other {f.name} values, or leave it out "
                "(DiversityParams.exclude_factors) if it is fixed by design"))
        elif f.kind == "continuous" and missing and n >= 5 * f.size:
            # With >= 5 episodes per bin expected, an empty bin inside the observed range is a gap, not chance.
            self.findings.append(Finding(
                "low", f"factor {f.name} has gaps: {len(missing)} of {f.size} bins empty",
                f"no episode has {f.name} in {', '.join(missing[:5])}",
                f"collect episodes with {f.name} in {missing[0]}"))
        elif f.kind == "categorical" and f.size > 1 and h < 0.5:
            top = int(np.argmax(counts))
            self.findings.append(Finding(
                "low", f"factor {f.name} is skewed: {counts[top] / n:.0%} of episodes have {f.labels[top]}",
                f"normalised entropy {h:.2f} over {f.size} values",
                f"collect more episodes with {f.name} other than {f.labels[top]}"))

    # -- pairs ---------------------------------------------------------------------------------
    def _pairs(self) -> np.ndarray:
        n = len(self.unique)
        varied = [f for f in self.factor_list if len(f.pair_labels) > 1 and (f.pair_codes >= 0).any()]
        unique_cells = np.zeros(n, np.int64)
        pairs, coverages, tests = [], [], []
        for a, b in combinations(varied, 2):
            both = (a.pair_codes >= 0) & (b.pair_codes >= 0)
            sa, sb = len(a.pair_labels), len(b.pair_labels)
            cell = np.where(both, a.pair_codes * sb + b.pair_codes, -1)
            counts = np.bincount(cell[both], minlength=sa * sb).reshape(sa, sb)
            coverages.append(float((counts > 0).mean()))
            unique_cells += both & (counts.ravel()[np.maximum(cell, 0)] == 1)
            entry: dict[str, Any] = {"factors": [a.name, b.name], "covered": int((counts > 0).sum()),
                                     "cells": sa * sb}
            if a.kind == "categorical" and b.kind == "categorical":
                # Only combinations of values that do occur: a value never seen is the factor's finding.
                ra, rb = counts.sum(axis=1), counts.sum(axis=0)
                empty = [(i, j) for i in range(sa) for j in range(sb) if counts[i, j] == 0 and ra[i] and rb[j]]
                entry["missing"] = [[a.pair_labels[i], b.pair_labels[j]] for i, j in empty[:_MAX_LISTED]]
                m = int(counts.sum())
                tests += [_Gap(a, b, i, j, ra[i] * rb[j] / m, (1.0 - ra[i] * rb[j] / m / m) ** m) for i, j in empty]
                entry["tested"] = int((ra > 0).sum() * (rb > 0).sum())
            pairs.append(entry)
        self.summary["pair_coverage"] = float(np.mean(coverages)) if coverages else None
        self.summary["pairs"] = pairs
        self._missing_pairs(tests, sum(e.get("tested", 0) for e in pairs))
        return unique_cells

    def _missing_pairs(self, tests: list[_Gap], tested: int) -> None:
        threshold = self.p.missing_alpha / max(tested, 1)
        unlikely = [g for g in tests if g.p_empty < threshold]
        self.summary["pairs_missing"] = [
            {"factors": [g.a.name, g.b.name], "values": [g.a.pair_labels[g.i], g.b.pair_labels[g.j]],
             "expected": round(float(g.expected), 2), "p_empty": float(g.p_empty)} for g in unlikely]
        grouped: dict[tuple[str, str], list[_Gap]] = {}
        for g in unlikely:
            grouped.setdefault((g.a.name, g.b.name), []).append(g)
        for (na, nb), group in grouped.items():
            combos = [f"({na}={g.a.pair_labels[g.i]}, {nb}={g.b.pair_labels[g.j]})" for g in group]
            expected = ", ".join(f"{g.expected:.1f}" for g in group[:5])
            self.findings.append(Finding(
                "medium", f"pairs missing: {', '.join(combos[:5])}{' ...' if len(combos) > 5 else ''}",
                f"{len(group)} combination(s) of {na} and {nb} never occur although independent factors would "
                f"give about {expected} episodes each; the two factors are tied, which a policy can exploit",
                f"collect {'; '.join(c.strip('()') for c in combos[:3])}"))

    # -- SACo ----------------------------------------------------------------------------------
    def _saco(self) -> tuple[np.ndarray, np.ndarray]:
        n = len(self.unique)
        parts = [payload["sa"] for payload in self.payloads]
        lengths = np.array([len(r) for r in parts], np.int64)
        if lengths.sum() == 0 or parts[0].shape[1] == 0:
            self.summary["saco"] = {"cells": 0, "steps": 0, "reference": "pooled"}
            return np.zeros(n, np.int64), np.zeros(n)
        rows = np.concatenate(parts).astype(np.float64)
        owner = np.repeat(np.arange(n), lengths)
        lo, hi = rows.min(axis=0), rows.max(axis=0)
        width = np.maximum((hi - lo) / self.p.saco_bins, self.p.saco_min_width)
        codes = np.clip(np.floor((rows - lo) / width), 0, self.p.saco_bins - 1).astype(np.int64)
        cell = _row_ids(codes)
        cells = int(cell.max()) + 1
        # Distinct (cell, episode) pairs: how many episodes visit each cell, which cells each visits.
        pair = np.unique(cell * n + owner)
        pair_cell, pair_owner = pair // n, pair % n
        visitors = np.bincount(pair_cell, minlength=cells)
        own = np.bincount(pair_owner, minlength=n)
        solo = np.bincount(pair_owner[visitors[pair_cell] == 1], minlength=n)
        self.summary["saco"] = {
            "cells": cells, "steps": int(len(rows)), "cells_per_step": cells / len(rows),
            "bins": self.p.saco_bins, "dimensions": int(rows.shape[1]), "reference": "pooled",
            "by_operator": self._saco_by_operator(cell, owner, cells),
        }
        return solo, own / cells

    def _saco_by_operator(self, cell: np.ndarray, owner: np.ndarray, cells: int) -> dict[str, float]:
        names = sorted({str(payload.get("operator")) for payload in self.payloads})
        group = np.array([names.index(str(payload.get("operator"))) for payload in self.payloads], np.int64)
        pair = np.unique(cell * len(names) + group[owner])  # distinct (cell, operator)
        share = np.bincount(pair % len(names), minlength=len(names)) / cells  # SACo, pooled reference
        return {name: float(s) for name, s in zip(names, share)}

    # -- trajectories --------------------------------------------------------------------------
    def _trajectories(self) -> tuple[float | None, np.ndarray | None, np.ndarray, np.ndarray]:
        n = len(self.unique)
        if n < 2 or any(payload["path"] is None for payload in self.payloads):
            self.summary["trajectory"] = {"spread_m": None}
            return None, None, np.zeros(n), np.zeros(n, np.int64)
        paths = np.stack([payload["path"] for payload in self.payloads]).astype(np.float64)
        x = paths.reshape(n, -1) / np.sqrt(paths.shape[1])  # Euclidean distance of rows = RMS point distance
        sums, nn, nn_index = _pairwise(x, "euclidean")
        total = sums.sum()
        spread = total / (n * (n - 1))
        # Without episode i the ordered pairs lose its row and column: 2 * sums[i].
        spread_without = (total - 2 * sums) / ((n - 1) * (n - 2)) if n > 2 else np.zeros(n)
        scale = self.p.path_scale
        self.summary["trajectory"] = {"spread_m": float(spread), "nearest_median_m": float(np.median(nn)),
                                      "points": int(paths.shape[1]), "by": self.p.path_by, "scale_m": scale}
        return float(1 - np.exp(-spread / scale)), 1 - np.exp(-spread_without / scale), nn, nn_index

    # -- visual --------------------------------------------------------------------------------
    def _visual(self) -> tuple[float | None, np.ndarray | None, np.ndarray | None]:
        n = len(self.unique)
        if not self.p.images:
            return None, None, None
        self.summary["visual"] = {"descriptor": self.descriptor, "note": self.descriptor_note}
        if n < 2:
            return None, None, np.zeros(n)
        v = np.stack([payload["image"] for payload in self.payloads]).astype(np.float64)
        v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        total = v.sum(axis=0)
        # Mean cosine similarity over ordered pairs i != j is (|sum v|^2 - n) / (n (n - 1)) for unit rows.
        similarity = (total @ total - n) / (n * (n - 1))
        if n > 2:
            rest = total[None, :] - v
            without = 1 - ((rest * rest).sum(axis=1) - (n - 1)) / ((n - 1) * (n - 2))
        else:
            without = np.zeros(n)
        _, nn, _ = _pairwise(v, "cosine")
        self.summary["visual"]["mean_cosine_distance"] = float(1 - similarity)
        return float(1 - similarity), without, nn

    # -- per episode ---------------------------------------------------------------------------
    def _episode_results(self, per_unique: dict[str, np.ndarray]) -> dict[str, EpisodeResult]:
        where = {int(i): k for k, i in enumerate(self.unique)}  # result index -> distinct index
        shared = {"saco"}  # the same for every copy; the rest is what removing one copy loses: nothing
        out = {}
        for i, r in enumerate(self.results):
            k = where[int(self.rep[i])]
            duplicated = self.copies[self.rep[i]] > 1
            scores: dict[str, Any] = {}
            for key, values in per_unique.items():
                value = values[k] if (key in shared or not duplicated) else 0
                scores[key] = int(value) if key in ("saco_unique", "factor_unique") else float(value)
            scores["duplicate_of"] = self.results[int(self.rep[i])].id if self.rep[i] != i else None
            out[r.id] = EpisodeResult(id=r.id, scores=scores)
        return out

    def _finding_redundant(self, novelty: np.ndarray, nn_index: np.ndarray) -> None:
        # Findings, not flags: the quality pass already flags near duplicates frame by frame.
        copies = [r.id for i, r in enumerate(self.results) if self.rep[i] != i]
        if copies:
            self.findings.append(Finding(
                "medium", f"{len(copies)} episode(s) are exact copies of others",
                "same state, action, task and factors; counted once in every diversity number, contribution 0",
                "drop the copies (they add weight to one situation, not diversity)", copies))
        near = self._near_duplicates(novelty, nn_index)
        if near:
            self.findings.append(Finding(
                "low", f"{len(near)} episode(s) nearly repeat another episode",
                f"end-effector path within {self.p.near_duplicate * 1000:.0f} mm (RMS) of another episode with the "
                "same categorical factors: " + ", ".join(f"{a} ~ {b}" for a, b in near[:5]),
                "drop them or re-collect them under new factor values", [later for later, _ in near]))

    def _near_duplicates(self, novelty: np.ndarray, nn_index: np.ndarray) -> list[tuple[str, str]]:
        n = len(self.unique)
        if n < 2:
            return []
        categorical = [f.codes for f in self.factor_list if f.kind == "categorical"]
        codes = np.stack(categorical, axis=1) if categorical else np.zeros((n, 0), np.int64)
        out = []
        for k in np.flatnonzero(novelty < self.p.near_duplicate):
            j = int(nn_index[k])
            if j < k and (codes[k] == codes[j]).all():  # flag the later one of each pair, keep the earlier
                out.append((self.results[int(self.unique[k])].id, self.results[int(self.unique[j])].id))
        return out


def _headline(diversity: float | None, components: dict[str, float | None], summary: dict[str, Any],
              duplicates: int) -> str:
    """One line for the run table: the headline, what it averages, SACo cells and exact copies."""
    names = {"factor_entropy": "factors", "trajectory_diversity": "trajectories", "visual_diversity": "visual"}
    parts = [f"{names[k]} {v:.2f}" for k, v in components.items() if v is not None]
    text = f"diversity {diversity:.2f} ({', '.join(parts)})" if diversity is not None else "diversity -"
    cells = (summary.get("saco") or {}).get("cells")
    if cells is not None:
        text += f"; {cells} state-action cells"
    return text + (f"; {duplicates} exact cop{'y' if duplicates == 1 else 'ies'}" if duplicates else "")


def _row_ids(codes: np.ndarray) -> np.ndarray:
    """Dense ids (0 .. distinct - 1) of the distinct rows of a non-negative integer matrix."""
    # Mixed-radix keys, one int64 per row, re-densified whenever the next column would overflow: a few
    # 1-D sorts instead of np.unique(axis=0), which sorts rows lexicographically and is ~10x slower.
    key = np.zeros(len(codes), np.int64)
    top = 1
    for column in codes.T:
        span = int(column.max()) + 1 if len(column) else 1
        if top * span >= 2 ** 62:
            key = np.unique(key, return_inverse=True)[1].ravel().astype(np.int64)
            top = int(key.max()) + 1
        key = key * span + column
        top *= span
    return np.unique(key, return_inverse=True)[1].ravel()
