"""What the curation page shows, as plain data: factor coverage, the shortcut table, the compatibility
points and per-operator table, and a 2-D map of the episodes. No Dash here (the page draws these; tests
call them on real stores).

- **Coverage** counts episodes per combination of two factors (Xie et al. 2023, "Decomposing the
  Generalization Gap in Imitation Learning for Visual Robotic Manipulation" (Factor World); Lin et al.
  2025, "Data Scaling Laws in Imitation Learning for Robotic Manipulation": environment x object pairs).
  A combination never recorded is *missing*; each comes with the count independence of the two factors
  would predict, so a surprising hole stands out from a merely unlucky one.
- **Shortcuts** reads the shortcuts pass's last run (Xing et al. 2025, "Shortcut Learning in Generalist
  Robot Policies", arXiv 2508.06426): per factor the diversity within sub-datasets, the disparity between
  them, the mutual information with the task, the probe, the risk and the fix.
- **Compatibility** reads the compatibility pass (Gandhi et al. 2022, "Eliciting Compatible
  Demonstrations for Multi-Human Imitation Learning"): each episode's score M against its share of bad
  steps, the axes of the pass's own rejection rule.
- **Embedding**: PCA (Pearson 1901; Hotelling 1933) of each episode's state trajectory resampled to a
  fixed number of steps, on the correlation matrix (every step and dimension in z-scores). Cached per
  dataset and catalog revision; capped (a fixed random sample) so a large store stays interactive.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import threading
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from dashboard.data import Dataset
from toolkit.store import Store

QUANTILE_BINS = 4  # continuous factors are cut into this many quantile bins for the coverage heatmap
MAX_LEVELS = 12  # an integer factor with more distinct values than this counts as continuous
LEVEL_LIMIT = 40  # levels shown per heatmap axis (the most frequent); the rest are counted, not drawn
EMBED_CAP = 20_000  # episodes on the map; beyond this a fixed random sample (Scattergl stays fluid)
RESAMPLE = 32  # steps each trajectory is resampled to
BLANK = "(blank)"
_ID_NAME = re.compile(r"(^|[_.])(seed|id|uuid|index|episode)$")  # as the shortcuts pass: ids are no factors
_CACHE: OrderedDict[tuple, Embedding] = OrderedDict()
_CACHE_SIZE = 8
_CACHE_LOCK = threading.Lock()

Kind = Literal["categorical", "binned"]


# ------------------------------------------------------------------------------------------- values
def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _text(v: Any) -> str:
    if _blank(v):
        return BLANK
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    if isinstance(v, (list, tuple, np.ndarray)):
        return ", ".join(str(x) for x in v) or BLANK
    return str(v)


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def as_float(column: np.ndarray) -> np.ndarray:
    """A catalog column as float64, blanks and non-numbers as NaN (score columns may be object arrays)."""
    if column.dtype.kind in "if":
        return column.astype(np.float64)
    return np.array([float(v) if _is_number(v) else np.nan for v in column], dtype=np.float64)


# ----------------------------------------------------------------------------------------- coverage
@dataclass(frozen=True)
class FactorChoice:
    """A catalog column the heatmap can use: ``categorical`` levels as they are, or ``binned`` into quantiles."""

    column: str
    kind: Kind

    @property
    def label(self) -> str:
        name = self.column.removeprefix("factors.")
        return f"{name} ({QUANTILE_BINS} quantile bins)" if self.kind == "binned" else name


def factor_kind(name: str, column: np.ndarray) -> Kind | None:
    """How a column enters the heatmap: ``binned`` when continuous (non-integer numbers, or integers with
    more than ``MAX_LEVELS`` values), ``categorical`` otherwise; None for ids (a distinct value per
    episode, or an id-like name) and all-blank columns."""
    present = [v for v in column if not _blank(v)]
    if not present or _ID_NAME.search(name.lower()):
        return None
    distinct = len({_text(v) for v in present})
    numeric = all(_is_number(v) for v in present)
    if numeric and (distinct > MAX_LEVELS or any(not float(v).is_integer() for v in present)):
        return "binned"
    if distinct == len(column) and len(column) >= 8:  # every episode its own level: an id, not a factor
        return None
    return "categorical"


def factor_choices(columns: Mapping[str, np.ndarray]) -> list[FactorChoice]:
    """task, operator, success, then every ``factors.*`` column that is a factor (see ``factor_kind``)."""
    names = ["task", "operator", "success", *sorted(c for c in columns if c.startswith("factors."))]
    out = []
    for name in names:
        if name in columns and (kind := factor_kind(name, columns[name])) is not None:
            out.append(FactorChoice(name, kind))
    return out


def _level_order(levels: set[str]) -> list[str]:
    """Numbers in numeric order, text alphabetically, blank last."""
    def key(s: str) -> tuple:
        try:
            return (0, float(s), "")
        except ValueError:
            return (1, 0.0, s)
    return sorted((s for s in levels if s != BLANK), key=key) + ([BLANK] if BLANK in levels else [])


def factor_labels(column: np.ndarray, kind: Kind, bins: int = QUANTILE_BINS) -> tuple[list[str], list[str]]:
    """(each episode's level, the levels in display order). ``binned`` cuts at quantiles of the finite
    values (fewer bins when values repeat) into ``[lo, hi)`` labels, the last closed; blanks are ``(blank)``."""
    if kind == "categorical":
        labels = [_text(v) for v in column]
        return labels, _level_order(set(labels))
    x = as_float(column)
    finite = x[np.isfinite(x)]
    edges = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1]))
    bounds = [float(finite.min()), *edges.tolist(), float(finite.max())]
    names = [f"[{_fmt(bounds[i])}, {_fmt(bounds[i + 1])}{']' if i == len(edges) else ')'}"
             for i in range(len(edges) + 1)]
    codes = np.searchsorted(edges, np.where(np.isfinite(x), x, 0.0), side="right")
    labels = [names[c] if np.isfinite(v) else BLANK for c, v in zip(codes, x)]
    return labels, names + ([BLANK] if BLANK in labels else [])


@dataclass
class Coverage:
    """Episode counts per (y level, x level); ``missing`` lists the empty cells as (x level, y level,
    expected count if the factors were independent), most expected first; ``hidden`` counts the levels
    per axis left out beyond ``LEVEL_LIMIT``."""

    x: FactorChoice
    y: FactorChoice
    x_levels: list[str]
    y_levels: list[str]
    counts: np.ndarray  # (len(y_levels), len(x_levels)) int64
    missing: list[tuple[str, str, float]]
    hidden: dict[str, int] = field(default_factory=dict)


def _top_levels(labels: list[str], levels: list[str], limit: int) -> list[str]:
    if len(levels) <= limit:
        return levels
    counts: dict[str, int] = {}
    for s in labels:
        counts[s] = counts.get(s, 0) + 1
    keep = set(sorted(levels, key=lambda s: -counts.get(s, 0))[:limit])
    return [s for s in levels if s in keep]


def coverage(columns: Mapping[str, np.ndarray], x: str, y: str, limit: int = LEVEL_LIMIT) -> Coverage:
    """Counts of episodes per combination of the factors ``x`` and ``y`` (two columns ``factor_choices``
    offers). Raises ``ValueError`` for a column that is not offered or for ``x == y``."""
    choices = {c.column: c for c in factor_choices(columns)}
    for name in (x, y):
        if name not in choices:
            raise ValueError(f"coverage: {name!r} is not a factor column (factors: {', '.join(choices)})")
    if x == y:
        raise ValueError("coverage: choose two different factors")
    cx, cy = choices[x], choices[y]
    x_labels, x_levels = factor_labels(columns[x], cx.kind)
    y_labels, y_levels = factor_labels(columns[y], cy.kind)
    shown_x, shown_y = _top_levels(x_labels, x_levels, limit), _top_levels(y_labels, y_levels, limit)
    xi, yi = {s: i for i, s in enumerate(shown_x)}, {s: i for i, s in enumerate(shown_y)}
    counts = np.zeros((len(shown_y), len(shown_x)), np.int64)
    for a, b in zip(x_labels, y_labels):
        if a in xi and b in yi:
            counts[yi[b], xi[a]] += 1
    total = counts.sum()
    expected = np.outer(counts.sum(1), counts.sum(0)) / total if total else np.zeros_like(counts, float)
    holes = [(shown_x[i], shown_y[j], float(expected[j, i])) for j, i in zip(*np.nonzero(counts == 0))]
    holes.sort(key=lambda h: -h[2])
    hidden = {axis: n for axis, n in (("x", len(x_levels) - len(shown_x)), ("y", len(y_levels) - len(shown_y))) if n}
    return Coverage(cx, cy, shown_x, shown_y, counts, holes, hidden)


def missing_text(cov: Coverage, limit: int = 25) -> str:
    """One line naming the missing combinations (most expected first)."""
    if not cov.missing:
        return f"every combination of {cov.x.label} and {cov.y.label} shown has at least one episode"
    parts = [f"{a} × {b} (~{e:.1f} expected)" for a, b, e in cov.missing[:limit]]
    more = f" and {len(cov.missing) - limit} more" if len(cov.missing) > limit else ""
    return f"{len(cov.missing)} missing combination(s) of {cov.x.label} × {cov.y.label}: " + "; ".join(parts) + more


def default_axes(columns: Mapping[str, np.ndarray], shortcuts_run: Mapping[str, Any] | None) -> tuple[str, str]:
    """The pair to show first: the shortcuts pass's task label against its riskiest factor when it ran
    and flagged one (the heatmap then shows the hole the shortcut comes from), else task against operator."""
    offered = [c.column for c in factor_choices(columns)]
    if not offered:
        return "", ""
    summary = (shortcuts_run or {}).get("summary") or {}
    task = next((c for c in (summary.get("task_key"), "factors.task_kind", "task") if c in offered), offered[0])
    risky = [_factor_column(name, offered) for name in summary.get("riskiest") or []]
    other = next((c for c in [*risky, "operator", *offered] if c and c != task and c in offered), task)
    return task, other


def _factor_column(name: str, offered: list[str]) -> str | None:
    for column in (name, f"factors.{name}"):
        if column in offered:
            return column
    return None


# ---------------------------------------------------------------------------------------- shortcuts
@dataclass
class ShortcutRow:
    """One factor of the shortcuts pass's table (Xing et al. 2025's terms; None where not defined)."""

    name: str
    kind: str
    diversity: float | None  # D_min: the lowest normalised entropy of the factor within a sub-dataset
    diversity_by_subset: dict[str, float | None]
    disparity: float | None  # F = I(v;k)/H(k) over the sub-datasets (None for the sub-dataset id itself)
    centre_distance: float | None  # continuous factors: the largest distance between sub-dataset range centres
    mutual_information: float | None  # S = I(v;u)/H(u)
    mi_chance: float | None  # S's 95th percentile under task relabelling
    mi_p: float | None
    probe_accuracy: float | None
    probe_chance: float | None
    risk: float | None
    flagged: bool
    fix: str


@dataclass
class ShortcutView:
    headline: str
    task_key: str
    subset_key: str
    rows: list[ShortcutRow]
    probes: list[str]  # the joint and background probe lines
    findings: list[dict[str, Any]]  # findings not about one factor (background, joint probe)
    skipped: dict[str, str]


def _factor_fix(row: Mapping[str, Any], findings: list[dict[str, Any]]) -> str:
    """The fix the pass wrote for a flagged factor (its finding), else one built from its collection plan."""
    prefix = f"{row['name']} gives the task away"
    for f in findings:
        if str(f.get("title", "")).startswith(prefix) and f.get("fix"):
            return str(f["fix"])
    if not row.get("flagged"):
        return ""
    cells = ", ".join(f"{c['task']} with {c['bin']}" for c in (row.get("collect") or [])[:6])
    return (f"Collect next: {cells}. " if cells else "") + f"Augment: {row.get('augment', '')}."


def _probe_line(name: str, probe: Mapping[str, Any]) -> str:
    if "balanced_accuracy" not in probe:
        return f"{name}: not run ({probe.get('skipped', 'no data')})"
    text = f"{name}: balanced accuracy {probe['balanced_accuracy']:.2f} (chance {probe['chance']:.2f})"
    if isinstance(probe.get("subset"), Mapping) and "balanced_accuracy" in probe["subset"]:
        sub = probe["subset"]
        text += f"; sub-dataset from the same factors {sub['balanced_accuracy']:.2f} (chance {sub['chance']:.2f})"
    return text + (" — flagged" if probe.get("flagged") else "")


def shortcut_view(run: Mapping[str, Any] | None) -> ShortcutView | None:
    """The shortcuts pass's last run as table rows, riskiest first (None when it never ran)."""
    if run is None:
        return None
    summary, findings = run.get("summary") or {}, list(run.get("findings") or [])
    rows = []
    for r in summary.get("factors") or []:
        probe = r.get("probe") or {}
        by_subset = ((r.get("ranges") or {}).get("by_subset") or {})
        rows.append(ShortcutRow(
            name=r["name"], kind=r.get("kind", ""), diversity=r.get("D_min"), diversity_by_subset=r.get("D") or {},
            disparity=r.get("F"), centre_distance=by_subset.get("max_centre_distance"),
            mutual_information=r.get("S"), mi_chance=r.get("S_chance"), mi_p=r.get("S_p"),
            probe_accuracy=probe.get("balanced_accuracy"), probe_chance=probe.get("chance"),
            risk=r.get("risk"), flagged=bool(r.get("flagged")), fix=_factor_fix(r, findings)))
    named = {f"{r.name} gives the task away" for r in rows}
    other = [f for f in findings if not any(str(f.get("title", "")).startswith(p) for p in named)]
    probes = [_probe_line("all judged factors together", summary.get("joint_probe") or {}),
              _probe_line("background pixels", summary.get("background_probe") or {})]
    return ShortcutView(headline=str(summary.get("headline", "")), task_key=str(summary.get("task_key", "")),
                        subset_key=str(summary.get("subset_key", "")), rows=rows, probes=probes,
                        findings=other, skipped=dict(summary.get("skipped") or {}))


def pass_coverage(columns: Mapping[str, np.ndarray], name: str) -> tuple[int, int, int]:
    """(episodes the pass scored, of those the stale ones, episodes in the catalog) from its columns."""
    n = len(columns.get("id", []))
    values = [c for k, c in columns.items() if k.startswith(f"{name}.") and k not in (f"{name}.flags", f"{name}.stale")]
    if not values:
        return 0, 0, n
    scored = np.zeros(n, bool)
    for c in values:
        scored |= np.array([not _blank(v) for v in c], bool)
    stale = np.asarray(columns.get(f"{name}.stale", np.zeros(n, bool)), bool) & scored
    return int(scored.sum()), int(stale.sum()), n


# ------------------------------------------------------------------------------------ compatibility
@dataclass
class CompatibilityPoints:
    """The scored episodes: id, operator, score M, share of bad steps, verdict, whether in the base set."""

    ids: np.ndarray  # object (str)
    operators: np.ndarray  # object (str)
    score: np.ndarray  # float32
    bad_fraction: np.ndarray  # float32
    bad_steps: np.ndarray  # int64
    compatible: np.ndarray  # bool
    in_base: np.ndarray  # bool
    max_bad_fraction: float | None  # the pass's rejection line (None when it used an absolute count)


def compatibility_points(columns: Mapping[str, np.ndarray], run: Mapping[str, Any] | None) -> CompatibilityPoints:
    """One point per episode the compatibility pass scored (episodes it did not score are left out)."""
    n = len(columns.get("id", []))
    ids = np.asarray(columns.get("id", np.empty(0, object))).astype(str).astype(object)
    score = as_float(columns.get("compatibility.score", np.full(n, np.nan)))
    bad = as_float(columns.get("compatibility.bad_steps", np.full(n, np.nan)))
    length = np.maximum(as_float(columns.get("length", np.ones(n))), 1.0)
    keep = np.isfinite(score)
    operators = np.array([_text(v) if not _blank(v) else "unknown" for v in columns.get("operator", [None] * n)],
                         dtype=object)
    verdict = np.array([bool(v) for v in columns.get("compatibility.compatible", [False] * n)], bool)
    base = set(((run or {}).get("summary") or {}).get("base", {}).get("ids") or [])
    params = (run or {}).get("params") or {}
    line = params.get("max_bad_fraction") if params.get("max_bad") is None else None
    return CompatibilityPoints(
        ids=ids[keep], operators=operators[keep], score=score[keep].astype(np.float32),
        bad_fraction=(np.nan_to_num(bad[keep]) / length[keep]).astype(np.float32),
        bad_steps=np.nan_to_num(bad[keep]).astype(np.int64), compatible=verdict[keep],
        in_base=np.array([i in base for i in ids[keep]], bool), max_bad_fraction=line)


def operator_table(run: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The pass's per-operator summary, lowest mean compatibility first (the operator to look at)."""
    operators = ((run or {}).get("summary") or {}).get("operators") or {}
    rows = [{"operator": op, **stats} for op, stats in operators.items()]
    return sorted(rows, key=lambda r: (r.get("mean_score", 1.0), r["operator"]))


def lowest(points: CompatibilityPoints, k: int = 5) -> list[tuple[str, float]]:
    """The ``k`` episodes with the lowest compatibility, as (id, score)."""
    order = np.argsort(points.score, kind="stable")[:k]
    return [(str(points.ids[i]), float(points.score[i])) for i in order]


# ----------------------------------------------------------------------------------------- embedding
@dataclass
class Embedding:
    """Episode positions on a 2-D map, float32, in the order of ``ids``."""

    ids: np.ndarray  # object (str)
    xy: np.ndarray  # (n, 2) float32
    total: int  # episodes in the catalog
    features: list[str]
    explained: tuple[float, float]  # share of the variance along each axis
    unreadable: list[str] = field(default_factory=list)
    points: int = RESAMPLE

    @property
    def sampled(self) -> bool:
        return len(self.ids) + len(self.unreadable) < self.total

    def note(self) -> str:
        if not self.features:
            return "no state or action features to map"
        text = (f"PCA of each episode's {', '.join(self.features)} resampled to {self.points} steps (each step and "
                f"dimension in z-scores over the episodes); the axes hold {self.explained[0]:.0%} and "
                f"{self.explained[1]:.0%} of the variance.")
        if self.sampled:
            text += f" Showing {len(self.ids):,} of {self.total:,} episodes (a fixed random sample)."
        if self.unreadable:
            text += f" {len(self.unreadable)} unreadable episode(s) left out."
        return text


def trajectory_features(store: Store) -> list[str]:
    """What the map compares: the state features, else the actions (a dataset without proprioception)."""
    spec = store.spec
    for kind in ("state", "action"):
        names = [n for n, f in spec.features.items() if f.kind == kind]
        if names:
            return names
    return []


def resample(values: np.ndarray, points: int = RESAMPLE) -> np.ndarray:
    """(T, ...) per-step values -> (points, D) by linear interpolation on normalised time, float64.

    Time, not arc length: how long an operator pauses is behaviour the map should show."""
    a = np.asarray(values, np.float64).reshape(len(values), -1)
    if len(a) == 0:
        return np.full((points, a.shape[1]), np.nan)
    pos = np.linspace(0.0, len(a) - 1, points)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, len(a) - 1)
    w = (pos - lo)[:, None]
    return a[lo] * (1.0 - w) + a[hi] * w


def trajectory_tensor(store: Store, ids: list[str], features: list[str], points: int = RESAMPLE
                      ) -> tuple[np.ndarray, list[str], list[str]]:
    """(n, points, D) resampled trajectories of the readable ``ids`` (read in ``store.read_batch`` batches),
    the ids kept and the ids that could not be read."""
    batch = store.read_batch(features)
    rows: list[np.ndarray] = []
    kept: list[str] = []
    bad: list[str] = []
    for start in range(0, len(ids), batch):
        chunk = ids[start:start + batch]
        try:
            episodes = store.read_many(chunk, features)
        except Exception:  # a damaged chunk fails in its codec with any exception type: find it one by one
            episodes = []
            for episode_id in chunk:
                try:
                    episodes += store.read_many([episode_id], features)
                except Exception:
                    bad.append(episode_id)
        for e in episodes:
            rows.append(np.concatenate([resample(e.data[f], points) for f in features], axis=1))
            kept.append(str(e.id))
    width = rows[0].shape[1] if rows else 0
    return (np.stack(rows) if rows else np.zeros((0, points, width))), kept, bad


def pca_2d(trajectories: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
    """Project (n, points, D) trajectories onto their first two principal components.

    Every (step, dimension) column is put in z-scores over the episodes first (PCA on the correlation
    matrix), so metres, radians and a 0..1 gripper weigh alike and the map shows where episodes differ
    at each moment rather than the scene's offsets alone (measured on the tabletop: a top and a side
    approach are nearest neighbours of their own style for 0.93 of episodes, against 0.63 with one
    z-score per dimension). A column's scale is floored at a tenth of its dimension's overall spread so
    that near-constant columns (physics noise at rest) are not blown up to unit variance; a missing value
    (NaN) becomes the column's mean. The sign of each axis is fixed (largest loading positive) so a
    recomputed map does not flip. Returns float32 (n, 2) and the share of the variance on each axis."""
    n = len(trajectories)
    if n < 2 or trajectories.shape[-1] == 0:
        return np.zeros((n, 2), np.float32), (0.0, 0.0)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: handled below
        dim_std = np.nanstd(trajectories.reshape(-1, trajectories.shape[-1]), axis=0)
        mean, std = np.nanmean(trajectories, axis=0), np.nanstd(trajectories, axis=0)
    scale = np.maximum(np.nan_to_num(std), np.maximum(0.1 * np.nan_to_num(dim_std), 1e-9))
    z = np.nan_to_num((trajectories - mean) / scale, nan=0.0, posinf=0.0, neginf=0.0).reshape(n, -1)
    z -= z.mean(axis=0)
    u, s, vt = np.linalg.svd(z, full_matrices=False)
    k = min(2, len(s))
    signs = np.sign(vt[np.arange(k), np.abs(vt[:k]).argmax(axis=1)])
    xy = np.zeros((n, 2))
    xy[:, :k] = u[:, :k] * s[:k] * signs
    total = float(np.square(s).sum())
    share = [float(v) / total if total else 0.0 for v in np.square(s[:k])] + [0.0] * (2 - k)
    return xy.astype(np.float32), (share[0], share[1])


def _version(columns: Mapping[str, np.ndarray]) -> str:
    """A digest of the catalog's ids and revisions: it changes when an episode is added, edited or deleted,
    not when scores or tags change (the trajectories do not)."""
    h = hashlib.sha1()
    revisions = columns.get("revision", np.full(len(columns.get("id", [])), None, dtype=object))
    for i, r in zip(columns.get("id", []), revisions):
        h.update(f"{i}\x00{r}\x01".encode())
    return h.hexdigest()


def embedding(ds: Dataset, cap: int = EMBED_CAP, points: int = RESAMPLE) -> Embedding:
    """The dataset's episode map (``pca_2d`` of ``trajectory_tensor``), cached per store, catalog version,
    cap and resampling. Above ``cap`` episodes a fixed (seed 0) random sample is mapped."""
    columns = ds.columns()
    key = (str(ds.path), _version(columns), cap, points)
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    ids = [str(i) for i in columns.get("id", [])]
    if len(ids) > cap:
        ids = [ids[i] for i in np.sort(np.random.default_rng(0).choice(len(ids), cap, replace=False))]
    features = trajectory_features(ds.store)
    if features:
        tensor, kept, bad = trajectory_tensor(ds.store, ids, features, points)
    else:
        tensor, kept, bad = np.zeros((0, points, 0)), [], []
    xy, explained = pca_2d(tensor)
    result = Embedding(np.array(kept, dtype=object), xy, len(columns.get("id", [])), features, explained, bad, points)
    with _CACHE_LOCK:
        _CACHE[key] = result
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return result


# ---------------------------------------------------------------------------------------- colouring
@dataclass
class Colour:
    """Marker colours for the map: numbers (``categories`` None) or category codes 0..k-1 with names."""

    column: str
    values: np.ndarray  # float32, NaN where blank
    categories: list[str] | None
    text: list[str]  # per point, for the hover


def pass_names(columns: Mapping[str, np.ndarray]) -> list[str]:
    """Passes with scores in the catalog (each adds a ``<pass>.stale`` column)."""
    return sorted(c.removesuffix(".stale") for c in columns if c.endswith(".stale"))


def colour_choices(columns: Mapping[str, np.ndarray]) -> list[str]:
    """Columns the map can be coloured by: operator, task, success, categorical factors, length and every
    pass's numeric or yes/no scores."""
    out = [c.column for c in factor_choices(columns) if c.kind == "categorical"]
    if "length" in columns:
        out.append("length")
    for p in pass_names(columns):
        for name in sorted(columns):
            if name.startswith(f"{p}.") and name not in (f"{p}.flags", f"{p}.stale") and _colourable(columns[name]):
                out.append(name)
    return out


def _colourable(column: np.ndarray) -> bool:
    present = [v for v in column if not _blank(v)]
    numbers = all(_is_number(v) for v in present)
    return bool(present) and (numbers or all(isinstance(v, (bool, np.bool_)) for v in present))


def colour(columns: Mapping[str, np.ndarray], ids: np.ndarray, column: str) -> Colour:
    """The colour of each of ``ids`` by a catalog column: numbers stay numbers, anything else becomes
    category codes (blank last)."""
    position = {str(i): p for p, i in enumerate(columns["id"])}
    rows = np.array([position[str(i)] for i in ids], dtype=np.int64)
    values = columns[column][rows] if len(rows) else np.empty(0, object)
    present = [v for v in values if not _blank(v)]
    # Scores and lengths read as numbers; a factor only when continuous (a few integer levels are categories).
    numeric = bool(present) and all(_is_number(v) for v in present) and (
        column == "length" or column.split(".", 1)[0] in pass_names(columns) or factor_kind(column, values) == "binned")
    if numeric:
        x = as_float(values)
        return Colour(column, x.astype(np.float32), None, [_text(v) if _blank(v) else f"{v:.4g}" for v in x])
    labels, levels = factor_labels(values, "categorical")
    index = {s: k for k, s in enumerate(levels)}
    return Colour(column, np.array([index[s] for s in labels], np.float32), levels, labels)


def episode_path(dataset: str, click: Mapping[str, Any] | None) -> str | None:
    """The episode page of a clicked point (``customdata`` holds its id), or None."""
    points = (click or {}).get("points") or []
    episode_id = points[0].get("customdata") if points else None
    if isinstance(episode_id, list):  # a trace with several customdata columns: the id comes first
        episode_id = episode_id[0] if episode_id else None
    return f"/d/{dataset}/e/{episode_id}" if episode_id not in (None, "") else None


def typed_array(values: np.ndarray) -> dict[str, str]:
    """A float32 array as plotly.js's typed-array spec ({dtype, bdata}): what ``go.Figure`` sends for numpy
    arrays, for the arrays a ``Patch`` sends (which would otherwise go out as JSON lists)."""
    data = np.ascontiguousarray(values, dtype="<f4").tobytes()
    return {"dtype": "f4", "bdata": base64.b64encode(data).decode("ascii")}
