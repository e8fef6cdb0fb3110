"""The curation page (placeholder while it is being written)."""

from __future__ import annotations

from typing import Any

from dash import html

from dashboard.data import Library


def layout(lib: Library, dataset: str, **_: Any) -> html.Div:
    lib.get(dataset)
    return html.Div([html.H2("Curation")], id="curation-page")
