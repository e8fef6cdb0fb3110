"""The curation page's data and figures on a real store whose ground truth we planted in the simulator.

The store (recorded once for the module through the real recorder on the embedded MuJoCo tabletop, no
cameras, then curated by the real passes):

- ``careful`` (top approach): 12 pick-and-place episodes in lab A and 8 in lab B: the compatibility base set;
- ``side`` (side approach, the style that conflicts with ``careful``): 10 pick-and-place episodes, lab A
  only, so the combination side x lab B is left out;
- ``pusher``: 8 push episodes in lab C only, so the lab gives the task away (a planted shortcut).
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco's first import picks a GL backend

import base64
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from curation.registry import make_passes
from curation.runner import curate_store
from dashboard import curation_views as cv
from dashboard.app import create_app
from dashboard.data import Library
from dashboard.pages import curation as page
from toolkit.sample import sample_episodes, sample_spec
from toolkit.store import Store

# (style, operator, task, lab, first seed, count)
PLAN = (("careful", "careful", "pick_place", "A", 0, 12),
        ("careful", "careful", "pick_place", "B", 12, 8),
        ("side", "side", "pick_place", "A", 100, 10),
        ("careful", "pusher", "push", "C", 200, 8))
BASE = 'operator == "careful"'


def record(path: Path) -> None:
    """Record ``PLAN`` with the scripted operators through the real recorder (no rendering)."""
    from teleop.recorder import Recorder, RecorderConfig, recording_spec
    from teleop.sim.scripted import STYLES, ScriptedOperator
    from teleop.sim.tabletop import TabletopConfig, TabletopEnv

    store = None
    for style, operator, task, lab, seed, count in PLAN:
        env = TabletopEnv(TabletopConfig(task=task, cameras=(), pointcloud_cameras=()))
        try:
            store = store or Store.create(path, recording_spec(env.spec, env.spec.fps))
            device = ScriptedOperator(env, replace(STYLES[style], seed=seed), max_steps=250)
            config = RecorderConfig(fps=env.spec.fps, max_steps=255, operator=operator, realtime=False,
                                    extra_factors={"lab": lab})
            recorder = Recorder(env, device, store, config)
            for i in range(count):
                recorder.record_episode(seed + i)
            recorder.close()
        finally:
            env.close()
    store.close()


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("curation-page") / "planted.zarr"
    record(path)
    with Store.open(path, mode="a") as store:
        curate_store(store, make_passes(["quality", "diversity", "shortcuts"]))
        curate_store(store, make_passes(["compatibility"]), where='factors.task_kind == "pick_place"', base=BASE)
    return path


@pytest.fixture
def lib(planted):
    library = Library([planted])
    yield library
    library.close()


@pytest.fixture
def uncurated(tmp_path) -> Library:
    """A store no pass has run on."""
    spec = sample_spec(cameras=0)
    path = tmp_path / "fresh.zarr"
    with Store.create(path, spec) as store:
        store.append_many(sample_episodes(spec, 6, seed=1))
    library = Library([path])
    yield library
    library.close()


def _ids_of(columns: dict, operator: str) -> set[str]:
    return {str(i) for i, op in zip(columns["id"], columns["operator"]) if op == operator}


# ------------------------------------------------------------------------------------------- coverage
def test_coverage_marks_the_left_out_combination(lib):
    columns = lib.get("planted").columns()
    cov = cv.coverage(columns, "factors.lab", "operator")
    assert cov.x_levels == ["A", "B", "C"] and cov.y_levels == ["careful", "pusher", "side"]
    np.testing.assert_array_equal(cov.counts, [[12, 8, 0], [0, 0, 8], [10, 0, 0]])
    missing = {(a, b) for a, b, _ in cov.missing}
    assert missing == {("C", "careful"), ("A", "pusher"), ("B", "pusher"), ("B", "side"), ("C", "side")}
    expected = {(a, b): e for a, b, e in cov.missing}
    assert expected[("B", "side")] == pytest.approx(8 * 10 / 38)  # what independence would have given
    assert "B × side" in cv.missing_text(cov)

    fig = page.coverage_figure(cov)
    marks = np.asarray(fig.data[1].text)
    assert marks[2, 1] == "missing" and marks[0, 0] == ""  # side x B marked, careful x A not
    assert list(np.asarray(fig.data[0].text)[0]) == ["12", "8", ""]


def test_continuous_factors_are_binned_and_ids_left_out(lib):
    columns = lib.get("planted").columns()
    kinds = {c.column: c.kind for c in cv.factor_choices(columns)}
    assert kinds["factors.lab"] == "categorical" and kinds["operator"] == "categorical"
    assert kinds["factors.light_intensity"] == "binned"
    assert "factors.seed" not in kinds  # an id, not a factor
    cov = cv.coverage(columns, "factors.light_intensity", "operator")
    assert len(cov.x_levels) == cv.QUANTILE_BINS
    assert cov.counts.sum() == len(columns["id"])
    assert cov.counts.sum(axis=0).min() >= len(columns["id"]) // cv.QUANTILE_BINS - 1  # quantile bins are even
    with pytest.raises(ValueError):
        cv.coverage(columns, "operator", "operator")


def test_the_first_heatmap_is_the_task_against_the_riskiest_factor(lib):
    ds = lib.get("planted")
    x, y = cv.default_axes(ds.columns(), page.pass_run(ds, "shortcuts"))
    view = cv.shortcut_view(page.pass_run(ds, "shortcuts"))
    assert x == "factors.task_kind"
    assert y.removeprefix("factors.") == view.rows[0].name and view.rows[0].flagged


# ------------------------------------------------------------------------------------------ shortcuts
def test_shortcut_table_flags_the_planted_factor_with_a_fix(lib):
    view = cv.shortcut_view(page.pass_run(lib.get("planted"), "shortcuts"))
    rows = {r.name: r for r in view.rows}
    lab = rows["lab"]
    assert lab.flagged and lab.risk > 0.5
    assert lab.probe_accuracy > lab.probe_chance and lab.mutual_information > lab.mi_chance
    assert lab.diversity is not None and set(lab.diversity_by_subset) == {"careful", "pusher", "side"}
    assert lab.disparity is not None and lab.disparity > 0.3  # the sub-datasets see different labs
    assert "lab=C" in lab.fix or "lab=" in lab.fix
    assert "Augment" in lab.fix
    assert [r.risk for r in view.rows] == sorted((r.risk for r in view.rows), reverse=True)
    assert all(r.fix == "" for r in view.rows if not r.flagged)
    assert "riskiest" in view.headline and view.task_key == "factors.task_kind"


def test_passes_that_never_ran_say_how_to_run_them(uncurated):
    ds = uncurated.get("fresh")
    assert cv.shortcut_view(page.pass_run(ds, "shortcuts")) is None
    text = str(page.layout(uncurated, "fresh").to_plotly_json())
    assert "shortcuts-not-run" in text and "compatibility-not-run" in text
    assert f"demoforge curate {ds.path}" in text and "Tags & views" in text
    points = cv.compatibility_points(ds.columns(), None)
    assert len(points.ids) == 0


# -------------------------------------------------------------------------------------- compatibility
def test_the_conflicting_operator_has_the_lower_compatibility(lib):
    ds = lib.get("planted")
    run = page.pass_run(ds, "compatibility")
    table = cv.operator_table(run)
    assert [r["operator"] for r in table] == ["side", "careful"]  # lowest mean compatibility first
    side, careful = table
    assert side["mean_score"] < careful["mean_score"] and side["fraction_compatible"] < careful["fraction_compatible"]
    assert careful["in_base"] == 20 and side["in_base"] == 0

    columns = ds.columns()
    points = cv.compatibility_points(columns, run)
    assert set(points.ids) == _ids_of(columns, "careful") | _ids_of(columns, "side")  # push was not scored
    assert points.score.dtype == np.float32 and points.bad_fraction.dtype == np.float32
    assert set(points.ids[points.in_base]) == _ids_of(columns, "careful")
    assert points.max_bad_fraction == pytest.approx(0.05)
    worst_id, _ = cv.lowest(points, 1)[0]
    assert worst_id in _ids_of(columns, "side")
    assert cv.episode_path("planted", {"points": [{"customdata": worst_id}]}) == f"/d/planted/e/{worst_id}"
    assert cv.episode_path("planted", None) is None


# ------------------------------------------------------------------------------------------ embedding
def _nearest_neighbour_agreement(xy: np.ndarray, labels: np.ndarray) -> float:
    d = np.square(xy[:, None] - xy[None]).sum(-1)
    np.fill_diagonal(d, np.inf)
    return float(np.mean(labels[d.argmin(1)] == labels))


def test_the_map_separates_the_two_approach_styles(lib):
    ds = lib.get("planted")
    emb = cv.embedding(ds)
    assert emb.xy.dtype == np.float32 and emb.xy.shape == (38, 2)
    assert emb.features == ["observation.state"]
    operators = dict(zip(ds.columns()["id"], ds.columns()["operator"]))
    labels = np.array([operators[i] for i in emb.ids])
    pick = np.isin(labels, ["careful", "side"])
    # Leave-one-out nearest neighbour on the map: chance is ~0.5 for these two styles.
    assert _nearest_neighbour_agreement(emb.xy[pick], labels[pick]) >= 0.85
    assert _nearest_neighbour_agreement(emb.xy, labels) >= 0.85  # the push episodes (another task) too


def test_the_map_is_cached_and_capped(lib):
    ds = lib.get("planted")
    assert cv.embedding(ds) is cv.embedding(ds)
    small = cv.embedding(ds, cap=10)
    assert len(small.ids) == 10 and small.sampled and "Showing 10 of 38" in small.note()
    assert set(small.ids) <= set(ds.columns()["id"])
    assert 0 < small.explained[1] <= small.explained[0] < 1


def test_colours_by_category_and_by_score(lib):
    ds = lib.get("planted")
    columns = ds.columns()
    emb = cv.embedding(ds)
    by_operator = cv.colour(columns, emb.ids, "operator")
    assert by_operator.categories == ["careful", "pusher", "side"]
    operators = dict(zip(columns["id"], columns["operator"]))
    assert [by_operator.categories[int(c)] for c in by_operator.values] == [operators[i] for i in emb.ids]
    by_score = cv.colour(columns, emb.ids, "compatibility.score")
    assert by_score.categories is None and by_score.values.dtype == np.float32
    unscored = np.array([operators[i] == "pusher" for i in emb.ids])
    assert np.isnan(by_score.values[unscored]).all() and np.isfinite(by_score.values[~unscored]).all()
    assert "compatibility.score" in cv.colour_choices(columns) and "operator" in cv.colour_choices(columns)
    marker = page.colour_marker(by_score)
    decoded = np.frombuffer(base64.b64decode(marker["color"]["bdata"]), "<f4")
    np.testing.assert_array_equal(decoded, by_score.values)


# ------------------------------------------------------------------------------------------ the page
def test_the_page_and_its_callbacks(lib):
    app = create_app(lib)
    with app.server.app_context():
        div = page.layout(lib, "planted")
        assert div.id == "curation-page"
        text = str(div.to_plotly_json())
        for part in ("cov-heatmap", "shortcuts-table", "compat-operators", "embed-map", "curation-go"):
            assert part in text
        fig, note = page.build_embedding("planted", "operator")
        trace = fig.data[0]
        assert trace.type == "scattergl" and trace.x.dtype == np.float32 and len(trace.customdata) == 38
        assert fig.layout.dragmode == "lasso" and "PCA" in note
        patch = page.recolour("compatibility.score", "planted").to_plotly_json()
        locations = [op["location"] for op in patch["operations"]]
        assert ["data", 0, "marker"] in locations and ["data", 0, "x"] not in locations  # coordinates stay put
        heat, missing = page.update_coverage("factors.lab", "operator", "planted")
        assert "B × side" in missing and heat.data[0].type == "heatmap"
