"""Human-readable summaries of a store for the command line (rich tables)."""

from __future__ import annotations

from collections import Counter

import numpy as np
from rich.console import Console
from rich.table import Table

from toolkit.errors import DemoforgeError
from toolkit.store import Store


def _show(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _counts(values: np.ndarray, top: int = 6) -> str:
    """Top values with counts; a numeric column with many values as its range instead."""
    present = [v for v in values if v is not None and v == v]
    if values.dtype.kind == "f" and len(set(present)) > top:
        return f"{min(present):.3g} .. {max(present):.3g} (numeric, {len(present)} values)"
    counter = Counter(_show(v) for v in present)
    text = ", ".join(f"{k} ({n})" for k, n in counter.most_common(top))
    return text + (f", ... {len(counter) - top} more" if len(counter) > top else "") or "-"


def store_summary(store: Store, console: Console) -> None:
    """Spec, size and the distribution of tasks, operators, success and factors."""
    cols = store.catalog.columns()
    n = len(store)
    frames = int(np.sum(cols["length"])) if n else 0
    hours = frames / store.spec.fps / 3600
    console.print(f"[bold]{store.root}[/bold]  demoforge store, fps {store.spec.fps:g}, robot {store.spec.robot_type or '-'}, "
                  f"images {store.options.image_codec} q{store.options.image_quality}")
    console.print(f"{n} episodes, {frames} frames, {hours:.2f} h ({hours * 60:.1f} min)")
    if n:
        success = [v for v in cols["success"] if v is not None]
        console.print(f"tasks: {_counts(cols['task'])}")
        console.print(f"operators: {_counts(cols['operator'])}")
        console.print(f"success: {sum(success)}/{len(success)} labelled" if success else "success: unlabelled")
        synthetic = int(sum(v is not None for v in cols.get("provenance.augmentation", [])))
        console.print(f"synthetic: {synthetic}" + (f", flagged: {_flagged(cols)}" if _flagged(cols) else ""))
        for name in sorted(c for c in cols if c.startswith("factors.")):
            console.print(f"{name}: {_counts(cols[name])}")
    table = Table("feature", "kind", "dtype", "shape", "names", title="features")
    for name, f in store.spec.features.items():
        names = "" if f.names is None else ", ".join(f.names[:8]) + (" ..." if len(f.names) > 8 else "")
        table.add_row(name, f.kind, f.dtype, str(list(f.shape)), names)
    console.print(table)


def _flagged(cols: dict[str, np.ndarray]) -> str:
    counts = {c[6:]: sum(v is True for v in cols[c]) for c in sorted(cols) if c.startswith("flags.")}
    return ", ".join(f"{name} ({n})" for name, n in counts.items() if n)


def episode_table(store: Store, ids: list[str], console: Console, limit: int = 50,
                  columns: list[str] | None = None) -> None:
    """One row per episode; factors and flags (recorded and from curation passes) condensed into one
    column each; ``columns`` adds catalog columns such as curation scores (``quality.ok``)."""
    rows = store.catalog.rows(ids[:limit] if limit else ids)
    extra = list(columns or [])
    known = store.catalog.columns()
    unknown = [c for c in extra if c not in known]
    if unknown:
        raise DemoforgeError(f"--columns: unknown column(s) {unknown} (see 'demoforge info' or curate first)")
    table = Table("id", "len", "task", "operator", "success", "factors", "tags", "flags", *extra,
                  title=f"{len(ids)} episodes" + (f" (first {limit})" if limit and len(ids) > limit else ""))
    for row in rows:
        # Categorical factors only: continuous ones (poses, intensities) are summarised by `info`.
        factors = ", ".join(f"{k[8:]}={v}" for k, v in row.items() if k.startswith("factors.") and not isinstance(v, float))
        flags = [k[6:] for k in row if k.startswith("flags.")]
        flags += [f"{k[:-6]}.{name}" for k, v in row.items() if k.endswith(".flags") and isinstance(v, list) for name in v]
        success = {True: "yes", False: "no"}.get(row.get("success"), "-")
        table.add_row(row["id"], str(row["length"]), row.get("task", ""), row.get("operator") or "-", success,
                      factors, ", ".join(row.get("tags", [])), ", ".join(flags),
                      *(_show(row[c]) if c in row else "-" for c in extra))
    console.print(table)
