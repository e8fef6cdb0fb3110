"""The dashboard's data layer without a browser: grid queries, tags, views, jobs and live refresh, on real stores."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from curation.registry import make_passes
from curation.runner import curate_store
from dashboard.data import Library, NotFound, dataset_summary, filter_mask, grid_page, matching_rows
from dashboard.jobs import JobManager
from dashboard.pages.episode import add_frame_tag
from dashboard.pages.episodes import tag_episodes
from dashboard.pages.views import curate_view, export_view
from toolkit.errors import DemoforgeError
from toolkit.progress import track
from toolkit.query import QueryError
from toolkit.sample import sample_episodes, sample_spec
from toolkit.store import Store
from toolkit.views import save_view


@pytest.fixture(scope="module")
def curated(tmp_path_factory):
    """30 procedural episodes, quality-scored by the real pass."""
    path = tmp_path_factory.mktemp("dash") / "store.zarr"
    spec = sample_spec(cameras=1, height=48, width=64)
    with Store.create(path, spec) as store:
        store.append_many(sample_episodes(spec, 30, seed=3))
    with Store.open(path, mode="a") as store:
        curate_store(store, make_passes(["quality"]))
    return path


@pytest.fixture
def lib(curated):
    library = Library([curated])
    yield library
    library.close()


def test_grid_pages_are_the_filtered_sorted_catalog(lib):
    ds = lib.get("store")
    with Store.open(ds.path) as store:
        expected = store.ids("length > 25 and quality.ok")
        lengths = {i: store.entry(i)["length"] for i in expected}
    page = grid_page(ds, 0, 10, where="length > 25 and quality.ok", sort_model=[{"colId": "length", "sort": "desc"}])
    assert page["rowCount"] == len(expected) > 0
    shown = [r["id"] for r in page["rowData"]]
    assert shown == sorted(expected, key=lambda i: (-lengths[i], i))[:10]
    assert all(r["thumb"] == f"/media/store/{r['id']}/thumb.jpg" for r in page["rowData"])
    rest = grid_page(ds, 10, 100, where="length > 25 and quality.ok", sort_model=[{"colId": "length", "sort": "desc"}])
    assert [r["id"] for r in rest["rowData"]] == sorted(expected, key=lambda i: (-lengths[i], i))[10:]


def test_column_filters_follow_ag_grid_filter_model(lib):
    ds = lib.get("store")
    cols = ds.columns()
    n = len(cols["id"])
    lengths = cols["length"]
    between = {"length": {"filterType": "number", "type": "inRange", "filter": 25, "filterTo": 35}}
    assert filter_mask(cols, n, between).sum() == ((lengths >= 25) & (lengths <= 35)).sum()
    either = {"length": {"filterType": "number", "operator": "OR", "conditions": [
        {"type": "lessThan", "filter": 22}, {"type": "greaterThan", "filter": 36}]}}
    assert filter_mask(cols, n, either).sum() == ((lengths < 22) | (lengths > 36)).sum()
    operator = str(cols["operator"][0])
    text = {"operator": {"filterType": "text", "type": "equals", "filter": operator.upper()}}
    assert filter_mask(cols, n, text).sum() == (cols["operator"] == operator).sum()


def test_quick_search_and_bad_filters(lib):
    ds = lib.get("store")
    task = str(ds.columns()["task"][0])
    found = matching_rows(ds, search=task.split()[0])
    assert len(found) == sum(task.split()[0].lower() in str(t).lower() for t in ds.columns()["task"])
    with pytest.raises(QueryError, match="where"):
        matching_rows(ds, where="length >> 3")
    with pytest.raises(NotFound):
        lib.get("nope")


def test_tags_views_and_frame_tags_are_written_to_the_store(lib):
    ds = lib.get("store")
    ids = ds.store.ids()[:3]
    assert tag_episodes(lib, "store", ids, "needs-review", add=True) == 3
    assert tag_episodes(lib, "store", ids, "needs-review", add=True) == 0  # idempotent
    assert set(ds.store.ids('"needs-review" in tags')) == set(ids)  # the read handle was refreshed
    assert grid_page(ds, 0, 50, where='"needs-review" in tags')["rowCount"] == 3
    tag_episodes(lib, "store", ids[:1], "needs-review", add=False)
    with Store.open(ds.path) as store:
        assert set(store.ids('"needs-review" in tags')) == set(ids[1:])
    tag = add_frame_tag(lib, "store", ids[0], "grasp", 3, 9)
    with Store.open(ds.path) as store:
        assert store.entry(ids[0])["meta"]["extra"]["frame_tags"] == [tag] == [{"tag": "grasp", "start": 3, "stop": 9}]
    with pytest.raises(DemoforgeError, match="frame range"):
        add_frame_tag(lib, "store", ids[0], "grasp", 5, 10_000)
    summary = dataset_summary(ds)
    assert summary["episodes"] == 30 and summary["frames"] == int(ds.columns()["length"].sum())
    assert "quality" in summary["scores"]


def test_export_job_reports_progress_and_can_be_cancelled(lib, tmp_path):
    ds = lib.get("store")
    save_view(ds.path, "long", "length > 25")
    expected = len(ds.store.ids("length > 25"))
    jobs = JobManager()
    done = jobs.wait(jobs.start("export", lambda: export_view(lib, "store", "long", "store", tmp_path / "sub.zarr")).id)
    assert done.state == "done", done.result
    assert done.done == done.total == expected
    with Store.open(tmp_path / "sub.zarr") as sub:
        assert len(sub) == expected
    # a cancel stops long work at its next item, where Ctrl-C would, and the job says so
    gate = threading.Event()

    def slow_work() -> str:
        for _ in track(range(1000), 1000, "waiting"):
            gate.set()
            threading.Event().wait(0.01)
        return "finished"

    job = jobs.start("slow", slow_work)
    assert gate.wait(5)
    jobs.cancel(job.id)
    ended = jobs.wait(job.id)
    assert ended.state == "cancelled" and ended.done < 1000, ended.view()
    failed = jobs.wait(jobs.start("bad", lambda: export_view(lib, "store", "long", "store", tmp_path / "sub.zarr")).id)
    assert failed.state == "failed" and "already exists" in failed.result


def test_refresh_shows_committed_episodes_only(tmp_path):
    spec = sample_spec(cameras=1, height=32, width=32)
    path = tmp_path / "live.zarr"
    with Store.create(path, spec) as store:
        store.append_many(sample_episodes(spec, 2, seed=1))
    library = Library([path])
    ds = library.get("live")
    writer = Store.open(path, mode="a")
    # a half-written episode sits in staging while the dashboard refreshes: it must not show
    staged = path / ".staging" / "999-partial"
    staged.mkdir(parents=True)
    writer.append(sample_episodes(spec, 1, seed=2)[0])
    ds.refresh()
    assert grid_page(ds, 0, 10)["rowCount"] == 3 == len(writer)
    assert np.array_equal(np.sort(ds.columns()["id"]), np.sort(np.array(writer.ids(), dtype=object)))
    writer.close()
    library.close()


def test_curation_job_scores_the_store(tmp_path):
    spec = sample_spec(cameras=1, height=32, width=32)
    path = tmp_path / "fresh.zarr"
    with Store.create(path, spec) as store:
        store.append_many(sample_episodes(spec, 12, seed=5))
    library = Library([path])
    jobs = JobManager()
    job = jobs.wait(jobs.start("curate", lambda: curate_view(library, "fresh", ["quality"], "length > 0", None)).id)
    assert job.state == "done" and job.result.startswith("quality:"), job.view()
    assert job.done == job.total == 12  # progress came through the runner's bar
    assert grid_page(library.get("fresh"), 0, 50, where="quality.ok")["rowCount"] == 12
    library.close()
