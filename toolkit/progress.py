"""Progress bars for long work (rich), written to stderr so command output stays clean.

Long work reports through ``track`` only. A caller that is not a terminal (the dashboard's background
jobs) installs a sink with ``reporting_to``: ``track`` then calls it with (description, done, total)
after every item instead of drawing a bar, and an exception the sink raises (a cancel) stops the work
at the next item, exactly where Ctrl-C would.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

T = TypeVar("T")
Sink = Callable[[str, int, "int | None"], None]
_console = Console(stderr=True)
_sink: ContextVar[Sink | None] = ContextVar("demoforge_progress_sink", default=None)


@contextmanager
def reporting_to(sink: Sink) -> Iterator[None]:
    """Send every ``track`` in this context (this thread) to ``sink`` instead of a terminal bar."""
    token = _sink.set(sink)
    try:
        yield
    finally:
        _sink.reset(token)


def track(items: Iterable[T], total: int | None, description: str) -> Iterator[T]:
    """Yield ``items`` while showing a bar (silent when stderr is not a terminal, as in CI logs)."""
    sink = _sink.get()
    if sink is not None:
        sink(description, 0, total)
        for done, item in enumerate(items, 1):
            yield item
            sink(description, done, total)
        return
    if not sys.stderr.isatty():
        yield from items
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("eta"), TimeRemainingColumn())
    with Progress(*columns, console=_console, transient=False) as progress:
        task = progress.add_task(description, total=total)
        for item in items:
            yield item
            progress.advance(task)
