"""The Dash app: ``create_app(stores)`` builds it, ``serve`` runs it.

Pages are plain layout functions chosen by a router on the URL (``dashboard.pages``); their callbacks
are registered globally once, at import, and find the app's ``Library`` and ``JobManager`` in the Flask
config, so several apps (tests) can live in one process. URLs::

    /                         datasets
    /d/<dataset>              episodes grid (?where=... pre-fills the filter)
    /d/<dataset>/e/<episode>  episode view (?t=<frame>)
    /d/<dataset>/curation     coverage, shortcuts, compatibility, diversity map
    /d/<dataset>/views        saved views, tags, exports and curation jobs
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs

import dash
from dash import Input, Output, State, _callback, dcc, html

from dashboard import pages
from dashboard.context import library
from dashboard.data import Library, NotFound
from dashboard.jobs import JobManager
from dashboard.media import media

ASSETS = Path(__file__).parent / "assets"


def _take_global_callbacks() -> tuple[dict, list, list]:
    """The callbacks the page modules registered with ``dash.callback`` (taken out of Dash's globals).

    Dash hands its global callbacks to the first app that serves a request and then forgets them, so a
    second app in the same process (tests, benchmarks) would get none; we keep them and give each app
    its own copy (``_attach``)."""
    taken = (dict(_callback.GLOBAL_CALLBACK_MAP), list(_callback.GLOBAL_CALLBACK_LIST),
             list(_callback.GLOBAL_INLINE_SCRIPTS))
    _callback.GLOBAL_CALLBACK_MAP.clear()
    _callback.GLOBAL_CALLBACK_LIST.clear()
    _callback.GLOBAL_INLINE_SCRIPTS.clear()
    return taken


def _attach(app: dash.Dash) -> None:
    callback_map, callback_list, inline_scripts = _CALLBACKS
    app.callback_map.update(callback_map)
    app._callback_list.extend(dict(c) for c in callback_list)
    app._inline_scripts.extend(inline_scripts)


def create_app(stores: list[str | Path] | Library) -> dash.Dash:
    """The dashboard over the given stores (paths, or an opened ``Library``)."""
    lib = stores if isinstance(stores, Library) else Library(list(stores))
    app = dash.Dash(__name__, assets_folder=str(ASSETS), suppress_callback_exceptions=True,
                    title="demoforge", update_title=None, compress=True)
    app.server.config["DEMOFORGE_LIBRARY"] = lib
    app.server.config["DEMOFORGE_JOBS"] = JobManager()
    app.server.register_blueprint(media)
    _attach(app)
    app.layout = html.Div([
        dcc.Location(id="url"),
        # lasso picks from the curation page, per dataset: {dataset: [ids]} (ids only, never data)
        dcc.Store(id="picked", storage_type="session", data={}),
        html.Nav(id="nav", className="nav"),
        html.Main(id="page", className="page"),
    ])
    return app


def route(pathname: str | None, search: str | None) -> tuple[str, dict[str, str]]:
    """(page name, arguments) for a URL."""
    parts = [p for p in (pathname or "/").split("/") if p]
    args = {k: v[-1] for k, v in parse_qs((search or "").lstrip("?")).items()}
    if not parts:
        return "datasets", args
    if parts[0] == "d" and len(parts) >= 2:
        args["dataset"] = parts[1]
        if len(parts) == 2:
            return "episodes", args
        if len(parts) == 4 and parts[2] == "e":
            return "episode", {**args, "episode_id": parts[3]}
        if len(parts) == 3 and parts[2] in ("curation", "views"):
            return parts[2], args
    return "missing", {"path": pathname or "/"}


@dash.callback(Output("page", "children"), Output("nav", "children"), Input("url", "pathname"),
               State("url", "search"))
def render(pathname: str | None, search: str | None) -> tuple:
    name, args = route(pathname, search)
    lib = library()
    try:
        page = pages.PAGES[name](lib, **args)
    except NotFound as e:
        page = pages.missing(lib, path=str(e))
    return page, pages.nav(lib, args.get("dataset"), name)


_CALLBACKS = _take_global_callbacks()  # after every callback above and in dashboard.pages is registered


def serve(app: dash.Dash, host: str = "127.0.0.1", port: int = 8050) -> None:
    """Serve until Ctrl-C (Flask's threaded server: fine for one lab, not for the internet)."""
    from werkzeug.serving import run_simple

    run_simple(host, port, app.server, threaded=True, use_reloader=False, use_debugger=False)
