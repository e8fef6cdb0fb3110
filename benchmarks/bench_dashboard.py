"""Dashboard speed in a real headless Chromium: time to first rows, grid filter latency, frame scrub, page weight.

    python benchmarks/bench_dashboard.py [--quick] [--tmpdir DIR] [--stores DIR] [--seed S] [--profile]

Prints markdown tables on stdout (progress on stderr), each figure next to its target where the issue
gives one ("A 10,000-episode store shows its first rows in under 2 seconds").

Data:
- grid stores of 1k, 10k and 100k episodes (quick: 1k only). Four template episodes of the procedural
  sample (``sample_spec(cameras=2, 240x320)``) are appended through ``Store.append``; every other
  episode is a clone: its own group folder with a committed ``zarr.json`` (id and metadata rewritten:
  task, operator, success, six factors, tags) whose feature folders are symlinks to a template's, and
  its catalog row is bulk-inserted. ``Store.open`` sees an ordinary committed store. Two curation score
  tables (``quality``: score, ok, jerk and a flag on low scores; ``compatibility``: score) are written
  with ``toolkit.scores.write_pass_scores``, so ``--where`` filters on scores are exercised. The stores
  are built once per run on /dev/shm when it has room (else the temp dir), or kept in ``--stores DIR``
  and reused by later runs;
- a real recorded episode for the episode view: the embedded MuJoCo tabletop (two 240x320 cameras, depth,
  masks, a front point cloud, as ``demoforge demo`` records) driven by the scripted careful operator
  through the real recorder.

Sections (the app is ``dashboard.app.create_app`` served by werkzeug in a thread; a WSGI wrapper records
each reply's bytes and server time; Chromium is Debian's /usr/bin/chromium driven by Playwright):
1. time to first rows: ``page.goto('/d/<store>')`` until the first grid row with an episode-id link is
   visible (polled on every animation frame in the page; time since navigation start). "cold": the store
   just opened by the server (``Library`` swapped in: catalog columns not loaded) and a fresh browser
   context (no HTTP cache); "warm": the same page loaded again. Server-side parts timed alone: ``Library``
   (``Store.open``), the first ``catalog.columns()``, the first and a warm ``grid_page``, and
   ``Dataset.refresh()`` + ``columns()``, which every opening of the grid page does;
2. grid filter latency (10k and 100k; quick: 1k): a ``--where`` filter (score ranges, tags, factors) typed
   into the filter box, time from the Enter key to the row-count text showing the new count and to the
   new first row drawn; quick search likewise; next to each, ``matching_rows`` alone (catalog columns
   loaded, the query not cached);
3. frame scrub round trip on the episode view: an arrow key, then the time until every camera ``<img>``
   has loaded the next frame (its load event for the new URL; naturalWidth > 0), with the clientside
   callback's steps on the way, and until the point-cloud panel (a server callback) shows the frame.
   Passes: cold (ArrowRight over frames never requested: the server reads and encodes each JPEG), warm
   (ArrowLeft back over them: the browser's HTTP cache) and, in the full run, server-warm (a new browser
   context: frames cached on the server only) and both passes again on the episode recorded without a
   point cloud (what the cloud panel costs);
4. page weight of the episode view: every byte the server sent for a first visit (HTML, JS bundles, CSS,
   layout and dependency JSON, callbacks, camera frames) by kind, measured server-side (Playwright cannot
   read very large bodies, reference §3.4 item 8), with Playwright's own count of response bodies as a
   cross-check, the gzip size of the text parts (Dash serves them uncompressed unless ``compress=True``)
   and, in the full run, a second visit with the browser's cache warm.

``--profile`` adds cProfile tables of the server-side parts on the largest store. Quick mode (~20 s): the
1k store, 3 filters, 4 scrub steps, one load per size, no second visit, no server-warm or no-cloud passes.

Timings are wall-clock on whatever else the machine is doing; Chromium renders with SwiftShader (no GPU),
so the Plotly panels (timeline, end-effector path, point cloud) cost more than on a desktop.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco's first import picks a GL backend

import cProfile
import gzip
import io
import json
import logging
import platform
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

try:
    import toolkit  # noqa: F401
except ImportError:  # run from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import parser, table  # noqa: E402

from toolkit.episode import Episode, EpisodeMeta  # noqa: E402
from toolkit.sample import sample_episode, sample_spec  # noqa: E402
from toolkit.scores import PassScores, revision, write_pass_scores  # noqa: E402
from toolkit.store import ATTR, EPISODES, ID_WIDTH, Store  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"]
VIEWPORT = {"width": 1280, "height": 800}
FIRST_ROWS_TARGET = {10_000: 2.0}  # seconds, from the issue
FORMAT = 1  # bump when the grid stores' contents change (a --stores cache of another format is rebuilt)

TASKS = ("pick up the cube", "push the cube to the goal", "stack the blocks")
OPERATORS = ("alice", "bob", "carol", "dave", "scripted:careful", "scripted:fast")
OBJECTS = ("cube", "cylinder", "sphere")
COLOURS = ("red", "green", "blue", "yellow", "white")
TAGS = ("needs-review", "good", "blurry", "keep")

# (label, --where text or quick-search words); each gives a different count at every size used here
FILTERS = (
    ("score range", "where", "quality.score > 0.5 and quality.score < 0.7"),
    ("score + success", "where", "compatibility.score >= 0.9 and success"),
    ("tag + score flag", "where", '"needs-review" in tags and not quality.ok'),
    ("factors", "where", 'factors.object_colour == "red" and factors.light_intensity > 0.5'),
    ("operators + score", "where", 'operator in ["alice", "bob"] and quality.jerk < 0.8'),
    ("quick search", "search", "alice red"),
)


@dataclass(frozen=True)
class Plan:
    sizes: tuple[int, ...]
    filter_sizes: tuple[int, ...]
    filters: tuple[tuple[str, str, str], ...]
    repeats: int  # cold and warm loads per size (median reported)
    steps: int  # frame scrub steps per pass
    server_warm: bool  # also scrub in a new browser context with the frames cached on the server
    no_cloud: bool  # also scrub an episode recorded without a point cloud (what the cloud panel costs)
    revisit: bool  # also weigh a second visit of the episode view (browser cache warm)


FULL = Plan((1_000, 10_000, 100_000), (10_000, 100_000), FILTERS, 3, 20, True, True, True)
QUICK = Plan((1_000,), (1_000,), (FILTERS[0], FILTERS[2], FILTERS[5]), 1, 4, False, False, False)


def log(msg: str) -> None:
    print(f"[bench_dashboard {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.0f}"


def kb(n: float) -> str:
    return f"{n / 1e3:,.1f}"


def short(n: int) -> str:
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


def p90(values: list[float]) -> float:
    return float(np.percentile(values, 90))


# --------------------------------------------------------------------------------------------------
# stores
# --------------------------------------------------------------------------------------------------


def clone_meta(k: int, rng: np.random.Generator) -> dict[str, Any]:
    """Metadata of grid episode ``k``: the columns a recorded dataset's catalog has, with seeded values."""
    return EpisodeMeta(
        task=TASKS[k % len(TASKS)],
        operator=OPERATORS[int(rng.integers(len(OPERATORS)))],
        success=bool(rng.random() < 0.8),
        factors={"object_type": OBJECTS[int(rng.integers(len(OBJECTS)))],
                 "object_colour": COLOURS[int(rng.integers(len(COLOURS)))],
                 "light_intensity": round(float(rng.uniform(0.3, 0.9)), 4),
                 "table_height": round(float(rng.uniform(0.70, 0.80)), 4),
                 "camera_dx": round(float(rng.normal(0.0, 0.01)), 5),
                 "distractors": int(rng.integers(0, 4))},
        tags=[t for t in TAGS if rng.random() < 0.15],
    ).to_dict()


def build_grid_store(path: Path, n: int, seed: int) -> float:
    """A valid store of ``n`` episodes, fast: 4 appended templates, the rest cloned (see the module doc)."""
    t0 = time.perf_counter()
    rng = np.random.default_rng([seed, n])
    spec = sample_spec(cameras=2, height=240, width=320, fps=10)
    with Store.create(path, spec) as store:
        templates = []
        for i in range(4):
            ep = sample_episode(spec, i, seed, 20 + 7 * i)
            templates.append(store.append(Episode(data=ep.data, meta=EpisodeMeta(**clone_meta(i, rng)))))
    episodes_dir = path / EPISODES
    sources = []
    for tid in templates:
        group = json.loads((episodes_dir / tid / "zarr.json").read_text())
        features = sorted(p.name for p in (episodes_dir / tid).iterdir() if p.is_dir())
        sources.append((tid, group, features))
    entries = []
    for k in range(len(templates), n):
        tid, group, features = sources[k % len(sources)]
        new_id = f"{k:0{ID_WIDTH}d}"
        dst = episodes_dir / new_id
        os.mkdir(dst)
        for f in features:
            os.symlink(os.path.join("..", tid, f), dst / f)
        entry = {**group["attributes"][ATTR], "id": new_id, "meta": clone_meta(k, rng)}
        (dst / "zarr.json").write_text(json.dumps({**group, "attributes": {**group["attributes"], ATTR: entry}}))
        entries.append({key: v for key, v in entry.items() if key != "committed"})
        if (k + 1) % 25_000 == 0:
            log(f"  {path.name}: cloned {k + 1:,}/{n:,}")
    with Store.open(path, mode="a") as store:
        store.catalog.upsert(entries)
        by_id = {e["id"]: e for e in entries}
        ids = store.ids()
        revisions = {i: revision(by_id[i] if i in by_id else store.entry(i)) for i in ids}
    quality, flags = {}, {}
    for i in ids:
        score = float(rng.beta(5, 2))
        quality[i] = {"score": round(score, 4), "ok": bool(score > 0.4), "jerk": round(float(rng.gamma(2.0, 0.5)), 4)}
        if score < 0.4:
            flags[i] = {"jerky": {"frames": [[2, 6]], "detail": "action jerk above the threshold"}}
    write_pass_scores(path, PassScores("quality", "1", {"threshold": 0.4}, "bench-q", "", rows=quality,
                                       revisions=revisions, flags=flags,
                                       summary={"headline": f"{len(flags)} episodes flagged"}))
    compat = {i: {"score": round(float(rng.uniform()), 4)} for i in ids}
    write_pass_scores(path, PassScores("compatibility", "1", {}, "bench-c", "", rows=compat, revisions=revisions,
                                       summary={"headline": "synthetic scores"}))
    (path / ".bench_dashboard").write_text(json.dumps({"format": FORMAT, "episodes": n, "seed": seed}))
    return time.perf_counter() - t0


def grid_store(base: Path, n: int, seed: int) -> tuple[Path, float | None]:
    """The grid store of ``n`` episodes under ``base``, built unless an identical one is there."""
    path = base / f"grid-{short(n)}.zarr"
    marker = path / ".bench_dashboard"
    if marker.exists() and json.loads(marker.read_text()) == {"format": FORMAT, "episodes": n, "seed": seed}:
        return path, None
    if path.exists():
        remove_tree(path)
    log(f"building a {n:,}-episode grid store in {base}")
    return path, build_grid_store(path, n, seed)


def record_store(path: Path, seed: int, cloud: bool = True) -> tuple[Path, str, float]:
    """One real episode recorded on the tabletop (cameras, depth, masks, a front point cloud unless not
    ``cloud``) by the scripted careful operator."""
    from teleop.recorder import Recorder, RecorderConfig, recording_spec
    from teleop.sim.scripted import scripted_operator
    from teleop.sim.tabletop import TabletopConfig, TabletopEnv

    t0 = time.perf_counter()
    env = TabletopEnv(TabletopConfig(task="pick_place", **({} if cloud else {"pointcloud_cameras": ()})))
    try:
        store = Store.create(path, recording_spec(env.spec, env.spec.fps))
        config = RecorderConfig(fps=env.spec.fps, max_steps=255, operator="scripted:careful", realtime=False)
        recorder = Recorder(env, scripted_operator(env, "careful", seed), store, config)
        recorder.record_episode(seed)
        recorder.close()
        episode_id = store.ids()[0]
        store.close()
    finally:
        env.close()
    return path, episode_id, time.perf_counter() - t0


def remove_tree(path: Path) -> None:
    if shutil.which("rm"):  # several times faster than shutil.rmtree on 10^5 folders
        subprocess.run(["rm", "-rf", "--", str(path)], check=False)
    shutil.rmtree(path, ignore_errors=True)


def store_location(tmpdir: Path | None, episodes: int) -> Path | None:
    """/dev/shm when it is writable with room for the clones (7 inodes and ~2 kB each), else the temp dir."""
    shm = Path("/dev/shm")
    try:
        st = os.statvfs(shm)
        if os.access(shm, os.W_OK) and st.f_bavail * st.f_frsize > 2e9 and st.f_favail > 10 * episodes:
            return shm
    except OSError:
        pass
    return tmpdir


# --------------------------------------------------------------------------------------------------
# serving and metering
# --------------------------------------------------------------------------------------------------


@dataclass
class Reply:
    path: str
    status: int
    kind: str
    label: str
    nbytes: int
    gzip_bytes: int
    seconds: float


def kind_of(path: str, content_type: str) -> str:
    ct = content_type.split(";")[0].strip()
    if path.endswith("_dash-update-component"):
        return "JSON: callbacks"
    if path.endswith("favicon.ico"):
        return "other"
    if path.endswith(("_dash-layout", "_dash-dependencies")):
        return "JSON: layout + dependencies"
    if "javascript" in ct:
        return "JS bundles"
    if ct == "text/css":
        return "CSS"
    if ct == "text/html":
        return "HTML"
    if ct.startswith("image/"):
        return "images"
    return "other"


def callback_label(body: bytes) -> str:
    try:
        output = json.loads(body or b"{}").get("output", "")
    except ValueError:
        return "?"
    for key, label in (("page.children", "render page"), ("getRowsResponse", "grid rows"),
                       ("cloud.figure", "point cloud"), ("cam", "frame (clientside)")):
        if key in output:
            return label
    return output[:40]


class Meter:
    """WSGI wrapper recording each reply's size and server time (the bodies are small enough to buffer)."""

    def __init__(self, app) -> None:  # noqa: ANN001 - a WSGI callable
        self.app = app
        self.replies: list[Reply] = []
        self.lock = threading.Lock()

    def reset(self) -> list[Reply]:
        with self.lock:
            out, self.replies = self.replies, []
        return out

    def __call__(self, environ, start_response):  # noqa: ANN001, ANN204
        t0 = time.perf_counter()
        path = environ.get("PATH_INFO", "")
        label = ""
        if path.endswith("_dash-update-component"):
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.input"] = io.BytesIO(body)
            label = callback_label(body)
        seen: dict[str, Any] = {}

        def start(status, headers, exc_info=None):  # noqa: ANN001, ANN202
            seen["status"], seen["type"] = int(status.split()[0]), dict(headers).get("Content-Type", "")
            return start_response(status, headers, exc_info)

        result = self.app(environ, start)
        try:
            data = b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        kind = kind_of(path, seen.get("type", ""))
        packed = len(gzip.compress(data, 6)) if kind not in ("images",) and data else len(data)
        with self.lock:
            self.replies.append(Reply(path, seen.get("status", 0), kind, label, len(data), packed,
                                      time.perf_counter() - t0))
        return [data]


class Server:
    """One ``create_app`` served on a free loopback port from a thread; ``use`` swaps in a freshly opened
    ``Library`` (what a server start does to the stores: opened again, catalog columns not loaded).

    One app for the whole run: Dash 4 hands the callbacks declared with the global ``@callback`` to the
    first app that serves a request and clears its global list, so an app created after that has none."""

    def __init__(self, paths: list[Path]) -> None:
        from werkzeug.serving import make_server

        from dashboard.app import create_app

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.app = create_app(paths)
        self.meter = Meter(self.app.server.wsgi_app)
        self.app.server.wsgi_app = self.meter
        self.srv = make_server("127.0.0.1", 0, self.app.server, threaded=True)
        self.url = f"http://127.0.0.1:{self.srv.server_port}"
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()
        with self.app.server.test_client() as client:  # Dash's one-off setup, outside every measurement
            client.get("/_dash-layout")
            client.get("/_dash-dependencies")

    @property
    def library(self):  # noqa: ANN201 - dashboard.data.Library
        return self.app.server.config["DEMOFORGE_LIBRARY"]

    def use(self, paths: list[Path]) -> str:
        """Serve a new ``Library`` over ``paths``; returns the first dataset's name."""
        from dashboard.data import Library

        old = self.library
        self.app.server.config["DEMOFORGE_LIBRARY"] = Library(paths)
        old.close()
        self.meter.reset()
        return next(iter(self.library.datasets))

    def close(self) -> None:
        self.srv.shutdown()
        self.srv.server_close()
        self.library.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------------------------------
# 1. time to first rows
# --------------------------------------------------------------------------------------------------

# Polled on every animation frame from the document's start: the time (since navigation start) at which the
# first grid row with an episode-id link is laid out and visible.
FIRST_ROW_PROBE = """
(() => {
  const probe = () => {
    const link = document.querySelector('.ag-row .ag-cell[col-id="id"] a.episode-link');
    if (link && link.textContent && link.offsetParent !== null) { window.__firstRow = performance.now(); return; }
    requestAnimationFrame(probe);
  };
  requestAnimationFrame(probe);
})();
"""


def server_parts(path: Path) -> dict[str, float]:
    """Server-side costs of the first grid page on a fresh ``Library``: open, catalog columns, grid_page."""
    from dashboard.data import Library, grid_page

    t0 = time.perf_counter()
    lib = Library([path])
    t1 = time.perf_counter()
    ds = next(iter(lib.datasets.values()))
    ds.columns()
    t2 = time.perf_counter()
    query_args = {"where": "", "search": "", "filter_model": {}, "sort_model": [], "ids": None}
    grid_page(ds, 0, 100, **query_args)
    t3 = time.perf_counter()
    grid_page(ds, 100, 200, **query_args)
    t4 = time.perf_counter()
    ds.refresh()  # what opening the grid page does first (shows episodes committed since)
    ds.columns()
    t5 = time.perf_counter()
    lib.close()
    return {"open": t1 - t0, "columns": t2 - t1, "grid_page": t3 - t2, "grid_page_warm": t4 - t3,
            "refresh": t5 - t4}


def load_grid(browser, server: Server, name: str, context=None):  # noqa: ANN001, ANN201
    """Open the grid page; returns (context, page, seconds to the first visible row, replies)."""
    own = context is None
    if own:
        context = browser.new_context(viewport=VIEWPORT)
        context.add_init_script(FIRST_ROW_PROBE)
    page = context.new_page()
    server.meter.reset()
    page.goto(f"{server.url}/d/{name}")
    page.wait_for_function("window.__firstRow !== undefined", timeout=120_000)
    seconds = page.evaluate("window.__firstRow") / 1e3
    return context, page, seconds, server.meter.reset()


def server_time(replies: list[Reply], label: str) -> float:
    return sum(r.seconds for r in replies if r.label == label)


def bench_first_rows(browser, server: Server, plan: Plan, n: int, path: Path) -> tuple[list[str], Any]:
    """The table row for one store size, and (context, page) left open on the grid for the filters."""
    log(f"first rows: {n:,} episodes (server-side parts)")
    parts = [server_parts(path) for _ in range(plan.repeats)]
    part = {k: statistics.median(p[k] for p in parts) for k in parts[0]}
    cold, warm, cold_render, cold_rows, warm_render, warm_rows, nbytes = [], [], [], [], [], [], []
    kept = None
    for r in range(plan.repeats):
        log(f"first rows: {n:,} episodes, browser load {r + 1}/{plan.repeats}")
        name = server.use([path])
        context, page, seconds, replies = load_grid(browser, server, name)
        cold.append(seconds)
        cold_render.append(server_time(replies, "render page"))
        cold_rows.append(server_time(replies, "grid rows"))
        nbytes.append(sum(x.nbytes for x in replies))
        page.close()
        _, page, seconds, replies = load_grid(browser, server, name, context)
        warm.append(seconds)
        warm_render.append(server_time(replies, "render page"))
        warm_rows.append(server_time(replies, "grid rows"))
        if r == plan.repeats - 1 and n in plan.filter_sizes:
            kept = (context, page)
        else:
            page.close()
            context.close()
    target = FIRST_ROWS_TARGET.get(n)
    verdict = f"< {target:g} s: {'yes' if statistics.median(cold) < target else 'NO'}" if target else "-"
    row = [
        f"{n:,}", f"{statistics.median(cold):.2f} s", verdict, f"{statistics.median(warm):.2f} s",
        ms(statistics.median(cold_render)), ms(statistics.median(cold_rows)), ms(statistics.median(warm_render)),
        ms(statistics.median(warm_rows)), kb(statistics.median(nbytes)), ms(part["open"]), ms(part["columns"]),
        ms(part["grid_page"]), ms(part["grid_page_warm"]), ms(part["refresh"]),
    ]
    return row, kept


# --------------------------------------------------------------------------------------------------
# 2. grid filter latency
# --------------------------------------------------------------------------------------------------

ENTER_PROBE = """
() => {
  window.__enter = undefined;
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && window.__enter === undefined) { window.__enter = performance.now(); }
  }, {capture: true, once: true});
}
"""

COUNT_PROBE = """
(expected) => {
  const el = document.querySelector('#n-episodes');
  if (window.__enter === undefined || !el || el.textContent !== expected) { return false; }
  return performance.now() - window.__enter;
}
"""

FIRST_ID_PROBE = """
(expected) => {
  const link = document.querySelector('.ag-row[row-index="0"] .ag-cell[col-id="id"] a.episode-link');
  if (!link || link.textContent !== expected || link.offsetParent === null) { return false; }
  return performance.now() - window.__enter;
}
"""


def bench_filters(plan: Plan, server: Server, n: int, path: Path, context, page) -> list[list[str]]:  # noqa: ANN001
    """Filter latency on the grid page left open by ``bench_first_rows``; closes it."""
    from dashboard.data import Library, matching_rows

    lib = Library([path])  # the same queries alone, on a Library of our own
    ds = next(iter(lib.datasets.values()))
    ids = ds.columns()["id"]  # loaded once, as in the running server
    current = {"where": "", "search": ""}  # what the page's two boxes hold
    rows = []
    for label, box, text in plan.filters:
        other = "search" if box == "where" else "where"
        if current[other]:  # one filter at a time: clear the other box first (not timed)
            current[other] = ""
            page.fill(f"#{other}", "")
            page.press(f"#{other}", "Enter")
            page.wait_for_function("(e) => document.querySelector('#n-episodes').textContent === e",
                                   arg=f"{len(matching_rows(ds, **current)):,} episodes", timeout=60_000)
        current[box] = text
        t0 = time.perf_counter()
        order = matching_rows(ds, **current)
        server_s = time.perf_counter() - t0
        expected = f"{len(order):,} episodes"
        first = str(ids[order[0]]) if len(order) else ""
        log(f"filters: {n:,} episodes, {label}: {expected}")
        server.meter.reset()
        page.fill(f"#{box}", text)
        page.evaluate(ENTER_PROBE)
        page.press(f"#{box}", "Enter")
        count_s = page.wait_for_function(COUNT_PROBE, arg=expected, polling="raf", timeout=120_000).json_value()
        row_s = (page.wait_for_function(FIRST_ID_PROBE, arg=first, polling="raf", timeout=120_000).json_value()
                 if first else count_s)
        rows_server = server_time(server.meter.reset(), "grid rows")
        rows.append([f"{n:,}", label, f"`{text}`" if box == "where" else f"search `{text}`", f"{len(order):,}",
                     ms(count_s / 1e3), ms(row_s / 1e3), ms(rows_server), ms(server_s)])
    lib.close()
    page.close()
    context.close()
    return rows


# --------------------------------------------------------------------------------------------------
# 3. frame scrub and 4. page weight (episode view)
# --------------------------------------------------------------------------------------------------

SCRUB_SETUP = """
() => {
  window.__loads = {};
  window.__srcs = {};
  window.__cursor = {};
  document.addEventListener('load', (e) => {
    if (e.target && e.target.tagName === 'IMG') { window.__loads[e.target.src] = performance.now(); }
  }, true);
  document.addEventListener('keydown', (e) => { window.__key = performance.now(); }, true);
  new MutationObserver((changes) => {
    for (const c of changes) { window.__srcs[c.target.src] = performance.now(); }
  }).observe(document.querySelector('#cams'), {attributes: true, subtree: true, attributeFilter: ['src']});
  // the clientside frame callback moves the plot cursor and the path marker before it returns the new URLs
  const moveCursor = window.demoforge.moveCursor;
  window.demoforge.moveCursor = function (t, info) {
    const start = performance.now();
    try { return moveCursor(t, info); } finally { window.__cursor[t] = [start, performance.now() - start]; }
  };
}
"""

FRAME_PROBE = """
(t) => {
  const imgs = Array.from(document.querySelectorAll('#cams img.frame'));
  if (!imgs.length) { return false; }
  let loaded = 0, src = 0;
  for (const img of imgs) {
    if (!img.src.endsWith('/' + t + '.jpg') || !img.complete || img.naturalWidth === 0) { return false; }
    const at = window.__loads[img.src];
    if (at === undefined || at < window.__key) { return false; }
    loaded = Math.max(loaded, at);
    src = Math.max(src, window.__srcs[img.src] || at);
  }
  const cursor = window.__cursor[t] || [window.__key, 0];
  const key = window.__key;
  return {loaded: loaded - key, src: src - key, callback: cursor[0] - key, cursor: cursor[1]};
}
"""

CLOUD_PROBE = """
(t) => {
  const title = document.querySelector('#cloud .gtitle');
  if (!title || !title.textContent.endsWith('(frame ' + t + ')')) { return false; }
  return performance.now() - window.__key;
}
"""

EPISODE_READY = """
() => {
  const imgs = Array.from(document.querySelectorAll('#cams img.frame'));
  const plots = ['#timeline', '#ee-path', '#cloud'].filter((s) => document.querySelector(s));
  return imgs.length > 0 && imgs.every((i) => i.complete && i.naturalWidth > 0)
    && plots.every((s) => document.querySelector(s + ' .main-svg'));
}
"""


def open_episode(context, server: Server, dataset: str, episode_id: str, t: int = 0):  # noqa: ANN001, ANN201
    """A new page on the episode view at frame ``t``, once its frames are loaded and its plots drawn."""
    page = context.new_page()
    page.goto(f"{server.url}/d/{dataset}/e/{episode_id}?t={t}", wait_until="networkidle")
    page.wait_for_function(EPISODE_READY, timeout=120_000)
    page.wait_for_load_state("networkidle")
    page.mouse.click(5, 5)  # focus the page body (the key handler ignores keys typed into inputs)
    page.evaluate(SCRUB_SETUP)
    return page


def scrub(page, frames_to: list[int], key: str, has_cloud: bool) -> tuple[list[dict], list[float]]:  # noqa: ANN001
    """``key`` once per frame of ``frames_to``: per step the in-page times (ms) of the frame callback's start,
    its plot-cursor move, the new ``src`` and the images loaded; and the point-cloud round trips (ms)."""
    frames, clouds = [], []
    for t in frames_to:
        page.keyboard.press(key)
        frames.append(page.wait_for_function(FRAME_PROBE, arg=t, polling="raf", timeout=60_000).json_value())
        if has_cloud:
            clouds.append(page.wait_for_function(CLOUD_PROBE, arg=t, polling="raf", timeout=60_000).json_value())
    return frames, clouds


def scrub_row(label: str, frames: list[dict], clouds: list[float], replies: list[Reply]) -> list[str]:
    def med(values: list[float]) -> str:
        return f"{statistics.median(values):.0f}" if values else "-"

    loaded = [f["loaded"] for f in frames]
    media = [r.seconds * 1e3 for r in replies if r.kind == "images" and r.status == 200]
    cloud_cb = [r for r in replies if r.label == "point cloud"]
    return [label, str(len(frames)), f"**{med(loaded)}**", f"{p90(loaded):.0f}", f"{max(loaded):.0f}",
            med([f["callback"] for f in frames]), med([f["cursor"] for f in frames]), med([f["src"] for f in frames]),
            med(clouds), f"{p90(clouds):.0f}" if clouds else "-", str(len(media)), med(media),
            kb(statistics.median([r.nbytes for r in cloud_cb])) if cloud_cb else "-",
            med([r.seconds * 1e3 for r in cloud_cb])]


KINDS = ("HTML", "JS bundles", "CSS", "JSON: layout + dependencies", "JSON: callbacks", "images", "other")


def by_kind(replies: list[Reply]) -> dict[str, tuple[int, int, int]]:
    """kind -> (replies with a body, bytes, gzip bytes); 304 Not Modified replies are left out."""
    out = {}
    for kind in KINDS:
        rs = [r for r in replies if r.kind == kind and r.status != 304]
        out[kind] = (len(rs), sum(r.nbytes for r in rs), sum(r.gzip_bytes for r in rs))
    return out


def bench_episode_view(browser, plan: Plan, server: Server, dataset: str, episode_id: str, length: int,
                       has_cloud: bool, prefix: str = "", weigh: bool = True) -> tuple[list[list[str]], dict | None]:
    """Page weight of a first visit (when ``weigh``), then the scrub passes on the same page: cold (ArrowRight
    over frames never requested), warm (ArrowLeft back over them: the browser's cache), and in the full run
    server-warm (a new browser context, ArrowRight again: frames cached on the server only)."""
    steps = min(plan.steps, length - 1)
    forward, back = list(range(1, steps + 1)), list(range(steps - 1, -1, -1))
    context = browser.new_context(viewport=VIEWPORT)
    requests: list = []
    page_listener = lambda req: requests.append(req)  # noqa: E731
    context.on("requestfinished", page_listener)
    server.meter.reset()
    log(f"episode view: {prefix}first visit")
    page = open_episode(context, server, dataset, episode_id)
    first = server.meter.reset()
    context.remove_listener("requestfinished", page_listener)
    pw_bytes = sum(max(0, req.sizes()["responseBodySize"]) for req in requests) if weigh else 0
    log(f"scrub: {prefix}cold pass ({steps} steps)")
    frames, clouds = scrub(page, forward, "ArrowRight", has_cloud)
    rows = [scrub_row(prefix + "cold: frames never requested (server reads + encodes)", frames, clouds,
                      server.meter.reset())]
    log(f"scrub: {prefix}warm pass (the same frames back: browser cache)")
    frames, clouds = scrub(page, back, "ArrowLeft", has_cloud)
    warm = scrub_row(prefix + "warm: the same frames again, backwards (browser HTTP cache)", frames, clouds,
                     server.meter.reset())
    page.close()
    weight = None
    if weigh:
        again = []
        if plan.revisit:
            log("page weight: the same view again at its last frame (browser cache warm)")
            server.meter.reset()
            open_episode(context, server, dataset, episode_id, length - 1).close()
            again = server.meter.reset()
        weight = weight_tables(first, again, pw_bytes)
    context.close()
    if plan.server_warm:
        log(f"scrub: {prefix}server-warm pass (new browser context)")
        context = browser.new_context(viewport=VIEWPORT)
        page = open_episode(context, server, dataset, episode_id)
        server.meter.reset()
        frames, clouds = scrub(page, forward, "ArrowRight", has_cloud)
        rows.append(scrub_row(prefix + "server-warm: new browser, frames cached on the server", frames, clouds,
                              server.meter.reset()))
        context.close()
    rows.append(warm)
    return rows, weight


def weight_tables(first: list[Reply], again: list[Reply], pw_bytes: int) -> dict:
    a, b = by_kind(first), by_kind(again)
    rows = []
    for kind in KINDS:
        if a[kind][0] or b[kind][0]:
            rows.append([kind, str(a[kind][0]), kb(a[kind][1]), kb(a[kind][2]) if kind != "images" else "-",
                         str(b[kind][0]) if again else "-", kb(b[kind][1]) if again else "-"])
    total_a, total_b = sum(v[1] for v in a.values()), sum(v[1] for v in b.values())
    rows.append(["**total**", str(sum(v[0] for v in a.values())), f"**{kb(total_a)}**",
                 kb(sum(v[2] for v in a.values())), str(sum(v[0] for v in b.values())) if again else "-",
                 kb(total_b) if again else "-"])
    callbacks: dict[str, tuple[int, int, float]] = {}
    for r in first:
        if r.kind == "JSON: callbacks":
            n, size, secs = callbacks.get(r.label, (0, 0, 0.0))
            callbacks[r.label] = (n + 1, size + r.nbytes, secs + r.seconds)
    cb_rows = [[label, str(n), kb(size), ms(secs)]
               for label, (n, size, secs) in sorted(callbacks.items(), key=lambda kv: -kv[1][1])]
    biggest = sorted((r for r in first if r.kind == "JS bundles"), key=lambda r: -r.nbytes)[:4]
    return {"rows": rows, "callbacks": cb_rows, "playwright": pw_bytes, "server": total_a,
            "not_modified": sum(1 for r in again if r.status == 304), "revisit": bool(again),
            "biggest": [(r.path.rsplit("/", 1)[-1], r.nbytes) for r in biggest]}


# --------------------------------------------------------------------------------------------------
# profiles of the server-side parts
# --------------------------------------------------------------------------------------------------


def profile_server(path: Path, top: int = 14) -> str:
    """cProfile of the first columns(), first grid_page and a quick search on a fresh Library."""
    from dashboard.data import Library, grid_page, matching_rows
    from dashboard.pages.episodes import layout as episodes_layout

    out = []
    _lib_of: list = [None]
    for label, fn in (
        ("Library (Store.open) + first ds.columns()", None),
        ("the grid page's layout, columns already loaded (what every opening of /d/<store> costs: "
         "ds.refresh() re-opens the store, so its catalog columns load again)",
         lambda ds: episodes_layout(_lib_of[0], ds.name)),
        ("first grid_page (columns loaded)", lambda ds: grid_page(ds, 0, 100)),
        ("matching_rows(search='alice red') (columns loaded)", lambda ds: matching_rows(ds, search="alice red")),
        ("matching_rows(sort by operator) (columns loaded)",
         lambda ds: matching_rows(ds, sort_model=[{"colId": "operator", "sort": "asc"}])),
    ):
        prof = cProfile.Profile()
        if fn is None:
            t0 = time.perf_counter()
            prof.enable()
            lib = Library([path])
            next(iter(lib.datasets.values())).columns()
            prof.disable()
        else:
            lib = Library([path])
            _lib_of[:] = [lib]
            ds = next(iter(lib.datasets.values()))
            ds.columns()
            t0 = time.perf_counter()
            prof.enable()
            fn(ds)
            prof.disable()
        seconds = time.perf_counter() - t0
        lib.close()
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(top)
        text = buf.getvalue()
        body = text[text.find("   ncalls"):] if "   ncalls" in text else text
        out.append(f"### {label}: {seconds:.2f} s under the profiler\n\n```\n{body.rstrip()}\n```")
    return "\n\n".join(out)


# --------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__, quick="small run (~20 s): the 1k store only, 3 filters, 4 scrub steps, one load per size",
                tmpdir="scratch directory (default: system temp)")
    ap.add_argument("--stores", type=Path, default=None,
                    help="keep the grid stores here and reuse them in later runs (default: built on /dev/shm "
                         "or the temp dir, removed at the end)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the synthetic catalog and the recording")
    ap.add_argument("--profile", action="store_true",
                    help="also print cProfile tables of the server-side parts on the largest store")
    args = ap.parse_args(argv)
    plan = QUICK if args.quick else FULL
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM}: not found (apt-get install chromium); this benchmark drives a real browser",
              file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    if args.tmpdir:
        args.tmpdir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench_dashboard-", dir=args.tmpdir))
    base = args.stores
    if base is None:
        base = Path(tempfile.mkdtemp(prefix="bench_dashboard-", dir=store_location(args.tmpdir, sum(plan.sizes))))
    base.mkdir(parents=True, exist_ok=True)
    try:
        stores, builds = {}, []
        for n in plan.sizes:
            stores[n], built = grid_store(base, n, args.seed)
            builds.append(f"{n:,}: {'reused' if built is None else f'{built:.1f} s'}")
        log("recording one tabletop episode")
        rec_path, episode_id, record_s = record_store(work / "tabletop.zarr", args.seed)
        with Store.open(rec_path) as rec:
            length = int(rec.entry(episode_id)["length"])
            cams = [n for n, f in rec.spec.features.items() if f.kind == "image"]
            shape = rec.spec.features[cams[0]].shape
            has_cloud = any(f.kind == "pointcloud" for f in rec.spec.features.values())
        if plan.no_cloud:
            log("recording the same episode without a point cloud")
            plain_path, plain_id, _ = record_store(work / "tabletop-no-cloud.zarr", args.seed, cloud=False)
            with Store.open(plain_path) as plain:
                plain_length = int(plain.entry(plain_id)["length"])

        with sync_playwright() as pw:
            t0 = time.perf_counter()
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            launch_s = time.perf_counter() - t0
            version = browser.version
            with Server([rec_path]) as server:
                first_rows, filters = [], []
                for n in plan.sizes:
                    row, kept = bench_first_rows(browser, server, plan, n, stores[n])
                    first_rows.append(row)
                    if kept:
                        filters += bench_filters(plan, server, n, stores[n], *kept)
                dataset = server.use([rec_path])
                scrub_rows, weight = bench_episode_view(browser, plan, server, dataset, episode_id, length, has_cloud)
                if plan.no_cloud:
                    plain = server.use([plain_path])
                    rows, _ = bench_episode_view(browser, replace(plan, server_warm=False), server, plain, plain_id,
                                                 plain_length, False, prefix="no point cloud: ", weigh=False)
                    scrub_rows += rows
            browser.close()
        profiles = profile_server(stores[max(plan.sizes)]) if args.profile else ""
    finally:
        log("cleaning up")
        remove_tree(work)
        if args.stores is None:
            remove_tree(base)

    import dash
    import dash_ag_grid

    out = [
        f"# demoforge dashboard benchmark{' (--quick)' if args.quick else ''}",
        "",
        f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, dash {dash.__version__}, "
        f"dash-ag-grid {dash_ag_grid.__version__}, Chromium {version} headless (SwiftShader, no GPU; launch "
        f"{launch_s:.1f} s); app served by werkzeug (threaded) in the benchmark's process. Load average "
        f"{load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end (above ~2 on this machine, other work "
        "shares the 2 CPUs and inflates every figure).",
        f"Grid stores (4 appended sample episodes + symlinked clones; catalog with 6 factors, tags, quality and "
        f"compatibility scores) built in: {', '.join(builds)}. Episode view: one tabletop episode recorded by the "
        f"scripted careful operator ({length} frames, {len(cams)} cameras {shape[1]}x{shape[0]}, depth, masks, "
        f"{'a point cloud' if has_cloud else 'no point cloud'}; recorded in {record_s:.1f} s).",
        "",
        "## 1. Time to first rows (episodes grid, AG Grid infinite row model)",
        "",
        "browser = navigation start to the first grid row with an episode-id link visible, median of "
        f"{plan.repeats} load(s); cold = the store just opened by the server (a new Library: catalog columns not "
        "loaded) + a new browser context, warm = the page loaded again. Server columns are the app's own request times during the cold load (render = the page "
        "callback: it re-opens the store (Dataset.refresh, so episodes committed since appear) and builds the column "
        "definitions from the catalog columns; rows = the grid's first block). The last five columns time the "
        "server-side parts alone on a fresh Library; the last one is what every opening of the grid page pays on "
        "the server (refresh, then the catalog columns of the re-opened store).",
        "",
        table(["episodes", "first rows (cold)", "target", "first rows (warm)", "render cb ms", "rows cb ms",
               "render cb ms (warm)", "rows cb ms (warm)", "KB sent (cold)", "Store.open ms", "first columns() ms",
               "first grid_page ms", "warm grid_page ms", "refresh() + columns() ms"], first_rows),
        "",
        *[f"{short(n)} first rows: {row[1]} cold, {row[3]} warm (target < {FIRST_ROWS_TARGET[n]:g} s)\n"
          for n, row in zip(plan.sizes, first_rows) if n in FIRST_ROWS_TARGET],
        "## 2. Grid filter latency",
        "",
        "Enter pressed in the filter box (--where) or the quick-search box, to the row-count text showing the new "
        "count, and to the first row of the new result drawn (in-page times); the grid's rows callback as timed by "
        "the server; matching_rows alone (catalog columns loaded, this query not cached).",
        "",
        table(["episodes", "filter", "text", "matches", "count shown ms", "first row ms", "rows cb ms (server)",
               "matching_rows ms"], filters),
        "",
        "## 3. Frame scrub round trip (episode view, arrow keys)",
        "",
        f"A key pressed to every camera <img> ({len(cams)}) having loaded the next frame (load event of the new "
        "URL, naturalWidth > 0), in-page times in ms. Along the way: the clientside frame callback starts, moves the "
        "plot cursor and the end-effector marker (Plotly.relayout + restyle, 'cursor'), and its new URLs land in "
        "the <img> src ('src set'). Point cloud = to the cloud panel's title showing the frame (a server callback "
        "plus a WebGL re-render). The next key is pressed when both are done. Cold = ArrowRight from frame 0 over "
        "frames never requested; warm = ArrowLeft back over the same frames in the same page (browser HTTP cache); "
        "server-warm = a new browser context stepping the same frames (cached on the server only). 'frame "
        "requests' = JPEGs the server sent during the pass, with their median server time; 'cloud cb' = the "
        "point-cloud callback's reply. 'no point cloud' rows: the same episode recorded without the point cloud "
        "(no cloud panel), to show what that panel costs the scrub.",
        "",
        table(["pass", "steps", "frame loaded median", "p90", "max", "callback start", "cursor", "src set",
               "point cloud median", "p90", "frame requests", "server ms/frame", "cloud cb KB", "cloud cb server ms"],
              scrub_rows),
        "",
        "## 4. Page weight of the episode view",
        "",
        "Bytes in the replies' bodies, measured server-side (WSGI wrapper), HTTP headers not counted. First visit = "
        "new browser context, the view at frame 0 until every panel is drawn and the network is idle"
        + ("; again = the same browser opening the view at its last frame (304 Not Modified replies and cache hits "
           "count 0 bytes)" if weight["revisit"] else "") + ". gzip = what the same bodies would weigh compressed "
        "(Dash(compress=True) with flask-compress). 'other' = the favicon.",
        "",
        table(["kind", "requests", "KB (first visit)", "gzip KB", "requests (again)", "KB (again)"], weight["rows"]),
        "",
        f"Playwright's own count of response bodies on the first visit: {kb(weight['playwright'])} KB "
        f"(server-side: {kb(weight['server'])} KB)"
        + (f"; {weight['not_modified']} replies 304 on the second visit" if weight["revisit"] else "") + ". "
        "Largest JS bundles: " + ", ".join(f"{name} {kb(size)} KB" for name, size in weight["biggest"]) + ".",
        "",
        "Callbacks on the first visit:",
        "",
        table(["callback", "calls", "KB", "server ms"], weight["callbacks"]),
        "",
        *([f"## Profiles (server side, {max(plan.sizes):,} episodes)", "", profiles, ""] if profiles else []),
        f"total runtime {time.perf_counter() - started:.0f} s",
    ]
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
