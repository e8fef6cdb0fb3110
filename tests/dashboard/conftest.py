"""Fixtures for the dashboard's tests: a real curated demo dataset, the app served on loopback, and Debian's
headless Chromium driven by Playwright (never ``playwright install``: see shared/reference/
dashboard_and_browser_tests.md §3).

- ``demo_stores`` (session): the demo's stores, made by ``curation.demo``'s own building blocks: 23 episodes
  recorded through the real recorder on the embedded MuJoCo tabletop (3 scripted operators, 2 cameras at
  120x160, a point cloud), curated (quality, diversity, shortcuts, compatibility with the careful operator as
  the base), the demo's view saved, and two training episodes augmented into ``greenscreen.zarr`` and
  ``pointcloud.zarr``. 15-25 s, once per session. Tests may tag episodes and save views in it; they
  must not delete or trim episodes.
- ``app_factory`` (session): ``create_app``.
- ``serve_app`` (function): ``serve_app(stores) -> LiveApp`` (``.url``, ``.app``, ``.library``, ``.jobs``),
  ``create_app(stores)`` served by werkzeug on 127.0.0.1 (port 0) in a thread, stopped after the test.
- ``live_app`` (function): ``serve_app`` over the three demo stores.
- ``browser`` (session): headless Chromium. Skips when /usr/bin/chromium (or playwright) is missing, unless
  ``CI=true``: then it fails, so CI cannot pass by running no browser test.
- ``page`` (function): a fresh page (1400x1000) that fails its test on any console error or uncaught page
  error (Chromium's SEVERE level: a 404 for a frame, a callback error, a JS exception).
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco's first import picks a GL backend

import io
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dashboard.app import create_app

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"]
VIEWPORT = {"width": 1400, "height": 1000}
TIMEOUT_MS = 20_000  # default wait for a locator or expectation (software WebGL on 2 CPUs is slow)
DEMO_VIEW_WHERE = 'factors.task_kind == "pick_place" and quality.ok and compatibility.compatible'


@dataclass(frozen=True)
class DemoStores:
    root: Path
    store: Path  # the recorded, curated store (dataset name "store")
    greenscreen: Path  # 4 synthetic episodes from 2 training episodes (dataset "greenscreen")
    pointcloud: Path  # 32 synthetic episodes from the same 2 (dataset "pointcloud")

    @property
    def all(self) -> list[Path]:
        return [self.store, self.pointcloud, self.greenscreen]


def build_demo(out: Path) -> DemoStores:
    """What ``demoforge demo`` records, curates and augments, without its exports (the tests do their own)."""
    from rich.console import Console

    from curation.commands import curate_command
    from curation.demo import BASE, augment_demo, record_demo_dataset
    from toolkit.store import Store
    from toolkit.views import save_view

    console = Console(file=io.StringIO(), width=120)  # the demo's tables are not the test's output
    root = out / "store.zarr"
    record_demo_dataset(root, console, scale=1, height=120, width=160).close()
    curate_command(root, "quality,diversity,shortcuts", None, None, 0, False, None, console, findings=5)
    curate_command(root, "compatibility", 'factors.task_kind == "pick_place"', BASE, 0, False, None, console,
                   findings=3)
    save_view(root, "pick-place-train", DEMO_VIEW_WHERE, "compatible, clean pick-and-place episodes")
    with Store.open(root, mode="a") as store:
        augment_demo(store, store.ids(DEMO_VIEW_WHERE), out, console)
    return DemoStores(root=out, store=root, greenscreen=out / "greenscreen.zarr", pointcloud=out / "pointcloud.zarr")


@pytest.fixture(scope="session")
def demo_stores(tmp_path_factory) -> DemoStores:
    return build_demo(tmp_path_factory.mktemp("dashboard-demo"))


@dataclass
class LiveApp:
    url: str
    app: object  # dash.Dash
    server: object  # werkzeug BaseWSGIServer

    @property
    def library(self):  # noqa: ANN201 - dashboard.data.Library
        return self.app.server.config["DEMOFORGE_LIBRARY"]

    @property
    def jobs(self):  # noqa: ANN201 - dashboard.jobs.JobManager
        return self.app.server.config["DEMOFORGE_JOBS"]


@pytest.fixture(scope="session")
def app_factory() -> Callable:
    """``create_app`` as a fixture (every app in the process gets every page callback: see ``dashboard.app``)."""
    return create_app


@pytest.fixture
def serve_app() -> Iterator[Callable[[list[Path]], LiveApp]]:
    """``serve_app(stores) -> LiveApp``: ``create_app(stores)`` served on 127.0.0.1 (port 0) by werkzeug in a
    thread, stopped after the test once its jobs ended."""
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per frame request is noise
    served: list[LiveApp] = []

    def serve(stores: list[Path]) -> LiveApp:
        app = create_app(list(stores))
        server = make_server("127.0.0.1", 0, app.server, threaded=True)
        threading.Thread(target=server.serve_forever, name="dashboard-test-server", daemon=True).start()
        served.append(LiveApp(url=f"http://127.0.0.1:{server.server_port}", app=app, server=server))
        return served[-1]

    yield serve
    for live in served:
        for job in list(live.jobs.jobs.values()):  # a job must not outlive its test (it writes beside the store)
            live.jobs.cancel(job.id)
            live.jobs.wait(job.id, timeout=120)
        live.server.shutdown()
        live.server.server_close()
        live.library.close()


@pytest.fixture
def live_app(serve_app, demo_stores) -> LiveApp:
    """The app over the three demo stores (datasets "store", "pointcloud", "greenscreen")."""
    return serve_app(demo_stores.all)


def _no_browser(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}: CI=true, so the browser tests must run (apt-get install chromium)")
    pytest.skip(f"{reason}: install Debian's chromium to run the dashboard's browser tests")


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        _no_browser(f"{CHROMIUM} not found")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _no_browser("playwright (python) is not installed (pip install -e '.[test]')")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, serve_app):  # after serve_app, so the page closes before the servers stop
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(TIMEOUT_MS)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("console", lambda m: errors.append(f"console {m.type}: {m.text} ({m.location.get('url', '')})")
          if m.type == "error" else None)
    pg.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
    yield pg
    seen = list(errors)  # what the test saw, not what closing the page may log
    context.close()
    if seen:
        pytest.fail("the browser logged errors:\n" + "\n".join(seen), pytrace=False)
