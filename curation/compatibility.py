"""The compatibility pass: is a demonstration compatible with a base set of demonstrations?

Method: Gandhi, Karamcheti, Liao & Sadigh, "Eliciting Compatible Demonstrations for Multi-Human Imitation
Learning" (CoRL 2022; code kanishkg/elicit). Operators solve a task in different, equally valid ways
(grasp from the top or slide in from the side); mixing conflicting ways in one dataset hurts the cloned
policy. A demonstration is judged against a **base policy** trained on the base set, step by step:

- base policy: an ensemble of K = 5 deterministic regressors pi_1..pi_K fitted on bootstrap resamples of
  the base set's (state, action) pairs (``curation.ensemble``);
- likelihood term ``L(s,a) = 1/K sum_k 1/d ||clip(pi_k(s)) - clip(a)||^2`` (lower = more likely);
- novelty term ``N(s) = 1/d sum_j std_k pi_k(s)_j`` (ensemble disagreement; ``std`` with Bessel's
  correction, as ``torch.std`` in the reference code);
- a **bad** step: ``L > lambda and N < eta`` (the state is familiar but the action is not what the base
  policy does; novel states are never penalised, that is where new data helps); a **good** step:
  ``L < lambda/2 and N > 1.5 eta``;
- per-step score shown live: ``c_t = max(0, 1 - L/lambda)``;
- per-episode compatibility ``M = mean_t [1 - min(1, 1[N < eta] L/lambda)]`` in [0, 1];
- an episode is rejected (``compatible`` False) when it has too many bad steps; the worst windows
  (up to 3, around the bad steps of largest L) show where; the dataset ranking is (#bad ascending,
  #good descending), as in the reference's offline filter.

Departures from the paper, and why (measured on the embedded tabletop; ``tests/curation/
test_compatibility.py`` checks the result on held-out seeds):

1. **Units.** States and actions are standardised per dimension with the base set's mean and standard
   deviation (a scale below ``min_scale``, in SI units, counts as ``min_scale``: constant columns and
   physics noise must not be blown up to unit variance), so L, N, lambda and eta are in standard
   deviations of the base set and the pass works for any robot's units. Actions are clipped to
   ``+-action_clip`` standard deviations (the paper clips to the robot's action limits).
2. **Thresholds are calibrated, not fixed** (the paper's 2.5e-4 and 3.5e-3 are joint-delta units of one
   robot): lambda = the ``likelihood_percentile`` (95) of L and eta = the ``novelty_percentile`` of N over
   the base set, both *held out*: each base episode is scored with its own rows removed from every
   member, exactly as a new demonstration is scored by members that never saw it. The novelty
   percentile defaults to the **median** (50), not the 25th percentile of our reference note: with a
   nonparametric ensemble a quarter of the base states (gripper waits, rest poses) have near-zero
   disagreement, so the 25th percentile admits almost only those as familiar and leaves a handful of
   steps as evidence. Measured with five disjoint base sets of 20 careful episodes against 60 held-out
   careful, 60 side and 60 slower careful episodes: AUROC(M) of side vs careful min 0.85 / mean 0.91 at
   25, 0.93 / 0.96 at 50; side episodes accepted as compatible 48% on average at 25, 6% at 50 (careful
   97%, slower careful 97%). "Familiar" then reads: the base policy is at least as sure here as on a
   typical base state. Fixed thresholds can still be given (``likelihood_threshold``,
   ``novelty_threshold``, standardised units).
3. **Regressors.** Bootstrap kNN regressors (k = 5) on the standardised state instead of MLPs (numpy and
   scipy only; a fit with its calibration takes 0.1 s for 20 episodes and 1.5 s for 200, and
   leave-one-episode-out is exact and cheap), bootstrapping whole episodes (see ``curation.ensemble``).
   A kNN ensemble's disagreement does not grow far from the data as an MLP ensemble's does; it measures
   how much base demonstrations that look alike here disagree. With K = 5 the bootstrap draw matters
   (AUROC(M) mean 0.93-0.96 over seeds); ``members=10`` is steadier (0.98) if time allows.
4. **State.** The policy conditions on a goal-relative state built from ``observation.state`` and the
   episode's factors (``state_features``: the end effector relative to the object and to the goal, its
   yaw relative to the object's, orientation, gripper). Proprioception alone cannot say where the
   object is, so "the same state" would mix demonstrations of different scenes (AUROC 0.6-0.75 measured
   without it). When any of them is missing (another robot, an imported dataset without these factors)
   the whole raw state is used instead, as in the paper (a partial frame would drop the position); the
   summary's ``dropped_state_features`` says why.
5. **Tempo.** The pass judges *what* an operator does in a state, not *how fast*: each episode's
   translation columns (``tempo_columns``) are rescaled so that its cruise speed (90th percentile of the
   translation norm over moving steps) equals the base set's median cruise speed. Without this a faster
   operator of the same style is flagged (per-step deltas twice the base's); a slower one is never
   penalised for being slow. Rotation and gripper columns are left as recorded.
6. **Rejection rule.** The paper rejects a demo with more than 15 bad steps (of at most 450: 15 s at
   30 Hz, about 3%); a fixed count does not transfer to other rates and lengths, so an episode is
   compatible when ``bad_steps <= max_bad_fraction * length`` (5%), or ``<= max_bad`` when that is given.
   Windows are +-``window_s`` seconds (the paper's 30 frames at 30 Hz = 1 s) and do not overlap (each
   next-worst bad step outside the windows already shown), so three windows show three places.

Known limit: the kNN compares every state column equally, so a rare action (the few yaw-alignment steps
at the start of a tabletop episode) in a scene unlike any base scene can cost a same-style episode a bad
step or two; 20 base episodes cover the tabletop's scenes thinly (1-2 of 10 held-out careful episodes
exceed 5% bad steps); more base episodes cover them better (with 100: every held-out careful and slower
episode compatible, AUROC(#bad) 1.0), fewer worse: with 10, lambda (the 95th percentile of a sparse
model's held-out error) is so large that half the conflicting episodes stay under the bad-step limit,
although M still ranks them lower (AUROC(M) 0.92). The reduce adds a finding below ``advised_base``.

Score keys (catalog columns ``compatibility.<key>``): ``score`` (M), ``bad_steps``, ``good_steps``,
``compatible``, ``novelty_mean``, ``likelihood_mean`` (None for an episode that cannot be scored, with
an ``unscorable`` flag). Flag: ``incompatible`` with the worst windows. Base episodes are scored held
out (their own rows left out of the base policy), so their scores are honest too.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from curation.base import (DatasetResult, EpisodeResult, Finding, Flag, column_names, gripper_column,
                           state_action)
from curation.ensemble import KnnEnsemble
from toolkit.episode import Episode
from toolkit.errors import DemoforgeError
from toolkit.spec import DatasetSpec

# The embedded tabletop's task frame (factor names from ``teleop.sim.tabletop``): end effector relative
# to the object and the goal, yaw relative to the object's, the rest of the state as is.
TABLETOP_STATE = ("ee.x-object_x", "ee.y-object_y", "ee.z-table_height", "ee.x-goal_x", "ee.y-goal_y",
                  "ee.yaw-object_yaw", "ee.roll", "ee.pitch", "gripper")
TABLETOP_TEMPO = ("delta.x", "delta.y", "delta.z")


@dataclass(frozen=True)
class CompatibilityParams:
    """Parameters of the compatibility pass (see the module docstring for each departure from the paper).

    ``members``/``neighbors``: K bootstrap kNN regressors, k neighbours each; ``seed`` draws the bootstraps.
    ``likelihood_percentile``/``novelty_percentile``: lambda and eta as percentiles of the held-out L and
    N on the base set; ``likelihood_threshold``/``novelty_threshold`` fix them instead (standardised units).
    ``max_bad_fraction``: an episode is compatible with at most this fraction of bad steps (``max_bad``,
    when given, is an absolute count instead, as the paper's 15). ``window_s``: half-width of a shown
    window in seconds; ``show_windows``: how many. ``state_features``: the base policy's state, each a state
    column name, an episode factor name, or ``a-b`` of two of them. ``tempo_columns``: the action
    columns whose speed is normalised per episode. ``action_clip``: clip of standardised actions.
    ``min_scale``: smallest standard deviation used to standardise a column (SI units). ``min_base``:
    fewest base episodes to fit on; ``advised_base``: below this many the reduce warns that the verdicts
    are unreliable.
    """

    members: int = 5
    neighbors: int = 5
    seed: int = 0
    likelihood_percentile: float = 95.0
    novelty_percentile: float = 50.0
    likelihood_threshold: float | None = None
    novelty_threshold: float | None = None
    max_bad_fraction: float = 0.05
    max_bad: int | None = None
    window_s: float = 1.0
    show_windows: int = 3
    state_features: tuple[str, ...] = TABLETOP_STATE
    tempo_columns: tuple[str, ...] = TABLETOP_TEMPO
    action_clip: float = 5.0
    min_scale: float = 1e-3
    min_base: int = 5
    advised_base: int = 20

    def __post_init__(self) -> None:
        if self.members < 2:
            raise DemoforgeError(f"compatibility.members: expected 2 or more (an ensemble), got {self.members}")
        if self.neighbors < 1:
            raise DemoforgeError(f"compatibility.neighbors: expected 1 or more, got {self.neighbors}")
        for name in ("likelihood_percentile", "novelty_percentile"):
            if not 0.0 < getattr(self, name) <= 100.0:
                raise DemoforgeError(f"compatibility.{name}: expected a percentile in (0, 100], "
                                     f"got {getattr(self, name)}")


# ------------------------------------------------------------------------------------------ features
Part = tuple[float, str, Any]  # (sign, "column" | "factor", column index | factor name)


def resolve_state(exprs: tuple[str, ...], columns: list[str], factors: list[dict[str, Any]]
                  ) -> tuple[list[list[Part]], list[str], list[str]]:
    """Parse ``state_features`` against the state column names and the base episodes' factors.

    Each expression is a column, a factor, or ``a-b``; a factor must be a number in every base episode.
    Returns the parsed terms, their names, and the expressions dropped (with why)."""
    def numeric(name: str) -> bool:
        return bool(factors) and all(isinstance(f.get(name), (int, float)) and not isinstance(f.get(name), bool)
                                     and math.isfinite(f[name]) for f in factors)

    def part(token: str, sign: float) -> Part | None:
        token = token.strip()
        if token in columns:
            return (sign, "column", columns.index(token))
        if numeric(token):
            return (sign, "factor", token)
        return None

    terms, names, dropped = [], [], []
    for expr in exprs:
        tokens = [expr] if expr in columns else expr.split("-")
        if len(tokens) > 2 or not tokens[0].strip():
            dropped.append(f"{expr} (expected a column, a factor or a-b)")
            continue
        parts = [part(t, 1.0 if i == 0 else -1.0) for i, t in enumerate(tokens)]
        missing = [t.strip() for t, p in zip(tokens, parts) if p is None]
        if missing:
            dropped.append(f"{expr} (no state column or numeric factor {', '.join(missing)})")
            continue
        terms.append([p for p in parts if p is not None])
        names.append(expr)
    return terms, names, dropped


def cruise_speed(action: np.ndarray, columns: list[int]) -> float:
    """90th percentile of the translation norm over the steps that move (0 when none does)."""
    if not columns:
        return 0.0
    norm = np.sqrt(np.square(action[:, columns]).sum(axis=1))
    moving = norm[np.isfinite(norm) & (norm > 1e-9)]
    return float(np.percentile(moving, 90)) if moving.size else 0.0


# ---------------------------------------------------------------------------------------- base policy
@dataclass(frozen=True)
class Frame:
    """How an episode becomes the policy's input and target: the state ``terms`` (from
    ``resolve_state``), the ``tempo`` action columns and the base set's ``cruise`` speed."""

    terms: tuple[tuple[Part, ...], ...]
    tempo: tuple[int, ...]
    cruise: float

    def arrays(self, episode: Episode, spec: DatasetSpec) -> tuple[np.ndarray, np.ndarray]:
        """The policy's state (T, ds) and the tempo-normalised action (T, da), in recorded units (the raw
        state when there are no terms). Raises ``KeyError`` naming a factor the episode lacks."""
        state, action = state_action(episode, spec)
        factors = episode.meta.factors or {}
        columns = []
        for term in self.terms:
            value = np.zeros(len(state))
            for sign, kind, ref in term:
                if kind == "column":
                    value = value + sign * state[:, ref]
                else:
                    v = factors.get(ref)
                    if not isinstance(v, (int, float)) or isinstance(v, bool):
                        raise KeyError(ref)
                    value = value + sign * float(v)
            columns.append(value)
        s = np.stack(columns, axis=1) if columns else state
        tempo = list(self.tempo)
        speed = cruise_speed(action, tempo)
        if speed > 0 and self.cruise > 0:
            action[:, tempo] *= self.cruise / speed
        return s, action


@dataclass
class BasePolicy:
    """The fitted base policy: its input frame, the standardisation, the ensemble, lambda and eta, and
    what it was fitted on. Plain numbers and numpy arrays (it is pickled to every worker)."""

    frame: Frame
    state_names: list[str]
    dropped: list[str]
    state_mean: np.ndarray
    state_scale: np.ndarray
    action_mean: np.ndarray
    action_scale: np.ndarray
    action_names: list[str]
    gripper: int | None
    ensemble: KnnEnsemble
    likelihood_threshold: float
    novelty_threshold: float
    base_ids: dict[str, int]  # episode id -> its group in the ensemble (scored held out)
    base_episodes: int
    base_operators: dict[str, int]
    base_steps: int
    calibration: dict[str, Any] = field(default_factory=dict)

    @property
    def tempo(self) -> list[int]:
        return list(self.frame.tempo)

    @property
    def cruise(self) -> float:
        return self.frame.cruise

    def raw(self, episode: Episode, spec: DatasetSpec) -> tuple[np.ndarray, np.ndarray]:
        return self.frame.arrays(episode, spec)

    def standardise(self, s: np.ndarray, a: np.ndarray, clip: float) -> tuple[np.ndarray, np.ndarray]:
        """States and actions in standard deviations of the base set (actions clipped to +-``clip``)."""
        a = np.clip((a - self.action_mean) / self.action_scale, -clip, clip)
        return (s - self.state_mean) / self.state_scale, a


def step_terms(predictions: np.ndarray, actions: np.ndarray,
               clip: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The paper's per-step terms from member predictions (K, T, d) and actions (T, d):
    ``L`` = mean over members of the mean over dims of the squared error of clipped values, ``N`` = mean
    over dims of the ensemble's standard deviation (Bessel-corrected)."""
    p, a = np.asarray(predictions, float), np.asarray(actions, float)
    if clip is not None:
        p, a = np.clip(p, -clip, clip), np.clip(a, -clip, clip)
    likelihood = np.square(p - a[None]).mean(axis=2).mean(axis=0)
    if len(p) < 2:
        return likelihood, np.zeros(p.shape[1])
    d = p - p[0]  # shifted: members that agree give exactly 0, not rounding noise
    var = (np.square(d).sum(axis=0) - np.square(d.sum(axis=0)) / len(p)) / (len(p) - 1)
    return likelihood, np.sqrt(np.maximum(var, 0.0)).mean(axis=1)


def step_verdicts(likelihood: np.ndarray, novelty: np.ndarray, lam: float, eta: float
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per step: ``c_t = max(0, 1 - L/lambda)``, ``m = 1 - min(1, 1[N < eta] L/lambda)``, bad
    (``L > lambda and N < eta``) and good (``L < lambda/2 and N > 1.5 eta``)."""
    lam = max(float(lam), 1e-12)
    familiar = novelty < eta
    c = np.maximum(0.0, 1.0 - likelihood / lam)
    m = 1.0 - np.minimum(1.0, familiar * likelihood / lam)
    bad = (likelihood > lam) & familiar
    good = (likelihood < lam / 2) & (novelty > 1.5 * eta)
    return c, m, bad, good


def worst_windows(likelihood: np.ndarray, bad: np.ndarray, half: int, count: int) -> list[tuple[int, int, int]]:
    """Up to ``count`` windows ``(start, stop, worst step)`` of +-``half`` frames around the bad steps of
    largest L, worst first; each next window is centred on a bad step outside the ones already taken."""
    n = len(likelihood)
    order = sorted(np.flatnonzero(bad), key=lambda t: (-likelihood[t], t))
    taken: list[tuple[int, int, int]] = []
    for t in order:
        if len(taken) >= count:
            break
        if any(a <= t < b for a, b, _ in taken):
            continue
        taken.append((max(0, int(t) - half), min(n, int(t) + half + 1), int(t)))
    return taken


@dataclass
class Window:
    """A stretch of frames ``[start, stop)`` around the bad step ``step`` and what was wrong there."""

    start: int
    stop: int
    step: int
    likelihood: float
    novelty: float
    what: str
    base_action: np.ndarray  # the base policy's action at ``step`` (tempo-normalised recorded units)
    action: np.ndarray  # the demonstrated action at ``step`` (same units)


@dataclass
class Assessment:
    """Everything the pass knows about one episode: per-step arrays and the verdict."""

    length: int
    likelihood: np.ndarray
    novelty: np.ndarray
    step_score: np.ndarray  # c_t, the live per-step score
    bad: np.ndarray
    good: np.ndarray
    score: float | None  # M
    bad_steps: int
    good_steps: int
    max_bad: int
    compatible: bool | None
    windows: list[Window]
    in_base: bool
    reason: str | None = None  # why it could not be scored

    def scores(self) -> dict[str, Any]:
        finite = np.isfinite(self.likelihood)
        return {"score": None if self.score is None else round(self.score, 6),
                "bad_steps": self.bad_steps if self.score is not None else None,
                "good_steps": self.good_steps if self.score is not None else None,
                "compatible": self.compatible,
                "novelty_mean": float(self.novelty[finite].mean()) if finite.any() else None,
                "likelihood_mean": float(self.likelihood[finite].mean()) if finite.any() else None}


# ------------------------------------------------------------------------------------------ the pass
class CompatibilityPass:
    """Compatibility of each episode with a base set (see the module docstring). Call ``fit(base
    episodes, spec)`` first (the runner does, in the parent process); ``score`` then works anywhere."""

    name: ClassVar[str] = "compatibility"
    version: ClassVar[str] = "1"

    def __init__(self, params: CompatibilityParams | None = None, **overrides: Any) -> None:
        if params is not None and overrides:
            raise TypeError("CompatibilityPass: give params or keyword overrides, not both")
        self.params = params if params is not None else CompatibilityParams(**overrides)
        self.policy: BasePolicy | None = None

    def features(self, spec: DatasetSpec) -> list[str]:
        """State and action features (factors come with the metadata)."""
        return [n for n, f in spec.features.items() if f.kind in ("state", "action")]

    # -- fit -----------------------------------------------------------------------------------------
    def fit(self, episodes: list[Episode], spec: DatasetSpec) -> CompatibilityPass:
        """Fit the base policy on ``episodes`` and calibrate lambda and eta on them, held out."""
        p = self.params
        started = time.perf_counter()
        if len(episodes) < p.min_base:
            raise DemoforgeError(f"compatibility: the base set has {len(episodes)} episode(s); at least "
                                 f"{p.min_base} are needed to fit and calibrate the base policy")
        state_columns, action_names = column_names(spec, "state"), column_names(spec, "action")
        if not state_columns or not action_names:
            raise DemoforgeError("compatibility: the dataset spec needs state and action features "
                                 f"(state columns {len(state_columns)}, action columns {len(action_names)})")
        terms, names, dropped = resolve_state(p.state_features, state_columns,
                                              [e.meta.factors or {} for e in episodes])
        if dropped:  # a partial task frame is worse than none: use the raw state, as the paper does
            terms, names = [], state_columns
        tempo = [action_names.index(c) for c in p.tempo_columns if c in action_names]
        if len(tempo) != len(p.tempo_columns):
            tempo = []  # a partial translation is not a speed: normalise nothing
        moving = [v for v in (cruise_speed(state_action(e, spec)[1], tempo) for e in episodes) if v > 0]
        frame = Frame(tuple(tuple(t) for t in terms), tuple(tempo), float(np.median(moving)) if moving else 0.0)
        states, actions, groups, kept = [], [], [], []
        for e in episodes:
            s, a = frame.arrays(e, spec)
            ok = np.isfinite(s).all(axis=1) & np.isfinite(a).all(axis=1)
            if ok.any():
                states.append(s[ok])
                actions.append(a[ok])
                groups.append(np.full(int(ok.sum()), len(kept)))
                kept.append(e)
        if len(kept) < 2:
            raise DemoforgeError("compatibility: fewer than 2 base episodes have finite states and actions")
        S, A, G = np.concatenate(states), np.concatenate(actions), np.concatenate(groups)
        state_mean, state_scale = S.mean(axis=0), np.maximum(S.std(axis=0), p.min_scale)
        action_mean, action_scale = A.mean(axis=0), np.maximum(A.std(axis=0), p.min_scale)
        Sz = (S - state_mean) / state_scale
        Az = np.clip((A - action_mean) / action_scale, -p.action_clip, p.action_clip)
        ensemble = KnnEnsemble.fit(Sz, Az, G, p.members, p.neighbors, p.seed)
        # Held-out calibration: every base row against members without its own episode.
        likelihood, novelty = step_terms(ensemble.predict(Sz, exclude=G), Az, p.action_clip)
        lam = p.likelihood_threshold if p.likelihood_threshold is not None else \
            float(np.percentile(likelihood, p.likelihood_percentile))
        eta = p.novelty_threshold if p.novelty_threshold is not None else \
            float(np.percentile(novelty, p.novelty_percentile))
        _, _, bad, _ = step_verdicts(likelihood, novelty, lam, eta)
        calibration = {
            "held_out_likelihood_percentiles": {q: float(np.percentile(likelihood, q)) for q in (50, 75, 90, 95, 99)},
            "held_out_novelty_percentiles": {q: float(np.percentile(novelty, q)) for q in (10, 25, 50, 75, 90)},
            "held_out_bad_fraction": float(bad.mean()),
            "fit_seconds": round(time.perf_counter() - started, 3),
        }
        self.policy = BasePolicy(
            frame=frame, state_names=names or state_columns, dropped=dropped, state_mean=state_mean,
            state_scale=state_scale, action_mean=action_mean, action_scale=action_scale, action_names=action_names,
            gripper=gripper_column(spec, "action"), ensemble=ensemble, likelihood_threshold=float(lam),
            novelty_threshold=float(eta), base_ids={str(e.id): g for g, e in enumerate(kept) if e.id is not None},
            base_episodes=len(kept), base_operators=dict(Counter(e.meta.operator or "unknown" for e in kept)),
            base_steps=int(len(S)), calibration=calibration)
        return self

    # -- map -----------------------------------------------------------------------------------------
    def assess(self, episode: Episode, spec: DatasetSpec) -> Assessment:
        """Per-step L, N, c_t, bad/good steps, M, the verdict and the worst windows of one episode."""
        policy = self.policy
        if policy is None:
            raise DemoforgeError("compatibility: no base policy; fit the pass on a base set first (--base FILTER)")
        p, n = self.params, episode.length
        nan = np.full(n, np.nan)
        empty = np.zeros(n, bool)
        try:
            s, a = policy.raw(episode, spec)
        except KeyError as e:
            return Assessment(n, nan, nan, nan, empty, empty, None, 0, 0, 0, None, [], False,
                              reason=f"the episode has no numeric factor {e.args[0]!r}, which the base "
                                     "policy's state uses")
        ok = np.isfinite(s).all(axis=1) & np.isfinite(a).all(axis=1)
        if not ok.any():
            return Assessment(n, nan, nan, nan, empty, empty, None, 0, 0, 0, None, [], False,
                              reason="no frame has finite states and actions")
        exclude = policy.base_ids.get(str(episode.id)) if episode.id is not None else None
        sz, az = policy.standardise(s[ok], a[ok], p.action_clip)
        predictions = policy.ensemble.predict(sz, exclude=exclude)
        L_ok, N_ok = step_terms(predictions, az, p.action_clip)
        likelihood, novelty = nan.copy(), nan.copy()
        likelihood[ok], novelty[ok] = L_ok, N_ok
        lam, eta = policy.likelihood_threshold, policy.novelty_threshold
        c, m, bad, good = step_verdicts(np.where(ok, likelihood, 0.0), np.where(ok, novelty, np.inf), lam, eta)
        c[~ok] = np.nan
        steps = int(ok.sum())
        max_bad = p.max_bad if p.max_bad is not None else int(math.floor(p.max_bad_fraction * steps + 1e-9))
        bad_steps = int(bad.sum())
        base_mean = np.full((n, a.shape[1]), np.nan)
        base_mean[ok] = np.clip(predictions, -p.action_clip, p.action_clip).mean(axis=0) * policy.action_scale \
            + policy.action_mean
        half = max(1, round(p.window_s * float(spec.fps)))
        windows = [Window(lo, hi, t, float(likelihood[t]), float(novelty[t]),
                          describe(a[t], base_mean[t], policy), base_mean[t].copy(), a[t].copy())
                   for lo, hi, t in worst_windows(np.where(ok, likelihood, -np.inf), bad, half, p.show_windows)]
        return Assessment(n, likelihood, novelty, c, bad, good, float(m[ok].mean()), bad_steps, int(good.sum()),
                          max_bad, bad_steps <= max_bad, windows, exclude is not None)

    def score(self, episode: Episode, spec: DatasetSpec) -> EpisodeResult:
        """Per-episode map: pure, deterministic, no I/O."""
        r = self.assess(episode, spec)
        flags: dict[str, Flag] = {}
        fps = float(spec.fps)
        if r.reason is not None:
            flags["unscorable"] = Flag([[0, r.length]], f"compatibility not scored: {r.reason}")
        elif not r.compatible:
            flags["incompatible"] = Flag(
                [[w.start, w.stop] for w in r.windows],
                f"{r.bad_steps} bad steps (at most {r.max_bad} allowed), compatibility {r.score:.2f}: actions differ "
                f"from the base policy in familiar states; worst: "
                + "; ".join(f"frames {w.start}-{w.stop} ({w.start / fps:.1f}-{w.stop / fps:.1f} s) {w.what}"
                            for w in r.windows))
        payload = {"operator": episode.meta.operator or "unknown", "length": r.length, "in_base": r.in_base,
                   "windows": [(w.start, w.stop, w.likelihood, w.what) for w in r.windows]}
        return EpisodeResult(str(episode.id), r.scores(), flags, payload)

    # -- reduce --------------------------------------------------------------------------------------
    def reduce(self, results: list[EpisodeResult], spec: DatasetSpec) -> DatasetResult:
        """Per-operator summary, the ranking (#bad ascending, #good descending) and findings naming the
        operators whose episodes are incompatible with the base set."""
        policy, fps = self.policy, float(spec.fps)
        scored = [r for r in results if r.scores.get("score") is not None]
        operators: dict[str, list[EpisodeResult]] = {}
        for r in scored:
            operators.setdefault(r.payload.get("operator", "unknown"), []).append(r)
        per_operator = {
            op: {"episodes": len(rs),
                 "mean_score": round(float(np.mean([r.scores["score"] for r in rs])), 4),
                 "fraction_compatible": round(float(np.mean([bool(r.scores["compatible"]) for r in rs])), 4),
                 "mean_bad_steps": round(float(np.mean([r.scores["bad_steps"] for r in rs])), 2),
                 "in_base": sum(bool(r.payload.get("in_base")) for r in rs)}
            for op, rs in sorted(operators.items())}
        ranking = [r.id for r in sorted(scored, key=lambda r: (r.scores["bad_steps"], -r.scores["good_steps"], r.id))]
        findings: list[Finding] = []
        for op, rs in sorted(operators.items(), key=lambda kv: per_operator[kv[0]]["fraction_compatible"]):
            bad = sorted((r for r in rs if not r.scores["compatible"]), key=lambda r: r.scores["score"])
            if not bad:
                continue
            share = per_operator[op]["fraction_compatible"]
            worst = []
            for r in bad[:3]:
                w = r.payload["windows"][:2]
                spans = ", ".join(f"frames {a}-{b} ({a / fps:.1f}-{b / fps:.1f} s) {what}" for a, b, _, what in w)
                worst.append(f"{r.id} (compatibility {r.scores['score']:.2f}, "
                             f"{r.scores['bad_steps']} bad steps): {spans}")
            findings.append(Finding(
                severity="high" if share < 0.5 else "medium",
                title=f"operator {op!r}: {len(bad)} of {len(rs)} episodes incompatible with the base set "
                      f"(mean compatibility {per_operator[op]['mean_score']:.2f})",
                detail="worst windows: " + "; ".join(worst),
                fix="re-record in the base set's style (demoforge record --compat-base FILTER gives live feedback) "
                    "or keep them out of training (--where 'compatibility.compatible')",
                episodes=[r.id for r in bad]))
        unscorable = [r.id for r in results if r.scores.get("score") is None]
        if unscorable:
            reasons = "; ".join(f"{r.id}: {r.flags['unscorable'].detail}" for r in results if "unscorable" in r.flags)
            findings.append(Finding("low", f"{len(unscorable)} episode(s) could not be scored for compatibility",
                                    detail=reasons[:500], episodes=unscorable))
        if policy is not None and policy.base_episodes < self.params.advised_base:
            findings.append(Finding(
                "low", f"the base set has only {policy.base_episodes} episodes: compatible/incompatible verdicts "
                       f"are unreliable below about {self.params.advised_base}",
                detail="with 10 base episodes a conflicting operator's episodes were accepted about half the time "
                       "on the tabletop (their scores still rank below the base style's)",
                fix="record more base episodes, or rank by compatibility.score rather than filter on compatible"))
        if scored and not any(f.severity in ("high", "medium") for f in findings):
            findings.append(Finding("info", f"all {len(scored)} scored episodes are compatible with the base set",
                                    detail=f"mean compatibility {np.mean([r.scores['score'] for r in scored]):.2f}"))
        summary: dict[str, Any] = {
            "episodes": len(results),
            "scored": len(scored),
            "fraction_compatible": (round(float(np.mean([bool(r.scores["compatible"]) for r in scored])), 4)
                                    if scored else None),
            "operators": per_operator,
            "ranking": ranking,
            "unscorable": unscorable,
        }
        by_operator = ", ".join(f"{op} {v['mean_score']:.2f} ({v['fraction_compatible']:.0%} compatible)"
                                for op, v in per_operator.items())
        summary["headline"] = (f"{sum(bool(r.scores['compatible']) for r in scored)} of {len(scored)} compatible"
                               + (f"; by operator: {by_operator}" if by_operator else ""))
        if policy is not None:
            summary["headline"] = f"base {policy.base_episodes} episodes; " + summary["headline"]
            summary.update({
                "likelihood_threshold": policy.likelihood_threshold,
                "novelty_threshold": policy.novelty_threshold,
                "units": "standard deviations of the base set's (tempo-normalised) actions",
                "base": {"episodes": policy.base_episodes, "steps": policy.base_steps,
                         "operators": policy.base_operators, "ids": sorted(policy.base_ids)},
                "state_features": policy.state_names,
                "dropped_state_features": policy.dropped,
                "tempo_columns": [policy.action_names[i] for i in policy.tempo],
                "calibration": policy.calibration,
            })
        return DatasetResult(episodes={r.id: r for r in results}, summary=summary, findings=findings)


# ------------------------------------------------------------------------------------------ wording
def _direction(v: np.ndarray, names: list[str], still: float) -> str:
    """``down and +x``, ``up``, or ``hold still`` for a translation ``v`` over the named axes."""
    size = float(np.sqrt(np.square(v).sum()))
    if size < still:
        return "hold still"
    words = []
    for value, name in sorted(zip(v, names), key=lambda x: -abs(x[0])):
        if abs(value) < 0.4 * np.abs(v).max():
            continue
        axis = name.rsplit(".", 1)[-1]
        if axis == "z":
            words.append("up" if value > 0 else "down")
        else:
            words.append(f"{'+' if value > 0 else '-'}{axis}")
    return "move " + " and ".join(words)


def _num(x: float) -> str:
    return f"{x:.3g}" if abs(x) >= 1e-4 else "0"


def describe(action: np.ndarray, base: np.ndarray, policy: BasePolicy) -> str:
    """What differs between the demonstrated and the base policy's action, in words, largest first."""
    scale = policy.action_scale
    err = np.square((action - base) / scale)
    groups: list[tuple[float, str]] = []
    tempo = policy.tempo
    if tempo:
        you, them = action[tempo], base[tempo]
        names = [policy.action_names[i] for i in tempo]
        still = 0.25 * policy.cruise if policy.cruise > 0 else 1e-9
        text = f"you {_direction(you, names, still)}, the base policy would {_direction(them, names, still)}"
        if np.linalg.norm(you) >= still and np.linalg.norm(them) >= still:
            cos = float(you @ them / (np.linalg.norm(you) * np.linalg.norm(them)))
            text += f" ({math.degrees(math.acos(max(-1.0, min(1.0, cos)))):.0f} deg apart)"
        groups.append((float(err[tempo].sum()), text))
    if policy.gripper is not None:
        g = policy.gripper
        groups.append((float(err[g]), f"gripper command {action[g]:.2f} where the base policy gives {base[g]:.2f}"))
    for i, name in enumerate(policy.action_names):
        if i not in tempo and i != policy.gripper:
            groups.append((float(err[i]), f"{name} {_num(action[i])} where the base policy gives {_num(base[i])}"))
    groups.sort(key=lambda x: -x[0])
    shown = [text for e, text in groups if e >= 0.3 * groups[0][0]][:2]
    return "; ".join(shown)
