"""The episodes grid: one row per episode (metadata, factors, tags, flags, every score), filtered server-side.

AG Grid's infinite row model asks for blocks of rows; ``data.grid_page`` filters (the ``--where`` language,
quick search, column filters) and sorts the catalog's columns on the server and sends only the block, so
a 100k-episode store costs the browser no more than a 100-episode one. Selected rows can be tagged; the
filter can be saved as a named view.
"""

from __future__ import annotations

from typing import Any

import dash_ag_grid as dag
from dash import Input, Output, State, callback, clientside_callback, ctx, dcc, html, no_update

from dashboard.context import library
from dashboard.data import Dataset, Library, grid_column_names, grid_page, is_numeric
from toolkit.errors import DemoforgeError
from toolkit.views import save_view

BLOCK = 100


def column_defs(ds: Dataset) -> list[dict[str, Any]]:
    columns = ds.columns()
    defs: list[dict[str, Any]] = []
    if ds.cameras():
        defs.append({"field": "thumb", "headerName": "", "cellRenderer": "Thumb", "width": 100, "sortable": False,
                     "filter": False, "pinned": "left"})
    for name in grid_column_names(ds):
        d: dict[str, Any] = {"field": name, "headerName": name,
                             "filter": "agNumberColumnFilter" if is_numeric(columns[name]) else "agTextColumnFilter"}
        if name == "id":
            d.update(cellRenderer="EpisodeLink", cellRendererParams={"dataset": ds.name}, pinned="left", width=110)
        defs.append(d)
    return defs


def layout(lib: Library, dataset: str, where: str = "", **_: Any) -> html.Div:
    ds = lib.get(dataset)
    ds.refresh()  # opening or reloading the page shows the episodes recorders committed since
    return html.Div([
        dcc.Store(id="grid-dataset", data=ds.name),
        dcc.Store(id="grid-refresh", data=0),
        html.Div([
            dcc.Input(id="where", value=where, placeholder='filter, e.g. quality.ok and compatibility.score > 0.8',
                      debounce=True, className="where", type="text"),
            dcc.Input(id="search", placeholder="quick search", debounce=True, type="text", className="search"),
            html.Span(id="n-episodes", className="count"),
            html.Button("Refresh", id="grid-reload", className="btn", title="show episodes committed since"),
        ], className="toolbar"),
        html.Div(id="where-error", className="error"),
        dcc.Store(id="grid-purged"),
        dcc.Checklist(id="only-picked", options=[], value=[], className="picked"),
        dag.AgGrid(
            id="grid",
            rowModelType="infinite",
            columnDefs=column_defs(ds),
            defaultColDef={"sortable": True, "resizable": True, "minWidth": 90},
            dashGridOptions={"rowSelection": {"mode": "multiRow"}, "cacheBlockSize": BLOCK, "maxBlocksInCache": 50,
                             "rowHeight": 48, "getRowId": {"function": "params.data.id"}},
            getRowId="params.data.id",
            style={"height": "62vh", "width": "100%"},
            className="ag-theme-alpine",
        ),
        html.Div([
            dcc.Input(id="tag-name", placeholder="tag", type="text", className="tag-input"),
            html.Button("Tag selected", id="tag-add", className="btn"),
            html.Button("Untag selected", id="tag-remove", className="btn"),
            dcc.Input(id="view-name", placeholder="view name", type="text", className="tag-input"),
            html.Button("Save filter as view", id="view-save", className="btn"),
            html.Span(id="grid-status", className="status"),
        ], className="toolbar"),
    ], id="episodes-page")


@callback(Output("only-picked", "options"), Output("only-picked", "value"), Input("picked", "data"),
          State("grid-dataset", "data"))
def picked_chip(picked: dict | None, dataset: str) -> tuple:
    """Episodes lassoed on the curation map show as a switch above the grid (on when they arrive)."""
    ids = (picked or {}).get(dataset) or []
    if not ids:
        return [], []
    return [{"label": f" only the {len(ids)} episodes picked on the curation map", "value": "on"}], ["on"]


@callback(Output("grid", "getRowsResponse"), Output("n-episodes", "children"), Output("where-error", "children"),
          Input("grid", "getRowsRequest"), State("grid-dataset", "data"), State("where", "value"),
          State("search", "value"), State("picked", "data"), State("only-picked", "value"))
def rows(request: dict | None, dataset: str, where: str | None, search: str | None, picked: dict | None,
         only_picked: list | None) -> tuple:
    if not request:
        return no_update, no_update, no_update
    ds = library().get(dataset)
    ids = (picked or {}).get(dataset) if only_picked else None
    try:
        page = grid_page(ds, request["startRow"], request["endRow"], where=where or "", search=search or "",
                         filter_model=request.get("filterModel"), sort_model=request.get("sortModel"), ids=ids)
    except DemoforgeError as e:
        return {"rowData": [], "rowCount": 0}, "0 episodes", str(e)
    count = page["rowCount"]
    return page, f"{count:,} episode{'' if count == 1 else 's'}", ""


# New filter text, a lasso pick toggled, or tags written: drop the grid's cached blocks so it asks again.
clientside_callback(
    """function(where, search, picked, refresh) {
        // getApi throws until the grid is initialized; a grid not initialized yet has no blocks to drop
        try { dash_ag_grid.getApi('grid').purgeInfiniteCache(); } catch (e) {}
        return window.dash_clientside.no_update;
    }""",
    Output("grid-purged", "data"),
    Input("where", "value"), Input("search", "value"), Input("only-picked", "value"), Input("grid-refresh", "data"),
    prevent_initial_call=True,
)


@callback(Output("grid-refresh", "data", allow_duplicate=True), Input("grid-reload", "n_clicks"),
          State("grid-dataset", "data"), State("grid-refresh", "data"), prevent_initial_call=True)
def reload_store(_n: int | None, dataset: str, refresh: int) -> int:
    library().get(dataset).refresh()
    return (refresh or 0) + 1


@callback(Output("grid-status", "children"), Output("grid-refresh", "data"),
          Input("tag-add", "n_clicks"), Input("tag-remove", "n_clicks"),
          State("grid", "selectedRows"), State("tag-name", "value"), State("grid-dataset", "data"),
          State("grid-refresh", "data"), prevent_initial_call=True)
def tag_selected(_add: int | None, _remove: int | None, selected: list | None, tag: str | None, dataset: str,
                 refresh: int) -> tuple:
    tag = (tag or "").strip()
    if not tag:
        return "type a tag first", no_update
    ids = [r["id"] for r in selected or [] if r and "id" in r]
    if not ids:
        return "select episodes first (the checkboxes on the left)", no_update
    adding = ctx.triggered_id == "tag-add"
    changed = tag_episodes(library(), dataset, ids, tag, adding)
    verb = "tagged" if adding else "untagged"
    return f"{verb} {changed} of {len(ids)} selected episodes '{tag}'", (refresh or 0) + 1


def tag_episodes(lib: Library, dataset: str, ids: list[str], tag: str, add: bool) -> int:
    """Add or remove an episode tag; returns how many episodes changed."""
    changed = 0
    with lib.writable(dataset) as store:
        for episode_id in ids:
            tags = list(store.entry(episode_id)["meta"].get("tags") or [])
            if add == (tag in tags):
                continue
            tags = tags + [tag] if add else [t for t in tags if t != tag]
            store.update_meta(episode_id, tags=tags)
            changed += 1
    return changed


@callback(Output("grid-status", "children", allow_duplicate=True), Input("view-save", "n_clicks"),
          State("view-name", "value"), State("where", "value"), State("grid-dataset", "data"),
          prevent_initial_call=True)
def save_filter(_n: int | None, name: str | None, where: str | None, dataset: str) -> str:
    where = (where or "").strip()
    if not where:
        return "type a filter first; a view is a saved filter"
    lib = library()
    ds = lib.get(dataset)
    try:
        count = len(ds.store.ids(where))
        save_view(ds.path, (name or "").strip(), where)
    except DemoforgeError as e:
        return str(e)
    return f"saved view '{name}': {count} episodes now"
