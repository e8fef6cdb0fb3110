"""``demoforge curate``: run passes over a store and show what they found (tables for people, JSON for tools)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from curation.base import DatasetResult
from curation.engine import DEFAULT_RETRIES, make_engine
from curation.registry import DEFAULT_PASSES, make_passes, parse_names
from curation.runner import CurationRun, curate_store
from toolkit.errors import DemoforgeError
from toolkit.store import Store

_COLOURS = {"high": "red", "medium": "yellow", "low": "cyan", "info": "dim"}


def curate_command(store_path: Path, passes: str | None, where: str | None, base: str | None, workers: int,
                   images: bool, report: Path | None, console: Console, findings: int = 10,
                   scheduler: str | None = None, retries: int = DEFAULT_RETRIES) -> CurationRun:
    """Parse the flags, run the passes, print the summary and the top findings.

    ``scheduler``: None (a Dask LocalCluster when ``workers`` > 1 and Dask is installed, else this
    process or a process pool), ``pool``, ``local`` or ``tcp://HOST:PORT`` (see ``make_engine``).
    """
    names = parse_names(passes) if passes else [*DEFAULT_PASSES, *(["compatibility"] if base else [])]
    chosen = make_passes(names, images)  # refuse a bad --passes before starting a cluster
    with Store.open(store_path, mode="a") as store:
        # the store and --where are checked before a cluster starts: a typo should not cost seconds
        if not store.ids(where):
            raise DemoforgeError(f"--where {where!r}: selects no episodes in {store.root}")
        engine = make_engine(scheduler, workers, retries)
        try:
            run = curate_store(store, chosen, where=where, base=base, workers=workers,
                               report_path=report, engine=engine)
        finally:
            if engine is not None:
                engine.close()
        print_run(run, console, findings, engine.name if engine is not None else None)
        console.print(f"scores saved in {store.root / 'curation'} (catalog columns <pass>.<score>, e.g. "
                      f"'demoforge ls {store.root} --where \"quality.ok\"'); report {run.report_path}")
    return run


def headline(name: str, result: DatasetResult) -> str:
    """One line of the dataset numbers that matter most for a pass (the pass may say via ``headline``)."""
    summary = result.summary
    keys = [k for k, v in summary.items() if isinstance(v, (int, float, bool, str)) and not isinstance(v, bool)]
    return ", ".join(f"{k} {_show(summary[k])}" for k in keys[:5]) or "-"


def print_run(run: CurationRun, console: Console, limit: int = 10, engine: str | None = None) -> None:
    report = run.report
    where = f", {engine}" if engine and engine.startswith("Dask") else ""
    table = Table("pass", "version", "params", "summary",
                  title=f"curated {report['episodes']} episodes in {report['seconds']:.1f} s "
                        f"({report['workers']} worker{'s' if report['workers'] > 1 else ''}{where})")
    for name, result in run.results.items():
        section = report["passes"][name]
        line = section["summary"].get("headline") or headline(name, result)
        table.add_row(name, section["version"], section["params_hash"], str(line))
    console.print(table)
    if run.failed:
        console.print(f"[yellow]{len(run.failed)} episode(s) were not processed and have no new scores:[/yellow] "
                      + "; ".join(f"{i}: {why}" for i, why in list(run.failed.items())[:5]))
    shown = [f for f in report["findings"] if f["severity"] != "info"][:limit] or report["findings"][:limit]
    if shown:
        findings = Table("", "pass", "finding", "fix", title="top findings", show_lines=False)
        for f in shown:
            colour = _COLOURS.get(f["severity"], "white")
            title = f["title"] + (f" [dim]({f['detail']})[/dim]" if f.get("detail") else "")
            findings.add_row(f"[{colour}]{f['severity']}[/{colour}]", f["pass"], title, f.get("fix") or "")
        console.print(findings)


def _show(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
