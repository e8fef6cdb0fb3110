"""What an export did: where it wrote, how much, and what it left out or wants the user to know."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ExportSummary:
    """The result of one export, whatever the format.

    ``skipped`` names what was not written (features or episodes, with the reason where the format gives
    one); ``warnings`` are things the user should look at before training (e.g. actions outside [-1, 1]).
    ``mode``, ``vcodec``, ``data_files`` and ``video_files`` describe formats that store cameras either
    way and rotate their files (LeRobot); the other formats leave them at their defaults.
    """

    out: Path
    format: str
    episodes: int = 0
    frames: int = 0
    skipped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    mode: str | None = None  # "image" (frames in the data files) or "video" (mp4 per camera)
    vcodec: str | None = None  # the video codec, in video mode
    data_files: int = 0
    video_files: int = 0
