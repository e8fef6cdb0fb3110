"""Import external datasets into a store and export a store (or a filtered view of it).

Formats: ``lerobot`` (LeRobot v3.0, also reads v2.1), ``robomimic`` (HDF5) and ``replay-buffer``
(diffusion_policy / UMI / DemoGen zarr). Episodes stream one at a time in both directions.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from toolkit.episode import Episode
from toolkit.errors import FormatError
from toolkit.progress import track
from toolkit.store import StorageOptions, Store

Format = Literal["lerobot", "robomimic", "replay-buffer"]
FORMATS: tuple[str, ...] = ("lerobot", "robomimic", "replay-buffer")


def detect_format(path: Path) -> Format:
    """Guess a dataset's format from its files; ``FormatError`` when none fits."""
    if path.is_dir() and (path / "meta" / "info.json").exists():
        return "lerobot"
    if path.is_file() and path.suffix.lower() in (".hdf5", ".h5", ".he5"):
        return "robomimic"
    if path.name.endswith(".zarr.zip") or (path.is_dir() and (path / "meta" / "episode_ends").exists()):
        return "replay-buffer"
    if path.is_dir() and (path / "meta").is_dir():
        raise FormatError(f"{path}: has meta/ but neither meta/info.json (LeRobot) nor meta/episode_ends (replay buffer)")
    if not path.exists():
        raise FormatError(f"{path}: no such file or directory")
    raise FormatError(
        f"{path}: cannot tell the format (expected a LeRobot folder with meta/info.json, a robomimic .hdf5 "
        "file or a replay-buffer .zarr); pass --format"
    )


def open_source(path: Path, fmt: Format, task: str | None = None, salvage: bool = False) -> Any:
    """A reader with ``.spec``, ``len()`` and iteration over ``Episode``s.

    ``salvage`` reads the complete episodes of a dataset whose writer died (LeRobot without
    ``finalize()``, a replay buffer with orphaned steps) instead of refusing it.
    """
    if fmt == "lerobot":
        from toolkit.formats.lerobot import read_lerobot

        return read_lerobot(path, salvage=salvage)
    if fmt == "robomimic":
        from toolkit.formats.robomimic import read_robomimic

        return read_robomimic(path, task=task)
    from toolkit.formats.replay_buffer import read_replay_buffer

    return read_replay_buffer(path, task=task, salvage=salvage)


def import_dataset(src: Path, out: Path, fmt: Format | None = None, task: str | None = None,
                   options: StorageOptions | None = None, salvage: bool = False) -> tuple[Store, list[str]]:
    """Copy every episode of ``src`` into the store at ``out`` (created, or appended to if compatible)."""
    fmt = fmt or detect_format(src)
    source = open_source(src, fmt, task, salvage)
    store = Store.create(out, source.spec, options, exist_ok=True)
    ids = [store.append(e) for e in track(source, len(source), f"importing {src.name}")]
    return store, ids


def _episodes(store: Store, ids: list[str]) -> Iterator[Episode]:
    return track(store.episodes(ids), len(ids), f"exporting {len(ids)} episodes")


def export_store(store: Store, out: Path, fmt: Format, where: str | None = None, **options: Any) -> Any:
    """Write the episodes of ``store`` matching ``where`` to ``out`` in ``fmt``; returns the exporter's summary."""
    ids = store.ids(where)
    if not ids:
        raise FormatError(f"{store.root}: no episode matches --where {where!r}; nothing to export")
    if fmt == "lerobot":
        from toolkit.formats.lerobot import export_lerobot

        return export_lerobot(store.spec, _episodes(store, ids), out, **options)
    if fmt == "robomimic":
        from toolkit.formats.robomimic import export_robomimic

        return export_robomimic(store.spec, _episodes(store, ids), out, **options)
    from toolkit.formats.replay_buffer import export_replay_buffer

    return export_replay_buffer(store.spec, _episodes(store, ids), out, **options)
