"""The ``demoforge`` command line. Each command is a thin shell over the library; heavy modules are
imported inside the commands so ``demoforge --help`` stays instant and optional extras stay optional.

Exit codes: 0 success, 1 bad input or refused operation (one line on stderr), 2 usage error,
70 an internal error (a bug: the traceback is shown only with DEMOFORGE_DEBUG=1), 130 interrupted.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

app = typer.Typer(
    name="demoforge",
    help="Record, curate, augment, browse and export robot-learning demonstrations.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Logs and CI are not terminals; a wider page there keeps tables readable.
out = Console(width=None if sys.stdout.isatty() else 120)
err = Console(stderr=True)


def _say_error(text: str) -> None:
    """One line on stderr, never wrapped (scripts grep it)."""
    print(text, file=sys.stderr, flush=True)

StoreArg = Annotated[Path, typer.Argument(help="path of a demoforge store (a .zarr directory)")]
WhereOpt = Annotated[
    Optional[str],
    typer.Option("--where", "-w", help='filter, e.g. \'success and operator == "alice" and length > 20\''),
]


@app.command()
def info(store: StoreArg) -> None:
    """Summarise a store: spec, episodes, frames, hours, tasks, operators."""
    from toolkit.report import store_summary

    from toolkit.store import Store

    with Store.open(store) as s:
        store_summary(s, out)


@app.command("ls")
def list_episodes(
    store: StoreArg,
    where: WhereOpt = None,
    limit: Annotated[int, typer.Option(help="show at most this many rows (0: all)")] = 50,
    columns: Annotated[Optional[str], typer.Option(
        help="more columns, comma-separated, e.g. curation scores: quality.ok,compatibility.score")] = None,
) -> None:
    """List episodes (id, length, task, operator, success, factors, tags, flags, chosen scores)."""
    from toolkit.report import episode_table
    from toolkit.store import Store

    chosen = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    with Store.open(store) as s:
        episode_table(s, s.ids(where), out, limit, chosen)


@app.command()
def validate(
    path: Annotated[Path, typer.Argument(help="a store, a LeRobot/robomimic/replay-buffer dataset, or a spec/metadata .json")],
    deep: Annotated[bool, typer.Option(help="decode every frame of every episode (slow, thorough)")] = False,
) -> None:
    """Check a store, an external dataset or a JSON spec/metadata file; exit 1 with the first problem."""
    from toolkit.checks import validate_path

    message = validate_path(path, deep=deep)
    out.print(f"[green]ok[/green] {message}")


@app.command("import")
def import_(
    source: Annotated[Path, typer.Argument(help="LeRobot folder, robomimic .hdf5, or replay-buffer .zarr / .zarr.zip")],
    out_store: Annotated[Path, typer.Option("--out", "-o", help="store to create (or append to, if the spec matches)")],
    fmt: Annotated[Optional[str], typer.Option("--format", help="lerobot | robomimic | replay-buffer (default: detect)")] = None,
    task: Annotated[Optional[str], typer.Option(help="task text for formats that do not store one")] = None,
    image_codec: Annotated[str, typer.Option(help="jpeg | jpegxl | lossless")] = "jpeg",
    image_quality: Annotated[int, typer.Option(min=1, max=100, help="JPEG / JPEG-XL quality")] = 90,
    salvage: Annotated[bool, typer.Option(help="import the complete episodes of a dataset broken by a crash")] = False,
) -> None:
    """Import a LeRobot (v3.0, v2.1), robomimic or diffusion_policy/UMI/DemoGen dataset into a store."""
    from toolkit.convert import FORMATS, import_dataset
    from toolkit.store import StorageOptions

    _check_choice("--format", fmt, FORMATS)
    _check_choice("--image-codec", image_codec, ("jpeg", "jpegxl", "lossless"))
    options = StorageOptions(image_codec=image_codec, image_quality=image_quality)  # type: ignore[arg-type]
    store, ids = import_dataset(source, out_store, fmt, task, options, salvage)  # type: ignore[arg-type]
    out.print(f"imported {len(ids)} episodes into {store.root} (now {len(store)} episodes)")


@app.command()
def export(
    store: StoreArg,
    to: Annotated[str, typer.Option("--to", help="lerobot | robomimic | replay-buffer")],
    out_path: Annotated[Path, typer.Option("--out", "-o", help="output folder (LeRobot, replay buffer) or .hdf5 file")],
    where: WhereOpt = None,
    video: Annotated[bool, typer.Option("--video/--images", help="LeRobot: cameras as mp4 video or PNG images")] = True,
    vcodec: Annotated[str, typer.Option(help="LeRobot video codec: av1 (libsvtav1, LeRobot's default) or h264")] = "av1",
    overwrite: Annotated[bool, typer.Option(help="replace an existing output")] = False,
) -> None:
    """Export a store, or the episodes matching --where, to LeRobot v3.0, robomimic or a replay buffer."""
    from toolkit.convert import FORMATS, export_store
    from toolkit.store import Store

    _check_choice("--to", to, FORMATS)
    options: dict = {"overwrite": overwrite}
    if to == "lerobot":
        _check_choice("--vcodec", vcodec, ("av1", "h264"))
        options.update(video=video, vcodec={"av1": "libsvtav1", "h264": "h264"}[vcodec])
    with Store.open(store) as s:
        summary = export_store(s, out_path, to, where, **options)  # type: ignore[arg-type]
    out.print(f"exported {summary.episodes} episodes, {summary.frames} frames to {summary.out}")
    for note in [*summary.warnings, *(f"not exported: {item}" for item in summary.skipped)]:
        err.print(f"[yellow]note:[/yellow] {note}")


@app.command()
def merge(
    sources: Annotated[list[Path], typer.Argument(help="stores to merge (same fps and features)")],
    out_store: Annotated[Path, typer.Option("--out", "-o", help="new store")],
    where: WhereOpt = None,
) -> None:
    """Merge stores with compatible specs into a new store (stored bytes are copied, not re-encoded)."""
    from toolkit.store import Store, merge_stores

    opened = [Store.open(p) for p in sources]
    merged = merge_stores(opened, out_store, where)
    out.print(f"merged {len(opened)} stores into {merged.root}: {len(merged)} episodes")


@app.command()
def split(
    store: StoreArg,
    where: Annotated[str, typer.Option("--where", "-w", help="episodes that go to --out")],
    out_store: Annotated[Path, typer.Option("--out", "-o", help="new store for the matching episodes")],
    rest: Annotated[Optional[Path], typer.Option(help="new store for the other episodes")] = None,
) -> None:
    """Split a store by a filter into a new store (and optionally the rest into another)."""
    from toolkit.store import Store, merge_stores

    with Store.open(store) as s:
        chosen = merge_stores([s], out_store, where)
        out.print(f"{len(chosen)} episodes -> {chosen.root}")
        if rest is not None:
            others = merge_stores([s], rest, f"not ({where})")
            out.print(f"{len(others)} episodes -> {others.root}")


@app.command()
def delete(
    store: StoreArg,
    ids: Annotated[Optional[list[str]], typer.Argument(help="episode ids")] = None,
    where: WhereOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="needed with --where: confirm deleting every match")] = False,
) -> None:
    """Delete episodes by id or by filter. Each disappears atomically; other episodes are not touched."""
    from toolkit.errors import DemoforgeError
    from toolkit.store import Store

    if bool(ids) == bool(where):
        raise DemoforgeError("delete: give episode ids or --where, not both and not neither")
    with Store.open(store, mode="a") as s:
        chosen = list(ids) if ids else s.ids(where)
        if where and not yes:
            raise DemoforgeError(f"delete: --where matches {len(chosen)} episodes; add --yes to delete them")
        s.delete(chosen)
        out.print(f"deleted {len(chosen)} episodes; {len(s)} left")


@app.command()
def trim(
    store: StoreArg,
    episode: Annotated[str, typer.Argument(help="episode id")],
    start: Annotated[int, typer.Option(help="first frame to keep")] = 0,
    end: Annotated[Optional[int], typer.Option(help="frame after the last one to keep (default: the end)")] = None,
) -> None:
    """Keep frames [start, end) of an episode (images are not re-encoded)."""
    from toolkit.store import Store

    with Store.open(store, mode="a") as s:
        length = s.entry(episode)["length"]
        new = s.trim(episode, start, length if end is None else end)
        out.print(f"episode {episode}: {length} -> {new} frames")


@app.command()
def reindex(store: StoreArg) -> None:
    """Rebuild the catalog from the episodes (after the catalog file was lost or damaged)."""
    from toolkit.store import Store

    with Store.open(store, mode="a") as s:
        out.print(f"catalog rebuilt: {s.rebuild_catalog()} episodes")


@app.command()
def record(
    out_store: Annotated[Path, typer.Option("--out", "-o", help="store to record into (created, or appended to)")],
    env: Annotated[str, typer.Option(help="tabletop (embedded MuJoCo scene) or synthetic")] = "tabletop",
    task: Annotated[str, typer.Option(help="tabletop task: pick_place or push")] = "pick_place",
    device: Annotated[str, typer.Option(help="scripted, spacemouse, keyboard or replay")] = "scripted",
    episodes: Annotated[int, typer.Option(min=1, help="episodes to keep")] = 5,
    operator: Annotated[Optional[str], typer.Option(help="operator id written into each episode")] = None,
    style: Annotated[str, typer.Option(help="scripted operator style: careful, fast, side, hesitant or noisy")] = "careful",
    fps: Annotated[float, typer.Option(min=1, help="control rate in Hz")] = 10.0,
    max_steps: Annotated[int, typer.Option(min=1, help="frames after which an episode ends")] = 200,
    seed: Annotated[int, typer.Option(help="seed of the first episode's factors; the next ones count up")] = 0,
    height: Annotated[int, typer.Option(help="camera height in pixels")] = 240,
    width: Annotated[int, typer.Option(help="camera width in pixels")] = 320,
    replay_store: Annotated[Optional[Path], typer.Option(help="replay device: store to replay from")] = None,
    replay_episode: Annotated[Optional[str], typer.Option(help="replay device: episode id")] = None,
    realtime: Annotated[bool, typer.Option(help="pace the loop at --fps (--no-realtime: a scripted sim run goes flat out)")] = True,
    compat_base: Annotated[Optional[str], typer.Option(
        help="after each episode, show its compatibility with the base set this filter selects in --out "
             '(e.g. \'operator == "expert"\'): score and worst windows')] = None,
) -> None:
    """Record episodes by teleoperation (or a scripted operator) into a store; Ctrl-C keeps every finished episode."""
    from teleop.recording import record_command

    feedback = None
    if compat_base:
        from curation.elicit import Elicitor

        def feedback(s):  # fitted once the store is open, before the first episode
            return Elicitor.from_store(s, compat_base)

    record_command(out_store, env, task, device, episodes, operator, style, fps, max_steps, seed, height, width,
                   replay_store, replay_episode, err, realtime, feedback)


@app.command()
def curate(
    store: StoreArg,
    passes: Annotated[Optional[str], typer.Option(
        help="comma-separated: quality, diversity, compatibility, shortcuts "
             "(default: quality,diversity,shortcuts, plus compatibility with --base)")] = None,
    where: WhereOpt = None,
    base: Annotated[Optional[str], typer.Option(
        help='compatibility: filter selecting the base set, e.g. \'operator == "alice"\' or \'"expert" in tags\'')] = None,
    workers: Annotated[int, typer.Option(min=0, help="workers for the per-episode map (0: one per core for 200+ episodes)")] = 0,
    images: Annotated[bool, typer.Option(help="also use camera frames (visual diversity, background-pixel shortcut probe)")] = False,
    report: Annotated[Optional[Path], typer.Option(help="also write the JSON report here (always in STORE/curation/report.json)")] = None,
    scheduler: Annotated[Optional[str], typer.Option(
        help="where the map runs: 'local' (a Dask LocalCluster of --workers; the default when --workers > 1 "
             "and Dask is installed), 'tcp://HOST:PORT' (a running Dask cluster) or "
             "'pool' (local processes, no Dask)")] = None,
    retries: Annotated[int, typer.Option(min=0, help="Dask: resubmit a batch whose worker died this many times, "
                                                     "then report its episodes as not processed")] = 3,
) -> None:
    """Score episodes for quality, diversity, compatibility and shortcut factors; save the scores in the store."""
    from curation.commands import curate_command

    curate_command(store, passes, where, base, workers, images, report, out, scheduler=scheduler, retries=retries)


@app.command("select")
def select_(
    store: StoreArg,
    where: WhereOpt = None,
    view: Annotated[Optional[str], typer.Option(help="use a view saved in the store instead of --where")] = None,
    out_store: Annotated[Optional[Path], typer.Option("--out", "-o", help="copy the selected episodes into this new store")] = None,
    save_view: Annotated[Optional[str], typer.Option(help="save --where as a named view inside the store")] = None,
    note: Annotated[str, typer.Option(help="a note kept with --save-view")] = "",
    views: Annotated[bool, typer.Option("--views", help="list the views saved in the store")] = False,
    limit: Annotated[int, typer.Option(help="rows to show when neither --out nor --save-view is given")] = 20,
) -> None:
    """Select a curated subset by scores, tags and metadata (e.g. 'quality.ok and compatibility.score > 0.8')."""
    from toolkit.selection import select_command

    select_command(store, where, view, out_store, save_view, note, views, limit, out, err)


augment_app = typer.Typer(help="Multiply demonstrations with synthetic ones (new episodes with provenance).",
                          no_args_is_help=True)
app.add_typer(augment_app, name="augment")


@augment_app.command("greenscreen")
def augment_greenscreen(
    store: StoreArg,
    out_store: Annotated[Path, typer.Option("--out", "-o", help="store for the synthetic episodes (created or appended to)")],
    where: WhereOpt = None,
    key: Annotated[str, typer.Option(help='screen colour: "auto" (measured per episode and camera) or hex, e.g. "#439f82"')] = "auto",
    tola: Annotated[float, typer.Option(help="CbCr distance below which a pixel is fully screen (GreenAug: 30)")] = 30.0,
    tolb: Annotated[float, typer.Option(help="CbCr distance from which a pixel is fully foreground (GreenAug: 35)")] = 35.0,
    cameras: Annotated[Optional[str], typer.Option(help="cameras to key, comma-separated (default: every image feature)")] = None,
    backgrounds: Annotated[str, typer.Option(help='"procedural" textures, or a folder of png/jpg images')] = "procedural",
    per_frame: Annotated[bool, typer.Option(help="a new background every frame instead of one per episode")] = False,
    copies: Annotated[int, typer.Option(min=1, help="synthetic episodes per source episode")] = 1,
    scale: Annotated[str, typer.Option(help="min,max crop side as a fraction of the background")] = "0.5,1.0",
    spill: Annotated[float, typer.Option(help="green spill suppression on the robot and objects, 0..1")] = 0.5,
    blur_sigma: Annotated[float, typer.Option(help="blur of the matte in pixels (0: as GreenAug trains)")] = 0.0,
    seed: Annotated[int, typer.Option(help="seed of the background draws")] = 0,
    limit: Annotated[Optional[int], typer.Option(help="stop after this many synthetic episodes")] = None,
) -> None:
    """GreenAug-style green screen: key the screen, put new backgrounds behind the robot, save the matte."""
    from curation.augment_commands import greenscreen_command

    greenscreen_command(store, out_store, where, seed, limit, out, key=key, tola=tola, tolb=tolb, cameras=cameras,
                        backgrounds=backgrounds, per_frame=per_frame, copies=copies, scale=scale, spill=spill,
                        blur_sigma=blur_sigma)


@augment_app.command("pointcloud")
def augment_pointcloud(
    store: StoreArg,
    out_store: Annotated[Path, typer.Option("--out", "-o", help="store for the synthetic episodes (created or appended to)")],
    where: WhereOpt = None,
    grid: Annotated[int, typer.Option(min=1, help="object translations per axis (x, y) in grid mode")] = 2,
    object_range: Annotated[str, typer.Option("--range", help="object translation +- metres in x,y")] = "0.1,0.1",
    target_grid: Annotated[int, typer.Option(min=1, help="target translations per axis")] = 2,
    target_range: Annotated[str, typer.Option(help="target translation +- metres in x,y")] = "0.1,0.1",
    yaw: Annotated[str, typer.Option(help="object yaw edits in degrees, comma-separated (each with every translation)")] = "0",
    mode: Annotated[str, typer.Option(help="grid, or random (--count samples per source)")] = "grid",
    count: Annotated[int, typer.Option(min=1, help="samples per source episode in random mode")] = 16,
    frames: Annotated[Optional[str], typer.Option(help="manual segment frames: skill1 or skill1,motion2,skill2 (default: from gripper events)")] = None,
    segmentation: Annotated[str, typer.Option(help="boxes (--box), mask (first-frame mask lifted to a box) or plane (no masks: table plane removed, what stands on it clustered)")] = "boxes",
    boxes: Annotated[Optional[list[str]], typer.Option("--box", help="xmin,ymin,zmin,xmax,ymax,zmax (m): object, then target")] = None,
    mask_feature: Annotated[Optional[str], typer.Option(help="segmentation=mask: the mask feature")] = None,
    plane_threshold: Annotated[float, typer.Option(min=0.0, help="segmentation=plane: table-plane inlier distance (m); 0: the cloud is already cropped to the scene")] = 0.005,
    cluster_radius: Annotated[float, typer.Option(help="segmentation=plane: neighbour distance of the Euclidean clustering (m)")] = 0.015,
    min_cluster: Annotated[int, typer.Option(min=1, help="segmentation=plane: clusters with fewer points are noise")] = 10,
    objects: Annotated[int, typer.Option(min=1, max=2, help="segmentation=plane: 1 (object) or 2 (object, then target)")] = 2,
    background: Annotated[str, typer.Option(help="none (cloud cropped to the scene) or table (uncropped, table points stay)")] = "none",
    motion: Annotated[str, typer.Option(help="motion re-plan: offset, linear or lshape (DemoGen)")] = "offset",
    workspace: Annotated[Optional[str], typer.Option(help="xmin,ymin,zmin,xmax,ymax,zmax: reject demos leaving it")] = None,
    table_clearance: Annotated[float, typer.Option(help="reject when the end effector goes below the table plus this (m)")] = 0.0,
    viewpoint_translation: Annotated[float, typer.Option(help="viewpoint edit: +- metres per axis")] = 0.0,
    viewpoint_rotation: Annotated[float, typer.Option(help="viewpoint edit: +- degrees per axis")] = 0.0,
    seed: Annotated[int, typer.Option(help="seed of the random draws")] = 0,
    limit: Annotated[Optional[int], typer.Option(help="stop after this many synthetic episodes")] = None,
) -> None:
    """DemoGen-style point-cloud edits: move objects, adapt the trajectory, synthesise every frame's cloud."""
    from curation.augment_commands import pointcloud_command

    pointcloud_command(store, out_store, where, seed, limit, out, object_grid=grid, object_range=object_range,
                       target_grid=target_grid, target_range=target_range, yaw=yaw, mode=mode, count=count,
                       frames=frames, segmentation=segmentation, boxes=boxes, mask_feature=mask_feature,
                       plane_threshold=plane_threshold, cluster_radius=cluster_radius, min_cluster=min_cluster,
                       objects=objects,
                       background=background, motion=motion, workspace=workspace, table_clearance=table_clearance,
                       viewpoint_translation=viewpoint_translation, viewpoint_rotation=viewpoint_rotation)


@app.command()
def dashboard(
    stores: Annotated[list[Path], typer.Argument(help="one or more demoforge stores (.zarr directories)")],
    host: Annotated[str, typer.Option(help="address to serve on; anything but 127.0.0.1 exposes the stores")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to serve on")] = 8050,
) -> None:
    """Browse, filter, tag and export episodes in a web browser (serves until Ctrl-C)."""
    from dashboard.command import dashboard_command

    dashboard_command(stores, host, port, out)


@app.command()
def demo(
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="where to write the demo store and exports")] = Path("demo-output"),
    scale: Annotated[int, typer.Option(min=1, help="multiply the episodes recorded per operator")] = 1,
    serve: Annotated[bool, typer.Option("--serve/--no-serve", help="end by serving the dashboard on the results")] = True,
    port: Annotated[int, typer.Option(help="dashboard port")] = 8050,
) -> None:
    """The main job end to end on the embedded simulator: record, curate, augment, export, then browse."""
    from curation.demo import run_demo

    run_demo(out_dir, scale, out)
    if serve:
        from dashboard.command import dashboard_command

        stores = [out_dir / name for name in ("store.zarr", "greenscreen.zarr", "pointcloud.zarr")]
        dashboard_command([s for s in stores if s.exists()], "127.0.0.1", port, out)


def _check_choice(flag: str, value: str | None, choices: tuple[str, ...]) -> None:
    from toolkit.errors import DemoforgeError

    if value is not None and value not in choices:
        raise DemoforgeError(f"{flag} {value!r}: expected one of {', '.join(choices)}")


def main() -> None:
    """Entry point: run a command, turning errors into one line and an exit code."""
    try:
        app(standalone_mode=False)
    except KeyboardInterrupt:
        _say_error("interrupted: every episode committed before Ctrl-C is intact; nothing partial was kept")
        sys.exit(130)
    except Exception as e:  # noqa: BLE001 - the one place that decides what a user sees
        _report(e)


def _report(e: Exception) -> None:
    from toolkit.errors import DemoforgeError

    usage = _usage_error(e)
    if usage is not None:
        sys.exit(usage)
    if isinstance(e, DemoforgeError):
        _say_error(f"error: {e}")
        sys.exit(1)
    if os.environ.get("DEMOFORGE_DEBUG"):
        traceback.print_exc()
    else:
        _say_error(f"internal error (a bug in demoforge, please report it): {type(e).__name__}: {e}. "
                   "Set DEMOFORGE_DEBUG=1 to see the traceback.")
    sys.exit(70)


def _usage_error(e: Exception) -> int | None:
    """Exit code for click/typer's own usage errors and exits (they print their message themselves)."""
    show = getattr(e, "show", None)
    exit_code = getattr(e, "exit_code", None)
    if callable(show) and exit_code is not None:
        show()
        return int(exit_code)
    if type(e).__name__ in ("Exit", "Abort"):
        return int(getattr(e, "exit_code", 1) or 0)
    return None


if __name__ == "__main__":
    main()
