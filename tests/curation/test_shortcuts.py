"""The shortcut-factors pass against planted ground truth from the MuJoCo tabletop.

A backdrop colour tied to the task must be flagged as the riskiest factor with a probe accuracy near 1,
from the factor label and from the background pixels alone; the same episodes with backdrops balanced
across tasks must not be. A lighting range per task is flagged with the lighting fix; task-relevant
factors (the object colour) are never reported.
"""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest

from curation.base import params_hash
from curation.runner import run_episodes
from curation.probes import mutual_information
from curation.shortcuts import ShortcutParams, ShortcutPass, meta_value
from toolkit.episode import Episode, EpisodeMeta
from toolkit.spec import DatasetSpec, Feature
from toolkit.store import Store

CAMERA = {"cameras": ("front",), "height": 48, "width": 64, "depth": False, "masks": True}
PER_CELL = 12  # episodes per (task, backdrop) block

_stores: dict[str, Store] = {}  # recorded once per test session, read by several tests


def _once(key: str, make: Any) -> Store:
    if key not in _stores:
        _stores[key] = make()
    return _stores[key]


@pytest.fixture
def backdrop_store(sim_store, block, tmp_path_factory) -> Store:
    """Four blocks: pick_place on blue and push on green (the tied pair), then pick_place on green and
    push on blue (which balance it)."""
    def make() -> Store:
        plan = [("pick_place", "blue", 0), ("push", "green", 100), ("pick_place", "green", 200), ("push", "blue", 300)]
        blocks = [block(task=task, count=PER_CELL, seed=seed, config={**CAMERA, "backdrop_colours": (colour,)})
                  for task, colour, seed in plan]
        return sim_store(tmp_path_factory.mktemp("backdrop") / "s.zarr", blocks)
    return _once("backdrop", make)


@pytest.fixture
def lighting_store(sim_store, block, tmp_path_factory) -> Store:
    """pick_place under dim light with red objects, push under bright light with blue objects."""
    def make() -> Store:
        blocks = [block(task="pick_place", count=PER_CELL, seed=0,
                        config={"light_intensity": (0.45, 0.55), "object_colours": ("red",)}),
                  block(task="push", count=PER_CELL, seed=100,
                        config={"light_intensity": (0.8, 0.9), "object_colours": ("blue",)})]
        return sim_store(tmp_path_factory.mktemp("lighting") / "s.zarr", blocks)
    return _once("lighting", make)


IMAGES = ShortcutParams(background_probe=True)


def _run(store: Store, ids: list[str], params: ShortcutParams = IMAGES):
    shortcut = ShortcutPass(params)
    features = shortcut.features(store.spec)
    return run_episodes([shortcut], store.episodes(ids, features), store.spec)[shortcut.name]


def _row(result: Any, name: str) -> dict[str, Any]:
    return next(r for r in result.summary["factors"] if r["name"] == name)


def _tied_ids(store: Store) -> list[str]:
    tied = {("pick_place", "blue"), ("push", "green")}
    return [i for i in store.ids()
            if (store.meta(i).factors["task_kind"], store.meta(i).factors["backdrop_colour"]) in tied]


# -------------------------------------------------------------------------------- ground truth
def test_backdrop_that_gives_the_task_away_is_flagged(backdrop_store):
    ids = _tied_ids(backdrop_store)
    assert len(ids) == 2 * PER_CELL
    result = _run(backdrop_store, ids)
    summary = result.summary
    assert summary["task_key"] == "factors.task_kind"
    assert summary["riskiest"][0] == "backdrop_colour"
    backdrop = _row(result, "backdrop_colour")
    assert backdrop["flagged"] and backdrop["risk"] >= 0.95
    assert backdrop["probe"]["balanced_accuracy"] >= 0.95
    assert backdrop["S"] == pytest.approx(1.0, abs=1e-6)
    assert backdrop["coverage"] == {"pick_place": {"blue": PER_CELL, "green": 0},
                                    "push": {"blue": 0, "green": PER_CELL}}
    assert {(c["task"], c["bin"]) for c in backdrop["collect"]} == {("pick_place", "green"), ("push", "blue")}

    background = summary["background_probe"]
    assert background["episodes"] == 2 * PER_CELL
    assert background["balanced_accuracy"] >= 0.95 and background["flagged"]

    finding = result.findings[0]
    assert finding.severity == "high" and finding.title.startswith("backdrop_colour gives the task away")
    assert summary["headline"].startswith("riskiest: backdrop_colour (risk 1.00, probe 1.00)")
    assert "push with backdrop_colour=blue" in finding.fix and "pick_place with backdrop_colour=green" in finding.fix
    assert "demoforge augment greenscreen" in finding.fix
    assert sorted(finding.episodes) == sorted(ids)
    assert any(f.title.startswith("the background pixels alone") for f in result.findings)
    for episode in result.episodes.values():
        assert episode.scores["isolated"] is True and episode.scores["risk"] >= 0.95
        assert "backdrop_colour=" in episode.flags["shortcut"].detail
        assert episode.flags["shortcut"].frames[0][0] == 0


def test_backdrop_balanced_across_tasks_is_not_flagged(backdrop_store):
    result = _run(backdrop_store, backdrop_store.ids())
    backdrop = _row(result, "backdrop_colour")
    assert not backdrop["flagged"] and "backdrop_colour" not in result.summary["riskiest"]
    assert backdrop["S"] <= 0.05
    assert backdrop["probe"]["balanced_accuracy"] <= 0.7
    assert backdrop["coverage"] == {"pick_place": {"blue": PER_CELL, "green": PER_CELL},
                                    "push": {"blue": PER_CELL, "green": PER_CELL}}
    background = result.summary["background_probe"]
    assert background["episodes"] == 4 * PER_CELL
    assert background["balanced_accuracy"] <= 0.7 and not background["flagged"]
    assert not any("backdrop" in f.title or "background" in f.title for f in result.findings)
    assert not any(e.scores["isolated"] for e in result.episodes.values())


def test_lighting_range_per_task_is_flagged_with_the_lighting_fix(lighting_store):
    result = _run(lighting_store, lighting_store.ids())
    light = _row(result, "light_intensity")
    assert light["kind"] == "continuous" and light["flagged"]
    assert result.summary["riskiest"][0] == "light_intensity"
    assert light["probe"]["balanced_accuracy"] >= 0.95
    assert light["S"] >= 0.6 and light["S_excess"] > 0
    by_task = light["ranges"]["by_task"]
    assert by_task["min_overlap"] == 0.0  # disjoint ranges: the paper's islands
    assert by_task["max_centre_distance"] == pytest.approx(0.35, abs=0.05)
    assert 0.45 <= by_task["groups"]["pick_place"]["lo"] and by_task["groups"]["pick_place"]["hi"] <= 0.55
    finding = next(f for f in result.findings if f.title.startswith("light_intensity"))
    assert "brightness jitter" in finding.fix and "Collect next: " in finding.fix
    assert "ranges by task" in finding.detail


@pytest.mark.parametrize("task_key", ["auto", "task"])
def test_task_relevant_factors_are_never_reported(lighting_store, task_key):
    # The object colour follows the task here (red for pick_place, blue for push), and with task_key="task"
    # it is even part of the label: it is task-relevant, so it must never be called a shortcut.
    result = _run(lighting_store, lighting_store.ids(), ShortcutParams(task_key=task_key))
    names = {r["name"] for r in result.summary["factors"]}
    relevant = ("object_colour", "object_type", "object_x", "object_y", "goal_x", "goal_y", "task_kind", "seed")
    assert names.isdisjoint(relevant)
    assert result.summary["skipped"]["object_colour"] == "task-relevant"
    assert result.summary["skipped"]["seed"] == "task-relevant"
    text = " ".join(f"{f.title} {f.detail} {f.fix}" for f in result.findings)
    assert "object_colour" not in text
    assert result.findings  # the lighting is still found


# ----------------------------------------------------------------------------------- the pass
def test_background_probe_off_reads_no_images(backdrop_store):
    on, off = ShortcutPass(IMAGES), ShortcutPass()  # off by default: images are the slow part
    assert on.features(backdrop_store.spec) == ["observation.images.front", "observation.mask.front"]
    assert off.features(backdrop_store.spec) == []
    result = _run(backdrop_store, _tied_ids(backdrop_store), off.params)
    assert "skipped" in result.summary["background_probe"]
    assert result.summary["riskiest"][0] == "backdrop_colour"
    with pytest.raises(ValueError, match="background_camera 'wrist'"):
        ShortcutPass(ShortcutParams(background_probe=True, background_camera="wrist")).features(backdrop_store.spec)


def _meta_episode(i: int, task: str, factors: dict[str, Any], origin: str | None = None,
                  operator: str = "alice") -> Episode:
    meta = EpisodeMeta(task=task, operator=operator, factors=factors,
                       origin={"format": "lerobot", "path": origin, "episode": i} if origin else None)
    return Episode({"action": np.zeros((3, 7), np.float32)}, meta, id=f"{i:06d}")


SPEC = DatasetSpec(fps=10, features={"action": Feature("float32", (7,), "action")})


def test_sub_datasets_as_islands():
    # Two imported sub-datasets, each with its own task and its own narrow camera-angle range
    # (Xing et al.'s setting): the sub-dataset id and the camera angle both give the task away.
    rng = np.random.default_rng(0)
    episodes = []
    for i in range(60):
        island = i % 2
        lo = (0.2, 0.6)[island]
        factors = {"task_kind": ("pick_place", "push")[island], "camera_angle": float(rng.uniform(lo, lo + 0.15)),
                   "light_intensity": float(rng.uniform(0.4, 0.9)), "session_id": f"s{i}"}
        episodes.append(_meta_episode(i, factors["task_kind"], factors, origin=("bridge.zarr", "rt1.zarr")[island],
                                      operator=("alice", "bob")[i % 3 == 0]))
    result = run_episodes([ShortcutPass()], episodes, SPEC)["shortcuts"]
    summary = result.summary
    assert summary["subset_key"] == "origin.path" and summary["subsets"] == {"bridge.zarr": 30, "rt1.zarr": 30}
    assert summary["skipped"]["session_id"] == "an id"
    assert set(summary["riskiest"]) == {"camera_angle", "origin.path"}
    camera = _row(result, "camera_angle")
    assert camera["F"] >= 0.75 and camera["ranges"]["by_subset"]["min_overlap"] == 0.0
    light = _row(result, "light_intensity")
    assert max(camera["D"].values()) <= 0.75 < min(light["D"].values())  # little diversity within each island
    assert "viewpoint" in next(f.fix for f in result.findings if f.title.startswith("camera_angle"))
    subset_fix = next(f.fix for f in result.findings if f.title.startswith("origin.path"))
    assert "every operator / sub-dataset record every task" in subset_fix
    assert not light["flagged"] and light["F"] < 0.2
    assert summary["joint_probe"]["subset"]["balanced_accuracy"] >= 0.8


def test_helpers_and_determinism():
    meta = EpisodeMeta(task="t", operator="op", factors={"a.b": 1}, extra={"copied_from": {"store": "x.zarr"}})
    assert meta_value(meta, "factors.a.b") == 1 and meta_value(meta, "extra.copied_from.store") == "x.zarr"
    assert meta_value(meta, "origin.path") is None and meta_value(meta, "operator") == "op"
    a = np.array([0, 0, 1, 1])
    assert mutual_information(a, a) == pytest.approx(np.log(2))
    assert mutual_information(a, np.array([0, 1, 0, 1])) == pytest.approx(0.0)

    shortcut = ShortcutPass()
    clone = pickle.loads(pickle.dumps(shortcut))
    assert params_hash(clone.params) == params_hash(shortcut.params)
    rng = np.random.default_rng(1)
    episodes = [_meta_episode(i, "t", {"task_kind": ("a", "b")[i % 2], "light": float(rng.uniform())})
                for i in range(40)]
    first = run_episodes([shortcut], episodes, SPEC)["shortcuts"].summary
    second = run_episodes([clone], episodes, SPEC)["shortcuts"].summary
    assert first == second and not first["riskiest"]


def test_one_task_is_reported_not_flagged():
    episodes = [_meta_episode(i, "t", {"task_kind": "push", "backdrop_colour": "green"}) for i in range(10)]
    result = run_episodes([ShortcutPass()], episodes, SPEC)["shortcuts"]
    assert result.findings == [] and result.summary["tasks"] == {"push": 10}
    assert _row(result, "backdrop_colour")["S"] is None
