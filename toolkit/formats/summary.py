"""What an export did: where it wrote, how much, and what it left out or wants the user to know."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ExportSummary:
    """The result of one export.

    ``skipped`` names what was not written (features or episodes, one line each, with the reason);
    ``warnings`` are things the user should look at before training (e.g. actions outside [-1, 1]).
    """

    out: Path
    format: str
    episodes: int = 0
    frames: int = 0
    skipped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
