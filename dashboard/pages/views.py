"""Tags and views: the saved views with what they match now, the tags in use, and the jobs that act on them.

A view exports as a background job (to a new store, with ``selection.json`` recording the source and the
filter, or to LeRobot v3.0); curation passes start the same way. Jobs show a progress bar and a cancel
button, and run the same library functions as ``demoforge select``, ``export`` and ``curate``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dash import ALL, Input, Output, State, callback, ctx, dcc, html, no_update

from curation.registry import DEFAULT_PASSES, PASSES, make_passes
from dashboard.context import jobs, library
from dashboard.data import Dataset, Library
from toolkit.errors import DemoforgeError
from toolkit.views import delete_view, load_views

EXPORT_KINDS = ("store", "lerobot")


def default_out(ds: Dataset, view: str, kind: str) -> Path:
    """Where an export goes unless the user says: beside the store, named after it and the view."""
    stem = ds.path.name.removesuffix(".zarr")
    return ds.path.parent / (f"{stem}-{view}.zarr" if kind == "store" else f"{stem}-{view}-lerobot")


def export_view(lib: Library, dataset: str, view: str, kind: str, out: Path, vcodec: str = "libsvtav1") -> str:
    """Export the episodes a view matches now (the work of a job); returns the one-line result."""
    from toolkit.convert import export_store
    from toolkit.selection import select_to_store

    ds = lib.get(dataset)
    where = load_views(ds.path)[view]["where"]
    if out.exists():
        raise DemoforgeError(f"{out}: already exists; choose another output folder")
    if kind == "store":
        subset = select_to_store(ds.store, where, view, out)
        return f"{len(subset)} episodes -> {out}"
    summary = export_store(ds.store, out, "lerobot", where, video=True, vcodec=vcodec)
    return f"{summary.episodes} episodes, {summary.frames} frames -> {out} (LeRobot v3.0)"


def curate_view(lib: Library, dataset: str, names: list[str], where: str | None, base: str | None) -> str:
    """Run curation passes on a store (the work of a job); returns the headlines."""
    from curation.runner import curate_store
    from toolkit.store import Store

    ds = lib.get(dataset)
    with Store.open(ds.path, mode="a") as store:
        run = curate_store(store, make_passes(names), where=where or None, base=base or None)
    ds.refresh()
    heads = [f"{n}: {r.summary.get('headline', '')}" for n, r in run.results.items()]
    return "; ".join(heads)


def _view_rows(ds: Dataset) -> list:
    rows = []
    for name, v in sorted(load_views(ds.path).items()):
        try:
            count: Any = len(ds.store.ids(v["where"]))
        except DemoforgeError as e:
            count = f"filter no longer valid: {e}"
        buttons = [html.Button(label, id={"type": kind, "view": name}, className="btn")
                   for label, kind in (("Export to store", "export-store"), ("Export to LeRobot", "export-lerobot"),
                                       ("Delete", "view-delete"))]
        rows.append(html.Tr([html.Td(dcc.Link(name, href=f"/d/{ds.name}?where={_quote(v['where'])}")),
                             html.Td(html.Code(v["where"])), html.Td(str(count)), html.Td(v.get("note", "")),
                             html.Td(buttons)], id={"type": "view-row", "view": name}))
    return rows


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


def _tag_counts(ds: Dataset) -> list:
    counts: dict[str, int] = {}
    for tags in ds.columns().get("tags", []):
        for t in tags or []:
            counts[t] = counts.get(t, 0) + 1
    return [html.Li([dcc.Link(t, href=f"/d/{ds.name}?where={_quote(repr(t) + ' in tags')}"), f" ({n})"])
            for t, n in sorted(counts.items())] or [html.Li("no tags yet: tag episodes in the grid", className="muted")]


def layout(lib: Library, dataset: str, **_: Any) -> html.Div:
    ds = lib.get(dataset)
    return html.Div([
        dcc.Store(id="views-dataset", data=ds.name),
        dcc.Interval(id="jobs-poll", interval=500),
        html.H2("Saved views"),
        html.Table([html.Tr([html.Th(h) for h in ("view", "filter", "episodes now", "note", "")]), *_view_rows(ds)],
                   className="facts", id="views-table"),
        html.Div([html.Span("export to "), dcc.Input(id="export-out", type="text", placeholder="default: beside the store",
                                                     className="where"),
                  dcc.Dropdown(id="export-vcodec", options=[{"label": "AV1 (LeRobot default)", "value": "libsvtav1"},
                                                            {"label": "H.264", "value": "h264"}],
                               value="libsvtav1", clearable=False, style={"width": "220px"})], className="toolbar"),
        html.H2("Tags"),
        html.Ul(_tag_counts(ds), id="tag-list"),
        html.H2("Run curation"),
        html.Div([
            dcc.Checklist(id="curate-passes", options=list(PASSES), value=list(DEFAULT_PASSES), inline=True),
            dcc.Input(id="curate-where", type="text", placeholder="episodes (filter; empty: all)", className="where"),
            dcc.Input(id="curate-base", type="text", placeholder='compatibility base, e.g. operator == "alice"',
                      className="where"),
            html.Button("Run", id="curate-run", className="btn"),
        ], className="toolbar"),
        html.Div(id="views-status", className="status"),
        html.H2("Jobs"),
        html.Div(id="jobs", className="jobs"),
    ], id="views-page")


@callback(Output("views-status", "children"), Output("views-table", "children"),
          Input({"type": "export-store", "view": ALL}, "n_clicks"),
          Input({"type": "export-lerobot", "view": ALL}, "n_clicks"),
          Input({"type": "view-delete", "view": ALL}, "n_clicks"),
          State("export-out", "value"), State("export-vcodec", "value"), State("views-dataset", "data"),
          prevent_initial_call=True)
def view_action(_s: list, _l: list, _d: list, out: str | None, vcodec: str, dataset: str) -> tuple:
    trigger = ctx.triggered_id
    if not trigger or not ctx.triggered[0]["value"]:
        return no_update, no_update  # a button re-rendered, not clicked
    lib = library()
    ds = lib.get(dataset)
    view = trigger["view"]
    if trigger["type"] == "view-delete":
        delete_view(ds.path, view)
        header = html.Tr([html.Th(h) for h in ("view", "filter", "episodes now", "note", "")])
        return f"deleted view '{view}'", [header, *_view_rows(ds)]
    kind = trigger["type"].removeprefix("export-")
    target = Path(out.strip()).expanduser() if out and out.strip() else default_out(ds, view, kind)
    job = jobs().start(f"export '{view}' to {kind}: {target}",
                       lambda: export_view(lib, dataset, view, kind, target, vcodec))
    return f"started job {job.id}: export '{view}' to {target}", no_update


@callback(Output("views-status", "children", allow_duplicate=True), Input("curate-run", "n_clicks"),
          State("curate-passes", "value"), State("curate-where", "value"), State("curate-base", "value"),
          State("views-dataset", "data"), prevent_initial_call=True)
def start_curation(_n: int | None, names: list[str], where: str | None, base: str | None, dataset: str) -> str:
    names = [n for n in names or [] if n in PASSES]
    if "compatibility" in names and not (base or "").strip():
        return "compatibility needs a base set: give a filter such as operator == \"alice\""
    if not names:
        return "choose at least one pass"
    lib = library()
    job = jobs().start(f"curate {', '.join(names)}", lambda: curate_view(lib, dataset, names, where, base))
    return f"started job {job.id}: curate {', '.join(names)}"


@callback(Output("jobs", "children"), Input("jobs-poll", "n_intervals"))
def show_jobs(_n: int | None) -> list:
    out = []
    for j in jobs().snapshot():
        bar = html.Progress(value=str(j["done"]), max=str(j["total"] or max(1, j["done"])))
        cancel = (html.Button("Cancel", id={"type": "job-cancel", "job": j["id"]}, className="btn")
                  if j["state"] == "running" else None)
        out.append(html.Div([html.B(f"#{j['id']} {j['title']}"), html.Br(),
                             html.Span(f"{j['state']} ", className=f"job-state {j['state']}"),
                             bar, f" {j['stage']} {j['done']}/{j['total'] or '?'} ({j['seconds']} s) ", cancel,
                             html.Div(j["result"], className="job-result")],
                            className="job", id={"type": "job", "job": j["id"]}))
    return out or [html.Div("no jobs yet", className="muted")]


@callback(Output("views-status", "children", allow_duplicate=True),
          Input({"type": "job-cancel", "job": ALL}, "n_clicks"), prevent_initial_call=True)
def cancel_job(clicks: list) -> Any:
    trigger = ctx.triggered_id
    if not trigger or not any(c for c in clicks or []):
        return no_update
    jobs().cancel(int(trigger["job"]))
    return f"cancelling job {trigger['job']}"

