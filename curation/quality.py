"""The quality pass: what is broken in an episode, and which frames show it.

Per episode (``score``): idle segments, jittery motion (jerk), gripper chatter, NaN/inf values, and
dropped frames and loop overruns from the recorder's clock. Over the dataset (``reduce``): episodes whose
length is unusual for their task, and near-duplicate episodes. Every flag carries the ``[start, stop)``
frame ranges that caused it and a one-line detail with the numbers.

Why these: Belkhale, Cui & Sadigh, "Data Quality in Imitation Learning" (NeurIPS 2023) find that
noise in the expert's *actions* (policy noise: jitter, chatter, inconsistent labels) hurts a cloned
policy while noise in execution (system noise) can help, and that longer horizons widen the gap between
the learned and the expert state distributions (idle time and stalls lengthen an episode without
teaching anything). NaN/inf and dropped frames break training code outright. The detectors are simple,
robust heuristics of ours, not the paper's; so are the thresholds, stated on ``QualityParams``. Each is
scaled by the episode itself (its typical speed, its gripper range, the spec's control period) so it
works for any robot's units.

Score keys (catalog columns ``quality.<key>``): ``ok``, ``idle_frac``, ``jerk``, ``chatter``,
``nonfinite``, ``dropped``, ``overruns``, ``n_flags`` from ``score`` (``jerk`` is the episode's peak
smoothed jerk, so ``jerk > jerk_threshold`` is exactly the flagged episodes); ``length_z``, ``dup_of`` and
``dup_dist`` added by ``reduce``. Flag names: ``idle``, ``jerk``, ``chatter``, ``nonfinite``,
``dropped_frames``, ``overrun`` (per episode); ``length_outlier``, ``near_duplicate`` (dataset).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from scipy.spatial import cKDTree

from curation.base import (DatasetResult, EpisodeResult, Finding, Flag, gripper_column, position_columns,
                           ranges, state_action)
from toolkit.episode import Episode
from toolkit.spec import DatasetSpec

WALL_TIME = "observation.wall_time"  # written by teleop.recorder; curation may not import teleop
_CHECKED_KINDS = ("state", "action", "scalar")  # where NaN/inf is looked for (never images)


@dataclass(frozen=True)
class QualityParams:
    """Thresholds of the quality pass. Times are in seconds and converted with the spec's fps.

    Idle: a frame is idle when the end effector moves less than ``idle_speed_fraction`` of the episode's
    90th-percentile speed (or less than ``idle_speed_floor``, in state units per frame, whichever is
    larger); a run of idle frames lasting ``idle_min_s`` or more is flagged. 1.5 s sits above the
    natural stops of the scripted operators at 10 Hz (gripper waits of 0.3-0.4 s, a hesitation of
    0.3-0.8 s, even one that runs into a gripper wait: up to ~1.4 s) and below a stall worth trimming;
    chained hesitations that keep the robot still for 1.5 s or more are idle, and flagged.

    Jerk: the third difference of the end-effector position, divided by the episode's 90th-percentile
    speed (a unit-free ratio), then a rolling median over ``jerk_window`` frames so that one change of
    direction (a two-frame spike of up to ~2) does not count and only sustained shaking does. Flagged
    above ``jerk_threshold``. Measured peaks on the tabletop: clean scripted motion 0.5-0.8, hand tremor
    (noise 16% of the speed, style ``noisy``) 0.7-1.05, an alternating jitter as large as the motion 2-4.

    Chatter: the gripper command (the action's ``gripper`` column, else the state's) binarised with
    hysteresis at 30%/70% of its range in the episode; more than ``chatter_max_switches`` open/close
    switches within ``chatter_window_s`` is chatter. A range smaller than ``chatter_min_swing`` of the
    command's magnitude is noise on a constant command, not switching.

    Timing: a gap in ``observation.wall_time`` of ``drop_gap`` periods or more lost a frame; more than
    ``1 + late_tolerance`` periods is an overrun. Gaps are read only when the clock was paced (median
    gap within 25% of the period): a simulator recording as fast as it can says nothing about drops.

    Length (reduce): modified z-score (Iglewicz & Hoaglin: median and 1.4826 x MAD) of the length
    within its task, flagged beyond ``length_z``; tasks with fewer than ``length_min_group`` episodes
    are compared with the whole dataset (task strings often name the object, so each is rare). The
    spread has a floor of ``length_min_spread`` of the median so that a dataset of near-equal lengths
    does not flag a difference of a few frames.

    Near duplicates (reduce): each episode's state and action resampled to ``signature_points`` points
    along its progress, standardised per column over the dataset (a column's scale is at least a tenth
    of the median column's); the RMS difference (in dataset standard deviations) to an earlier episode
    below ``duplicate_distance`` flags the later one. Distinct scripted episodes lie 0.3 or more apart;
    a copy lies at 0, a copy with sub-millimetre noise well below 0.1.

    ``blocking``: the flags that make an episode unusable (``ok`` is False). Idle time can be trimmed,
    overruns are harmless on their own, an odd length or a duplicate is worth a look but not unusable.
    """

    idle_speed_fraction: float = 0.1
    idle_speed_floor: float = 1e-4
    idle_min_s: float = 1.5
    jerk_threshold: float = 1.5
    jerk_window: int = 5
    chatter_window_s: float = 1.0
    chatter_max_switches: int = 2
    chatter_min_swing: float = 0.1
    drop_gap: float = 1.5
    late_tolerance: float = 0.2
    length_z: float = 3.5
    length_min_group: int = 5
    length_min_spread: float = 0.1
    signature_points: int = 32
    duplicate_distance: float = 0.1
    blocking: tuple[str, ...] = ("nonfinite", "jerk", "chatter", "dropped_frames")


# --------------------------------------------------------------------------------------- detectors
def typical_speed(pos: np.ndarray, floor: float) -> tuple[np.ndarray, float]:
    """Per-step speed ``|p[t+1] - p[t]|`` (NaN where a position is not finite) and the typical speed
    when moving: the 90th percentile over the steps faster than ``floor`` (``floor`` if none are).
    Only moving steps count, so an episode that mostly stands still keeps a sensible scale."""
    speed = np.sqrt(np.square(np.diff(pos, axis=0)).sum(axis=1))
    moving = speed[speed > floor]  # NaN > floor is False
    return speed, max(float(np.percentile(moving, 90)) if moving.size else 0.0, floor)


def idle_mask(speed: np.ndarray, v90: float, fps: float, p: QualityParams) -> np.ndarray:
    """Frames inside idle runs of ``idle_min_s`` or longer, from the per-step ``speed`` and its typical
    value ``v90`` (``typical_speed``). Frame t is idle when it barely moves to t+1 (the last frame
    inherits its predecessor's verdict); a NaN step is never idle."""
    n = len(speed) + 1
    if n < 2:
        return np.zeros(n, bool)
    still = speed < max(p.idle_speed_fraction * v90, p.idle_speed_floor)  # NaN < x is False
    still = np.append(still, still[-1])
    mask = np.zeros(n, bool)
    for a, b in ranges(still, min_length=max(2, round(p.idle_min_s * fps))):
        mask[a:b] = True
    return mask


def jerk_profile(pos: np.ndarray, v90: float, p: QualityParams) -> np.ndarray:
    """Per-frame jerk in units of the episode's typical speed ``v90``, rolling-median smoothed (0 where
    unknown). ``|Δ³p|`` spans frames t..t+3 and is placed at t+2, where the middle acceleration changes."""
    n = len(pos)
    out = np.zeros(n)
    if n < 4 or pos.shape[1] == 0:
        return out
    jerk = np.sqrt(np.square(np.diff(pos, n=3, axis=0)).sum(axis=1)) / v90
    out[2:n - 1] = np.where(np.isfinite(jerk), jerk, 0.0)
    w = max(1, p.jerk_window | 1)  # odd, so the median is centred
    if n < w:
        return out
    padded = np.pad(out, w // 2)  # zero padding: an edge frame needs a majority of shaking neighbours
    return np.median(np.lib.stride_tricks.sliding_window_view(padded, w), axis=1)


def gripper_levels(g: np.ndarray, min_swing: float) -> np.ndarray | None:
    """The gripper command as 0 (open) / 1 (closed) with hysteresis at 30%/70% of its range; values in
    between, and NaN, keep the previous level. None when the command does not really switch."""
    finite = g[np.isfinite(g)]
    if finite.size < 2:
        return None
    lo, hi = float(finite.min()), float(finite.max())
    if hi - lo <= min_swing * max(abs(lo), abs(hi)):
        return None
    level = np.full(len(g), np.nan)
    level[g >= lo + 0.7 * (hi - lo)] = 1.0
    level[g <= lo + 0.3 * (hi - lo)] = 0.0
    known = np.isfinite(level)
    idx = np.where(known, np.arange(len(g)), 0)
    np.maximum.accumulate(idx, out=idx)  # forward fill: index of the last decided frame
    filled = level[idx]
    filled[~np.isfinite(filled)] = level[known][0]  # leading undecided frames take the first level
    return filled


def chatter_mask(g: np.ndarray, fps: float, p: QualityParams) -> tuple[np.ndarray, int]:
    """Frames where the gripper switches more than ``chatter_max_switches`` times within
    ``chatter_window_s``, and how many switches fall in them."""
    n = len(g)
    mask = np.zeros(n, bool)
    level = gripper_levels(g, p.chatter_min_swing)
    if level is None:
        return mask, 0
    switches = np.flatnonzero(np.diff(level)) + 1  # frame t differs from frame t-1
    if len(switches) <= p.chatter_max_switches:
        return mask, 0
    window = max(2, round(p.chatter_window_s * fps))
    count = np.searchsorted(switches, switches + window) - np.arange(len(switches))  # switches in [s, s+window)
    busy = np.flatnonzero(count > p.chatter_max_switches)
    covered = np.zeros(len(switches) + 1, int)  # difference array over switches
    np.add.at(covered, busy, 1)
    np.add.at(covered, busy + count[busy], -1)
    in_chatter = np.cumsum(covered[:-1]) > 0
    for i in busy:  # the frame before the first switch through the last switch of the window
        mask[switches[i] - 1:switches[i + count[i] - 1] + 1] = True
    return mask, int(in_chatter.sum())


def gripper_signal(state: np.ndarray, action: np.ndarray, spec: DatasetSpec) -> np.ndarray | None:
    """The gripper command (the action's ``gripper`` column), else the measured gripper (the state's)."""
    column = gripper_column(spec, "action")
    if column is not None:
        return action[:, column]
    column = gripper_column(spec, "state")
    return state[:, column] if column is not None else None


def nonfinite_mask(episode: Episode, spec: DatasetSpec) -> tuple[np.ndarray, list[str]]:
    """Frames where any state, action or scalar feature holds NaN or inf, and which features do."""
    n = episode.length
    mask = np.zeros(n, bool)
    bad: list[str] = []
    for name, f in spec.features.items():
        if f.kind not in _CHECKED_KINDS or name not in episode.data:
            continue
        array = np.asarray(episode.data[name])
        if array.dtype.kind != "f":
            continue
        rows = ~np.isfinite(array.reshape(n, -1)).all(axis=1)
        if rows.any():
            mask |= rows
            bad.append(name)
    return mask, bad


def clock_gaps(wall: np.ndarray | None, period: float, p: QualityParams) -> np.ndarray | None:
    """Gaps between consecutive frames' wall times in control periods, or None when the clock says
    nothing (absent, too short, or not paced at the spec's rate)."""
    if wall is None or len(wall) < 2 or period <= 0:
        return None
    gaps = np.diff(np.asarray(wall, np.float64).reshape(len(wall), -1)[:, 0]) / period
    finite = gaps[np.isfinite(gaps)]
    if finite.size == 0 or abs(float(np.median(finite)) - 1.0) > 0.25:
        return None
    return gaps


def gap_frames(gap: np.ndarray) -> np.ndarray:
    """Frames on either side of each marked gap (gap i lies between frames i and i+1)."""
    mask = np.zeros(len(gap) + 1, bool)
    mask[:-1] |= gap
    mask[1:] |= gap
    return mask


def signature(x: np.ndarray, points: int) -> np.ndarray:
    """``x`` (T, D) linearly resampled to ``points`` rows along its progress (float32)."""
    n = len(x)
    if n == 0:
        return np.full((points, x.shape[1]), np.nan, np.float32)
    t = np.linspace(0.0, n - 1, points)
    i0 = np.floor(t).astype(int)
    i1 = np.minimum(i0 + 1, n - 1)
    w = (t - i0)[:, None]
    return (x[i0] * (1.0 - w) + x[i1] * w).astype(np.float32)


def _fmt(frames: list[list[int]], limit: int = 4) -> str:
    shown = ", ".join(f"{a}-{b}" for a, b in frames[:limit])
    return shown + (f" (+{len(frames) - limit} more)" if len(frames) > limit else "")


# ------------------------------------------------------------------------------------------- pass
@dataclass
class QualityPass:
    """Idle, jerk, gripper chatter, NaN/inf, dropped frames and overruns per episode; length outliers
    and near duplicates over the dataset. See the module docstring for the score keys and flags."""

    name: ClassVar[str] = "quality"
    version: ClassVar[str] = "1"
    params: QualityParams = QualityParams()

    def features(self, spec: DatasetSpec) -> list[str]:
        """State, action and scalar features (the wall clock among them); never images."""
        return [n for n, f in spec.features.items() if f.kind in _CHECKED_KINDS]

    def score(self, episode: Episode, spec: DatasetSpec) -> EpisodeResult:
        """Per-episode flags and scores; pure, deterministic, no I/O. An episode with no frames (which a
        store refuses) is not ok and has no flags, there being no frame to point at."""
        p, n, fps = self.params, episode.length, float(spec.fps)
        if n == 0:
            return EpisodeResult(str(episode.id), {"ok": False, "idle_frac": 0.0, "jerk": 0.0, "chatter": 0,
                                                   "nonfinite": 0, "dropped": 0, "overruns": 0, "n_flags": 0},
                                 payload={"length": 0, "task": episode.meta.task})
        state, action = state_action(episode, spec)  # fresh float64 copies
        for array in (state, action):  # inf becomes NaN: NaN propagates quietly, inf - inf warns
            array[~np.isfinite(array)] = np.nan
        pos = state[:, position_columns(spec)] if state.shape[1] else state
        flags: dict[str, Flag] = {}

        speed, v90 = typical_speed(pos, p.idle_speed_floor)
        idle = idle_mask(speed, v90, fps, p) if pos.shape[1] else np.zeros(n, bool)
        if idle.any():
            spans = ranges(idle)
            flags["idle"] = Flag(spans, f"{len(spans)} idle segment(s) of {idle.sum()} frames "
                                        f"({idle.mean():.0%} of the episode) at frames {_fmt(spans)}")

        jerk = jerk_profile(pos, v90, p)
        peak = float(jerk.max())
        shaking = jerk > p.jerk_threshold
        if shaking.any():
            half = p.jerk_window // 2  # widen to the frames the smoothing window looked at
            spans = [[max(0, a - half), min(n, b + half)] for a, b in ranges(shaking)]
            flags["jerk"] = Flag(spans, f"jerk up to {peak:.1f}x the typical speed (threshold "
                                        f"{p.jerk_threshold}) at frames {_fmt(spans)}")

        grip = gripper_signal(state, action, spec)
        chatter, switches = chatter_mask(grip, fps, p) if grip is not None else (np.zeros(n, bool), 0)
        if chatter.any():
            spans = ranges(chatter)
            flags["chatter"] = Flag(spans, f"gripper switched {switches} times in bursts of more than "
                                           f"{p.chatter_max_switches} per {p.chatter_window_s:g} s "
                                           f"at frames {_fmt(spans)}")

        bad, bad_features = nonfinite_mask(episode, spec)
        if bad.any():
            spans = ranges(bad)
            flags["nonfinite"] = Flag(spans, f"NaN or inf in {bad.sum()} frame(s) of {', '.join(bad_features)} "
                                             f"at frames {_fmt(spans)}")

        dropped, overruns = self._timing(episode, spec, flags)

        scores: dict[str, Any] = {
            "idle_frac": round(float(idle.mean()), 4),
            "jerk": round(peak, 3),
            "chatter": switches,
            "nonfinite": int(bad.sum()),
            "dropped": dropped,
            "overruns": overruns,
        }
        result = EpisodeResult(id=str(episode.id), scores=scores, flags=flags, payload={
            "length": n, "task": episode.meta.task,
            "signature": signature(np.concatenate([state, action], axis=1), p.signature_points),
        })
        self._verdict(result)
        return result

    def _timing(self, episode: Episode, spec: DatasetSpec, flags: dict[str, Flag]) -> tuple[int, int]:
        """Dropped frames and overruns: located from wall-time gaps, counted as the larger of the gaps
        and the recorder's own ``meta.timing`` counts. Adds ``dropped_frames`` and ``overrun`` flags."""
        p, n = self.params, episode.length
        timing = episode.meta.timing or {}
        gaps = clock_gaps(episode.data.get(WALL_TIME), 1.0 / float(spec.fps), p)
        lost = np.zeros(0, bool) if gaps is None else gaps >= p.drop_gap
        late = np.zeros(0, bool) if gaps is None else (gaps > 1.0 + p.late_tolerance) & ~lost
        seen = int(np.maximum(np.round(gaps[lost]) - 1, 1).sum()) if lost.any() else 0
        dropped = max(seen, int(timing.get("dropped_frames") or 0))
        overruns = max(int(lost.sum() + late.sum()), int(timing.get("overruns") or 0))
        if lost.any():
            spans = ranges(gap_frames(lost))
            flags["dropped_frames"] = Flag(spans, f"{dropped} frame(s) dropped: {int(lost.sum())} wall-time "
                                                  f"gap(s) of up to {float(gaps[lost].max()):.1f} periods "
                                                  f"at frames {_fmt(spans)}")
        elif dropped:  # the recorder counted drops but no clock locates them: point at the whole episode
            flags["dropped_frames"] = Flag([[0, n]], f"the recorder reported {dropped} dropped frame(s); "
                                                     "no paced wall time locates them")
        if late.any():
            spans = ranges(gap_frames(late))
            flags["overrun"] = Flag(spans, f"{int(late.sum())} frame(s) late by more than {p.late_tolerance:.0%} "
                                           f"of a period (up to {float(gaps[late].max()):.2f} periods) "
                                           f"at frames {_fmt(spans)}")
        return dropped, overruns

    def _verdict(self, result: EpisodeResult) -> None:
        has_frames = result.payload.get("length", 1) > 0
        result.scores["ok"] = has_frames and not any(name in self.params.blocking for name in result.flags)
        result.scores["n_flags"] = len(result.flags)

    # ----------------------------------------------------------------------------------- reduce
    def reduce(self, results: list[EpisodeResult], spec: DatasetSpec) -> DatasetResult:
        """Add ``length_outlier`` and ``near_duplicate`` flags (and ``length_z``, ``dup_of``, ``dup_dist``
        scores), recompute ``ok`` and ``n_flags``, and summarise. The inputs are not modified."""
        out = {r.id: EpisodeResult(r.id, dict(r.scores), dict(r.flags), r.payload) for r in results}
        ordered = [out[r.id] for r in results]
        self._lengths(ordered)
        pairs = self._duplicates(ordered)
        for r in ordered:
            self._verdict(r)
        return DatasetResult(episodes=out, summary=self._summary(ordered, pairs), findings=self._findings(ordered))

    def _lengths(self, results: list[EpisodeResult]) -> None:
        """Modified z-score of each episode's length among the episodes of its task; an episode whose
        task has fewer than ``length_min_group`` episodes (a task string that names the object, say) is
        compared with the whole dataset instead. None when even the dataset is too small."""
        p = self.params
        tasks: dict[Any, list[EpisodeResult]] = {}
        for r in results:
            r.scores["length_z"] = None
            tasks.setdefault(r.payload.get("task"), []).append(r)
        pooled = [r for group in tasks.values() if len(group) < p.length_min_group for r in group]
        groups = [(f"task {task!r}", group, group) for task, group in tasks.items() if len(group) >= p.length_min_group]
        if pooled and len(results) >= p.length_min_group:
            groups.append(("the dataset", pooled, results))
        for name, group, reference in groups:
            lengths = np.array([r.payload["length"] for r in reference], float)
            median = float(np.median(lengths))
            spread = max(1.4826 * float(np.median(np.abs(lengths - median))), p.length_min_spread * median, 1.0)
            for r in group:
                length = r.payload["length"]
                z = (length - median) / spread
                r.scores["length_z"] = round(float(z), 2)
                if abs(z) > p.length_z:
                    kind = "short" if z < 0 else "long"
                    r.flags["length_outlier"] = Flag([[0, int(length)]], (
                        f"{int(length)} frames is {kind} for {name} (median {median:g}, "
                        f"robust z {z:+.1f}, threshold {p.length_z})"))

    def _duplicates(self, results: list[EpisodeResult]) -> int:
        """Flag each episode whose signature lies within ``duplicate_distance`` of an earlier one (in id
        order), naming the nearest such earlier episode. Returns the number of close pairs."""
        for r in results:
            r.scores["dup_of"], r.scores["dup_dist"] = None, None
        usable = [r for r in results if isinstance(r.payload.get("signature"), np.ndarray)]
        if len(usable) < 2:
            return 0
        sigs = np.stack([r.payload["signature"] for r in usable]).astype(np.float64)  # (N, points, D)
        flat = sigs.reshape(-1, sigs.shape[2])
        centre = np.nanmean(flat, axis=0) if np.isfinite(flat).any() else np.zeros(sigs.shape[2])
        scale = np.nan_to_num(np.nanstd(flat, axis=0))
        # A column that barely varies over the whole dataset (roll of a top-down gripper) holds mostly
        # noise: its scale is floored at a tenth of the median column's, so the noise does not dominate.
        floor = 0.1 * float(np.median(scale))
        scale = np.maximum(scale, floor) if floor > 0 else np.where(scale > 0, scale, 1.0)
        x = np.nan_to_num((sigs - np.nan_to_num(centre)) / scale, nan=0.0, posinf=0.0, neginf=0.0)
        x = x.reshape(len(usable), -1) / math.sqrt(sigs.shape[1] * sigs.shape[2])  # Euclidean == RMS
        pairs = cKDTree(x).query_pairs(self.params.duplicate_distance, output_type="ndarray")
        best: dict[int, tuple[float, int]] = {}
        for i, j in pairs:  # i < j: the later episode is the copy
            d = float(np.linalg.norm(x[i] - x[j]))
            if j not in best or d < best[j][0]:
                best[j] = (d, int(i))
        for j, (d, i) in best.items():
            copy, original = usable[j], usable[i]
            copy.scores["dup_of"], copy.scores["dup_dist"] = original.id, round(d, 4)
            copy.flags["near_duplicate"] = Flag([[0, int(copy.payload["length"])]], (
                f"near-duplicate of episode {original.id} (RMS difference {d:.3f} dataset std, "
                f"threshold {self.params.duplicate_distance})"))
        return len(pairs)

    def _summary(self, results: list[EpisodeResult], pairs: int) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for r in results:
            for name in r.flags:
                counts[name] = counts.get(name, 0) + 1
        n = len(results)
        ok = sum(bool(r.scores["ok"]) for r in results)
        flagged = ", ".join(f"{name} {count}" for name, count in sorted(counts.items())) or "none"
        return {
            "headline": f"{ok} of {n} episodes ok; flagged: {flagged}",
            "episodes": n,
            "ok": ok,
            "ok_frac": round(ok / n, 4) if n else None,
            "flags": dict(sorted(counts.items())),
            "idle_frac_mean": round(float(np.mean([r.scores["idle_frac"] for r in results])), 4) if n else None,
            "frames": int(sum(r.payload.get("length", 0) for r in results)),
            "nonfinite_frames": int(sum(r.scores["nonfinite"] for r in results)),
            "dropped_frames": int(sum(r.scores["dropped"] for r in results)),
            "duplicate_pairs": pairs,
        }

    def _findings(self, results: list[EpisodeResult]) -> list[Finding]:
        findings = []
        for name, (severity, title, fix) in _FINDINGS.items():
            flagged = [r for r in results if name in r.flags]
            if flagged:
                n = len(flagged)
                findings.append(Finding(severity, title.format(n=n, s="" if n == 1 else "s"),
                                        _finding_detail(name, flagged, self.params), fix, [r.id for r in flagged]))
        ok = sum(bool(r.scores["ok"]) for r in results)
        findings.append(Finding("info", f"{ok} of {len(results)} episodes usable",
                                f"unusable = flagged {', '.join(self.params.blocking)}"))
        return findings


def _finding_detail(name: str, flagged: list[EpisodeResult], p: QualityParams) -> str:
    """The numbers behind a finding about the episodes carrying flag ``name``."""
    def total(key: str) -> int:
        return sum(int(r.scores[key] or 0) for r in flagged)

    if name == "idle":
        most = sum(1 for r in flagged if r.scores["idle_frac"] > 0.3)
        return (f"still (slower than {p.idle_speed_fraction:.0%} of the episode's typical speed) for "
                f"{p.idle_min_s:g} s or more; {most} of them idle for more than 30% of their frames")
    if name == "jerk":
        return (f"median peak jerk {np.median([r.scores['jerk'] for r in flagged]):.1f}x the typical speed "
                f"(threshold {p.jerk_threshold})")
    if name == "chatter":
        return (f"{total('chatter')} switches in bursts of more than {p.chatter_max_switches} "
                f"per {p.chatter_window_s:g} s")
    if name == "nonfinite":
        return f"{total('nonfinite')} frames hold NaN or inf"
    if name == "dropped_frames":
        return (f"{total('dropped')} frames lost (wall-time gaps of {p.drop_gap:g} periods or more, "
                "or the recorder's count)")
    if name == "overrun":
        return f"{total('overruns')} late frames (more than {p.late_tolerance:.0%} of a period)"
    if name == "length_outlier":
        short = sum(1 for r in flagged if (r.scores["length_z"] or 0) < 0)
        return f"{short} short, {len(flagged) - short} long (robust z beyond {p.length_z:g})"
    if name == "near_duplicate":
        return f"RMS difference to an earlier episode below {p.duplicate_distance:g} dataset standard deviations"
    return ""


# flag -> (severity, title, fix); most severe first, which is also the order of the findings
_FINDINGS: dict[str, tuple[str, str, str]] = {
    "nonfinite": ("high", "{n} episode{s} hold NaN or inf values",
                  "delete them with `demoforge delete`, or re-record; training code cannot use them"),
    "dropped_frames": ("medium", "{n} episode{s} dropped frames (the control loop fell behind)",
                       "re-record with less load on the recording machine or at a lower fps"),
    "jerk": ("medium", "{n} episode{s} with jittery motion",
             "re-record; check the input device for noise and lower its sensitivity"),
    "chatter": ("medium", "{n} episode{s} with gripper chatter",
                "re-record; debounce the gripper button"),
    "near_duplicate": ("medium", "{n} episode{s} nearly duplicate an earlier episode",
                       "delete the copies with `demoforge delete` (each flag names the original)"),
    "length_outlier": ("low", "{n} episode{s} with an unusual length for their task",
                       "look at them: delete truncated recordings, trim or re-record stalled ones"),
    "idle": ("low", "{n} episode{s} with idle segments",
             "trim idle starts and ends with `demoforge trim --start/--end`; re-record long pauses in the middle"),
    "overrun": ("low", "{n} episode{s} with late frames (loop overruns)",
                "usually harmless; check the recording machine's load if many"),
}
