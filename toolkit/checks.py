"""``demoforge validate``: check a store, an external dataset or a JSON file, and say what is wrong."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from toolkit.errors import DemoforgeError, SchemaError, StoreError
from toolkit.spec import DatasetSpec


def validate_json_file(path: Path) -> str:
    """Validate a dataset spec or episode metadata file (told apart by its fields)."""
    try:
        value = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise SchemaError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    from toolkit.episode import EpisodeMeta

    if isinstance(value, dict) and "features" in value:
        spec = DatasetSpec.from_dict(value, str(path))
        return f"{path}: a valid dataset spec with {len(spec.features)} features"
    EpisodeMeta.from_dict(value, str(path))
    return f"{path}: valid episode metadata"


def validate_store(path: Path, deep: bool = False) -> str:
    """Check every committed episode: metadata against the schema, arrays against the spec."""
    from toolkit.episode import EpisodeMeta
    from toolkit.progress import track
    from toolkit.store import Store

    with Store.open(path) as store:
        problems = store.unreadable()
        if problems:
            first = next(iter(problems.values()))
            raise StoreError(f"{first} ({len(problems)} episode folder(s) unreadable; the others are intact)")
        ids = store.ids()
        for episode_id in track(ids, len(ids), "validating"):
            entry = store.entry(episode_id)
            EpisodeMeta.from_dict(entry["meta"], f"{path}/episodes/{episode_id}/zarr.json meta")
            group = store.group(episode_id)  # one metadata read per episode, not one per feature
            for name, feature in store.spec.features.items():
                if name not in group:
                    raise StoreError(f"{path}/episodes/{episode_id}/{name}: missing (the spec lists it)")
                arr = group[name]
                expected = (entry["length"], *feature.shape)
                if tuple(arr.shape) != expected:
                    raise StoreError(f"{path}/episodes/{episode_id}/{name}: shape {list(arr.shape)}, expected {list(expected)}")
                if deep:
                    _decode_all(arr, f"{path}/episodes/{episode_id}/{name}")
        return f"{path}: {len(ids)} episodes, every one matches the spec" + (" and decodes" if deep else "")


def _decode_all(arr, where: str) -> None:
    try:
        values = np.asarray(arr[...])
    except Exception as e:  # any decoding failure of stored bytes is damage, reported per array
        raise StoreError(f"{where}: cannot decode stored data ({type(e).__name__}: {e})") from None
    if values.shape != tuple(arr.shape):
        raise StoreError(f"{where}: decoded shape {values.shape} != stored shape {arr.shape}")


def validate_dataset(path: Path) -> str:
    """Read every episode of an external dataset through its importer."""
    from toolkit.convert import detect_format, open_source
    from toolkit.progress import track

    fmt = detect_format(path)
    source = open_source(path, fmt)
    frames = 0
    count = 0
    for episode in track(source, len(source), f"reading {fmt}"):
        frames += episode.length
        count += 1
    return f"{path}: {fmt} dataset, {count} episodes, {frames} frames, all readable"


def validate_path(path: Path, deep: bool = False) -> str:
    """Dispatch on what ``path`` is; returns a one-line verdict or raises ``DemoforgeError``."""
    if not path.exists():
        raise DemoforgeError(f"{path}: no such file or directory")
    if path.is_file() and path.suffix == ".json":
        return validate_json_file(path)
    if path.is_dir() and (path / "zarr.json").exists():
        return validate_store(path, deep)
    return validate_dataset(path)
