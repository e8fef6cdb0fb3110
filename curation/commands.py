"""``demoforge curate``: run passes over a store and show what they found (tables for people, JSON for tools)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from curation.base import DatasetResult
from curation.registry import DEFAULT_PASSES, make_passes, parse_names
from curation.runner import CurationRun, curate_store
from toolkit.store import Store

_COLOURS = {"high": "red", "medium": "yellow", "low": "cyan", "info": "dim"}


def curate_command(store_path: Path, passes: str | None, where: str | None, base: str | None, workers: int,
                   images: bool, report: Path | None, console: Console, findings: int = 10) -> CurationRun:
    """Parse the flags, run the passes, print the summary and the top findings."""
    names = parse_names(passes) if passes else [*DEFAULT_PASSES, *(["compatibility"] if base else [])]
    with Store.open(store_path, mode="a") as store:
        run = curate_store(store, make_passes(names, images), where=where, base=base, workers=workers,
                           report_path=report)
        print_run(run, console, findings)
        console.print(f"scores saved in {store.root / 'curation'} (catalog columns <pass>.<score>, e.g. "
                      f"'demoforge ls {store.root} --where \"quality.ok\"'); report {run.report_path}")
    return run


def headline(name: str, result: DatasetResult) -> str:
    """One line of the dataset numbers that matter most for a pass (the pass may say via ``headline``)."""
    summary = result.summary
    keys = [k for k, v in summary.items() if isinstance(v, (int, float, bool, str)) and not isinstance(v, bool)]
    return ", ".join(f"{k} {_show(summary[k])}" for k in keys[:5]) or "-"


def print_run(run: CurationRun, console: Console, limit: int = 10) -> None:
    report = run.report
    table = Table("pass", "version", "params", "summary",
                  title=f"curated {report['episodes']} episodes in {report['seconds']:.1f} s "
                        f"({report['workers']} worker{'s' if report['workers'] > 1 else ''})")
    for name, result in run.results.items():
        section = report["passes"][name]
        line = section["summary"].get("headline") or headline(name, result)
        table.add_row(name, section["version"], section["params_hash"], str(line))
    console.print(table)
    if run.failed:
        console.print(f"[yellow]{len(run.failed)} episode(s) could not be read and have no scores:[/yellow] "
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
