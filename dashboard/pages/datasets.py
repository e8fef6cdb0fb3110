"""The datasets page: every opened store with its size, tasks, operators and score headlines."""

from __future__ import annotations

from typing import Any

from dash import dcc, html

from dashboard.data import Library, dataset_summary


def _counts(counts: dict[str, int], limit: int = 6) -> str:
    shown = [f"{k} ({v})" for k, v in list(counts.items())[:limit]]
    more = len(counts) - limit
    return ", ".join(shown) + (f", +{more} more" if more > 0 else "") if shown else "-"


def card(summary: dict[str, Any]) -> html.Div:
    name = summary["name"]
    facts = [("episodes", f"{summary['episodes']:,}"), ("frames", f"{summary['frames']:,}"),
             ("hours", f"{summary['hours']:.2f}"), ("fps", f"{summary['fps']:g}"),
             ("synthetic", f"{summary['synthetic']:,}"), ("views", str(summary["views"])),
             ("tasks", _counts(summary["tasks"])), ("operators", _counts(summary["operators"])),
             ("cameras", ", ".join(summary["cameras"]) or "-")]
    scores = [html.Li([html.B(f"{k}: "), v]) for k, v in summary["scores"].items()] or [
        html.Li("not curated yet: run 'demoforge curate' or start it from Tags & views", className="muted")]
    return html.Div([
        html.H3(dcc.Link(name, href=f"/d/{name}")),
        html.Div(summary["path"], className="muted"),
        html.Table([html.Tr([html.Th(k), html.Td(v)]) for k, v in facts], className="facts"),
        html.H4("Curation"),
        html.Ul(scores),
    ], className="card dataset-card", id={"type": "dataset-card", "name": name})


def layout(lib: Library, **_: Any) -> html.Div:
    for ds in lib.datasets.values():
        ds.refresh()  # a reload shows what recorders committed since
    return html.Div([html.H2("Datasets"), html.Div([card(dataset_summary(ds)) for ds in lib.datasets.values()],
                                                   className="cards")])
