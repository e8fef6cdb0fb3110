"""Page layouts, one module per page; ``PAGES`` maps the router's page names to layout functions.

Each layout function takes the ``Library`` and the URL's arguments and returns Dash components. A page's
callbacks live in its module and are registered when this package is imported.
"""

from __future__ import annotations

from typing import Any, Callable

from dash import dcc, html

from dashboard.data import Library
from dashboard.pages import curation, datasets, episode, episodes, views


def missing(lib: Library, path: str = "", **_: Any) -> html.Div:
    return html.Div([html.H2("Not found"), html.P(path, className="muted"),
                     dcc.Link("back to the datasets", href="/")], id="not-found")


PAGES: dict[str, Callable[..., Any]] = {
    "datasets": datasets.layout,
    "episodes": episodes.layout,
    "episode": episode.layout,
    "curation": curation.layout,
    "views": views.layout,
    "missing": missing,
}


def nav(lib: Library, dataset: str | None, page: str) -> list:
    """The top bar: home, then the current dataset's pages."""
    links = [dcc.Link("demoforge", href="/", className="brand")]
    if dataset in lib.datasets:
        for name, href in (("Episodes", f"/d/{dataset}"), ("Curation", f"/d/{dataset}/curation"),
                           ("Tags & views", f"/d/{dataset}/views")):
            cls = "active" if name.lower().startswith(page[:4]) else ""
            links.append(dcc.Link(name, href=href, className=f"navlink {cls}"))
        links.append(html.Span(dataset, className="nav-dataset"))
    return links
