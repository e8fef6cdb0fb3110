"""Benchmark LeRobot v3.0 export: demoforge's ``export_lerobot`` vs the real lerobot 0.6.1 writer.

    python benchmarks/bench_lerobot_export.py [--quick] [--oracle-python PATH] [--no-noise]

The same episodes (default 4 x 90 steps, two 480x640 RGB cameras, state/action float32[7], 30 fps; --quick:
2 x 30 steps at 240x320; the noise rows use the first 2, or 1 with --quick) are written three ways by both writers: image mode (PNG in the data parquet), video
mode with libsvtav1 (lerobot's default) and video mode with h264. lerobot runs in its own venv (the
lerobot-oracle, see shared/tools/lerobot-oracle): a helper script written to a temp file loads the episodes
from an .npz file and calls ``LeRobotDataset.create`` / ``add_frame`` / ``save_episode`` / ``finalize`` with
lerobot's defaults, timing only those calls (importing torch and lerobot is excluded). demoforge's side is
timed around ``export_lerobot`` only (episodes already in memory). Each writer first does an untimed tiny
warm-up export per mode.

The sample images are synthetic gradients with a moving square, which compress far better than camera
photos; "noise" rows repeat everything with seeded uniform noise in [-8, 8] added to every pixel.

The oracle's python comes from --oracle-python, else $LEROBOT_ORACLE_PYTHON, else the default location that
lerobot-oracle/setup.sh builds (~/.cache/demoforge/lerobot-oracle-0.6.1/bin/python); without one the lerobot
columns say "n/a (set LEROBOT_ORACLE_PYTHON)".
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

try:
    import toolkit  # noqa: F401
except ImportError:  # run from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from toolkit.episode import Episode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import NOISE, noisy, parser, table, tree_bytes  # noqa: E402
from toolkit.sample import sample_episode, sample_spec
from toolkit.spec import DatasetSpec

MODES = (("image", None), ("video", "libsvtav1"), ("video", "h264"))
# An extra lerobot-only run: h264 with the settings our exporter uses (lerobot's default is crf 30, x264's medium).
MATCHED_H264 = {"crf": 23, "preset": "veryfast"}
NA = "n/a (set LEROBOT_ORACLE_PYTHON)"


@dataclass(frozen=True)
class Plan:
    episodes: int
    length: int
    height: int
    width: int
    noise_episodes: int  # the noise rows use the first N episodes (lerobot's PNG path is slow on noise)


FULL = Plan(4, 90, 480, 640, 2)
QUICK = Plan(2, 30, 240, 320, 1)

# Runs inside the oracle's python (numpy + lerobot only; no demoforge). argv: jobs.json; prints one JSON line.
ORACLE_SCRIPT = r'''
import json, os, shutil, sys, tempfile, time
import numpy as np

job_file = sys.argv[1]
cfg = json.load(open(job_file))
scratch = tempfile.mkdtemp(prefix="lerobot-bench-")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HOME"] = os.path.join(scratch, "hf")
os.environ["HF_LEROBOT_HOME"] = os.path.join(scratch, "lerobot")
os.environ.setdefault("SVT_LOG", "1")
try:
    import lerobot
    from lerobot.configs import RGBEncoderConfig
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    def features(mode):
        out = {}
        for name, f in cfg["features"].items():
            dtype = mode if f["dtype"] == "image" else f["dtype"]
            out[name] = {"dtype": dtype, "shape": tuple(f["shape"]), "names": f["names"]}
        return out

    def load(npz_path):
        with np.load(npz_path) as z:
            arrays = {k: z[k] for k in z.files}
        episodes = []
        for e, task in enumerate(cfg["tasks"][npz_path]):
            episodes.append(({name: arrays[f"{e}/{name}"] for name in cfg["features"]}, task))
        return episodes

    def write(root, mode, vcodec, encoder, episodes):
        t0 = time.perf_counter()
        ds = LeRobotDataset.create(
            repo_id="local/" + os.path.basename(root), fps=cfg["fps"], features=features(mode), root=root,
            robot_type=cfg["robot_type"], use_videos=mode == "video",
            rgb_encoder=RGBEncoderConfig(vcodec=vcodec, **encoder) if vcodec else None,
        )
        try:
            for data, task in episodes:
                n = len(next(iter(data.values())))
                for i in range(n):
                    frame = {name: arr[i] for name, arr in data.items()}
                    frame["task"] = task
                    ds.add_frame(frame)
                ds.save_episode()
        finally:
            ds.finalize()
        return time.perf_counter() - t0

    results = []
    data = {}
    for job in cfg["jobs"]:
        if job["npz"] not in data:
            data = {job["npz"]: load(job["npz"])}  # one image variant in memory at a time
        episodes = data[job["npz"]]
        if job.get("warmup"):
            # untimed: lerobot's first-call costs (lazy imports, encoder init) with 2 frames of 1 episode
            d, task = episodes[0]
            write(job["out"], job["mode"], job["vcodec"], job["encoder"], [({k: v[:2] for k, v in d.items()}, task)])
            shutil.rmtree(job["out"], ignore_errors=True)
            continue
        seconds = write(job["out"], job["mode"], job["vcodec"], job["encoder"], episodes)
        results.append({"name": job["name"], "seconds": seconds})
        print(f"[oracle] {job['name']}: {seconds:.2f} s", file=sys.stderr, flush=True)
    print(json.dumps({"lerobot_version": lerobot.__version__, "results": results}))
finally:
    shutil.rmtree(scratch, ignore_errors=True)
'''


def log(msg: str) -> None:
    print(f"[bench_lerobot_export {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)








def find_oracle(explicit: str | None) -> tuple[str | None, str]:
    """The oracle's python and where it came from (None when there is none)."""
    if explicit:
        return (explicit if os.access(explicit, os.X_OK) else None), "--oracle-python"
    env = os.environ.get("LEROBOT_ORACLE_PYTHON")
    if env:
        return (env if os.access(env, os.X_OK) else None), "LEROBOT_ORACLE_PYTHON"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    default = cache / "demoforge" / "lerobot-oracle-0.6.1" / "bin" / "python"
    if os.access(default, os.X_OK):
        return str(default), f"default location {default}"
    return None, "not found"


def oracle_features(spec: DatasetSpec) -> dict:
    out = {}
    for name, f in spec.features.items():
        if f.kind == "image":
            out[name] = {"dtype": "image", "shape": list(f.shape), "names": ["height", "width", "channels"]}
        else:
            out[name] = {"dtype": f.dtype, "shape": list(f.shape), "names": list(f.names) if f.names else None}
    return out


def save_npz(path: Path, episodes: list[Episode]) -> list[str]:
    arrays = {f"{e}/{name}": arr for e, ep in enumerate(episodes) for name, arr in ep.data.items()}
    np.savez(path, **arrays)
    return [ep.meta.task for ep in episodes]


def video_settings(root: Path) -> str:
    info = json.loads((root / "meta" / "info.json").read_text())
    for f in info["features"].values():
        if f.get("dtype") == "video":
            i = f.get("info") or {}
            keys = ("video.codec", "video.crf", "video.preset", "video.g", "video.pix_fmt")
            return " ".join(f"{k.split('.', 1)[1]}={i[k]}" for k in keys if k in i)
    return "-"


def run_ours(spec: DatasetSpec, variants: dict[str, list[Episode]], work: Path) -> dict:
    from toolkit.formats.lerobot import export_lerobot

    results = {}
    for mode, vcodec in MODES:
        warm = work / f"ours-warmup-{mode}-{vcodec}"
        ep0 = variants["sample"][0]
        tiny = Episode(data={k: v[:2] for k, v in ep0.data.items()}, meta=ep0.meta)
        export_lerobot(spec, [tiny], warm, video=mode == "video", vcodec=vcodec or "libsvtav1")
        shutil.rmtree(warm)
    for images, episodes in variants.items():
        for mode, vcodec in MODES:
            name = f"{mode}-{vcodec or 'png'}-{images}"
            out = work / f"ours-{name}"
            log(f"ours: {name}")
            t0 = time.perf_counter()
            export_lerobot(spec, episodes, out, video=mode == "video", vcodec=vcodec or "libsvtav1")
            seconds = time.perf_counter() - t0
            results[name] = {"seconds": seconds, "bytes": tree_bytes(out),
                             "video": video_settings(out) if mode == "video" else "-"}
            shutil.rmtree(out)
    return results


def run_lerobot(python: str, spec: DatasetSpec, variants: dict[str, list[Episode]], work: Path) -> tuple[dict, str]:
    script = work / "lerobot_write.py"
    script.write_text(ORACLE_SCRIPT)
    tasks, jobs = {}, []
    for images, episodes in variants.items():
        npz = work / f"episodes-{images}.npz"
        log(f"writing {npz.name} for the oracle")
        tasks[str(npz)] = save_npz(npz, episodes)
        matched = [("video", "h264", MATCHED_H264, "-matched")] if images == "sample" else []
        for mode, vcodec, encoder, suffix in [(m, v, {}, "") for m, v in MODES] + matched:
            name = f"{mode}-{vcodec or 'png'}{suffix}-{images}"
            if images == next(iter(variants)):
                jobs.append({"name": f"warmup-{name}", "npz": str(npz), "mode": mode, "vcodec": vcodec,
                             "encoder": encoder, "out": str(work / f"lerobot-warmup-{name}"), "warmup": True})
            jobs.append({"name": name, "npz": str(npz), "mode": mode, "vcodec": vcodec, "encoder": encoder,
                         "out": str(work / f"lerobot-{name}")})
    cfg = {"fps": int(spec.fps), "robot_type": spec.robot_type, "features": oracle_features(spec),
           "tasks": tasks, "jobs": jobs}
    (work / "jobs.json").write_text(json.dumps(cfg))
    log(f"lerobot: running {len(jobs)} jobs in {python}")
    with tempfile.TemporaryFile("w+") as stdout:
        proc = subprocess.Popen([python, str(script), str(work / "jobs.json")], stdout=stdout,
                                stderr=subprocess.PIPE, text=True)
        tail: list[str] = []
        for line in proc.stderr:  # progress as it happens; keep the rest for an error message
            if line.startswith("[oracle]"):
                log(line.rstrip())
            else:
                tail = (tail + [line])[-40:]
        proc.wait()
        stdout.seek(0)
        text = stdout.read()
    if proc.returncode != 0:
        raise RuntimeError(f"the lerobot writer failed (exit {proc.returncode}): {''.join(tail).strip()[-2000:]}")
    report = json.loads(text.strip().splitlines()[-1])
    results = {}
    for r in report["results"]:
        out = work / f"lerobot-{r['name']}"
        results[r["name"]] = {"seconds": r["seconds"], "bytes": tree_bytes(out),
                              "video": video_settings(out) if r["name"].startswith("video") else "-"}
        shutil.rmtree(out)
    return results, report["lerobot_version"]


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__, quick="small run (<~40 s): 2 episodes x 30 steps at 240x320",
                tmpdir="scratch directory (default: system temp)")
    ap.add_argument("--oracle-python", default=None,
                    help="python of the lerobot-oracle venv (default: $LEROBOT_ORACLE_PYTHON, else setup.sh's default path)")
    ap.add_argument("--no-noise", action="store_true", help="skip the noise-textured image rows")
    ap.add_argument("--seed", type=int, default=0, help="seed of the sample data and the noise (default 0)")
    args = ap.parse_args(argv)
    plan = QUICK if args.quick else FULL
    started = time.perf_counter()

    spec = sample_spec(cameras=2, height=plan.height, width=plan.width, fps=30)
    log(f"generating {plan.episodes} episodes x {plan.length} steps at {plan.height}x{plan.width}")
    sample = [sample_episode(spec, i, args.seed, plan.length) for i in range(plan.episodes)]
    variants = {"sample": sample}
    if not args.no_noise:
        variants["noise"] = [noisy(ep, args.seed * 1000 + i) for i, ep in enumerate(sample[:plan.noise_episodes])]

    python, source = find_oracle(args.oracle_python)
    if args.tmpdir:
        args.tmpdir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench_lerobot_export-", dir=args.tmpdir))
    lerobot_note = f"lerobot: {NA}"
    try:
        ours = run_ours(spec, variants, work)
        theirs: dict = {}
        if python:
            try:
                theirs, version = run_lerobot(python, spec, variants, work)
                lerobot_note = f"lerobot {version} via {python} ({source})"
            except (RuntimeError, subprocess.TimeoutExpired, ValueError, KeyError) as exc:
                lerobot_note = f"lerobot: failed, {str(exc).splitlines()[-1] if str(exc) else type(exc).__name__}"
                log(str(exc))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    rows, settings = [], []
    for images in variants:
        matched = [("video", "h264", "-matched")] if images == "sample" else []
        for mode, vcodec, suffix in [(m, v, "") for m, v in MODES] + matched:
            name = f"{mode}-{vcodec or 'png'}{suffix}-{images}"
            label = "image (PNG)" if mode == "image" else f"video {vcodec}"
            if suffix:
                label += " (lerobot crf23 veryfast)"
            o, t = ours[f"{mode}-{vcodec or 'png'}-{images}"], theirs.get(name)
            steps = sum(ep.length for ep in variants[images])
            rows.append([
                label, images, str(steps), f"{o['seconds']:.2f}",
                f"{t['seconds']:.2f}" if t else NA,
                f"{t['seconds'] / o['seconds']:.2f}" if t else "n/a",
                f"{o['bytes'] / 1e6:.2f}", f"{t['bytes'] / 1e6:.2f}" if t else "n/a",
            ])
            if mode == "video" and images == "sample":
                settings.append(f"- {label}: ours {o['video']}; lerobot {t['video'] if t else 'n/a'}")
            if suffix and not t:
                rows.pop()

    frames = plan.episodes * plan.length
    raw_mb = sum(sum(a.nbytes for a in ep.data.values()) for ep in sample) / 1e6
    out = [
        f"# LeRobot v3.0 export benchmark{' (--quick)' if args.quick else ''}",
        "",
        f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; {lerobot_note}",
        f"Data: {plan.episodes} episodes x {plan.length} steps = {frames} steps, sample_spec(cameras=2, "
        f"{plan.height}x{plan.width}, fps=30), state/action float32[7] + next.reward; raw {raw_mb:.0f} MB. "
        f"The noise rows use the first {plan.noise_episodes} episode(s) only (time budget).",
        "NOTE: 'sample' images are synthetic gradients + a square and compress far better than real camera "
        f"images; 'noise' rows add seeded uniform noise in [-{NOISE}, {NOISE}] to every pixel (pessimistic).",
        "Timed: ours = export_lerobot(...) with the episodes in memory; lerobot = LeRobotDataset.create .. "
        "add_frame .. save_episode .. finalize (defaults: synchronous image writer, no streaming encoding), "
        "torch/lerobot import excluded. lerobot/ours > 1 means ours is faster.",
        "",
        table(["mode", "images", "steps", "ours s", "lerobot s", "lerobot/ours", "ours MB", "lerobot MB"], rows),
        "",
        "Encoder settings recorded in meta/info.json:",
        *settings,
        "",
        f"total runtime {time.perf_counter() - started:.0f} s",
    ]
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
