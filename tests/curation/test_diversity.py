"""The diversity pass against ground truth planted in the MuJoCo tabletop.

Each comparison holds everything but the planted property fixed: the same seeds draw the same object
positions, lights and cameras, so a difference in a diversity number comes from the planted factor
(object colours, approach style, backdrop) and nothing else.
"""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest

from curation.base import DatasetResult, params_hash
from curation.diversity import DiversityParams, DiversityPass, resample_path
from curation.runner import map_episode, run_episodes
from toolkit.episode import Episode
from toolkit.errors import DemoforgeError
from toolkit.store import Store

FIVE = ("red", "blue", "yellow", "orange", "purple")  # the tabletop's default object colours
CAMERA = {"cameras": ("front",), "height": 60, "width": 80, "depth": False, "masks": False}

_stores: dict[str, Store] = {}  # recorded once per test session, read by several tests


@pytest.fixture
def record(sim_store, block, tmp_path_factory):
    """``record(key, [(block kwargs), ...])`` -> Store, recorded once per session per key."""
    def make(key: str, plan: list[dict[str, Any]]) -> Store:
        if key not in _stores:
            _stores[key] = sim_store(tmp_path_factory.mktemp(key) / "s.zarr", [block(**b) for b in plan])
        return _stores[key]
    return make


def diversity(store: Store, **params: Any) -> DatasetResult:
    p = DiversityPass(DiversityParams(**params))
    return run_episodes([p], store.episodes(features=p.features(store.spec)), store.spec)["diversity"]


def titles(result: DatasetResult) -> list[str]:
    return [f.title for f in result.findings]


# ------------------------------------------------------------------------------------------ factors
def test_five_values_of_a_factor_score_higher_than_one(record):
    five = record("five", [dict(count=8, seed=14, config={"object_colours": FIVE})])  # seeds 14-21: all five
    # Five copies of "red": the seed draws the colour index exactly as with five colours, so every other
    # factor and every trajectory is identical to `five`; only the colour differs.
    one = record("one", [dict(count=8, seed=14, config={"object_colours": ("red",) * 5})])
    r5, r1 = diversity(five), diversity(one)
    c5, c1 = r5.summary["factors"]["object_colour"], r1.summary["factors"]["object_colour"]
    assert c5["covered"] == 5 and c5["entropy"] > 0.8 and c5["effective_values"] > 3.5
    assert c1["covered"] == 1 and c1["entropy"] == 0.0 and c1["effective_values"] == pytest.approx(1.0)
    assert r5.summary["factor_entropy"] > r1.summary["factor_entropy"]
    assert r5.summary["trajectory_diversity"] == pytest.approx(r1.summary["trajectory_diversity"])
    assert r5.summary["diversity"] > r1.summary["diversity"]
    assert "factor object_colour takes one value (red) in all 8 episodes" in titles(r1)

    # With the domain declared, coverage says "1 of 5" and the fix names the missing colours.
    d5, d1 = (diversity(s, domains={"object_colour": FIVE}) for s in (five, one))
    assert d5.summary["factors"]["object_colour"]["coverage"] == 1.0
    assert d1.summary["factors"]["object_colour"]["coverage"] == pytest.approx(0.2)
    finding = next(f for f in d1.findings if f.title == "factor object_colour covers 1 of 5 values")
    assert finding.severity == "medium" and "blue" in finding.fix and "purple" in finding.fix
    assert not any("object_colour covers" in t for t in titles(d5))


def test_a_plainly_narrowed_factor_has_lower_entropy(record):
    five = record("five", [dict(count=8, seed=14, config={"object_colours": FIVE})])
    red = record("red", [dict(count=8, seed=14, config={"object_colours": ("red",)})])
    r5, rr = diversity(five), diversity(red)
    assert rr.summary["factors"]["object_colour"]["entropy"] == 0.0
    assert r5.summary["factors"]["object_colour"]["entropy"] > 0.8
    assert r5.summary["factor_entropy"] > rr.summary["factor_entropy"]


# --------------------------------------------------------------------------------------- duplicates
def test_exact_duplicates_do_not_raise_diversity_and_contribute_nothing(sim_store, block, tmp_path):
    store = sim_store(tmp_path / "s.zarr", [block(style="careful", count=3), block(style="side", count=3, seed=20)])
    before = diversity(store)
    originals = store.ids()[:3]
    copies = [store.append(Episode(data=e.data, meta=e.meta)) for e in store.episodes(originals)]
    after = diversity(store)

    for key in ("diversity", "factor_entropy", "trajectory_diversity", "pair_coverage"):
        assert after.summary[key] <= before.summary[key] + 1e-12, key
        assert after.summary[key] == pytest.approx(before.summary[key]), key
    assert after.summary["saco"]["cells"] == before.summary["saco"]["cells"]
    for name, factor in after.summary["factors"].items():
        assert factor["entropy"] <= before.summary["factors"][name]["entropy"] + 1e-12, name
    assert after.summary["duplicates"] == 3 and after.summary["distinct_episodes"] == 6

    for original, copy in zip(originals, copies):
        for episode_id in (original, copy):  # removing either copy loses nothing
            scores = after.episodes[episode_id].scores
            assert scores["contribution"] == 0.0 and scores["novelty"] == 0.0
            assert scores["saco_unique"] == 0 and scores["factor_unique"] == 0
        assert after.episodes[copy].scores["duplicate_of"] == original
        assert after.episodes[original].scores["duplicate_of"] is None
        assert after.episodes[copy].scores["saco"] == after.episodes[original].scores["saco"] > 0
    finding = next(f for f in after.findings if "exact copies" in f.title)
    assert sorted(finding.episodes) == sorted(copies)
    untouched = [i for i in store.ids() if i not in originals and i not in copies]
    for episode_id in untouched:  # the others' contributions do not move either
        assert after.episodes[episode_id].scores["contribution"] == pytest.approx(
            before.episodes[episode_id].scores["contribution"])
    assert all(before.episodes[i].scores["saco_unique"] > 0 for i in originals)


# -------------------------------------------------------------------------------------------- pairs
def test_missing_factor_pairs_are_found_when_planted(record):
    # Planted: boxes are always red, cylinders always blue.
    # 28 episodes: enough that independent factors would fill each combination with 7 (an empty one by
    # chance has probability 0.75^28 = 3e-4, under the test's Bonferroni bound).
    tied = record("tied", [
        dict(count=14, seed=0, config={"object_types": ("box",), "object_colours": ("red",)}),
        dict(count=14, seed=100, config={"object_types": ("cylinder",), "object_colours": ("blue",)})])
    free = record("free", [dict(count=16, seed=300, config={"object_colours": ("red", "blue")})])
    rt, rf = diversity(tied), diversity(free)

    missing = {tuple(m["values"]) for m in rt.summary["pairs_missing"]
               if m["factors"] == ["object_type", "object_colour"]}
    assert missing == {("box", "blue"), ("cylinder", "red")}
    finding = next(f for f in rt.findings if f.title.startswith("pairs missing"))
    assert "(object_type=box, object_colour=blue)" in finding.title
    assert "(object_type=cylinder, object_colour=red)" in finding.title
    assert finding.fix.startswith("collect") and "object_type=box, object_colour=blue" in finding.fix
    pair = next(p for p in rt.summary["pairs"] if p["factors"] == ["object_type", "object_colour"])
    assert pair["covered"] == 2 and pair["cells"] == 4

    # Independent draws cover every combination and nothing is reported.
    pair = next(p for p in rf.summary["pairs"] if p["factors"] == ["object_type", "object_colour"])
    assert pair["covered"] == 4 and pair["missing"] == []
    assert rf.summary["pairs_missing"] == []
    assert not any(t.startswith("pairs missing") for t in titles(rf))


# ------------------------------------------------------------------------------------- trajectories
def styles_store(record) -> Store:
    """The same six scenes recorded by a careful top-down operator, a side-approach one and a fast top-down one."""
    return record("styles", [dict(style=s, count=6) for s in ("careful", "side", "fast")])


def operators(store: Store, *names: str) -> list[str]:
    return [row["id"] for row in store.catalog.rows() if row["operator"] in names]


def diversity_of(store: Store, ids: list[str], **params: Any) -> DatasetResult:
    p = DiversityPass(DiversityParams(**params))
    return run_episodes([p], store.episodes(ids, p.features(store.spec)), store.spec)["diversity"]


def test_a_mix_of_approaches_has_more_trajectory_diversity_than_one(record):
    # Top and side versus top and top again (faster: the same path, which arc-length resampling ignores).
    store = styles_store(record)
    rm = diversity_of(store, operators(store, "careful", "side"))
    ro = diversity_of(store, operators(store, "careful", "fast"))
    assert rm.summary["trajectory"]["spread_m"] > ro.summary["trajectory"]["spread_m"]
    assert rm.summary["trajectory_diversity"] > ro.summary["trajectory_diversity"]
    novelty_mix = np.median([r.scores["novelty"] for r in rm.episodes.values()])
    novelty_one = np.median([r.scores["novelty"] for r in ro.episodes.values()])
    assert novelty_mix > 5 * novelty_one  # a side approach is centimetres away from the top one
    assert rm.summary["factor_entropy"] == pytest.approx(ro.summary["factor_entropy"])
    assert rm.summary["diversity"] > ro.summary["diversity"]
    by_operator = rm.summary["saco"]["by_operator"]
    assert set(by_operator) == {"careful", "side"} and all(0 < v < 1 for v in by_operator.values())


def test_contribution_is_the_exact_leave_one_out_drop(record):
    store = styles_store(record)
    # Categorical factors only: continuous ones keep their bin edges when an episode is left out,
    # which a full re-run would recompute.
    p = DiversityPass(factors=("object_type", "object_colour", "distractors"))
    results = [map_episode([p], e, store.spec)["diversity"] for e in store.episodes(features=p.features(store.spec))]
    full = p.reduce(results, store.spec)
    for k in (0, 5, 11, 17):
        rest = p.reduce(results[:k] + results[k + 1:], store.spec)
        expected = full.summary["diversity"] - rest.summary["diversity"]
        assert full.episodes[results[k].id].scores["contribution"] == pytest.approx(expected, abs=1e-12)
    assert p.reduce([], store.spec).summary["episodes"] == 0
    single = p.reduce(results[:1], store.spec)
    assert single.summary["trajectory_diversity"] is None and single.summary["diversity"] is not None
    typo = DiversityPass(factors=("object_type", "object_color")).reduce(results, store.spec)
    assert "factor(s) object_color in no episode's metadata" in titles(typo)


# ------------------------------------------------------------------------------------------- visual
def test_visual_diversity_sees_different_backdrops(record):
    backdrops = ("green", "blue", "grey", "white")
    varied = record("backdrops", [dict(count=5, config={**CAMERA, "backdrop_colours": backdrops})])
    same = record("green", [dict(count=5, config={**CAMERA, "backdrop_colours": ("green",) * 4})])
    rv, rs = diversity(varied, images=True), diversity(same, images=True)
    assert len(set(rv.summary["factors"]["backdrop_colour"]["counts"])) > 1
    assert rv.summary["visual_diversity"] > 2 * rs.summary["visual_diversity"] > 0
    assert rv.summary["diversity"] > rs.summary["diversity"]
    assert all(0 <= r.scores["visual_novelty"] <= 1 for r in rv.episodes.values())
    assert rv.summary["components"] == ["factor_entropy", "trajectory_diversity", "visual_diversity"]
    if rv.summary["visual"]["descriptor"] == "lightweight":
        assert rv.summary["visual"]["note"]  # says why: asked for, or why the pretrained model is unavailable

    p = DiversityPass(images=True, descriptor="lightweight")
    assert p.features(same.spec) == ["observation.state", "action", "observation.images.front"]
    episode = same.read(same.ids()[0], p.features(same.spec))
    a, b = p.score(episode, same.spec), p.score(episode, same.spec)
    assert a.payload["image"].tobytes() == b.payload["image"].tobytes()  # deterministic
    assert np.linalg.norm(a.payload["image"]) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(DemoforgeError, match="camera"):
        DiversityPass(images=True, camera="wrist").features(same.spec)


# ---------------------------------------------------------------------------------------- the pass
def test_params_pass_and_descriptor_contract():
    assert DiversityPass().params.images is False  # images cost most of a run: opt in
    a = DiversityParams(domains={"object_colour": ["red", "blue"]}, ranges={"table_height": [0.7, 0.8]})
    b = DiversityParams(domains=(("object_colour", ("red", "blue")),), ranges=(("table_height", (0.7, 0.8)),))
    assert a == b and params_hash(a) == params_hash(b)
    p = pickle.loads(pickle.dumps(DiversityPass(a)))
    assert p.params == a
    for bad in (dict(factor_bins=0), dict(path_by="dtw"), dict(descriptor="clip"), dict(ranges={"x": (1, 0)})):
        with pytest.raises(DemoforgeError, match="DiversityParams"):
            DiversityParams(**bad)
    try:
        import torch  # noqa: F401
    except ImportError:
        with pytest.raises(DemoforgeError, match="torch and torchvision are not installed"):
            DiversityPass(images=True, descriptor="pretrained")
        assert DiversityPass(images=True).descriptor == "lightweight"
    assert DiversityPass().descriptor == "none"  # images off: nothing is imported or resolved


def test_resample_path_by_arc_length_ignores_pauses():
    path = np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0]], np.float64)
    paused = np.array([[0, 0, 0], [0, 0, 0], [0, 0, 0], [1, 0, 0], [2, 0, 0]], np.float64)
    assert np.allclose(resample_path(path, 5), resample_path(paused, 5))
    assert not np.allclose(resample_path(path, 5, by="time"), resample_path(paused, 5, by="time"))
    assert np.allclose(resample_path(np.ones((4, 3)), 3), 1.0)  # a path that never moves
