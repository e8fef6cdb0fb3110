"""The quality pass against ground truth planted in the simulator.

Episodes are recorded on the embedded MuJoCo tabletop by scripted operators through the real recorder
into a real store; a ``plant`` wraps the operator and alters its commands to plant a known property:

- pause: no translation for 20 ticks (2 s at 10 Hz);
- jitter: +-4 cm per tick along a seeded direction, alternating every tick, for 10 ticks;
- chatter: the gripper command toggling every tick for 8 ticks, between 0 and 0.9 (not 1.0: the
  tabletop's fingers jam when fully closed on nothing and never reopen, which would wreck the episode);
- nan: one value of one action set to NaN (the environment zeroes it; the recorder keeps the NaN).

Each planted window starts at a tick drawn from the episode seed, so the truth is known per episode.
"""

from __future__ import annotations

import pickle
from dataclasses import replace

import numpy as np
import pytest

from curation.base import DatasetResult, EpisodeResult, ranges
from curation.quality import QualityParams, QualityPass
from curation.runner import run_episodes
from teleop.device import Command
from teleop.sim.scripted import STYLES
from toolkit.episode import Episode, EpisodeMeta
from toolkit.spec import DatasetSpec, Feature

KINDS = ("clean", "pause", "jitter", "chatter", "nan")  # chosen by seed % 5
FLAG_OF = {"pause": "idle", "jitter": "jerk", "chatter": "chatter", "nan": "nonfinite"}


def planted(seed: int, kind: str | None = None) -> tuple[str, tuple[int, int] | None]:
    """What is planted in the episode with this seed (``kind``, else chosen by the seed), and in which
    ticks (= frames) ``[start, stop)``."""
    kind = kind or KINDS[seed % len(KINDS)]
    start = {"pause": (12, 22), "jitter": (15, 25), "chatter": (2, 6), "nan": (10, 20)}.get(kind)
    if start is None:
        return kind, None
    s = int(np.random.default_rng(seed).integers(*start))
    return kind, (s, s + {"pause": 20, "jitter": 10, "chatter": 8, "nan": 1}[kind])


def plant(command: Command, tick: int, seed: int, kind: str | None = None) -> Command:
    kind, window = planted(seed, kind)
    if window is None or not window[0] <= tick < window[1]:
        return command
    action = np.array(command.action, np.float32)
    if kind == "pause":
        action[:6] = 0.0
    elif kind == "jitter":
        direction = np.random.default_rng(seed).normal(size=3)
        action[:3] += (0.04 if tick % 2 else -0.04) * direction / np.linalg.norm(direction)
    elif kind == "chatter":
        action[6] = 0.9 * (tick % 2)
    elif kind == "nan":
        action[seed % 7] = np.nan
    return replace(command, action=action)


def quality(store) -> DatasetResult:
    return run_episodes([QualityPass()], store.episodes(), store.spec)["quality"]


def overlaps(frames: list[list[int]], window: tuple[int, int]) -> bool:
    return any(a < window[1] and window[0] < b for a, b in frames)


def test_planted_pause_jitter_chatter_nan_precision_recall(tmp_path, sim_store, block):
    plan = [block(style=s, count=15, seed=100 * i, plant=plant) for i, s in enumerate(("careful", "fast", "side"))]
    plan.append(block(style="noisy", count=5, seed=400))  # hand tremor: natural, must not count as jitter
    store = sim_store(tmp_path / "q.zarr", plan)
    result = quality(store)

    truth = {}
    for i in store.ids():
        meta = store.meta(i)
        truth[i] = ("clean", None) if meta.operator == "noisy" else planted(meta.factors["seed"])
    assert {k for k, _ in truth.values()} == set(KINDS)

    for kind, flag in FLAG_OF.items():
        wanted = {i for i, (k, _) in truth.items() if k == kind}
        flagged = {i for i, r in result.episodes.items() if flag in r.flags}
        hit = wanted & flagged
        precision, recall = len(hit) / max(len(flagged), 1), len(hit) / len(wanted)
        assert precision >= 0.9 and recall >= 0.9, f"{flag}: precision {precision:.2f}, recall {recall:.2f}"
        for i in hit:  # the flag points at the planted frames
            assert overlaps(result.episodes[i].flags[flag].frames, truth[i][1]), (i, flag, truth[i])

    for i, (kind, window) in truth.items():
        r = result.episodes[i]
        if kind == "nan":  # exactly the frame that holds the NaN
            assert r.flags["nonfinite"].frames == [list(window)] and r.scores["nonfinite"] == 1
        if kind == "clean":  # the natural stops, turns and tremor of clean operators raise nothing
            assert not set(r.flags) - {"length_outlier"}, (i, r.flags)
        # a pause can be trimmed; NaN, jitter and chatter make an episode unusable
        assert r.scores["ok"] is (kind in ("clean", "pause")), (i, kind, r.flags)
        for key in ("idle_frac", "jerk", "chatter", "nonfinite", "dropped", "overruns", "n_flags", "length_z"):
            assert key in r.scores
        # a simulator recording as fast as it can has an unpaced clock: no timing flags; no copies
        assert not {"dropped_frames", "overrun", "near_duplicate"} & set(r.flags)

    by_title = {f.title: f for f in result.findings}
    nan_finding = next(f for t, f in by_title.items() if "NaN" in t)
    assert nan_finding.severity == "high"
    assert set(nan_finding.episodes) == {i for i, (k, _) in truth.items() if k == "nan"}
    assert result.summary["flags"]["nonfinite"] == len(nan_finding.episodes)
    assert result.summary["ok"] == sum(r.scores["ok"] for r in result.episodes.values())


def pause_every_other(command: Command, tick: int, seed: int) -> Command:
    """The planted 2 s pause, in even seeds only."""
    return plant(command, tick, seed, "pause") if seed % 2 == 0 else command


def test_hesitations_are_not_idle_but_a_stall_is(tmp_path, sim_store, block):
    # Our decision: one hesitation (3-8 ticks, at most 0.8 s) is natural, and so is one that runs into a
    # gripper wait (up to ~1.4 s); the idle threshold (1.5 s) sits above them and below the planted 2 s
    # pause. Hesitations that chain into 1.5 s or more of standing still are a stall, and are idle too.
    store = sim_store(tmp_path / "h.zarr", [block(style="hesitant", count=12, seed=50, plant=pause_every_other)])
    fps = store.spec.fps  # 10 Hz
    assert STYLES["hesitant"].pause_steps[1] / fps < QualityParams().idle_min_s < 20 / fps
    result = quality(store)
    min_frames = round(QualityParams().idle_min_s * fps)
    natural_flagged = 0
    for episode in store.episodes():
        r = result.episodes[episode.id]
        seed = episode.meta.factors["seed"]
        idle = r.flags["idle"].frames if "idle" in r.flags else []
        if seed % 2 == 0:  # the planted pause is found among the hesitations
            assert overlaps(idle, planted(seed, "pause")[1]), (episode.id, idle)
        else:
            natural_flagged += bool(idle)
        commanded = np.abs(episode.data["action"][:, :3]).max(axis=1)
        for a, b in idle:
            assert b - a >= min_frames
            # a real stop: the operator commanded (almost) no translation for most of the segment
            assert np.mean(commanded[a:b] < 0.002) >= 0.8, (episode.id, a, b)
    assert natural_flagged <= 3  # most hesitant episodes hold no stall (chained hesitations are rare)


def test_truncated_episode_is_a_length_outlier(tmp_path, sim_store, block):
    store = sim_store(tmp_path / "l.zarr", [block(style="careful", count=8, seed=20)])
    source = store.read(store.ids()[0])
    short = store.append(Episode({k: v[:12] for k, v in source.data.items()}, source.meta))
    result = quality(store)
    outliers = {i for i, r in result.episodes.items() if "length_outlier" in r.flags}
    assert outliers == {short}
    assert result.episodes[short].flags["length_outlier"].frames == [[0, 12]]
    assert result.episodes[short].scores["length_z"] < -3.5
    assert any("length" in f.title and f.episodes == [short] for f in result.findings)


def test_near_duplicates_name_their_original(tmp_path, sim_store, block):
    store = sim_store(tmp_path / "d.zarr", [block(style="careful", count=4, seed=30),
                                            block(style="side", count=3, seed=40)])
    assert not any("near_duplicate" in r.flags for r in quality(store).episodes.values())  # distinct seeds

    ids = store.ids()
    copy = store.append(store.read(ids[1]))
    noisy = store.read(ids[5])
    rng = np.random.default_rng(0)
    for name in ("observation.state", "action"):  # a copy with sub-millimetre noise is still a copy
        noisy.data[name] = noisy.data[name] + rng.normal(0.0, 1e-4, noisy.data[name].shape).astype(np.float32)
    noisy_copy = store.append(noisy)
    result = quality(store)
    flagged = {i: r for i, r in result.episodes.items() if "near_duplicate" in r.flags}
    assert set(flagged) == {copy, noisy_copy}
    assert flagged[copy].scores["dup_of"] == ids[1] and flagged[copy].scores["dup_dist"] == 0.0
    assert flagged[noisy_copy].scores["dup_of"] == ids[5]
    assert ids[1] in flagged[copy].flags["near_duplicate"].detail
    assert result.summary["duplicate_pairs"] == 2


def test_dropped_frames_and_overruns_from_the_clock(tmp_path, sim_store, block):
    store = sim_store(tmp_path / "t.zarr", [block(style="careful", count=2, seed=60)])
    period = 1.0 / store.spec.fps
    source = store.read(store.ids()[0])
    n = source.length
    # The simulator records unpaced; give the copy the clock of a paced recording at the spec's rate,
    # then a gap of 3 periods before frame 20 (2 frames lost) and frame 35 late by 0.3 of a period.
    wall = np.arange(n, dtype=np.float64) * period
    wall[20:] += 2 * period
    wall[35] += 0.3 * period
    paced = Episode({**source.data, "observation.wall_time": wall.astype(np.float32)[:, None]}, source.meta)
    gapped = store.append(paced)
    # A recorder that counted drops, with no paced clock to locate them: the whole episode is pointed at.
    counted = store.append(Episode(source.data, replace(source.meta, timing={**source.meta.timing,
                                                                              "dropped_frames": 3})))
    result = quality(store)

    r = result.episodes[gapped]
    assert r.flags["dropped_frames"].frames == [[19, 21]] and r.scores["dropped"] == 2
    assert r.flags["overrun"].frames == [[34, 36]] and r.scores["overruns"] == 2
    assert r.scores["ok"] is False
    r = result.episodes[counted]
    assert r.flags["dropped_frames"].frames == [[0, n]] and r.scores["dropped"] == 3
    assert "overrun" not in r.flags
    for i in store.ids()[:2]:  # the original recordings
        assert not {"dropped_frames", "overrun"} & set(result.episodes[i].flags)


# ---------------------------------------------------------------------------- the contract of score
def _spec(with_gripper: bool = True) -> DatasetSpec:
    names = ("ee.x", "ee.y", "ee.z", "gripper") if with_gripper else ("ee.x", "ee.y", "ee.z", "yaw")
    return DatasetSpec(fps=10.0, features={
        "observation.state": Feature("float32", (4,), "state", names),
        "action": Feature("float32", (4,), "action", names),
        "observation.wall_time": Feature("float32", (1,), "scalar"),
        "observation.images.front": Feature("uint8", (8, 8, 3), "image", ("height", "width", "channels")),
    })


def _episode(n: int, seed: int = 0, id: str = "000000") -> Episode:
    rng = np.random.default_rng(seed)
    state = np.cumsum(rng.normal(0, 0.01, (n, 4)), axis=0).astype(np.float32)
    return Episode({"observation.state": state, "action": rng.normal(0, 0.01, (n, 4)).astype(np.float32),
                    "observation.wall_time": (np.arange(n, dtype=np.float32) * 0.1)[:, None]},
                   EpisodeMeta(task="t"), id=id)


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_score_survives_short_and_nonfinite_episodes(n):
    spec, qp = _spec(), QualityPass()
    for episode in (_episode(n), _episode(n)):
        episode.data["observation.state"][n // 2, 0] = np.nan
        episode.data["action"][0, 3] = np.inf
        r = qp.score(episode, spec)
        assert r.scores["nonfinite"] == (1 if n == 1 else 2)
        assert r.scores["ok"] is False and np.isfinite(r.scores["jerk"])
    all_nan = _episode(n)
    all_nan.data["observation.state"][:] = np.nan
    assert qp.score(all_nan, spec).scores["idle_frac"] == 0.0  # nothing known is not idle
    assert qp.score(_episode(n), _spec(with_gripper=False)).scores["chatter"] == 0
    results = [qp.score(_episode(n, seed, f"{seed:06d}"), spec) for seed in range(6)]
    assert len(qp.reduce(results, spec).episodes) == 6


def test_score_is_pure_deterministic_and_picklable():
    spec = _spec()
    qp = pickle.loads(pickle.dumps(QualityPass()))
    episode = _episode(200)
    episode.data["action"][50:58, 3] = np.tile([0.0, 1.0], 4)  # chatter
    before = {k: v.copy() for k, v in episode.data.items()}
    first, second = qp.score(episode, spec), qp.score(episode, spec)
    assert first.scores == second.scores and first.flags == second.flags
    assert "chatter" in first.flags and first.scores["chatter"] >= 7
    assert all(np.array_equal(before[k], episode.data[k], equal_nan=True) for k in before)
    assert pickle.loads(pickle.dumps(first)).scores == first.scores
    assert qp.features(spec) == ["observation.state", "action", "observation.wall_time"]  # never images


def test_reduce_leaves_its_inputs_alone():
    spec, qp = _spec(), QualityPass()
    results = [qp.score(_episode(40, seed % 3, f"{seed:06d}"), spec) for seed in range(6)]  # 3 pairs of copies
    snapshot = [(dict(r.scores), dict(r.flags)) for r in results]
    reduced = qp.reduce(results, spec)
    assert [(r.scores, r.flags) for r in results] == snapshot
    assert {i for i, r in reduced.episodes.items() if "near_duplicate" in r.flags} == {"000003", "000004", "000005"}
    assert isinstance(reduced.episodes["000003"], EpisodeResult)
