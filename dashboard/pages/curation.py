"""The curation page: what the dataset covers, which factors give the task away, which operators conflict,
and a map of the episodes whose lasso picks go to the grid.

Four sections, each drawn from plain data in ``dashboard.curation_views``:

1. **Coverage**: episodes per combination of two factors; combinations never recorded are marked
   "missing" and listed, most surprising first. Continuous factors are cut into quantile bins.
2. **Shortcuts**: the shortcuts pass's per-factor table with the fix for each flagged factor.
3. **Compatibility**: every scored episode (score against share of bad steps, by operator; a click opens
   it) and the pass's per-operator table.
4. **Diversity map**: PCA of the state trajectories. The coordinates go to the browser once (float32,
   §2.8 of the dashboard reference); recolouring sends only a ``Patch`` of the marker, and a lasso or box
   selection is turned into ids in the browser and written to the session store ``picked``
   (``{dataset: [ids]}``) without a server round trip, so the episodes grid can show just those.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.colors
import plotly.graph_objects as go
from dash import Input, Output, Patch, State, callback, clientside_callback, ctx, dcc, html, no_update

from dashboard import curation_views as cv
from dashboard.context import library
from dashboard.data import Dataset, Library, pass_run, score_headlines

PALETTE = plotly.colors.qualitative.Plotly + plotly.colors.qualitative.Dark24
BLANK_COLOUR = "#c7c7c7"
MISSING_FILL = "#fecaca"
SECTION = {"width": "100%", "boxSizing": "border-box", "marginBottom": "16px"}
TABLE = {"borderCollapse": "collapse", "fontSize": "0.9em", "width": "100%"}
CELL = {"padding": "3px 8px", "borderBottom": "1px solid #e5e7eb", "textAlign": "left", "verticalAlign": "top"}
FLAGGED = {"background": "#fef2f2"}


# ------------------------------------------------------------------------------------------ helpers
def _num(x: float | None, digits: int = 2) -> str:
    return "—" if x is None or not np.isfinite(x) else f"{x + 0.0:.{digits}f}"  # + 0.0: no "-0.00"


def _table(header: list[tuple[str, str]], rows: list[html.Tr], table_id: str) -> html.Table:
    """A plain table; each header cell carries its explanation as a tooltip."""
    head = html.Tr([html.Th(name, title=tip, style={**CELL, "fontWeight": 600}) for name, tip in header])
    return html.Table([html.Thead(head), html.Tbody(rows)], id=table_id, style=TABLE)


def _td(value: Any, **style: Any) -> html.Td:
    return html.Td(value, style={**CELL, **style})


def _not_run(ds: Dataset, name: str, command: str) -> html.P:
    return html.P([f"The {name} pass has not run on this store: run ", html.Code(command),
                   " or start it from ", dcc.Link("Tags & views", href=f"/d/{ds.name}/views"), "."],
                  id=f"{name}-not-run", className="muted")


def _coverage_line(columns: dict, name: str) -> str:
    scored, stale, total = cv.pass_coverage(columns, name)
    text = f"scored {scored} of {total} episodes"
    return text + (f"; {stale} changed since the run (stale): re-run to refresh" if stale else "")


# ----------------------------------------------------------------------------------------- coverage
def coverage_figure(cov: cv.Coverage) -> go.Figure:
    """Counts per cell (blue) and the empty cells in red with the word "missing"."""
    counts = cov.counts
    z = np.where(counts > 0, counts, np.nan).astype(np.float32)
    holes = np.where(counts == 0, 1.0, np.nan).astype(np.float32)
    # Each trace labels only its own cells: plotly writes a heatmap's text over its empty (NaN) cells too.
    fig = go.Figure([
        go.Heatmap(x=cov.x_levels, y=cov.y_levels, z=z, text=np.where(counts > 0, counts.astype(str), ""),
                   texttemplate="%{text}", colorscale="Blues", xgap=2, ygap=2, colorbar={"title": {"text": "episodes"}},
                   hovertemplate="%{x} × %{y}: %{z} episodes<extra></extra>", name="episodes"),
        go.Heatmap(x=cov.x_levels, y=cov.y_levels, z=holes, text=np.where(counts == 0, "missing", ""),
                   texttemplate="%{text}", showscale=False, colorscale=[[0, MISSING_FILL], [1, MISSING_FILL]],
                   xgap=2, ygap=2, textfont={"color": "#991b1b"},
                   hovertemplate="%{x} × %{y}: missing<extra></extra>", name="missing"),
    ])
    fig.update_layout(height=int(np.clip(140 + 34 * len(cov.y_levels), 260, 900)),
                      margin={"l": 10, "r": 10, "t": 10, "b": 10}, plot_bgcolor="white")
    fig.update_xaxes(type="category", title_text=cov.x.label, automargin=True)
    fig.update_yaxes(type="category", title_text=cov.y.label, automargin=True, autorange="reversed")
    return fig


def _coverage_outputs(columns: dict, x: str | None, y: str | None) -> tuple[go.Figure | None, str]:
    try:
        cov = cv.coverage(columns, x or "", y or "")
    except ValueError as e:
        return None, str(e)
    text = cv.missing_text(cov)
    if cov.hidden:
        text += " (" + ", ".join(f"{n} rarer {axis} levels not drawn" for axis, n in cov.hidden.items()) + ")"
    return coverage_figure(cov), text


def coverage_section(ds: Dataset, columns: dict) -> html.Section:
    choices = cv.factor_choices(columns)
    options = [{"label": c.label, "value": c.column} for c in choices]
    x, y = cv.default_axes(columns, pass_run(ds, "shortcuts"))
    fig, text = _coverage_outputs(columns, x, y)
    return html.Section([
        html.H3("Factor coverage"),
        html.Div([html.Span("columns"), dcc.Dropdown(id="cov-x", options=options, value=x, clearable=False,
                                                    style={"width": "300px"}),
                  html.Span("rows"), dcc.Dropdown(id="cov-y", options=options, value=y, clearable=False,
                                                 style={"width": "300px"})], className="toolbar"),
        dcc.Graph(id="cov-heatmap", figure=fig or go.Figure(), config={"displaylogo": False}),
        html.Div(text, id="cov-missing", style={"color": "#991b1b" if "missing combination" in text else "#374151"}),
        html.P(f"Continuous factors (non-integer numbers, or integers with more than {cv.MAX_LEVELS} values) are cut "
               f"into {cv.QUANTILE_BINS} quantile bins; ids (seed, a distinct value per episode) are left out. "
               "'expected' is the count the cell would hold if the two factors were independent.",
               className="muted"),
    ], className="card", style=SECTION, id="coverage-section")


@callback(Output("cov-heatmap", "figure"), Output("cov-missing", "children"), Input("cov-x", "value"),
          Input("cov-y", "value"), State("curation-dataset", "data"), prevent_initial_call=True)
def update_coverage(x: str | None, y: str | None, dataset: str) -> tuple:
    fig, text = _coverage_outputs(library().get(dataset).columns(), x, y)
    return (fig if fig is not None else no_update), text


# ---------------------------------------------------------------------------------------- shortcuts
SHORTCUT_HEADER = [
    ("factor", "a task-irrelevant factor v judged by the pass"),
    ("diversity", "D_min: normalised entropy of v within each sub-dataset (lowest shown; hover for each)"),
    ("disparity", "F = I(v;k)/H(k): how much v differs between sub-datasets; for continuous v also the largest "
                  "distance between sub-dataset range centres"),
    ("mutual information", "S = I(v;u)/H(u) with the task u, against what it reads by chance (95th percentile "
                           "under task relabelling) and its permutation p-value"),
    ("probe accuracy", "balanced accuracy of a probe predicting the task from v alone (cross-validated), and chance"),
    ("risk", "sqrt(probe lift x S above chance): the ranking"),
    ("flagged", "risk at or above the pass's threshold"),
    ("suggested fix", "what to collect next and which augmentation counters v"),
]


def _shortcut_row(r: cv.ShortcutRow) -> html.Tr:
    per_subset = ", ".join(f"{k} {_num(v)}" for k, v in r.diversity_by_subset.items())
    disparity = _num(r.disparity) + (f" (Δcentre {r.centre_distance:.3g})" if r.centre_distance is not None else "")
    mi = f"{_num(r.mutual_information)} (chance {_num(r.mi_chance)}, p {_num(r.mi_p, 3)})"
    probe = f"{_num(r.probe_accuracy)} (chance {_num(r.probe_chance)})"
    return html.Tr([
        _td(html.B(r.name) if r.flagged else r.name, whiteSpace="nowrap"),
        html.Td(_num(r.diversity), title=per_subset, style=CELL), _td(disparity), _td(mi), _td(probe),
        _td(_num(r.risk)), _td("yes" if r.flagged else "no", color="#b91c1c" if r.flagged else "#6b7280"),
        _td(r.fix or "—", fontSize="0.9em", maxWidth="520px"),
    ], style=FLAGGED if r.flagged else {})


def shortcuts_section(ds: Dataset, columns: dict) -> html.Section:
    view = cv.shortcut_view(pass_run(ds, "shortcuts"))
    body: list[Any]
    if view is None:
        body = [_not_run(ds, "shortcuts", f"demoforge curate {ds.path}")]
    else:
        body = [
            html.P(html.B(view.headline), id="shortcuts-headline"),
            html.P(f"task u = {view.task_key}; sub-datasets k = {view.subset_key}; "
                   f"{_coverage_line(columns, 'shortcuts')}", className="muted"),
            _table(SHORTCUT_HEADER, [_shortcut_row(r) for r in view.rows], "shortcuts-table"),
            html.Ul([html.Li(p) for p in view.probes], className="muted"),
            html.Ul([html.Li([html.B(f"{f.get('severity')}: "), f.get("title", ""), html.Br(),
                              html.Span(f.get("fix", ""), className="muted")]) for f in view.findings]),
        ]
        if view.skipped:
            body.append(html.P("not judged: " + ", ".join(f"{k} ({v})" for k, v in view.skipped.items()),
                               className="muted"))
    return html.Section([html.H3("Shortcut factors"), *body], className="card", style=SECTION, id="shortcuts-section")


# ------------------------------------------------------------------------------------ compatibility
def compatibility_figure(points: cv.CompatibilityPoints) -> go.Figure:
    """One Scattergl trace per operator: compatibility M against the share of bad steps; base episodes
    hollow; the pass's rejection line dashed. ``customdata`` is the episode id (a click opens it)."""
    traces = []
    for k, op in enumerate(sorted(set(points.operators))):
        m = points.operators == op
        text = [f"{op}; {b} bad steps; {'compatible' if c else 'incompatible'}{'; base set' if base else ''}"
                for b, c, base in zip(points.bad_steps[m], points.compatible[m], points.in_base[m])]
        traces.append(go.Scattergl(
            x=points.score[m], y=points.bad_fraction[m], customdata=points.ids[m], text=text, mode="markers",
            name=op, marker={"color": PALETTE[k % len(PALETTE)], "size": 9,
                             "symbol": np.where(points.in_base[m], "circle-open", "circle"),
                             "line": {"width": 1.5, "color": PALETTE[k % len(PALETTE)]}},
            hovertemplate="episode %{customdata}<br>%{text}<br>compatibility %{x:.3f}<br>"
                          "bad-step share %{y:.3f}<extra></extra>"))
    fig = go.Figure(traces)
    if points.max_bad_fraction is not None:
        fig.add_hline(y=points.max_bad_fraction, line={"dash": "dash", "color": "#b91c1c", "width": 1},
                      annotation_text=f"incompatible above {points.max_bad_fraction:.0%} bad steps",
                      annotation_position="top left")
    fig.update_layout(height=380, margin={"l": 10, "r": 10, "t": 10, "b": 10}, legend={"title": {"text": "operator"}},
                      xaxis_title="compatibility M (1 = what the base policy does)",
                      yaxis_title="share of bad steps", hovermode="closest", uirevision="compat")
    return fig


OPERATOR_HEADER = [
    ("operator", "who recorded the episodes"),
    ("episodes", "episodes scored"),
    ("in base set", "episodes of the base set (scored held out)"),
    ("mean compatibility", "mean of M over the operator's episodes"),
    ("compatible", "share of the operator's episodes within the bad-step limit"),
    ("mean bad steps", "familiar states where the action differs from the base policy's"),
]


def _operator_row(r: dict[str, Any]) -> html.Tr:
    bad = r.get("fraction_compatible", 1.0) < 0.5
    return html.Tr([_td(r["operator"]), _td(r.get("episodes")), _td(r.get("in_base")),
                    _td(_num(r.get("mean_score"), 3)), _td(f"{r.get('fraction_compatible', 0):.0%}"),
                    _td(_num(r.get("mean_bad_steps"), 2))], style=FLAGGED if bad else {})


def compatibility_section(ds: Dataset, columns: dict) -> html.Section:
    run = pass_run(ds, "compatibility")
    points = cv.compatibility_points(columns, run)
    graph = dcc.Graph(id="compat-scatter", figure=compatibility_figure(points), config={"displaylogo": False},
                      style={} if run and len(points.ids) else {"display": "none"})
    if run is None:
        body: list[Any] = [_not_run(ds, "compatibility",
                                    f"demoforge curate {ds.path} --passes compatibility --base FILTER")]
    else:
        summary = run.get("summary") or {}
        findings = [f for f in run.get("findings") or [] if f.get("severity") in ("high", "medium", "low")]
        worst = cv.lowest(points)
        body = [
            html.P(html.B(summary.get("headline", "")), id="compat-headline"),
            html.P(f"{_coverage_line(columns, 'compatibility')}. Click a point to open the episode; hollow points "
                   "are the base set.", className="muted"),
            _table(OPERATOR_HEADER, [_operator_row(r) for r in cv.operator_table(run)], "compat-operators"),
            html.Ul([html.Li([html.B(f"{f['severity']}: "), f.get("title", ""), html.Br(),
                              html.Span(f.get("fix", ""), className="muted")]) for f in findings]),
            html.P(["lowest compatibility: ", *[item for i, s in worst for item in
                                                (dcc.Link(f"{i} ({s:.2f})", href=f"/d/{ds.name}/e/{i}"), " ")]],
                   id="compat-lowest") if worst else None,
        ]
    return html.Section([html.H3("Operator compatibility"), *body, graph], className="card", style=SECTION,
                        id="compatibility-section")


# ---------------------------------------------------------------------------------------- embedding
def colour_marker(colour: cv.Colour) -> dict[str, Any]:
    """Marker colours for the map: a stepped palette with named ticks for categories, Viridis for numbers."""
    marker: dict[str, Any] = {"color": cv.typed_array(colour.values), "size": 7, "opacity": 0.85,
                              "showscale": True, "line": {"width": 0}}
    title = {"text": colour.column}
    if colour.categories is None:
        finite = colour.values[np.isfinite(colour.values)]
        lo, hi = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
        marker.update(colorscale="Viridis", cmin=lo, cmax=hi if hi > lo else lo + 1.0, colorbar={"title": title})
        return marker
    k = max(1, len(colour.categories))
    scale = []
    for i, name in enumerate(colour.categories):
        c = BLANK_COLOUR if name == cv.BLANK else PALETTE[i % len(PALETTE)]
        scale += [[i / k, c], [(i + 1) / k, c]]
    marker.update(colorscale=scale, cmin=-0.5, cmax=k - 0.5,
                  colorbar={"title": title, "tickvals": list(range(k)),
                            "ticktext": [s if len(s) <= 28 else s[:27] + "…" for s in colour.categories]})
    return marker


def _hover(column: str) -> str:
    return f"episode %{{customdata}}<br>{column}: %{{text}}<extra></extra>"


def embedding_figure(emb: cv.Embedding, colour: cv.Colour, dataset: str) -> go.Figure:
    """One Scattergl trace (float32 coordinates, ``customdata`` = ids), lasso by default."""
    fig = go.Figure(go.Scattergl(x=emb.xy[:, 0], y=emb.xy[:, 1], customdata=emb.ids, text=colour.text,
                                 mode="markers", marker=colour_marker(colour), hovertemplate=_hover(colour.column),
                                 selected={"marker": {"opacity": 1.0}}, unselected={"marker": {"opacity": 0.25}}))
    fig.update_layout(height=540, margin={"l": 10, "r": 10, "t": 10, "b": 10}, dragmode="lasso",
                      hovermode="closest", clickmode="event+select", uirevision=f"embed-{dataset}",
                      xaxis_title=f"PC1 ({emb.explained[0]:.0%})", yaxis_title=f"PC2 ({emb.explained[1]:.0%})")
    return fig


def _placeholder() -> go.Figure:
    fig = go.Figure(go.Scattergl(x=np.zeros(0, np.float32), y=np.zeros(0, np.float32), mode="markers"))
    fig.update_layout(height=540, margin={"l": 10, "r": 10, "t": 10, "b": 10})
    return fig


def embedding_section(ds: Dataset, columns: dict) -> html.Section:
    options = cv.colour_choices(columns)
    value = "operator" if "operator" in options else (options[0] if options else None)
    return html.Section([
        html.H3("Diversity map"),
        html.P(score_headlines(ds).get("diversity", "the diversity pass has not run"), className="muted",
               id="diversity-headline"),
        html.Div([html.Span("colour by"),
                  dcc.Dropdown(id="embed-colour", options=options, value=value, clearable=False,
                               style={"width": "320px"}),
                  dcc.Link("", id="embed-open", href=f"/d/{ds.name}", style={"display": "none"}),
                  html.Button("clear picks", id="embed-clear", className="btn", style={"display": "none"}),
                  html.Span("lasso or box-select episodes to pick them for the grid; click a point to open it",
                            className="muted")], className="toolbar"),
        dcc.Loading(dcc.Graph(id="embed-map", figure=_placeholder(), config={"displaylogo": False}), type="dot"),
        html.P("computing the map…", id="embed-note", className="muted"),
    ], className="card", style=SECTION, id="embedding-section")


@callback(Output("embed-map", "figure"), Output("embed-note", "children"), Input("curation-dataset", "data"),
          State("embed-colour", "value"))
def build_embedding(dataset: str, column: str | None) -> tuple:
    """The map, built once per page view (cached per dataset and catalog version on the server)."""
    ds = library().get(dataset)
    emb = cv.embedding(ds)
    if len(emb.ids) == 0:
        return _placeholder(), emb.note() if emb.features else "no state or action features to map"
    columns = ds.columns()
    if column not in columns:
        column = next(iter(cv.colour_choices(columns)), "length")
    colour = cv.colour(columns, emb.ids, column)
    return embedding_figure(emb, colour, dataset), emb.note()


@callback(Output("embed-map", "figure", allow_duplicate=True), Input("embed-colour", "value"),
          State("curation-dataset", "data"), prevent_initial_call=True)
def recolour(column: str | None, dataset: str) -> Any:
    """A new colour column patches the marker only: the coordinates stay in the browser."""
    ds = library().get(dataset)
    columns = ds.columns()
    if not column or column not in columns:
        return no_update
    emb = cv.embedding(ds)  # cached: the same ids in the same order as the drawn trace
    colour = cv.colour(columns, emb.ids, column)
    patch = Patch()
    patch["data"][0]["marker"] = colour_marker(colour)
    patch["data"][0]["text"] = colour.text
    patch["data"][0]["hovertemplate"] = _hover(column)
    return patch


# Lasso/box picks -> the session store {dataset: ids}, in the browser: only ids, and no trip to the server.
# A null selection is ignored: plotly also clears the selection when the map is first drawn, which must
# not wipe earlier picks; "clear picks" (or an empty lasso) removes them.
clientside_callback(
    """function(selected, clear, picked, dataset) {
        const dc = window.dash_clientside;
        const trig = ((dc.callback_context || {}).triggered || []).map(function (t) { return t.prop_id; });
        const out = Object.assign({}, picked || {});
        // Inserting the page "triggers" both inputs with no value: only a real click or selection counts.
        if (clear && trig.indexOf("embed-clear.n_clicks") >= 0) { delete out[dataset]; return out; }
        if (!selected || trig.indexOf("embed-map.selectedData") < 0) { return dc.no_update; }
        const ids = Array.from(new Set((selected.points || []).map(function (p) { return p.customdata; })
                                          .filter(function (i) { return i !== undefined && i !== null; })));
        if (ids.length) { out[dataset] = ids; } else { delete out[dataset]; }
        return out;
    }""",
    Output("picked", "data"), Input("embed-map", "selectedData"), Input("embed-clear", "n_clicks"),
    State("picked", "data"), State("curation-dataset", "data"), prevent_initial_call=True,
)
clientside_callback(
    """function(picked, dataset) {
        const n = ((picked || {})[dataset] || []).length;
        const shown = n ? {} : {display: "none"};
        return [n ? n + " picked: open in grid" : "", n ? {fontWeight: 600, color: "#7c3aed"} : shown, shown];
    }""",
    Output("embed-open", "children"), Output("embed-open", "style"), Output("embed-clear", "style"),
    Input("picked", "data"),
    Input("curation-dataset", "data"),  # an input on the page, so it runs when the page appears
)


@callback(Output("curation-go", "pathname"), Input("compat-scatter", "clickData"), Input("embed-map", "clickData"),
          State("curation-dataset", "data"), prevent_initial_call=True)
def open_clicked(compat_click: dict | None, embed_click: dict | None, dataset: str) -> Any:
    click = compat_click if ctx.triggered_id == "compat-scatter" else embed_click
    return cv.episode_path(dataset, click) or no_update


# ------------------------------------------------------------------------------------------- layout
def layout(lib: Library, dataset: str, **_: Any) -> html.Div:
    """The page for one dataset (raises ``NotFound`` for an unknown one)."""
    ds = lib.get(dataset)
    columns = ds.columns()
    heads = score_headlines(ds)
    return html.Div([
        dcc.Store(id="curation-dataset", data=ds.name),
        dcc.Location(id="curation-go", refresh="callback-nav"),
        html.H2(f"Curation: {ds.name}"),
        html.Ul([html.Li([html.B(f"{name}: "), text]) for name, text in sorted(heads.items())]
                or [html.Li("no curation pass has run yet", className="muted")], id="pass-headlines"),
        coverage_section(ds, columns),
        shortcuts_section(ds, columns),
        compatibility_section(ds, columns),
        embedding_section(ds, columns),
    ], id="curation-page")
