"""``demoforge demo``: the main job end to end on built-in sample data (no hardware needed).

Writes a store, inspects it, edits it (trim, delete), splits off a curated subset and exports it to
LeRobot v3.0 and robomimic, then reads the LeRobot export back. Later stages (record on the
simulator, curate, augment, browse) join this flow as they land.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from rich.console import Console

from toolkit.errors import DemoforgeError
from toolkit.progress import track
from toolkit.report import episode_table, store_summary
from toolkit.sample import sample_episodes, sample_spec
from toolkit.store import Store, merge_stores

MARKER = ".demoforge-demo"


def _fresh_dir(out_dir: Path) -> None:
    """Reuse ``out_dir`` only if an earlier demo made it; never delete a user's own files."""
    if out_dir.exists() and any(out_dir.iterdir()):
        if not (out_dir / MARKER).exists():
            raise DemoforgeError(f"{out_dir}: exists and was not made by 'demoforge demo'; choose another --out")
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MARKER).write_text("made by demoforge demo; safe to delete\n")


def run_demo(out_dir: Path, episodes: int, console: Console) -> None:
    from toolkit.convert import export_store
    from toolkit.formats.lerobot import read_lerobot

    _fresh_dir(out_dir)
    spec = sample_spec(cameras=2, height=96, width=128)
    store = Store.create(out_dir / "store.zarr", spec)
    console.rule("1. write sample episodes")
    samples = sample_episodes(spec, episodes, seed=0)
    samples[1].data["action"][5, 0] = np.nan  # a glitch the store flags with its frame range
    for episode in track(samples, len(samples), "writing"):
        store.append(episode)
    store_summary(store, console)

    console.rule("2. inspect and edit")
    episode_table(store, store.ids(), console, limit=8)
    length = store.entry("000002")["length"]
    store.trim("000002", 2, length - 2)
    console.print(f"trimmed episode 000002: {length} -> {length - 4} frames (idle start and end removed)")
    store.delete(["000001"])
    console.print("deleted episode 000001 (flagged: NaN in action)")

    console.rule("3. select a subset and export")
    where = 'success and operator != "scripted:fast"'
    subset = merge_stores([store], out_dir / "subset.zarr", where)
    console.print(f"--where {where!r}: {len(subset)} of {len(store)} episodes -> {subset.root}")
    lerobot = export_store(subset, out_dir / "lerobot", "lerobot", video=True, vcodec="libsvtav1")
    console.print(f"LeRobot v3.0 (AV1 video): {lerobot.episodes} episodes, {lerobot.frames} frames -> {lerobot.out}")
    robomimic = export_store(subset, out_dir / "robomimic.hdf5", "robomimic", train_val_split=0.2)
    console.print(f"robomimic HDF5: {robomimic.episodes} demos -> {robomimic.out}")

    console.rule("4. read the LeRobot export back")
    source = read_lerobot(out_dir / "lerobot")
    frames = sum(e.length for e in source)
    console.print(f"{out_dir / 'lerobot'}: {len(source)} episodes, {frames} frames, tasks {sorted(set(source.tasks))}")
    console.print(f"[green]done[/green]: try 'demoforge info {store.root}' or 'demoforge ls {store.root} --where success'")
