"""``demoforge dashboard``: serve the browser dashboard over one or more stores."""

from __future__ import annotations

import errno
import logging
import socket
from pathlib import Path

from rich.console import Console

from toolkit.errors import DemoforgeError

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def check_port(host: str, port: int) -> None:
    """Refuse a port that is taken, in one line, before Dash starts (its own error is a traceback)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        try:
            s.bind((host, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise DemoforgeError(f"--port {port}: already in use on {host}; choose another with --port") from None
            raise DemoforgeError(f"--host {host}: cannot serve there ({e.strerror})") from None


def dashboard_command(stores: list[Path], host: str, port: int, console: Console) -> None:
    """Open the stores read-only and serve until Ctrl-C."""
    from dashboard.app import create_app, serve
    from dashboard.data import Library

    library = Library(stores)
    if host not in LOCAL_HOSTS:
        console.print(f"[yellow]warning:[/yellow] serving on {host}: anyone who can reach this machine on port "
                      f"{port} can browse these stores, tag episodes and start exports (there is no login)")
    check_port(host, port)
    app = create_app(library)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per frame request is noise
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    names = ", ".join(f"{name} ({ds.path})" for name, ds in library.datasets.items())
    console.print(f"dashboard on http://{shown}:{port}/  ({names}); Ctrl-C to stop")
    try:
        serve(app, host, port)  # returns on Ctrl-C
    finally:
        library.close()
    console.print("dashboard stopped")
