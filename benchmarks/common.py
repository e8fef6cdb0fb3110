"""What the benchmark scripts share: their command line, pessimistic image noise, sizes on disk, markdown tables."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from toolkit.episode import Episode

NOISE = 8  # uniform noise amplitude added to sample images: a camera-like texture that compresses poorly


def parser(doc: str, quick: str, tmpdir: str = "where to make the scratch stores (default: system temp)"
           ) -> argparse.ArgumentParser:
    """The command line every benchmark starts from: its docstring as help (first paragraph as the
    description), ``--quick`` (the short run tests/test_benchmarks.py makes) and ``--tmpdir``."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=doc.split("\n\n", 1)[1])
    ap.add_argument("--quick", action="store_true", help=quick)
    ap.add_argument("--tmpdir", type=Path, default=None, help=tmpdir)
    return ap


def noisy(episode: Episode, seed: int) -> Episode:
    """The same episode with seeded uniform noise in [-NOISE, NOISE] on every image."""
    rng = np.random.default_rng(seed)
    data = dict(episode.data)
    for name, arr in episode.data.items():
        if arr.dtype == np.uint8 and arr.ndim == 4:
            noise = rng.integers(-NOISE, NOISE + 1, size=arr.shape, dtype=np.int16)
            data[name] = np.clip(arr.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    return Episode(data=data, meta=episode.meta)


def tree_bytes(path: Path) -> int:
    """Bytes of every file under ``path``."""
    return sum(os.stat(os.path.join(d, f)).st_size for d, _, files in os.walk(path) for f in files)


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A markdown table with padded columns."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(headers), sep, *(line(r) for r in rows)])
