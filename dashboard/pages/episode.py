"""The episode view: every camera, the state and action plots, the end-effector path and the point cloud,
all on one frame index driven by a slider, a play button and the arrow keys.

One clock for everything (the LeRobot visualizer's cameras drifted apart, huggingface/lerobot#366): the
slider's value is the frame index; a clientside callback swaps each camera's ``<img src>`` to that frame's
URL (the browser caches them) and moves the cursor on the plots without a server round trip. Only the
point cloud needs the server, and the 3-D camera the user chose is sent back with each frame. Flagged windows
(quality, compatibility ...) and tagged frame ranges are shaded on the timeline.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go
from dash import ALL, Input, Output, State, callback, clientside_callback, dcc, html, no_update
from plotly.subplots import make_subplots

from curation.base import column_names, position_columns
from dashboard.context import library
from dashboard.data import (Dataset, Library, episode_entry, episode_flags, episode_scores, episode_series,
                            frame_url)
from toolkit.errors import DemoforgeError
from toolkit.spec import DatasetSpec

CLOUD_POINTS = 3000  # points drawn per frame (software WebGL is slow; the full cloud is a click away)
FLAG_COLOURS = ("rgba(220,60,60,0.18)", "rgba(240,150,30,0.18)", "rgba(120,80,200,0.18)", "rgba(30,140,200,0.18)")
TAG_COLOUR = "rgba(40,170,90,0.22)"


def _frame_tags(entry: dict[str, Any]) -> list[dict[str, Any]]:
    return list((entry["meta"].get("extra") or {}).get("frame_tags") or [])


Series = dict[str, tuple[np.ndarray, list[str]]]  # ``data.episode_series``: feature -> (values, dim names)


def timeline(series: Series, length: int, flags: list[dict], frame_tags: list[dict], cursor: int = 0) -> go.Figure:
    """State and action (and other per-step numbers) on a shared frame axis, flags and tags shaded.

    Shape 0 is the cursor, drawn at frame ``cursor`` (the clientside callback moves it)."""
    rows = max(1, len(series))
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.04,
                        subplot_titles=list(series) or ["no per-step numbers"])
    x = np.arange(length, dtype=np.float32)
    for r, (name, (values, dims)) in enumerate(series.items(), 1):
        for k, dim in enumerate(dims):
            fig.add_trace(go.Scattergl(x=x, y=values[:, k], mode="lines", name=dim, legendgroup=name,
                                       hovertemplate=f"{dim}: %{{y:.3f}}<extra>frame %{{x}}</extra>"), row=r, col=1)
    fig.add_shape(type="line", xref="x", yref="paper", x0=cursor, x1=cursor, y0=0, y1=1,
                  line={"color": "black", "width": 1.5}, name="cursor")
    for k, flag in enumerate(flags):
        for a, b in flag["frames"]:
            fig.add_shape(type="rect", xref="x", yref="paper", x0=a - 0.5, x1=b - 0.5, y0=0, y1=1, layer="below",
                          line={"width": 0}, fillcolor=FLAG_COLOURS[k % len(FLAG_COLOURS)],
                          name=f"flag {flag['source']}.{flag['name']}",
                          label={"text": f"{flag['source']}: {flag['name']}", "textposition": "top left",
                                 "font": {"size": 10}})
    for tag in frame_tags:
        fig.add_shape(type="rect", xref="x", yref="paper", x0=tag["start"] - 0.5, x1=tag["stop"] - 0.5, y0=0, y1=1,
                      layer="below", line={"width": 0}, fillcolor=TAG_COLOUR, name=f"tag {tag['tag']}",
                      label={"text": tag["tag"], "textposition": "bottom left", "font": {"size": 10}})
    fig.update_layout(height=180 + 150 * rows, margin={"l": 50, "r": 10, "t": 30, "b": 30}, hovermode="x",
                      legend={"orientation": "h", "y": -0.08}, uirevision="timeline", clickmode="event")
    fig.update_xaxes(title_text="frame", row=rows, col=1)
    return fig


def ee_positions(spec: DatasetSpec, series: Series) -> np.ndarray | None:
    """(T, 3) end-effector positions from the state (``curation.base.position_columns``), or None."""
    states = [values for name, (values, _) in series.items() if spec.features[name].kind == "state"]
    if not states or len(column_names(spec, "state")) < 3:
        return None
    stacked = np.concatenate(states, axis=1)
    return stacked[:, position_columns(spec)].astype(np.float32)


def ee_figure(positions: np.ndarray) -> go.Figure:
    """The end-effector path in 3-D; trace 1 is the current-frame marker."""
    fig = go.Figure([
        go.Scatter3d(x=positions[:, 0], y=positions[:, 1], z=positions[:, 2], mode="lines",
                     line={"width": 4, "color": np.arange(len(positions), dtype=np.float32), "colorscale": "Viridis"},
                     name="path"),
        go.Scatter3d(x=positions[:1, 0], y=positions[:1, 1], z=positions[:1, 2], mode="markers",
                     marker={"size": 5, "color": "red"}, name="now"),
    ])
    fig.update_layout(height=360, margin={"l": 0, "r": 0, "t": 24, "b": 0}, showlegend=False, uirevision="ee",
                      title={"text": "end-effector path", "font": {"size": 12}},
                      scene={"aspectmode": "data", "xaxis_title": "x", "yaxis_title": "y", "zaxis_title": "z"})
    return fig


def cloud_sample(ds: Dataset, episode_id: str, feature: str, index: int, points: int = CLOUD_POINTS) -> np.ndarray:
    """The frame's point cloud, downsampled to ``points`` by a fixed (seeded) choice so frames don't flicker."""
    array = ds.store.array(episode_id, feature)
    index = int(np.clip(index, 0, array.shape[0] - 1))
    cloud = np.asarray(array[index], dtype=np.float32)
    finite = np.flatnonzero(np.isfinite(cloud[:, :3]).all(axis=1))
    if len(finite) > points:
        finite = np.sort(np.random.default_rng(0).choice(finite, points, replace=False))
    return cloud[finite]


def cloud_figure(cloud: np.ndarray, title: str) -> go.Figure:
    if cloud.shape[1] >= 6:
        rgb = np.clip(cloud[:, 3:6], 0, 255)
        rgb = rgb * 255 if rgb.max() <= 1.0 else rgb
        colour: Any = [f"rgb({r:.0f},{g:.0f},{b:.0f})" for r, g, b in rgb]
    else:
        colour = cloud[:, 2]
    fig = go.Figure(go.Scatter3d(x=cloud[:, 0], y=cloud[:, 1], z=cloud[:, 2], mode="markers",
                                 marker={"size": 1.5, "color": colour, "colorscale": "Viridis"}))
    fig.update_layout(height=360, margin={"l": 0, "r": 0, "t": 24, "b": 0}, uirevision="cloud",
                      title={"text": title, "font": {"size": 12}}, scene={"aspectmode": "data"})
    return fig


def _shown(value: Any) -> str:
    """A fact for people: floats to 4 significant digits (metres to a tenth of a millimetre)."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _facts(entry: dict[str, Any], scores: dict[str, Any]) -> html.Div:
    meta = entry["meta"]
    rows = [("task", meta.get("task")), ("operator", meta.get("operator")), ("success", meta.get("success")),
            ("length", entry["length"]), ("created", entry.get("created"))]
    rows += [(f"factors.{k}", v) for k, v in (meta.get("factors") or {}).items()]
    rows += [(f"provenance.{k}", v) for k, v in (meta.get("provenance") or {}).items()
             if isinstance(v, (str, int, float, bool))]
    rows += sorted(scores.items())
    return html.Table([html.Tr([html.Th(k), html.Td(_shown(v))]) for k, v in rows if v is not None],
                      className="facts", id="episode-facts")


def _flag_list(flags: list[dict]) -> html.Ul:
    if not flags:
        return html.Ul([html.Li("no flags", className="muted")], id="flag-list")
    return html.Ul([html.Li([html.B(f"{f['source']}: {f['name']}"), f" frames {f['frames']}: {f['detail']}"])
                    for f in flags], id="flag-list")


def layout(lib: Library, dataset: str, episode_id: str, t: str = "0", **_: Any) -> html.Div:
    ds = lib.get(dataset)
    entry = episode_entry(ds, episode_id)
    length = int(entry["length"])
    start = int(np.clip(int(t) if str(t).isdigit() else 0, 0, max(0, length - 1)))
    flags = episode_flags(ds, episode_id)
    frame_tags = _frame_tags(entry)
    cameras = ds.cameras()
    source = lib.source_of(ds, episode_id)
    info = {
        "dataset": ds.name, "episode": episode_id, "length": length, "fps": ds.spec.fps,
        "cameras": [f"/media/{ds.name}/{episode_id}/{c}/" for c in cameras],
        "source": [f"/media/{source[0].name}/{source[1]}/{c}/" for c in source[0].cameras()] if source else [],
        "source_length": int(source[0].store.entry(source[1])["length"]) if source else 0,
    }
    series = episode_series(ds, episode_id)  # read once: the timeline and the path both draw from it
    positions = ee_positions(ds.spec, series)
    if positions is not None:
        info["ee"] = positions.round(5).tolist()  # a few hundred rows: the marker moves clientside
    panels = [html.Div([html.Div(c.split(".")[-1], className="cam-name"),
                        html.Img(id={"type": "cam", "i": k}, src=frame_url(ds, episode_id, c, start), className="frame")],
                       className="cam") for k, c in enumerate(cameras)]
    source_panels = []
    if source:
        src_ds, src_id = source
        source_panels = [html.Div([html.Div(f"source {src_id}: {c.split('.')[-1]}", className="cam-name"),
                                   html.Img(id={"type": "src-cam", "i": k},
                                            src=frame_url(src_ds, src_id, c, min(start, info["source_length"] - 1)),
                                            className="frame")], className="cam")
                         for k, c in enumerate(src_ds.cameras())]
    three_d = []
    if positions is not None:
        three_d.append(dcc.Graph(id="ee-path", figure=ee_figure(positions), className="panel3d"))
    clouds = ds.clouds()
    if clouds:
        three_d.append(dcc.Graph(id="cloud", figure=cloud_figure(cloud_sample(ds, episode_id, clouds[0], start),
                                                                 f"{clouds[0]} (frame {start})"), className="panel3d"))
        three_d.append(dcc.Store(id="cloud-camera"))
    title = [html.H2(f"Episode {episode_id}"),
             dcc.Link("back to the grid", href=f"/d/{ds.name}", className="muted")]
    if source:
        title.append(html.Span([" synthetic, from ", dcc.Link(f"{source[0].name}/{source[1]}",
                                                               href=f"/d/{source[0].name}/e/{source[1]}")],
                               id="source-link"))
    return html.Div([
        dcc.Store(id="episode-info", data=info),
        dcc.Interval(id="clock", interval=max(20, int(1000 / ds.spec.fps)), disabled=True),
        html.Div(title, className="title-row"),
        html.Div([
            html.Div([
                html.Div(panels, className="cams", id="cams"),
                html.Div(source_panels, className="cams source", id="source-cams") if source_panels else None,
                html.Div([
                    html.Button("Play", id="play", className="btn"),
                    html.Div(dcc.Slider(id="frame", min=0, max=max(0, length - 1), step=1, value=start,
                                        marks=None, updatemode="drag", allow_direct_input=False,
                                        tooltip={"placement": "bottom"}), className="slider"),
                    html.Span(id="frame-label", className="count"),
                ], className="player"),
                dcc.Graph(id="timeline", figure=timeline(series, length, flags, frame_tags),
                          config={"displaylogo": False}),
            ], className="main-col"),
            html.Div([
                _facts(entry, episode_scores(ds, episode_id)),
                html.H4("Flags"), _flag_list(flags),
                html.H4("Tags"),
                html.Div([html.Span(t_, className="chip") for t_ in entry["meta"].get("tags") or []], id="tag-chips"),
                html.Div([dcc.Input(id="episode-tag", placeholder="tag", type="text", className="tag-input"),
                          html.Button("Tag episode", id="episode-tag-add", className="btn")]),
                html.Div([dcc.Input(id="range-start", type="number", value=start, min=0, max=length, className="num"),
                          dcc.Input(id="range-stop", type="number", value=min(length, start + 1), min=0, max=length,
                                    className="num"),
                          html.Button("Tag frames", id="range-tag-add", className="btn")], className="range"),
                html.Div(id="episode-status", className="status"),
                *three_d,
            ], className="side-col"),
        ], className="episode-grid"),
    ], id="episode-page")


# The one clock: slider -> camera images, source images, label, cursor and path marker, all in the browser.
clientside_callback(
    "function(t, info) { return window.demoforge.showFrame(t, info); }",
    Output({"type": "cam", "i": ALL}, "src"), Output({"type": "src-cam", "i": ALL}, "src"),
    Output("frame-label", "children"),
    Input("frame", "value"), State("episode-info", "data"),
)
clientside_callback(
    "function(n, disabled) { return window.demoforge.togglePlay(n, disabled); }",
    Output("clock", "disabled"), Output("play", "children"),
    Input("play", "n_clicks"), State("clock", "disabled"), prevent_initial_call=True,
)
clientside_callback(
    "function(n, t, info) { return window.demoforge.tick(t, info); }",
    Output("frame", "value"), Output("clock", "disabled", allow_duplicate=True),
    Output("play", "children", allow_duplicate=True),
    Input("clock", "n_intervals"), State("frame", "value"), State("episode-info", "data"), prevent_initial_call=True,
)
clientside_callback(
    "function(click) { return window.demoforge.seek(click); }",
    Output("frame", "value", allow_duplicate=True), Input("timeline", "clickData"), prevent_initial_call=True,
)


# The user's last 3-D camera on the cloud, sent back with each new frame's figure: ``uirevision`` alone does not
# keep a 3-D camera across figure replacements (the first drag after the page loads is not recorded as a
# UI edit, and later ones are restored only every other time: plotly/plotly.js#5005, #6359; plotly/dash#2281).
clientside_callback(
    """function(relayout) {
        const camera = relayout && relayout["scene.camera"];
        return camera ? camera : window.dash_clientside.no_update;
    }""",
    Output("cloud-camera", "data"), Input("cloud", "relayoutData"), prevent_initial_call=True,
)


@callback(Output("cloud", "figure"), Input("frame", "value"), State("episode-info", "data"),
          State("cloud-camera", "data"), prevent_initial_call=True)
def update_cloud(t: int, info: dict, camera: dict | None) -> Any:
    ds = library().get(info["dataset"])
    clouds = ds.clouds()
    if not clouds:
        return no_update
    fig = cloud_figure(cloud_sample(ds, info["episode"], clouds[0], int(t or 0)), f"{clouds[0]} (frame {t})")
    if camera:
        fig.update_layout(scene_camera=camera)
    return fig


@callback(Output("episode-status", "children"), Output("tag-chips", "children"),
          Input("episode-tag-add", "n_clicks"), State("episode-tag", "value"), State("episode-info", "data"),
          prevent_initial_call=True)
def tag_episode(_n: int | None, tag: str | None, info: dict) -> tuple:
    tag = (tag or "").strip()
    if not tag:
        return "type a tag first", no_update
    lib = library()
    try:
        with lib.writable(info["dataset"]) as store:
            tags = list(store.entry(info["episode"])["meta"].get("tags") or [])
            if tag not in tags:
                store.update_meta(info["episode"], tags=tags + [tag])
            tags = store.entry(info["episode"])["meta"].get("tags") or []
    except DemoforgeError as e:
        return str(e), no_update
    return f"tagged '{tag}'", [html.Span(t_, className="chip") for t_ in tags]


def add_frame_tag(lib: Library, dataset: str, episode_id: str, tag: str, start: int, stop: int) -> dict[str, Any]:
    """Tag frames ``[start, stop)`` of an episode (kept in ``meta.extra.frame_tags``); returns the tag."""
    with lib.writable(dataset) as store:
        entry = store.entry(episode_id)
        length = int(entry["length"])
        if not (0 <= start < stop <= length):
            raise DemoforgeError(f"frame range [{start}, {stop}): expected 0 <= start < stop <= {length}")
        extra = dict(entry["meta"].get("extra") or {})
        item = {"tag": tag, "start": int(start), "stop": int(stop)}
        extra["frame_tags"] = [*(extra.get("frame_tags") or []), item]
        store.update_meta(episode_id, extra=extra)
    return item


@callback(Output("episode-status", "children", allow_duplicate=True), Output("timeline", "figure"),
          Input("range-tag-add", "n_clicks"), State("episode-tag", "value"), State("range-start", "value"),
          State("range-stop", "value"), State("episode-info", "data"), State("frame", "value"),
          prevent_initial_call=True)
def tag_frames(_n: int | None, tag: str | None, start: int | None, stop: int | None, info: dict,
               now: int | None) -> tuple:
    tag = (tag or "").strip()
    if not tag:
        return "type a tag first", no_update
    lib = library()
    try:
        add_frame_tag(lib, info["dataset"], info["episode"], tag, int(start or 0), int(stop or 0))
    except (DemoforgeError, ValueError) as e:
        return str(e), no_update
    ds = lib.get(info["dataset"])
    entry = ds.store.entry(info["episode"])
    # the new figure keeps the cursor on the current frame (the slider did not move, so nothing else would)
    fig = timeline(episode_series(ds, info["episode"]), int(entry["length"]), episode_flags(ds, info["episode"]),
                   _frame_tags(entry), cursor=int(now or 0))
    return f"tagged frames {start}-{stop} '{tag}'", fig
