"""``demoforge demo``: the main job end to end on the embedded simulator (no hardware needed).

Records a small real dataset on the MuJoCo tabletop with scripted operators of distinct styles across
seeded factor variations (object type and colour, poses, lighting, camera pose, table height,
distractors), inspects and edits it, curates it (quality, diversity, shortcut factors, compatibility
with the careful operator as the base), selects the episodes worth training on by their scores and
exports them to LeRobot v3.0 and robomimic, multiplies two of them with green-screen backgrounds and
DemoGen-style point-cloud edits, then reads the LeRobot export back. The dashboard joins here next.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from rich.console import Console

from toolkit.errors import DemoforgeError
from toolkit.report import episode_table, store_summary
from toolkit.store import Store, merge_stores

MARKER = ".demoforge-demo"
BASE = 'operator == "scripted:careful"'  # the compatibility base set: the careful top-approach operator
# (task, operator style, episodes): two styles that conflict on pick-and-place (top vs side approach)
PLAN = (("pick_place", "careful", 16), ("pick_place", "side", 4), ("push", "fast", 3))


def _fresh_dir(out_dir: Path) -> None:
    """Reuse ``out_dir`` only if an earlier demo made it; never delete a user's own files."""
    if out_dir.exists() and any(out_dir.iterdir()):
        if not (out_dir / MARKER).exists():
            raise DemoforgeError(f"{out_dir}: exists and was not made by 'demoforge demo'; choose another --out")
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MARKER).write_text("made by demoforge demo; safe to delete\n")


def record_demo_dataset(store_path: Path, console: Console, scale: int = 1, height: int = 240,
                        width: int = 320) -> Store:
    """Record ``PLAN`` (each count times ``scale``) into a new store on the embedded tabletop."""
    from teleop.recorder import RecorderConfig, recording_spec
    from teleop.session import record_session
    from teleop.sim.scripted import scripted_operator
    from teleop.sim.tabletop import TabletopConfig, TabletopEnv

    seed = 0
    for task, style, count in PLAN:
        env = TabletopEnv(TabletopConfig(task=task, height=height, width=width))
        try:
            store = Store.create(store_path, recording_spec(env.spec, env.spec.fps), exist_ok=True)
            config = RecorderConfig(fps=env.spec.fps, max_steps=250, operator=f"scripted:{style}", realtime=False)
            console.print(f"[bold]{task}[/bold] by operator scripted:{style}")
            record_session(env, scripted_operator(env, style, seed), store, config, count * scale, seed, console)
            store.close()
        finally:
            env.close()
        seed += 100  # each block of episodes draws its own factor variations
    return Store.open(store_path, mode="a")


def augment_demo(store: Store, chosen: list[str], out_dir: Path, console: Console) -> None:
    """One of each augmentation on two training episodes, into their own stores."""
    from curation.augment_commands import run
    from curation.greenscreen import GreenScreen, GreenScreenParams
    from curation.pointcloud import PointCloudEdit, PointCloudParams

    where = f"id in {chosen[:2]}"
    run(store.root, out_dir / "greenscreen.zarr", GreenScreen(GreenScreenParams(cameras=("front",), copies=2)),
        where, 0, None, console)
    # The tabletop's clouds are uncropped (table and backdrop stay put); objects come from the first-frame
    # segmentation mask; +-4 cm grids for the object and the goal, 16 demos per source.
    edit = PointCloudParams(segmentation="mask", background="table", box_floor=None, object_range=(0.04, 0.04),
                            target_range=(0.04, 0.04), workspace=(-0.4, -0.5, 0.5, 0.4, 0.5, 1.5))
    run(store.root, out_dir / "pointcloud.zarr", PointCloudEdit(edit), where, 0, None, console)


def run_demo(out_dir: Path, scale: int, console: Console) -> None:
    from curation.commands import curate_command
    from toolkit.convert import export_store
    from toolkit.views import save_view
    from toolkit.formats.lerobot import read_lerobot

    _fresh_dir(out_dir)
    console.rule("1. record on the embedded MuJoCo tabletop (scripted operators, no hardware)")
    store = record_demo_dataset(out_dir / "store.zarr", console, scale)
    store_summary(store, console)

    console.rule("2. inspect and edit")
    episode_table(store, store.ids(), console, limit=10)
    first = store.ids()[0]
    length = store.entry(first)["length"]
    store.trim(first, 2, length)
    console.print(f"trimmed episode {first}: {length} -> {length - 2} frames (dropped the settling start)")
    failed = store.ids("not success")
    if failed:
        store.delete(failed)
    console.print(f"deleted {len(failed)} failed episode(s)")

    console.rule("3. curate: quality, diversity, shortcut factors, compatibility with the careful operator")
    store.close()
    curate_command(store.root, "quality,diversity,shortcuts", None, None, 0, False, None, console, findings=5)
    # compatibility compares pick-and-place operators with the base style; push is another task
    curate_command(store.root, "compatibility", 'factors.task_kind == "pick_place"', BASE, 0, False, None, console,
                   findings=3)
    store = Store.open(store.root, mode="a")

    console.rule("4. select a subset by scores and export")
    where = 'factors.task_kind == "pick_place" and quality.ok and compatibility.compatible'
    save_view(store.root, "pick-place-train", where, "compatible, clean pick-and-place episodes")
    subset = merge_stores([store], out_dir / "pick_place.zarr", where)
    console.print(f"view 'pick-place-train' = {where!r}: {len(subset)} of {len(store)} episodes -> {subset.root}")
    lerobot = export_store(subset, out_dir / "lerobot", "lerobot", video=True, vcodec="libsvtav1")
    console.print(f"LeRobot v3.0 (AV1 video): {lerobot.episodes} episodes, {lerobot.frames} frames -> {lerobot.out}"
                  f" (not representable in LeRobot, kept in the store: {', '.join(lerobot.skipped)})")
    robomimic = export_store(subset, out_dir / "robomimic.hdf5", "robomimic", train_val_split=0.2)
    console.print(f"robomimic HDF5: {robomimic.episodes} demos -> {robomimic.out}")

    console.rule("5. augment: green-screen backgrounds (GreenAug) and point-cloud edits (DemoGen)")
    augment_demo(store, store.ids(where), out_dir, console)

    console.rule("6. read the LeRobot export back")
    source = read_lerobot(out_dir / "lerobot")
    frames = sum(e.length for e in source)
    console.print(f"{out_dir / 'lerobot'}: {len(source)} episodes, {frames} frames, {len(source.tasks)} tasks")
    console.print(f"[green]done[/green]: the recorded store is {store.root}; try 'demoforge info {store.root}' "
                  f"or 'demoforge ls {store.root} --where \"operator == \\\"scripted:side\\\"\"'")
