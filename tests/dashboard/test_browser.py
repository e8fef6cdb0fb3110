"""The dashboard in a real headless Chromium, on the curated demo dataset: what a curator does, end to end.

Few tests, each a scenario: filter the grid by a score, open an episode, scrub, tag it and a frame range, save
the filter as a view, export the view to LeRobot as a job (judged by the real lerobot) or cancel the export;
a synthetic episode beside its source with its point cloud; a store browsed while episodes are appended.
Every check reads the ground truth back from the store on disk (``toolkit.store.Store``), not from the page.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
from playwright.sync_api import Page, expect

from dashboard.pages.episode import cloud_sample
from toolkit.store import Store
from toolkit.views import load_views, save_view

expect.set_options(timeout=20_000)

GRID_IDS = "els => els.map(e => e.textContent)"
GRID_LINKS = ".ag-pinned-left-cols-container .ag-row a.episode-link"
CURSOR = "() => document.querySelector('#timeline .js-plotly-plot')?.layout?.shapes?.[0]?.x0"  # the frame line
PLOTLY_BUNDLES = re.compile(r"/(async-graph|plotly(\.min)?)\.js")  # dcc.Graph's code, fetched lazily
IMAGES = "imgs => imgs.map(i => ({src: i.getAttribute('src'), w: i.naturalWidth, h: i.naturalHeight}))"


# ------------------------------------------------------------------------------------------------ helpers
def novelty_filter(store: Store, count: int = 3) -> tuple[str, list[str]]:
    """A ``--where`` on a score that keeps exactly ``count`` episodes: clean ones, the most novel first."""
    cols = store.catalog.columns()
    novelty = cols["diversity.novelty"].astype(float)
    clean = np.array([v is True for v in cols["quality.ok"]]) & np.isfinite(novelty)
    novelty = np.sort(novelty[clean])[::-1]
    assert len(novelty) > count and novelty[count - 1] > novelty[count], "the demo's novelty scores tie"
    threshold = round(float(novelty[count - 1] + novelty[count]) / 2, 6)
    where = f"quality.ok and diversity.novelty > {threshold}"
    ids = store.ids(where)
    assert len(ids) == count
    return where, ids


def grid_ids(page: Page, count: int) -> list[str]:
    """The ids in the grid's rows once it shows exactly ``count`` rows."""
    page.wait_for_function(f"document.querySelectorAll('{GRID_LINKS}').length === {count}")
    return page.eval_on_selector_all(GRID_LINKS, GRID_IDS)


def loaded_images(page: Page, selector: str, suffix: str) -> list[dict]:
    """The ``<img>``s under ``selector`` once every one points at ``...suffix`` and has loaded its pixels."""
    page.wait_for_function(
        """([sel, suffix]) => { const imgs = [...document.querySelectorAll(sel)];
             return imgs.length > 0 && imgs.every(i => i.getAttribute('src').endsWith(suffix) && i.complete
                                                       && i.naturalWidth > 0); }""", arg=[selector, suffix])
    return page.eval_on_selector_all(selector, IMAGES)


def focus_slider(page: Page) -> None:
    thumb = page.locator("#frame [role=slider]")
    thumb.scroll_into_view_if_needed()
    thumb.focus()


def save_view_from_grid(page: Page, url: str, where: str, name: str, count: int) -> None:
    """Open the grid with ``where`` typed in (as a view's link does), then save it as a view."""
    page.goto(f"{url}/d/store?where={quote(where, safe='')}")
    expect(page.locator("#n-episodes")).to_have_text(f"{count} episodes")
    page.fill("#view-name", name)
    page.get_by_role("button", name="Save filter as view").click()
    expect(page.locator("#grid-status")).to_have_text(f"saved view '{name}': {count} episodes now")


def export_row(page: Page, view: str):  # noqa: ANN201 - a Playwright Locator
    return page.locator("#views-table tr", has=page.locator("td a", has_text=view))


# ------------------------------------------------------------------------------------------------ scenarios
def test_filter_by_score_open_scrub_and_tag(page: Page, live_app, demo_stores):
    with Store.open(demo_stores.store) as store:
        total = len(store)
        where, expected = novelty_filter(store, 3)
        lengths = {i: store.entry(i)["length"] for i in expected}

    page.goto(f"{live_app.url}/d/store")
    expect(page.locator("#n-episodes")).to_have_text(f"{total} episodes")
    page.fill("#where", where)
    page.press("#where", "Enter")
    expect(page.locator("#n-episodes")).to_have_text(f"{len(expected)} episodes")
    assert sorted(grid_ids(page, len(expected))) == sorted(expected)

    # save the grid's filter as a view: views.json holds the filter, not ids
    page.fill("#view-name", "novel-clean")
    page.get_by_role("button", name="Save filter as view").click()
    expect(page.locator("#grid-status")).to_have_text(f"saved view 'novel-clean': {len(expected)} episodes now")
    assert load_views(demo_stores.store)["novel-clean"]["where"] == where
    assert json.loads((demo_stores.store / "views.json").read_text())["novel-clean"]["where"] == where

    # open the first row's episode from the grid, holding plotly.js back so that the scrub below happens before
    # the plots are drawn, as it does for a quick user on a slow machine
    held: list = []
    page.route(PLOTLY_BUNDLES, lambda route: held.append(route))
    episode = grid_ids(page, len(expected))[0]
    page.locator(GRID_LINKS, has_text=episode).click()
    expect(page).to_have_url(f"{live_app.url}/d/store/e/{episode}")
    last = lengths[episode] - 1
    expect(page.locator("#frame-label")).to_have_text(f"frame 0 / {last} (0.00 s)")
    cameras = loaded_images(page, "#cams img", "/0.jpg")
    assert len(cameras) == 2

    # scrub with the keyboard on the slider: 5 steps -> frame 5 everywhere (cameras, cursor, path marker)
    focus_slider(page)
    for _ in range(5):
        page.keyboard.press("ArrowRight")
    expect(page.locator("#frame-label")).to_have_text(f"frame 5 / {last} (0.50 s)")
    cameras = loaded_images(page, "#cams img", "/5.jpg")
    assert [c["src"] for c in cameras] == [f"/media/store/{episode}/observation.images.{c}/5.jpg"
                                           for c in ("front", "wrist")]
    assert all((c["w"], c["h"]) == (160, 120) for c in cameras)  # the stored frame size: real pixels arrived
    assert held and page.locator("#timeline .js-plotly-plot").count() == 0  # no plot drawn yet
    for route in held:
        route.continue_()
    page.unroute(PLOTLY_BUNDLES)
    page.wait_for_function(f"({CURSOR})() === 5")
    with Store.open(demo_stores.store) as store:
        ee_x = float(store.read(episode, ["observation.state"]).data["observation.state"][5, 0])
    marker_x = page.evaluate("document.querySelector('#ee-path .js-plotly-plot')._fullData[1].x[0]")
    assert marker_x == pytest.approx(ee_x, abs=1e-4)
    # the page's own arrow keys (focus elsewhere) step one frame per key too
    page.locator("h2").click()
    page.keyboard.press("ArrowRight")
    expect(page.locator("#frame-label")).to_have_text(f"frame 6 / {last} (0.60 s)")
    loaded_images(page, "#cams img", "/6.jpg")
    page.wait_for_function(f"({CURSOR})() === 6")

    # tag the episode: the chip shows and the store holds the tag
    page.fill("#episode-tag", "keeper")
    page.get_by_role("button", name="Tag episode").click()
    expect(page.locator("#episode-status")).to_have_text("tagged 'keeper'")
    expect(page.locator("#tag-chips .chip")).to_have_text(["keeper"])
    with Store.open(demo_stores.store) as store:
        assert "keeper" in store.meta(episode).tags

    # tag frames [5, 12): kept in meta.extra.frame_tags and shaded on the timeline; the cursor stays on frame 6
    page.fill("#range-start", "5")
    page.fill("#range-stop", "12")
    page.get_by_role("button", name="Tag frames").click()
    expect(page.locator("#episode-status")).to_have_text("tagged frames 5-12 'keeper'")
    with Store.open(demo_stores.store) as store:
        assert {"tag": "keeper", "start": 5, "stop": 12} in store.entry(episode)["meta"]["extra"]["frame_tags"]
    shaded = page.wait_for_function(
        """() => (document.querySelector('#timeline .js-plotly-plot').layout.shapes || [])
                   .find(s => s.name === 'tag keeper') || null""").json_value()
    assert (shaded["x0"], shaded["x1"]) == (4.5, 11.5)
    assert page.evaluate(f"({CURSOR})()") == 6

    # the grid finds the tagged episode by its tag
    page.goto(f"{live_app.url}/d/store?where={quote(repr('keeper') + ' in tags', safe='')}")
    expect(page.locator("#n-episodes")).to_have_text("1 episode")
    assert grid_ids(page, 1) == [episode]


@pytest.mark.slow
def test_view_exports_to_lerobot_as_a_job_and_loads_in_real_lerobot(page: Page, live_app, demo_stores,
                                                                     lerobot_oracle):
    with Store.open(demo_stores.store) as store:
        where, expected = novelty_filter(store, 3)
        frames = sum(store.entry(i)["length"] for i in expected)
    save_view_from_grid(page, live_app.url, where, "to-lerobot", len(expected))

    page.goto(f"{live_app.url}/d/store/views")
    row = export_row(page, "to-lerobot")
    expect(row.locator("td").nth(2)).to_have_text(str(len(expected)))  # episodes the view matches now
    out = demo_stores.root / "store-to-lerobot-lerobot"
    row.get_by_role("button", name="Export to LeRobot").click()
    expect(page.locator("#views-status")).to_contain_text(f"export 'to-lerobot' to {out}")

    job = page.locator(".job", has_text="export 'to-lerobot'")
    expect(job.locator(".job-state")).to_have_text("done", timeout=120_000)
    n = len(expected)
    expect(job).to_contain_text(f"exporting {n} episodes {n}/{n}")  # the progress it reported
    expect(job.locator("progress")).to_have_attribute("value", str(n))
    expect(job.locator(".job-result")).to_have_text(f"{n} episodes, {frames} frames -> {out} (LeRobot v3.0)")

    report = lerobot_oracle.check_load(out)
    assert report["total_episodes"] == n and report["total_frames"] == report["frames_read"] == frames
    assert sorted(report["video_keys"]) == ["observation.images.front", "observation.images.wrist"]


def test_cancelled_export_leaves_no_dataset(page: Page, live_app, demo_stores):
    with Store.open(demo_stores.store) as store:
        total = len(store.ids("success"))
    save_view(demo_stores.store, "everything", "success")  # setup: the longest export the demo has
    out = demo_stores.root / "store-everything-lerobot"

    page.goto(f"{live_app.url}/d/store/views")
    export_row(page, "everything").get_by_role("button", name="Export to LeRobot").click()
    job = page.locator(".job", has_text="export 'everything'")
    job.get_by_role("button", name="Cancel").click()  # shown from the first poll (0.5 s); the export takes ~7 s
    expect(job.locator(".job-state")).to_have_text("cancelled", timeout=60_000)
    expect(job.locator(".job-result")).to_contain_text("cancelled at exporting")
    expect(job.get_by_role("button", name="Cancel")).to_have_count(0)

    (ended,) = [j for j in live_app.jobs.jobs.values() if "'everything'" in j.title]
    assert ended.state == "cancelled" and ended.done < total, ended.view()
    # the export was staged in a hidden sibling and renamed only when complete: a cancel leaves nothing
    assert not out.exists()
    assert not [p.name for p in demo_stores.root.iterdir() if p.name.startswith(f".{out.name}")]


def test_synthetic_episode_shows_its_source_and_keeps_the_cloud_camera(page: Page, live_app, demo_stores):
    with Store.open(demo_stores.pointcloud) as synthetic:
        episode = synthetic.ids()[0]
        provenance = synthetic.meta(episode).provenance
    source = provenance["source_id"]
    assert Path(provenance["source_store"]).resolve() == demo_stores.store.resolve()

    page.goto(f"{live_app.url}/d/pointcloud/e/{episode}")
    expect(page.locator("#source-link")).to_contain_text(f"store/{source}")
    shown = loaded_images(page, "#source-cams img", "/0.jpg")
    assert [s["src"] for s in shown] == [f"/media/store/{source}/observation.images.{c}/0.jpg"
                                         for c in ("front", "wrist")]
    loaded_images(page, "#cams img", "/0.jpg")

    cloud = "document.querySelector('#cloud .js-plotly-plot')"
    page.wait_for_selector("#cloud .js-plotly-plot canvas")
    ds = live_app.library.get("pointcloud")
    feature = ds.clouds()[0]
    first = cloud_sample(ds, episode, feature, 0)
    assert page.evaluate(f"{cloud}.layout.uirevision") == "cloud"
    assert page.evaluate(f"{cloud}._fullData[0]._length") == len(first) <= 3000

    # turn the camera as a user does (drag on the WebGL scene), then scrub: the camera stays, the points change
    graph = page.locator("#cloud .js-plotly-plot")
    graph.scroll_into_view_if_needed()
    box = graph.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx + 80, cy + 30, steps=8)
    page.mouse.up()
    eye = page.wait_for_function(f"""() => {{ const e = {cloud}._fullLayout.scene.camera.eye;
                                         return Math.abs(e.x - 1.25) > 0.05 ? e : null; }}""").json_value()
    focus_slider(page)
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    page.wait_for_function(f"{cloud}.layout.title.text.endsWith('(frame 3)')")
    loaded_images(page, "#source-cams img", "/3.jpg")
    third = cloud_sample(ds, episode, feature, 3)
    drawn = page.evaluate(f"[{cloud}._fullData[0]._length, {cloud}._fullData[0].x[0], {cloud}._fullData[0].z[0]]")
    assert drawn[0] == len(third) and drawn[1:] == pytest.approx([third[0, 0], third[0, 2]], abs=1e-5)
    after = page.evaluate(f"{cloud}._fullLayout.scene.camera.eye")
    assert after == pytest.approx(eye, abs=1e-6)


def test_store_being_recorded_into_can_be_browsed(page: Page, serve_app, demo_stores, tmp_path):
    with Store.open(demo_stores.store) as demo:
        spec = demo.spec
        episodes = demo.read_many(demo.ids()[:5])
    path = tmp_path / "live.zarr"
    with Store.create(path, spec) as first:
        first.append_many(episodes[:2])
    live = serve_app([path])
    page.goto(f"{live.url}/d/live")
    expect(page.locator("#n-episodes")).to_have_text("2 episodes")

    # a writer appends 3 more; the first of them is held fully written but not yet renamed into episodes/
    writer = Store.open(path, mode="a")
    staged, release = threading.Event(), threading.Event()
    rename_in = writer._rename_in

    def held_rename(*args):  # noqa: ANN002 - Store._rename_in's arguments
        if not staged.is_set():
            staged.set()
            release.wait(60)
        return rename_in(*args)

    def refresh() -> dict:
        """Click Refresh; the rows the server sent for the grid's fresh request."""
        with page.expect_response(lambda r: "_dash-update-component" in r.url
                                  and "getRowsRequest" in (r.request.post_data or "")) as reply:
            page.get_by_role("button", name="Refresh").click()
        return reply.value.json()["response"]["grid"]["getRowsResponse"]

    writer._rename_in = held_rename
    thread = threading.Thread(target=lambda: [writer.append(e) for e in episodes[2:]], daemon=True)
    thread.start()
    try:
        assert staged.wait(30)
        assert [p for p in (path / ".staging").iterdir()], "the held episode is staged on disk"
        rows = refresh()
        assert rows["rowCount"] == 2 and [r["id"] for r in rows["rowData"]] == ["000000", "000001"]
        expect(page.locator("#n-episodes")).to_have_text("2 episodes")
    finally:
        release.set()
        thread.join(60)
    committed = writer.ids()
    writer.close()
    assert len(committed) == 5
    rows = refresh()
    assert rows["rowCount"] == 5 and [r["id"] for r in rows["rowData"]] == committed
    expect(page.locator("#n-episodes")).to_have_text("5 episodes")
    assert sorted(grid_ids(page, 5)) == committed
    thumbs = loaded_images(page, ".ag-pinned-left-cols-container .ag-row img", "thumb.jpg")
    assert sorted(t["src"] for t in thumbs) == [f"/media/live/{i}/thumb.jpg" for i in committed]
    page.reload()
    expect(page.locator("#n-episodes")).to_have_text("5 episodes")
