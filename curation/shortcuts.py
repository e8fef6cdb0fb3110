"""Shortcut factors: which task-irrelevant factors give the task away, and what would fix each.

Method: Xing et al. 2025, "Shortcut Learning in Generalist Robot Policies: The Role of Dataset Diversity
and Fragmentation" (CoRL 2025, arXiv 2508.06426). The paper names two drivers of shortcut learning:
limited *diversity* of task-irrelevant factors (viewpoint, background, lighting, scene) within each
sub-dataset, and large *disparity* between sub-datasets (fragmentation into "data islands"), so that a
policy can read the task off the scene instead of the instruction. Its own measurements are ranges of a
camera angle per island (width = diversity, centre distance = disparity); we report those for every 1-D
continuous factor. Its remedies are viewpoint and object augmentation; green-screen background overlays
(GreenAug, Teoh et al. 2024) are the natural third lever for backdrops.

What is ours, not the paper's (reference: shared/reference/curation_methods.md §2, marked [ours]):
- the information-theoretic scores per factor v, with u the task label and k the sub-dataset:
  shortcut risk ``S(v) = I(v;u) / H(u)``, fragmentation ``F(v) = I(v;k) / H(k)`` and per-sub-dataset
  diversity ``D_k(v) = H(p_k(v)) / log(#bins)`` (plug-in estimates on quantile-binned v). A plug-in MI
  on few episodes per bin is biased upwards, so ``S`` is judged against ``S_chance``, the 95th percentile
  of S over random relabellings of the tasks (with a permutation p-value ``S_p``);
- the probes: a tiny classifier predicts u from v alone (naive Bayes for a discrete factor, k nearest
  neighbours for a continuous one), from all irrelevant factors jointly (naive Bayes), and from
  statistics of the background pixels alone (k nearest neighbours on colour statistics of the pixels the
  segmentation mask or green-screen matte calls background). Cross-validation is stratified k-fold with
  each episode one sample, so no episode is ever in both the training and the test fold. Scores are
  balanced accuracy against chance (1 / #tasks);
- the risk ``sqrt(lift * S_excess)`` (``lift`` = probe accuracy above chance scaled to [0, 1],
  ``S_excess`` = S above ``S_chance`` scaled to [0, 1]) that ranks factors, and the fixes:
  the empty or thin cells of the task x factor-bin coverage matrix to collect next (the cross
  combinations the paper shows failing; cell targets are the counts expected if v were independent of
  the task, in the spirit of factored scaling curves, §7) and the augmentation that counters each kind
  of factor.

``score`` reads only metadata unless the background probe is on; then it reads the chosen camera's image
and mask at a few frames (the first by default: the scene before the robot moves, which is what a
policy reads the task from) and keeps a 16-number descriptor.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from curation.base import DatasetResult, EpisodeResult, Finding, Flag, features_of_kind
from curation.probes import cross_validate, entropy, mi_batch, mutual_information, naive_bayes, nearest_neighbours
from toolkit.episode import Episode, EpisodeMeta
from toolkit.spec import DatasetSpec

__all__ = [
    "BACKGROUND_NAMES",
    "SUBSET_CANDIDATES",
    "TABLETOP_RELEVANT",
    "ShortcutParams",
    "ShortcutPass",
    "augmentation_for",
    "background_descriptor",
    "background_ids",
    "meta_value",
]

# Factors of the embedded tabletop that define what the task is or where it happens: never shortcuts.
TABLETOP_RELEVANT: tuple[str, ...] = ("task_kind", "object_type", "object_colour", "object_x", "object_y",
                                      "object_yaw", "goal_x", "goal_y", "seed")
# Where a sub-dataset id k comes from, in order of preference for subset_key="auto": the imported file,
# the store a merged episode was copied from, the operator who recorded it.
SUBSET_CANDIDATES: tuple[str, ...] = ("origin.path", "extra.copied_from.store", "operator")
# Segmentation classes that are scenery (what a policy should not read the task from).
BACKGROUND_NAMES: tuple[str, ...] = ("background", "table", "backdrop", "floor", "wall", "sky")
_TASK_CANDIDATES = ("factors.task_kind", "task")
_ID_NAME = re.compile(r"(^|[_.])(seed|id|uuid|index|episode)$")
_MISSING = "(missing)"

# What counters each kind of factor (matched on the lower-cased factor name, first match wins).
_AUGMENTATIONS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("backdrop", "background", "texture", "wall", "scene"),
     "green-screen overlays of the background (`demoforge augment greenscreen`, GreenAug) so every task is "
     "seen against many backgrounds"),
    (("camera", "viewpoint", "view", "cam_"),
     "viewpoint edits of the point clouds (`demoforge augment pointcloud`, viewpoint option; viewpoint "
     "augmentation is one of Xing et al.'s two remedies)"),
    (("light", "illum", "exposure", "brightness", "shadow"),
     "colour and brightness jitter of the images (lighting augmentation) so intensity no longer tells the "
     "tasks apart"),
    (("distractor", "clutter"),
     "object augmentation: insert or swap distractors across tasks (`demoforge augment pointcloud`; "
     "Xing et al.'s object augmentation)"),
    (("operator", "origin", "copied_from", "source", "dataset", "session", "robot", "embodiment"),
     "no augmentation removes it: have every operator / sub-dataset record every task so they overlap "
     "(Xing et al.: overlap across sub-datasets)"),
)


@dataclass(frozen=True)
class ShortcutParams:
    """Parameters of the shortcut-factors pass.

    ``task_key`` names u, the task label: ``"auto"`` takes ``factors.task_kind`` when every episode has
    it (the task template; the tabletop's ``task`` string also names the object colour, which is
    task-relevant and would split one task into five), else ``task``; any metadata key works
    (``task``, ``operator``, ``factors.<name>``, ``origin.<field>``, ``extra.<a>.<b>``).
    ``subset_key`` names k, the sub-dataset: ``"auto"`` takes the first of ``SUBSET_CANDIDATES`` whose
    value differs between episodes (one sub-dataset when none does).
    ``relevant`` factors are never judged; ``irrelevant`` None judges every other factor plus the
    operator and the sub-dataset id, ids (``seed``, ``*_id``, all-distinct labels) excepted.
    ``background_probe`` reads ``background_camera``'s image and mask (None: the first camera that has
    both) at ``background_frames`` (fractions of the episode); ``background_ids`` are the mask values
    that count as background (None: the ids of ``BACKGROUND_NAMES`` listed in the mask feature's
    description, or any nonzero value of a mask without ids, GreenAug's keyed-alpha convention).
    """

    task_key: str = "auto"
    subset_key: str = "auto"
    relevant: tuple[str, ...] = TABLETOP_RELEVANT
    irrelevant: tuple[str, ...] | None = None
    bins: int = 5  # quantile bins for continuous factors
    max_levels: int = 20  # an integer factor with more distinct values is treated as continuous
    folds: int = 5
    seed: int = 0
    permutations: int = 100  # task relabellings for the chance level of S
    chance_quantile: float = 0.95  # S must beat this quantile of its relabelled values to count
    neighbours: int = 5  # k of the nearest-neighbour probes
    flag_risk: float = 0.3  # a factor with risk at or above this is flagged
    probe_flag: float = 0.5  # a joint / background probe with lift at or above this is flagged
    min_episodes: int = 8  # fewer episodes: report numbers, flag nothing
    max_cells: int = 6  # coverage cells named in a finding's fix
    background_probe: bool = False  # off: no image is read (``demoforge curate --images`` turns it on)
    background_camera: str | None = None
    background_ids: tuple[int, ...] | None = None
    background_frames: tuple[float, ...] = (0.0,)
    hue_bins: int = 8


# ------------------------------------------------------------------------------------------- helpers
def meta_value(meta: EpisodeMeta, key: str) -> Any:
    """The value of a metadata key (``task``, ``operator``, ``factors.<name>``, ``origin.path``,
    ``extra.copied_from.store`` ...); None when absent. Factor names may contain dots, so everything after
    ``factors.`` is one name."""
    head, _, rest = key.partition(".")
    if head == "factors":
        return meta.factors.get(rest)
    value: Any = getattr(meta, head, None)
    for part in rest.split(".") if rest else ():
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _codes(labels: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    names = sorted(set(labels))
    index = {name: i for i, name in enumerate(names)}
    return np.array([index[x] for x in labels], np.int64), names


def _text(value: Any) -> str:
    return _MISSING if value is None else str(value)


def _r(x: float | None, digits: int = 4) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), digits)


def _fmt(x: float) -> str:
    return f"{x:.3g}"


# ----------------------------------------------------------------------------------- discretising
@dataclass
class _Factor:
    """One factor over the episodes: bin codes, bin labels, and raw numbers when continuous."""

    name: str
    codes: np.ndarray
    labels: list[str]
    numeric: np.ndarray | None = None  # continuous factors only (NaN where missing)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _discretise(name: str, values: list[Any], bins: int, max_levels: int) -> _Factor:
    """Quantile bins for a continuous factor (floats, or integers with many levels), categories
    otherwise; a missing value is its own category."""
    present = [v for v in values if v is not None]
    distinct = len(set(present))
    continuous = (bool(present) and all(_is_number(v) for v in present) and distinct > bins
                  and (any(isinstance(v, float) and not float(v).is_integer() for v in present)
                       or distinct > max_levels))
    if not continuous:
        codes, labels = _codes([_text(v) for v in values])
        return _Factor(name, codes, labels)
    x = np.array([np.nan if v is None else float(v) for v in values])
    finite = x[np.isfinite(x)]
    edges = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1]))
    codes = np.searchsorted(edges, np.nan_to_num(x, nan=np.inf), side="right")
    bounds = [float(finite.min()), *edges.tolist(), float(finite.max())]
    labels = [f"[{_fmt(bounds[i])}, {_fmt(bounds[i + 1])}{']' if i == len(edges) else ')'}"
              for i in range(len(edges) + 1)]
    if not np.isfinite(x).all():
        labels.append(_MISSING)
        codes = np.where(np.isfinite(x), codes, len(labels) - 1)
    return _Factor(name, codes.astype(np.int64), labels, x)


def _probe_numbers(accuracy: float, n_classes: int) -> dict[str, Any]:
    chance = 1.0 / n_classes
    lift = max(0.0, (accuracy - chance) / (1.0 - chance))
    return {"balanced_accuracy": _r(accuracy), "chance": _r(chance), "lift": _r(lift)}


# ------------------------------------------------------------------------------------- background
def background_ids(spec: DatasetSpec, mask_feature: str) -> tuple[int, ...] | None:
    """Mask values that are scenery, read from the mask feature's description (the tabletop writes
    ``segmentation ids {"background": 0, "table": 1, ...}``); None when it lists no ids (a matte)."""
    found = re.search(r"\{.*\}", spec.features[mask_feature].description or "")
    if not found:
        return None
    try:
        ids = json.loads(found.group(0))
    except json.JSONDecodeError:
        return None
    return tuple(int(v) for name, v in ids.items() if name in BACKGROUND_NAMES)


def _hue(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hue in [0, 1) and saturation (HSV) of (N, 3) colours in [0, 1]."""
    hi, lo = rgb.max(1), rgb.min(1)
    chroma = hi - lo
    safe = np.where(chroma > 0, chroma, 1.0)
    r, g, b = rgb.T
    h = np.where(hi == r, ((g - b) / safe) % 6, np.where(hi == g, (b - r) / safe + 2, (r - g) / safe + 4))
    return (h / 6.0) % 1.0, np.where(hi > 0, chroma / np.where(hi > 0, hi, 1.0), 0.0)


def background_descriptor(image: np.ndarray, is_background: np.ndarray, hue_bins: int = 8) -> np.ndarray:
    """Colour statistics of one frame's background pixels: RGB mean and std, a hue histogram of the
    saturated pixels, the grey fraction and the background's share of the image (3+3+hue_bins+2)."""
    px = image[is_background].reshape(-1, 3).astype(np.float64) / 255.0
    if len(px) == 0:
        return np.zeros(8 + hue_bins)
    hue, sat = _hue(px)
    chromatic = sat > 0.15  # below this a hue is noise on a grey pixel
    hist = np.bincount((hue[chromatic] * hue_bins).astype(np.int64) % hue_bins, minlength=hue_bins) / len(px)
    return np.concatenate([px.mean(0), px.std(0), hist, [1.0 - chromatic.mean(), is_background.mean()]])


def _camera_pair(spec: DatasetSpec, camera: str | None) -> tuple[str, str] | None:
    """(image feature, mask feature) of ``camera`` (None: the first camera that has both)."""
    masks = {name.rsplit(".", 1)[-1]: name for name in features_of_kind(spec, "mask")}
    for image in features_of_kind(spec, "image"):
        cam = image.rsplit(".", 1)[-1]
        if (camera is None or cam == camera) and cam in masks:
            return image, masks[cam]
    if camera is not None:
        raise ValueError(f"shortcuts: background_camera {camera!r} needs an image and a mask feature "
                         f"(observation.images.{camera}, observation.mask.{camera}); the spec has "
                         f"{sorted(spec.features)}")
    return None


# ------------------------------------------------------------------------------------------ fixes
def augmentation_for(name: str) -> str:
    """The augmentation that counters a factor, by the kind of factor its name says it is."""
    lowered = name.lower()
    for words, text in _AUGMENTATIONS:
        if any(w in lowered for w in words):
            return text
    return "no augmentation in demoforge targets it: collect the missing combinations"


def _collection_plan(table: np.ndarray, tasks: list[str], bins: list[str]) -> list[dict[str, Any]]:
    """Cells of the task x bin coverage matrix below the count expected if the factor were independent
    of the task (n_task * n_bin / n), empty cells first, then by shortfall."""
    n = table.sum()
    expected = np.ceil(table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / max(n, 1) - 1e-9)
    plan = [{"task": tasks[t], "bin": bins[b], "have": int(table[t, b]), "target": int(expected[t, b])}
            for t in range(len(tasks)) for b in range(len(bins)) if expected[t, b] - table[t, b] >= 1]
    return sorted(plan, key=lambda c: (c["have"] > 0, c["have"] - c["target"], c["task"], c["bin"]))


# --------------------------------------------------------------------------------------- the pass
@dataclass
class _Labels:
    """The per-episode labels the reduce works on."""

    ids: list[str]
    task_key: str
    tasks: list[str]
    u: np.ndarray
    subset_key: str
    subsets: list[str]
    k: np.ndarray
    lengths: list[int] = field(default_factory=list)


class ShortcutPass:
    """Finds task-irrelevant factors that give the task away (Xing et al. 2025) and says what fixes each.

    Per episode: ``shortcuts.isolated`` (True when, for a flagged factor, the episode's factor bin is never
    seen with another task: the episodes that teach the shortcut), ``shortcuts.risk`` (the largest risk of
    such a factor, 0 otherwise) and a ``shortcut`` flag over the whole episode. Dataset: ``summary`` holds
    the per-factor table sorted by risk, the probes and the collection plan; ``findings`` name the risky
    factors with their numbers and fixes.
    """

    name: ClassVar[str] = "shortcuts"
    version: ClassVar[str] = "1"

    def __init__(self, params: ShortcutParams | None = None) -> None:
        self.params = params or ShortcutParams()

    # ------------------------------------------------------------------------------------- map
    def features(self, spec: DatasetSpec) -> list[str]:
        """Nothing but metadata, plus one camera's image and mask when the background probe is on."""
        if not self.params.background_probe:
            return []
        pair = _camera_pair(spec, self.params.background_camera)
        return list(pair) if pair else []

    def score(self, episode: Episode, spec: DatasetSpec) -> EpisodeResult:
        p = self.params
        meta = episode.meta
        keys = {*(_TASK_CANDIDATES if p.task_key == "auto" else (p.task_key,)),
                *(SUBSET_CANDIDATES if p.subset_key == "auto" else (p.subset_key,))}
        payload: dict[str, Any] = {
            "keys": {key: _plain(meta_value(meta, key)) for key in sorted(keys)},
            "factors": {name: _plain(v) for name, v in meta.factors.items()},
            "operator": meta.operator,
            "length": episode.length,
            "background": self._background(episode, spec),
        }
        return EpisodeResult(id=str(episode.id), payload=payload)

    def _background(self, episode: Episode, spec: DatasetSpec) -> np.ndarray | None:
        p = self.params
        pair = _camera_pair(spec, p.background_camera) if p.background_probe else None
        if pair is None or pair[0] not in episode.data or pair[1] not in episode.data or episode.length == 0:
            return None
        image, mask = episode.data[pair[0]], episode.data[pair[1]]
        ids = p.background_ids if p.background_ids is not None else background_ids(spec, pair[1])
        frames = sorted({min(episode.length - 1, int(f * episode.length)) for f in p.background_frames})
        rows = []
        for t in frames:
            m = np.asarray(mask[t])
            is_bg = np.isin(m, ids) if ids is not None else m != 0
            rows.append(background_descriptor(np.asarray(image[t]), is_bg, p.hue_bins))
        return np.mean(rows, axis=0).astype(np.float32)

    # ---------------------------------------------------------------------------------- reduce
    def reduce(self, results: list[EpisodeResult], spec: DatasetSpec) -> DatasetResult:
        labels = self._labels(results)
        factors, skipped = self._factors(results, labels)
        n_classes = len(labels.tasks)
        rows = [self._factor_row(f, labels) for f in factors]
        rows.sort(key=lambda r: (-r["risk"], -(r["S"] or 0.0), r["name"]))
        summary: dict[str, Any] = {
            "episodes": len(results),
            "task_key": labels.task_key,
            "tasks": dict(sorted(Counter(labels.tasks[i] for i in labels.u).items())),
            "subset_key": labels.subset_key,
            "subsets": dict(sorted(Counter(labels.subsets[i] for i in labels.k).items())),
            "chance": _r(1.0 / n_classes) if n_classes else None,
            "factors": rows,
            "skipped": skipped,
            "joint_probe": self._joint_probe(factors, labels),
            "background_probe": self._background_probe(results, labels),
        }
        summary["riskiest"] = [r["name"] for r in rows if r["flagged"]]
        summary["headline"] = _headline(rows, summary)
        episodes, isolated = self._episode_results(results, factors, rows, labels)
        findings = self._findings(rows, summary, labels, isolated)
        return DatasetResult(episodes=episodes, summary=summary, findings=findings)

    def _labels(self, results: list[EpisodeResult]) -> _Labels:
        keys = [r.payload["keys"] for r in results]
        task_key = self._pick_task_key(keys)
        subset_key = self._pick_subset_key(keys)
        u, tasks = _codes([_text(k.get(task_key)) for k in keys])
        k, subsets = _codes([_text(k.get(subset_key)) for k in keys])
        return _Labels([r.id for r in results], task_key, tasks, u, subset_key, subsets, k,
                       [int(r.payload.get("length", 0)) for r in results])

    def _pick_task_key(self, keys: list[dict[str, Any]]) -> str:
        if self.params.task_key != "auto":
            return self.params.task_key
        # The task template when every episode names one; a mix would split one task into two labels.
        return "factors.task_kind" if keys and all(k.get("factors.task_kind") is not None for k in keys) else "task"

    def _pick_subset_key(self, keys: list[dict[str, Any]]) -> str:
        if self.params.subset_key != "auto":
            return self.params.subset_key
        for candidate in SUBSET_CANDIDATES:
            if len({_text(k.get(candidate)) for k in keys}) > 1:
                return candidate
        return SUBSET_CANDIDATES[-1]

    def _factors(self, results: list[EpisodeResult], labels: _Labels) -> tuple[list[_Factor], dict[str, str]]:
        """The irrelevant factors to judge, discretised; the skipped ones with the reason."""
        p = self.params
        values: dict[str, list[Any]] = {}
        names = sorted({name for r in results for name in r.payload["factors"]})
        for name in names:
            values[name] = [r.payload["factors"].get(name) for r in results]
        if "operator" not in values:
            values["operator"] = [r.payload.get("operator") for r in results]
        # The sub-dataset id is itself a factor: a task exclusive to one sub-dataset is the paper's
        # motivating shortcut (OXE: "pick up the coke" lives only in RT-1's scenes).
        if labels.subset_key != "operator" and not labels.subset_key.startswith("factors.") and len(labels.subsets) > 1:
            values[labels.subset_key] = [labels.subsets[i] for i in labels.k]
        skipped: dict[str, str] = {}
        chosen: list[_Factor] = []
        for name, vals in values.items():
            reason = self._skip_reason(name, vals, labels)
            if reason:
                skipped[name] = reason
            else:
                chosen.append(_discretise(name, vals, p.bins, p.max_levels))
        return chosen, dict(sorted(skipped.items()))

    def _skip_reason(self, name: str, vals: list[Any], labels: _Labels) -> str | None:
        p = self.params
        if name in p.relevant or f"factors.{name}" == labels.task_key or name == labels.task_key:
            return "task-relevant"
        if p.irrelevant is not None:
            return None if name in p.irrelevant else "not in irrelevant"
        if _ID_NAME.search(name.lower()):
            return "an id"
        present = [v for v in vals if v is not None]
        unique_labels = not any(isinstance(v, float) for v in present) and len(set(present)) == len(vals)
        if unique_labels and len(vals) >= p.min_episodes:
            return "an id (a distinct value per episode)"
        return None

    def _factor_row(self, f: _Factor, labels: _Labels) -> dict[str, Any]:
        """Every number about one factor: S, F, D_k, the probe, the risk, coverage and the fix."""
        p = self.params
        u, k = labels.u, labels.k
        n_bins, n_classes = len(f.labels), len(labels.tasks)
        h_u, h_k = entropy(u), entropy(k)
        S = mutual_information(f.codes, u) / h_u if h_u > 0 else None
        S0, S_p = self._s_chance(f.codes, u, n_bins, n_classes, h_u, S) if h_u > 0 else (None, None)
        is_subset = f.name in (labels.subset_key, labels.subset_key.removeprefix("factors."))
        F = mutual_information(f.codes, k) / h_k if h_k > 0 and not is_subset else None
        D = {labels.subsets[j]: _r(entropy(np.unique(f.codes[k == j], return_inverse=True)[1]) / math.log(n_bins))
             if n_bins > 1 else 0.0 for j in range(len(labels.subsets))}
        probe = self._factor_probe(f, u, n_classes)
        excess = max(0.0, (S - S0) / (1.0 - S0)) if S is not None and S0 is not None and S0 < 1 else 0.0
        risk = math.sqrt(probe["lift"] * excess) if probe else 0.0
        table = np.zeros((n_classes, n_bins), np.int64)
        np.add.at(table, (u, f.codes), 1)
        flagged = (risk >= p.flag_risk and n_classes > 1 and len(u) >= p.min_episodes)
        row: dict[str, Any] = {
            "name": f.name, "kind": "continuous" if f.numeric is not None else "categorical",
            "bins": f.labels, "risk": _r(risk), "flagged": bool(flagged),
            "S": _r(S), "S_chance": _r(S0), "S_p": _r(S_p), "S_excess": _r(excess), "F": _r(F), "D": D,
            "D_min": _r(min((d for d in D.values() if d is not None), default=0.0)),
            "probe": probe,
            "coverage": {labels.tasks[t]: {f.labels[b]: int(table[t, b]) for b in range(n_bins)}
                         for t in range(n_classes)},
            "collect": _collection_plan(table, labels.tasks, f.labels),
            "augment": augmentation_for(f.name),
        }
        if f.numeric is not None:
            row["ranges"] = {"by_task": _ranges(f.numeric, u, labels.tasks),
                             "by_subset": _ranges(f.numeric, k, labels.subsets)}
        return row

    def _s_chance(self, codes: np.ndarray, u: np.ndarray, n_bins: int, n_classes: int, h_u: float,
                  S: float | None) -> tuple[float, float | None]:
        """What S reads by chance on this many episodes and bins (its ``chance_quantile`` under random
        relabelling of the tasks: plug-in MI is biased upwards, hugely so with few episodes per bin), and
        the permutation p-value of the observed S."""
        p = self.params
        if p.permutations <= 0:
            return 0.0, None
        rng = np.random.default_rng(p.seed)
        shuffled = np.stack([rng.permutation(u) for _ in range(p.permutations)])
        null = mi_batch(shuffled, codes, n_classes, n_bins) / h_u
        p_value = (1 + int((null >= (S or 0.0) - 1e-12).sum())) / (1 + p.permutations)
        return float(np.quantile(null, p.chance_quantile)), p_value

    def _factor_probe(self, f: _Factor, u: np.ndarray, n_classes: int) -> dict[str, Any]:
        """Predict the task from this factor alone: nearest neighbours on the value when continuous (a
        threshold needs no bins), naive Bayes per category otherwise."""
        p = self.params
        if n_classes < 2 or len(u) < 2:
            return {}
        if f.numeric is not None and np.isfinite(f.numeric).all():
            predict = nearest_neighbours(f.numeric[:, None], u, n_classes, p.neighbours)
        else:
            predict = naive_bayes(f.codes[:, None], u, n_classes)
        return _probe_numbers(cross_validate(predict, u, p.folds, p.seed), n_classes)

    def _joint_probe(self, factors: list[_Factor], labels: _Labels) -> dict[str, Any]:
        """Predict the task, and the sub-dataset, from every judged factor at once (naive Bayes on bins)."""
        p = self.params
        if not factors or len(labels.tasks) < 2:
            return {"skipped": "needs two tasks and at least one irrelevant factor"}
        X = np.stack([f.codes for f in factors], axis=1)
        out = {"factors": [f.name for f in factors]}
        out.update(_probe_numbers(cross_validate(naive_bayes(X, labels.u, len(labels.tasks)), labels.u,
                                                  p.folds, p.seed), len(labels.tasks)))
        keep = [j for j, f in enumerate(factors) if f.name not in (labels.subset_key, "operator")]
        if len(labels.subsets) > 1 and keep:
            out["subset"] = _probe_numbers(cross_validate(naive_bayes(X[:, keep], labels.k, len(labels.subsets)),
                                                           labels.k, p.folds, p.seed), len(labels.subsets))
        out["flagged"] = bool(out["lift"] >= p.probe_flag and len(labels.u) >= p.min_episodes)
        return out

    def _background_probe(self, results: list[EpisodeResult], labels: _Labels) -> dict[str, Any]:
        """Predict the task, and the sub-dataset, from the background pixels' colour statistics alone."""
        p = self.params
        if not p.background_probe:
            return {"skipped": "background_probe is off"}
        have = [i for i, r in enumerate(results) if r.payload.get("background") is not None]
        if len(have) < 2:
            return {"skipped": "no episode has an image with a segmentation mask or matte"}
        X = np.stack([results[i].payload["background"] for i in have]).astype(np.float64)
        u, k = labels.u[have], labels.k[have]
        classes = len(np.unique(u))
        if classes < 2:
            return {"skipped": "the episodes with images show one task"}
        n_u = len(labels.tasks)
        out: dict[str, Any] = {"episodes": len(have)}
        out.update(_probe_numbers(cross_validate(nearest_neighbours(X, u, n_u, p.neighbours), u, p.folds, p.seed),
                                  classes))
        if len(np.unique(k)) > 1:
            out["subset"] = _probe_numbers(cross_validate(nearest_neighbours(X, k, len(labels.subsets), p.neighbours),
                                                           k, p.folds, p.seed), len(np.unique(k)))
        out["flagged"] = bool(out["lift"] >= p.probe_flag and len(have) >= p.min_episodes)
        return out

    def _episode_results(self, results: list[EpisodeResult], factors: list[_Factor], rows: list[dict[str, Any]],
                         labels: _Labels) -> tuple[dict[str, EpisodeResult], dict[str, list[str]]]:
        """Mark the episodes whose bin of a flagged factor no other task shares; also the ids so marked
        per factor."""
        by_name = {f.name: f for f in factors}
        risk = np.zeros(len(results))
        why: list[list[str]] = [[] for _ in results]
        isolated: dict[str, list[str]] = {}
        for row in rows:
            if not row["flagged"]:
                continue
            f = by_name[row["name"]]
            tasks_per_bin = np.zeros((len(f.labels), len(labels.tasks)), bool)
            tasks_per_bin[f.codes, labels.u] = True
            exclusive = tasks_per_bin.sum(1)[f.codes] == 1
            isolated[f.name] = [labels.ids[i] for i in np.flatnonzero(exclusive)]
            for i in np.flatnonzero(exclusive):
                risk[i] = max(risk[i], row["risk"])
                why[i].append(f"{f.name}={f.labels[f.codes[i]]}")
        out: dict[str, EpisodeResult] = {}
        for i, r in enumerate(results):
            flags = {}
            if why[i]:
                task = labels.tasks[labels.u[i]]
                flags["shortcut"] = Flag([[0, max(labels.lengths[i], 1)]],
                                         f"{', '.join(why[i])} only ever appear(s) with task {task}")
            out[r.id] = EpisodeResult(r.id, {"isolated": bool(why[i]), "risk": _r(float(risk[i]))}, flags)
        return out, isolated

    def _findings(self, rows: list[dict[str, Any]], summary: dict[str, Any], labels: _Labels,
                  isolated: dict[str, list[str]]) -> list[Finding]:
        findings = [self._factor_finding(row, labels, isolated.get(row["name"], [])) for row in rows if row["flagged"]]
        bg = summary["background_probe"]
        if bg.get("flagged"):
            findings.append(self._background_finding(bg, rows))
        joint = summary["joint_probe"]
        if joint.get("flagged") and not any(r["flagged"] for r in rows):
            findings.append(Finding(
                "medium", f"the irrelevant factors together predict the task (balanced accuracy "
                f"{joint['balanced_accuracy']:.2f}, chance {joint['chance']:.2f}) though none does alone",
                detail=f"factors: {', '.join(joint['factors'])}",
                fix="collect the task x factor combinations that are thin in the per-factor coverage tables"))
        return findings

    def _factor_finding(self, row: dict[str, Any], labels: _Labels, isolated: list[str]) -> Finding:
        risk, probe, name = row["risk"], row["probe"], row["name"]
        severity = "high" if risk >= 0.7 else "medium" if risk >= 0.45 else "low"
        title = (f"{name} gives the task away: from {name} alone a probe tells the tasks ({labels.task_key}) "
                 f"apart with balanced accuracy {probe['balanced_accuracy']:.2f} (chance {probe['chance']:.2f})")
        coverage = "; ".join(f"{t}: " + ", ".join(f"{b} {c}" for b, c in bins.items())
                             for t, bins in row["coverage"].items())
        detail = (f"risk {risk:.2f}; S = I(v;u)/H(u) = {row['S']:.2f} (chance level {row['S_chance']:.2f}); "
                  f"coverage {coverage}")
        if row["F"] is not None:
            detail += (f"; fragmentation F = I(v;k)/H(k) = {row['F']:.2f} over {labels.subset_key}, "
                       f"diversity within each D_k = " + ", ".join(f"{s} {d:.2f}" for s, d in row["D"].items()))
        if "ranges" in row:
            detail += "; ranges by task: " + ", ".join(
                f"{t} [{_fmt(r['lo'])}, {_fmt(r['hi'])}]" for t, r in row["ranges"]["by_task"]["groups"].items())
        cells = row["collect"][: self.params.max_cells]
        collect = ", ".join(f"{c['task']} with {name}={c['bin']} (have {c['have']}, ~{c['target']})" for c in cells)
        fix = (f"Collect next: {collect} (the thin cells of the task x {name} coverage matrix). "
               if collect else "") + f"Augment: {row['augment']}."
        return Finding(severity, title, detail, fix, isolated)

    def _background_finding(self, bg: dict[str, Any], rows: list[dict[str, Any]]) -> Finding:
        lift = bg["lift"]
        severity = "high" if lift >= 0.8 else "medium" if lift >= 0.6 else "low"
        suspects = [r["name"] for r in rows if r["flagged"]]
        detail = f"{bg['episodes']} episodes, lift {lift:.2f}"
        if suspects:
            detail += f"; flagged factors that may explain it: {', '.join(suspects)}"
        return Finding(
            severity,
            f"the background pixels alone give the task away: balanced accuracy {bg['balanced_accuracy']:.2f} "
            f"(chance {bg['chance']:.2f}) from colour statistics with the robot and objects masked out",
            detail,
            "Augment: green-screen overlays of the background (`demoforge augment greenscreen`, GreenAug); "
            "collect every task against every background.")


def _headline(rows: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    """One line for the run table: the riskiest factors, or how many were judged."""
    flagged = [r for r in rows if r["flagged"]]
    if flagged:
        text = "riskiest: " + ", ".join(f"{r['name']} (risk {r['risk']:.2f}, probe "
                                        f"{r['probe']['balanced_accuracy']:.2f})" for r in flagged[:3])
    else:
        text = f"no shortcut factor among {len(rows)} judged"
    background = summary["background_probe"]
    if "balanced_accuracy" in background:
        text += f"; background probe {background['balanced_accuracy']:.2f} (chance {background['chance']:.2f})"
    return text


def _plain(value: Any) -> Any:
    """A JSON-like scalar (numpy scalars unwrapped, containers as text) so payloads stay small and picklable."""
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def _ranges(x: np.ndarray, groups: np.ndarray, names: list[str]) -> dict[str, Any]:
    """The paper's range numbers for a 1-D factor: each group's [lo, hi] and width (diversity), and over
    pairs of groups the largest centre distance (disparity) and smallest overlap."""
    out: dict[str, dict[str, float | None]] = {}
    spans = []
    for j, name in enumerate(names):
        v = x[(groups == j) & np.isfinite(x)]
        if len(v):
            lo, hi = float(v.min()), float(v.max())
            out[name] = {"lo": _r(lo, 6), "hi": _r(hi, 6), "width": _r(hi - lo, 6), "centre": _r((lo + hi) / 2, 6)}
            spans.append((lo, hi))
    distance, overlap = 0.0, None
    for a in range(len(spans)):
        for b in range(a + 1, len(spans)):
            (la, ha), (lb, hb) = spans[a], spans[b]
            distance = max(distance, abs((la + ha) - (lb + hb)) / 2)
            shared = max(0.0, min(ha, hb) - max(la, lb))
            overlap = shared if overlap is None else min(overlap, shared)
    return {"groups": out, "max_centre_distance": _r(distance, 6), "min_overlap": _r(overlap, 6)}
