"""LeRobot datasets without lerobot: export v3.0, import v3.0 / v2.1 / v2.0, salvage crashed recordings.

Everything on disk is parquet + JSON + mp4, written and read here with pyarrow, pandas (``tasks.parquet``
only), imagecodecs (PNG) and PyAV. The format facts are in ``shared/reference/lerobot_v30.md``; the real
lerobot library judges our output in the tests (``shared/tools/lerobot-oracle``), never at run time.

Layout written by ``export_lerobot`` (v3.0)::

    meta/info.json  meta/stats.json  meta/tasks.parquet  meta/episodes/chunk-000/file-000.parquet
    data/chunk-000/file-000.parquet             one row group per episode, rotated at ~100 MB
    videos/<camera>/chunk-000/file-000.mp4      video mode: episodes back to back, rotated at ~200 MB
    meta/demoforge_spec.json                    our spec (kinds, skipped features); lerobot ignores it
    meta/demoforge_episodes.jsonl               our episode metadata, one line per episode_index

Features LeRobot has no standard place for (depth, point clouds, masks, text) are skipped and listed in
``ExportSummary.skipped``.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import imagecodecs
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from toolkit.episode import Episode, EpisodeMeta, check_episode
from toolkit.errors import DemoforgeError, FormatError
from toolkit.spec import DatasetSpec, Feature

__all__ = ["ExportSummary", "LeRobotSource", "export_lerobot", "read_lerobot"]

CODEBASE_VERSION = "v3.0"
READABLE_VERSIONS = ("v3.0", "v2.1", "v2.0")
CHUNKS_SIZE = 1000  # files per chunk directory, as lerobot
DATA_FILE_SIZE_MB = 100
VIDEO_FILE_SIZE_MB = 200
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
SPEC_SIDECAR = "meta/demoforge_spec.json"
EPISODES_SIDECAR = "meta/demoforge_episodes.jsonl"
DEFAULT_COLUMNS = ("timestamp", "frame_index", "episode_index", "index", "task_index")
QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}
PNG_LEVEL = 6  # lerobot's compress_level for image features

# demoforge name -> (PyAV encoder, codec name lerobot records in info.json, default crf, preset option)
_ENCODERS: dict[str, tuple[str, str, int, str | None]] = {
    "libsvtav1": ("libsvtav1", "av1", 30, "12"),
    "av1": ("libsvtav1", "av1", 30, "12"),
    "libaom-av1": ("libaom-av1", "av1", 30, None),
    "h264": ("libx264", "h264", 23, "veryfast"),
    "libx264": ("libx264", "h264", 23, "veryfast"),
    "hevc": ("libx265", "hevc", 28, "veryfast"),
    "libx265": ("libx265", "hevc", 28, "veryfast"),
}
_GOP = 2  # lerobot's default: every other frame is a keyframe, so random access stays cheap


# --------------------------------------------------------------------------------------------------
# Export: which of our features go where
# --------------------------------------------------------------------------------------------------


@dataclass
class ExportSummary:
    """What ``export_lerobot`` wrote."""

    out: Path
    episodes: int
    frames: int
    skipped: list[str]
    mode: str  # "image" or "video"
    vcodec: str | None
    data_files: int = 1
    video_files: int = 0


@dataclass(frozen=True)
class _Column:
    """One exported feature: how it is stored (vector / scalar / image / video) and its info.json entry."""

    name: str
    feature: Feature
    storage: str
    info: dict[str, Any]

    @property
    def width(self) -> int:
        return int(np.prod(self.feature.shape)) if self.feature.shape else 1


def _plan_columns(spec: DatasetSpec, video: bool) -> tuple[list[_Column], list[str]]:
    """Map our features onto LeRobot features; return the exported columns and the skipped names."""
    columns: list[_Column] = []
    skipped: list[str] = []
    for name, f in spec.features.items():
        names = list(f.names) if f.names is not None else None
        if f.kind in ("state", "action") and len(f.shape) == 1:
            storage = "scalar" if f.shape == (1,) else "vector"
            columns.append(_Column(name, f, storage, {"dtype": "float32", "shape": list(f.shape), "names": names}))
        elif f.kind == "scalar" and len(f.shape) <= 1 and f.dtype != "string":
            dtype = "float32" if f.dtype in ("float32", "float64") else f.dtype
            shape = list(f.shape) or [1]
            storage = "scalar" if shape == [1] else "vector"
            columns.append(_Column(name, f, storage, {"dtype": dtype, "shape": shape, "names": names}))
        elif f.kind == "image" and f.dtype == "uint8" and len(f.shape) == 3 and f.shape[2] == 3:
            h, w, c = f.shape
            entry: dict[str, Any] = {"dtype": "video" if video else "image", "shape": [h, w, c],
                                     "names": ["height", "width", "channels"]}
            columns.append(_Column(name, f, "video" if video else "image", entry))
        else:
            # depth / pointcloud / mask / text (and odd shapes) have no standard LeRobot feature
            skipped.append(name)
    return columns, skipped


def _arrow_type(col: _Column) -> pa.DataType:
    if col.storage == "image":
        return pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    value = pa.from_numpy_dtype(np.dtype(col.info["dtype"]))
    return value if col.storage == "scalar" else pa.list_(value, col.width)


def _data_schema(columns: list[_Column]) -> pa.Schema:
    fields = [pa.field(c.name, _arrow_type(c)) for c in columns if c.storage != "video"]
    fields.append(pa.field("timestamp", pa.float32()))
    fields += [pa.field(n, pa.int64()) for n in DEFAULT_COLUMNS[1:]]
    return pa.schema(fields)


def _episode_table(columns: list[_Column], schema: pa.Schema, data: dict[str, np.ndarray], fps: int,
                   episode_index: int, first_index: int, task_index: int) -> pa.Table:
    """One episode as a table of the data parquet's schema (video columns left out)."""
    n = len(next(iter(data.values())))
    arrays: list[pa.Array] = []
    for col in columns:
        if col.storage == "video":
            continue
        array = data[col.name]
        if col.storage == "image":
            pngs = [imagecodecs.png_encode(np.ascontiguousarray(frame), level=PNG_LEVEL) for frame in array]
            paths = [f"frame-{i:06d}.png" for i in range(n)]
            arrays.append(pa.StructArray.from_arrays(
                [pa.array(pngs, pa.binary()), pa.array(paths, pa.string())], names=["bytes", "path"]))
            continue
        values = np.ascontiguousarray(array.reshape(n, -1).astype(col.info["dtype"], copy=False))
        if col.storage == "scalar":
            arrays.append(pa.array(values.reshape(n)))
        else:
            arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), col.width))
    frame_index = np.arange(n, dtype=np.int64)
    # timestamp is frame_index / fps by contract (lerobot decodes video at from_timestamp + timestamp)
    arrays.append(pa.array((frame_index / fps).astype(np.float32)))
    arrays.append(pa.array(frame_index))
    arrays.append(pa.array(np.full(n, episode_index, np.int64)))
    arrays.append(pa.array(first_index + frame_index))
    arrays.append(pa.array(np.full(n, task_index, np.int64)))
    return pa.Table.from_arrays(arrays, schema=schema)


# --------------------------------------------------------------------------------------------------
# Export: statistics (per episode, then aggregated as lerobot's aggregate_stats does)
# --------------------------------------------------------------------------------------------------


def _sample_count(n: int) -> int:
    """lerobot's estimate_num_samples: all frames up to 100, then n**0.75, at most 10 000."""
    return n if n <= 100 else max(100, min(int(n ** 0.75), 10_000))


def _image_stats(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Per-channel stats of uint8 (T, H, W, 3) frames in [0, 1], shaped (3, 1, 1) like lerobot's."""
    idx = np.round(np.linspace(0, len(frames) - 1, _sample_count(len(frames)))).astype(int)
    sample = frames[idx]
    step = max(1, max(sample.shape[1:3]) // 150) if max(sample.shape[1:3]) > 300 else 1
    pixels = sample[:, ::step, ::step].reshape(-1, sample.shape[-1]).astype(np.float64) / 255.0
    stats = _vector_stats(pixels)
    stats["count"] = np.array([len(frames)], np.int64)
    return {k: (v if k == "count" else v.reshape(-1, 1, 1)) for k, v in stats.items()}


def _vector_stats(values: np.ndarray) -> dict[str, np.ndarray]:
    """min/max/mean/std/count/quantiles over axis 0 of an (N, D) array, as float64."""
    values = values.astype(np.float64, copy=False)
    stats = {"min": values.min(0), "max": values.max(0), "mean": values.mean(0), "std": values.std(0),
             "count": np.array([len(values)], np.int64)}
    qs = np.quantile(values, list(QUANTILES.values()), axis=0)
    stats.update({k: qs[i] for i, k in enumerate(QUANTILES)})
    return stats


class _StatsAggregator:
    """Running dataset stats from per-episode stats: exact min/max/mean/std, count-weighted quantiles."""

    def __init__(self) -> None:
        self._acc: dict[str, dict[str, Any]] = {}

    def add(self, name: str, stats: dict[str, np.ndarray]) -> None:
        n = int(stats["count"][0])
        acc = self._acc.setdefault(name, {"n": 0, "min": None, "max": None, "sum": 0.0, "sumsq": 0.0,
                                          **{q: 0.0 for q in QUANTILES}})
        acc["n"] += n
        acc["min"] = stats["min"] if acc["min"] is None else np.minimum(acc["min"], stats["min"])
        acc["max"] = stats["max"] if acc["max"] is None else np.maximum(acc["max"], stats["max"])
        acc["sum"] = acc["sum"] + stats["mean"] * n
        acc["sumsq"] = acc["sumsq"] + (stats["std"] ** 2 + stats["mean"] ** 2) * n
        for q in QUANTILES:
            acc[q] = acc[q] + stats[q] * n

    def result(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for name, acc in self._acc.items():
            n = acc["n"]
            mean = acc["sum"] / n
            std = np.sqrt(np.maximum(acc["sumsq"] / n - mean ** 2, 0.0))
            entry = {"min": acc["min"], "max": acc["max"], "mean": mean, "std": std, "count": np.array([n])}
            entry.update({q: acc[q] / n for q in QUANTILES})
            out[name] = {k: np.asarray(v).tolist() for k, v in entry.items()}
        return out


def _episode_stats(columns: list[_Column], data: dict[str, np.ndarray], table: pa.Table) -> dict[str, dict]:
    stats: dict[str, dict[str, np.ndarray]] = {}
    for col in columns:
        array = data[col.name]
        if col.storage in ("image", "video"):
            stats[col.name] = _image_stats(array)
        else:
            stats[col.name] = _vector_stats(array.reshape(len(array), -1).astype(col.info["dtype"]))
    for name in DEFAULT_COLUMNS:
        stats[name] = _vector_stats(table.column(name).to_numpy().reshape(-1, 1))
    return stats


# --------------------------------------------------------------------------------------------------
# Export: rotating writers
# --------------------------------------------------------------------------------------------------


def _next_file(chunk: int, file: int) -> tuple[int, int]:
    return (chunk + 1, 0) if file + 1 >= CHUNKS_SIZE else (chunk, file + 1)


class _DataWriter:
    """Data parquet files, one row group per episode, a new file once the current one reaches the limit."""

    def __init__(self, root: Path, schema: pa.Schema, limit_bytes: float) -> None:
        self.root, self.schema, self.limit = root, schema, limit_bytes
        self.chunk, self.file, self.files = 0, -1, 0
        self._sink: pa.NativeFile | None = None
        self._writer: pq.ParquetWriter | None = None

    def write(self, table: pa.Table) -> tuple[int, int]:
        """Write one episode; return its (chunk_index, file_index)."""
        if self._writer is None or self._sink.tell() >= self.limit:
            self._open_next()
        self._writer.write_table(table, row_group_size=max(1, table.num_rows))
        return self.chunk, self.file

    def _open_next(self) -> None:
        self.close()
        self.chunk, self.file = (0, 0) if self.file < 0 else _next_file(self.chunk, self.file)
        path = self.root / DATA_PATH.format(chunk_index=self.chunk, file_index=self.file)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._sink = pa.OSFile(str(path), "wb")
        self._writer = pq.ParquetWriter(self._sink, self.schema, compression="snappy")
        self.files += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()  # writes the footer; never leave a footerless file behind
            self._sink.close()
        self._writer = self._sink = None


class _VideoWriter:
    """One camera's mp4 files: episodes encoded back to back, a new file once the limit is reached."""

    def __init__(self, root: Path, key: str, height: int, width: int, fps: int, vcodec: str,
                 crf: int | None, limit_bytes: float) -> None:
        encoder, _, default_crf, preset = _ENCODERS[vcodec]
        self.options = {"g": str(_GOP), "crf": str(default_crf if crf is None else crf)}
        if preset is not None:
            self.options["preset"] = preset
        self.root, self.key, self.encoder = root, key, encoder
        self.height, self.width, self.fps, self.limit = height, width, fps, limit_bytes
        self.chunk, self.file, self.files = 0, -1, 0
        self._container: Any = None
        self._stream: Any = None
        self._frames = 0  # frames already in the current file
        self._bytes = 0

    def write(self, frames: np.ndarray) -> tuple[int, int, float, float]:
        """Encode one episode; return (chunk_index, file_index, from_timestamp, to_timestamp)."""
        if self._container is None or self._bytes >= self.limit:
            self._open_next()
        start = self._frames
        for image in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = self._frames, Fraction(1, self.fps)
            self._mux(self._stream.encode(frame))
            self._frames += 1
        return self.chunk, self.file, start / self.fps, self._frames / self.fps

    def _mux(self, packets: list) -> None:
        for packet in packets:
            self._bytes += packet.size
            self._container.mux(packet)

    def _open_next(self) -> None:
        self.close()
        self.chunk, self.file = (0, 0) if self.file < 0 else _next_file(self.chunk, self.file)
        path = self.root / VIDEO_PATH.format(video_key=self.key, chunk_index=self.chunk, file_index=self.file)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(path), "w")
        self._stream = self._container.add_stream(self.encoder, rate=self.fps, options=dict(self.options))
        self._stream.width, self._stream.height, self._stream.pix_fmt = self.width, self.height, "yuv420p"
        self._frames = self._bytes = 0
        self.files += 1

    def close(self) -> None:
        if self._container is not None:
            self._mux(self._stream.encode())  # flush delayed frames before the moov atom is written
            self._container.close()
        self._container = self._stream = None


# --------------------------------------------------------------------------------------------------
# Export: the public entry point
# --------------------------------------------------------------------------------------------------


def _check_export_args(spec: DatasetSpec, out: Path, video: bool, vcodec: str, overwrite: bool) -> int:
    if float(spec.fps) != int(spec.fps):
        raise FormatError(f"{out}: spec fps {spec.fps} is not an integer; LeRobot v3.0 stores an integer fps")
    if video and vcodec not in _ENCODERS:
        raise FormatError(f"{out}: vcodec '{vcodec}' is not supported; expected one of {sorted(_ENCODERS)}")
    if video:
        try:
            av.codec.Codec(_ENCODERS[vcodec][0], "w")
        except Exception:
            raise FormatError(f"{out}: this PyAV build has no '{_ENCODERS[vcodec][0]}' encoder; "
                              f"try vcodec='h264'") from None
    if out.exists() and not out.is_dir():
        raise FormatError(f"{out}: exists and is not a directory; expected a new or empty output directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise FormatError(f"{out}: directory is not empty; pass overwrite=True (--overwrite) to replace it")
    return int(spec.fps)


def _check_video_shape(col: _Column, out: Path) -> None:
    h, w, _ = col.feature.shape
    if h % 2 or w % 2:
        raise FormatError(f"{out}: feature '{col.name}' is {h}x{w}; yuv420p video needs even height and width "
                          f"(export in image mode instead)")


def _info_json(spec: DatasetSpec, columns: list[_Column], fps: int, episodes: int, frames: int, tasks: int,
               video: bool, encoder: tuple | None, crf: int | None, data_mb: float, video_mb: float) -> dict:
    features: dict[str, Any] = {}
    for col in columns:
        entry = dict(col.info)
        if col.storage == "video":
            h, w, c = col.feature.shape
            _, codec, default_crf, preset = encoder
            entry["info"] = {"video.height": h, "video.width": w, "video.codec": codec, "video.pix_fmt": "yuv420p",
                             "video.fps": fps, "video.channels": c, "has_audio": False, "video.g": _GOP,
                             "video.crf": default_crf if crf is None else crf, "is_depth_map": False}
            if preset is not None:
                entry["info"]["video.preset"] = preset
        features[col.name] = entry
    features["timestamp"] = {"dtype": "float32", "shape": [1], "names": None}
    for name in DEFAULT_COLUMNS[1:]:
        features[name] = {"dtype": "int64", "shape": [1], "names": None}
    return {
        "codebase_version": CODEBASE_VERSION, "fps": fps, "features": features,
        "total_episodes": episodes, "total_frames": frames, "total_tasks": tasks,
        "chunks_size": CHUNKS_SIZE, "data_files_size_in_mb": data_mb, "video_files_size_in_mb": video_mb,
        "data_path": DATA_PATH, "video_path": VIDEO_PATH if video else None,
        "robot_type": spec.robot_type, "splits": {"train": f"0:{episodes}"},
    }


def _episode_row(index: int, task: str, length: int, first: int, data_loc: tuple[int, int],
                 videos: dict[str, tuple], stats: dict[str, dict]) -> dict[str, Any]:
    row: dict[str, Any] = {"episode_index": index, "tasks": [task], "length": length,
                           "data/chunk_index": data_loc[0], "data/file_index": data_loc[1],
                           "dataset_from_index": first, "dataset_to_index": first + length}
    for key, (chunk, file, t0, t1) in videos.items():
        row.update({f"videos/{key}/chunk_index": chunk, f"videos/{key}/file_index": file,
                    f"videos/{key}/from_timestamp": t0, f"videos/{key}/to_timestamp": t1})
    for name, st in stats.items():
        for stat, value in st.items():
            row[f"stats/{name}/{stat}"] = value.tolist()
    row["meta/episodes/chunk_index"] = 0
    row["meta/episodes/file_index"] = 0
    return row


def _episodes_table(rows: list[dict[str, Any]]) -> pa.Table:
    def column_type(key: str, sample: Any) -> pa.DataType:
        if key == "tasks":
            return pa.list_(pa.string())
        if key.startswith("stats/"):
            leaf = pa.int64() if key.endswith("/count") else pa.float64()
            t, v = leaf, sample
            while isinstance(v, list):  # nested lists for (3, 1, 1) image stats
                t, v = pa.list_(t), v[0]
            return t
        return pa.float64() if key.endswith("_timestamp") else pa.int64()

    keys = list(rows[0])
    return pa.table({k: pa.array([r[k] for r in rows], column_type(k, rows[0][k])) for k in keys})


def export_lerobot(spec: DatasetSpec, episodes: Iterable[Episode], out: Path, *, video: bool = False,
                   vcodec: str = "libsvtav1", crf: int | None = None, overwrite: bool = False,
                   data_file_size_mb: float = DATA_FILE_SIZE_MB,
                   video_file_size_mb: float = VIDEO_FILE_SIZE_MB) -> ExportSummary:
    """Write ``episodes`` as a LeRobot v3.0 dataset at ``out``; return what was written.

    Episodes are streamed: one is held in memory at a time. Everything is written into a temporary sibling
    directory that is renamed to ``out`` at the end, so ``out`` never holds a half dataset. An existing
    non-empty ``out`` is refused unless ``overwrite``. ``video=True`` encodes cameras to mp4 with ``vcodec``
    (``libsvtav1`` = lerobot's default, ``h264`` = fast) at ``crf`` (encoder default when None); otherwise
    frames are PNG bytes in the data parquet. A new data (video) file starts once the current one holds
    ``data_file_size_mb`` (``video_file_size_mb``), as lerobot rotates files; a file can exceed the limit by
    one episode. Depth, point-cloud, mask and text features have no standard
    LeRobot feature: they are skipped and listed in the summary. Raises ``FormatError`` (one line) for a
    non-integer fps, an unknown codec or a refused ``out``; ``SpecMismatch`` for an episode that does not
    fit ``spec``.
    """
    out = Path(out)
    fps = _check_export_args(spec, out, video, vcodec, overwrite)
    columns, skipped = _plan_columns(spec, video)
    if not columns:
        raise FormatError(f"{out}: spec has no feature LeRobot can store (skipped {skipped})")
    for col in columns:
        if col.storage == "video":
            _check_video_shape(col, out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        counts = _write_dataset(spec, columns, skipped, episodes, tmp, fps, video, vcodec, crf,
                                data_file_size_mb, video_file_size_mb)
        if counts[0] == 0:
            raise FormatError(f"{out}: no episodes to export")
        _move_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # also on Ctrl-C: nothing half-written survives
        raise
    n_episodes, n_frames, data_files, video_files = counts
    return ExportSummary(out=out, episodes=n_episodes, frames=n_frames, skipped=skipped,
                         mode="video" if video else "image", vcodec=vcodec if video else None,
                         data_files=data_files, video_files=video_files)


def _write_dataset(spec: DatasetSpec, columns: list[_Column], skipped: list[str], episodes: Iterable[Episode],
                   root: Path, fps: int, video: bool, vcodec: str, crf: int | None, data_mb: float,
                   video_mb: float) -> tuple[int, int, int, int]:
    schema = _data_schema(columns)
    data_writer = _DataWriter(root, schema, data_mb * 1e6)
    video_writers = {c.name: _VideoWriter(root, c.name, c.feature.shape[0], c.feature.shape[1], fps, vcodec, crf,
                                          video_mb * 1e6) for c in columns if c.storage == "video"}
    if video_writers:
        os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its banner to stderr per file otherwise
    tasks: dict[str, int] = {}
    rows: list[dict[str, Any]] = []
    totals = _StatsAggregator()
    frames = 0
    (root / "meta").mkdir()
    try:
        with open(root / EPISODES_SIDECAR, "w", encoding="utf-8") as sidecar:
            for i, episode in enumerate(episodes):
                ep = check_episode(episode, spec, f"episode {i}" + (f" ({episode.id})" if episode.id else ""))
                task_index = tasks.setdefault(ep.meta.task, len(tasks))
                table = _episode_table(columns, schema, ep.data, fps, i, frames, task_index)
                data_loc = data_writer.write(table)
                videos = {k: w.write(ep.data[k]) for k, w in video_writers.items()}
                stats = _episode_stats(columns, ep.data, table)
                for name, st in stats.items():
                    totals.add(name, st)
                rows.append(_episode_row(i, ep.meta.task, ep.length, frames, data_loc, videos, stats))
                sidecar.write(json.dumps({"episode_index": i, "id": ep.id, "length": ep.length,
                                          "meta": ep.meta.to_dict()}) + "\n")
                frames += ep.length
    finally:
        data_writer.close()
        for w in video_writers.values():
            w.close()
    if not rows:
        return 0, 0, 0, 0
    episodes_path = root / EPISODES_PATH.format(chunk_index=0, file_index=0)
    episodes_path.parent.mkdir(parents=True)
    pq.write_table(_episodes_table(rows), episodes_path)
    # tasks.parquet must carry the pandas index metadata, or lerobot reads the row number as the task
    pd.DataFrame({"task_index": np.arange(len(tasks), dtype=np.int64)},
                 index=pd.Index(list(tasks), name="task")).to_parquet(root / "meta" / "tasks.parquet")
    (root / "meta" / "stats.json").write_text(json.dumps(totals.result(), indent=2))
    encoder = _ENCODERS[vcodec] if video else None
    info = _info_json(spec, columns, fps, len(rows), frames, len(tasks), video, encoder, crf, data_mb, video_mb)
    (root / "meta" / "info.json").write_text(json.dumps(info, indent=4))
    sidecar_spec = {"spec": spec.to_dict(), "exported": [c.name for c in columns], "skipped": skipped}
    (root / SPEC_SIDECAR).write_text(json.dumps(sidecar_spec, indent=2))
    n_video_files = sum(w.files for w in video_writers.values())
    return len(rows), frames, data_writer.files, n_video_files


def _move_into_place(tmp: Path, out: Path) -> None:
    """Rename the finished dataset to ``out``; an old ``out`` (overwrite) is moved aside first, then deleted."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
        out.rename(old)
    tmp.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------------------------------------
# Import: small helpers
# --------------------------------------------------------------------------------------------------


def _load_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FormatError(f"{path} is missing: {what}") from None
    except json.JSONDecodeError as exc:
        raise FormatError(f"{path} is not valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FormatError(f"{path} cannot be read ({exc})") from None


def _load_jsonl(path: Path) -> list[dict]:
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise FormatError(f"{path} is missing: a v2.x dataset lists its episodes and tasks there") from None
    for n, line in enumerate(lines, 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise FormatError(f"{path} line {n} is not valid JSON ({exc.msg})") from None
    return rows


def _parquet_file(path: Path) -> pq.ParquetFile:
    """Open a parquet file or raise a one-line FormatError saying what is wrong with it."""
    if not path.exists():
        raise FormatError(f"{path} is missing")
    try:
        return pq.ParquetFile(str(path))
    except (pa.ArrowInvalid, OSError) as exc:
        if _footerless(path):
            raise FormatError(f"{path} has no parquet footer ({path.stat().st_size} bytes, truncated or never "
                              f"closed): the writing process died before closing it") from None
        raise FormatError(f"{path} is not a readable parquet file ({_one_line(exc)})") from None


def _footerless(path: Path) -> bool:
    """True when the file starts like parquet but does not end with the 'PAR1' footer magic."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
            fh.seek(max(0, path.stat().st_size - 4))
            tail = fh.read(4)
    except OSError:
        return False
    return head == b"PAR1" and tail != b"PAR1"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]


def _names_of(raw: Any, size: int) -> tuple[str, ...] | None:
    """``names`` as a flat tuple: a list, a dict such as {"motors": [...]}, or None when it does not fit."""
    if isinstance(raw, dict):
        flat: list[Any] = []
        for value in raw.values():
            flat += value if isinstance(value, list) else [value]
        raw = flat
    if isinstance(raw, list) and len(raw) == size and all(isinstance(n, (str, int, float)) for n in raw):
        return tuple(str(n) for n in raw)
    return None


_NUMERIC = ("float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16", "bool")


@dataclass(frozen=True)
class _Source:
    """Where one of our features comes from in the LeRobot dataset."""

    name: str
    feature: Feature
    storage: str  # "column", "image" (encoded bytes in the parquet), "video"
    chw: bool = False  # camera shape declared as (C, H, W)


def _camera_source(name: str, f: dict, stored: str) -> _Source | None:
    shape = [int(s) for s in f.get("shape") or []]
    names = [str(n) for n in (f.get("names") or [])] if isinstance(f.get("names"), list) else []
    if len(shape) != 3:
        return None
    chw = bool(names) and names[0].startswith("channel")
    h, w, c = (shape[1], shape[2], shape[0]) if chw else shape
    info = f.get("info") or f.get("video_info") or {}
    depth = bool(info.get("is_depth_map") or info.get("video.is_depth_map"))
    if c == 3 and not depth:
        feature = Feature("uint8", (h, w, 3), "image", ("height", "width", "channels"))
    elif c == 1 or depth:
        feature = Feature("uint16", (h, w), "depth", ("height", "width"))
    else:
        return None
    return _Source(name, feature, stored, chw)


def _numeric_source(name: str, f: dict) -> _Source | None:
    dtype = str(f.get("dtype"))
    shape = tuple(int(s) for s in f.get("shape") or [1])
    if dtype in ("string", "str"):
        return _Source(name, Feature("string", (), "text"), "column") if shape in ((), (1,)) else None
    if dtype not in _NUMERIC or len(shape) > 1:
        return None
    shape = shape or (1,)
    names = _names_of(f.get("names"), shape[0])
    floating = dtype.startswith("float")
    if floating and (name == "action" or name.startswith("action.")):
        kind = "action"
    elif floating and name.startswith("observation.state"):
        kind = "state"
    elif floating and name.startswith("observation.") and shape != (1,):
        kind = "state"
    else:
        kind = "scalar"
    return _Source(name, Feature(dtype, shape, kind, names), "column")


def _apply_sidecar(source: _Source, ours: dict | None) -> _Source:
    """Restore our kind, names and shape from meta/demoforge_spec.json when they still fit the stored data."""
    if not ours:
        return source
    try:
        f = Feature.from_dict(ours)
    except (KeyError, TypeError, ValueError):
        return source
    stored = source.feature
    vectors = ("state", "action", "scalar")
    same_family = f.kind == stored.kind or (f.kind in vectors and stored.kind in vectors)
    if same_family and int(np.prod(f.shape or (1,))) == int(np.prod(stored.shape or (1,))):
        # the stored dtype wins: float64 state was exported as float32
        return _Source(source.name, Feature(stored.dtype, f.shape, f.kind, f.names, f.description),
                       source.storage, source.chw)
    return source


def _spec_from_info(info: dict, info_path: Path, sidecar: dict | None) -> tuple[DatasetSpec, list[_Source], list[str]]:
    features = info.get("features")
    if not isinstance(features, dict) or not features:
        raise FormatError(f"{info_path}: field 'features' is missing or empty; expected a dict of feature entries")
    ours = (sidecar or {}).get("spec", {}).get("features", {})
    sources: list[_Source] = []
    skipped: list[str] = []
    for name, f in features.items():
        if name in DEFAULT_COLUMNS:
            continue
        if not isinstance(f, dict) or "dtype" not in f:
            raise FormatError(f"{info_path}: feature '{name}' has no 'dtype'; expected a dict with dtype and shape")
        if f["dtype"] in ("image", "video"):
            src = _camera_source(name, f, f["dtype"])
        else:
            src = _numeric_source(name, f)
        if src is None:
            skipped.append(name)
            continue
        sources.append(_apply_sidecar(src, ours.get(name)))
    fps = info.get("fps")
    if not isinstance(fps, (int, float)) or fps <= 0:
        raise FormatError(f"{info_path}: field 'fps' is {fps!r}; expected a positive number")
    if not sources:
        raise FormatError(f"{info_path}: no feature demoforge can import (skipped {skipped})")
    spec = DatasetSpec(fps=fps, features={s.name: s.feature for s in sources}, robot_type=info.get("robot_type"))
    return spec.validated(f"{info_path} features"), sources, skipped


# --------------------------------------------------------------------------------------------------
# Import: column and video decoding
# --------------------------------------------------------------------------------------------------


def _decode_image(blob: bytes, where: str) -> np.ndarray:
    if blob[:8] == b"\x89PNG\r\n\x1a\n":
        return imagecodecs.png_decode(blob)
    if blob[:2] == b"\xff\xd8":
        return imagecodecs.jpeg8_decode(blob)
    try:
        return imagecodecs.imread(blob)
    except Exception:
        raise FormatError(f"{where}: image bytes are in no format imagecodecs reads (expected PNG)") from None


def _camera_column(col: pa.ChunkedArray, src: _Source, root: Path, where: str) -> np.ndarray:
    """Decode an image column (struct<bytes, path>) into (T, *shape) of the feature's dtype."""
    frames = []
    for item in col.to_pylist():
        blob = item.get("bytes") if isinstance(item, dict) else item
        if blob is None and isinstance(item, dict) and item.get("path"):
            path = root / item["path"]
            blob = path.read_bytes() if path.exists() else None
        if blob is None:
            raise FormatError(f"{where}: feature '{src.name}' has a frame with neither bytes nor a readable path")
        frames.append(_fit_camera(_decode_image(blob, where), src))
    return np.stack(frames)


def _fit_camera(image: np.ndarray, src: _Source) -> np.ndarray:
    f = src.feature
    if f.kind == "image":
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        return image[..., :3].astype(np.uint8, copy=False)
    if image.ndim == 3:
        image = image[..., 0]
    return image.astype(f.dtype, copy=False)


def _numeric_column(col: pa.ChunkedArray, src: _Source, n: int) -> np.ndarray:
    f = src.feature
    if f.dtype == "string":
        return np.array([str(v) if v is not None else "" for v in col.to_pylist()], dtype=object).reshape(n, *f.shape)
    array = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    while pa.types.is_list(array.type) or pa.types.is_fixed_size_list(array.type) or pa.types.is_large_list(array.type):
        array = array.flatten()  # vectors: fixed_size_list (lerobot) or list (converters, salvage)
    return array.to_numpy(zero_copy_only=False).astype(f.dtype, copy=False).reshape(n, *f.shape)


class _VideoCache:
    """Open video containers, kept while an iteration runs (episodes of one file are read in order)."""

    def __init__(self) -> None:
        self._open: dict[Path, Any] = {}

    def frames(self, path: Path, times: np.ndarray, src: _Source) -> np.ndarray:
        """Frames nearest to ``times`` (seconds in the file), as (T, *shape) of the feature's dtype."""
        container = self._container(path)
        stream = container.streams.video[0]
        half = 0.5 / float(stream.average_rate or stream.guessed_rate or 30)
        t0, t1 = float(times.min()), float(times.max())
        decoded_t: list[float] = []
        decoded: list[np.ndarray] = []
        fmt = "rgb24" if src.feature.kind == "image" else "gray16le" if src.feature.dtype == "uint16" else "gray"
        try:
            container.seek(max(0, int((t0 - half) / stream.time_base)), stream=stream, backward=True)
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                t = float(frame.pts * stream.time_base)
                if t < t0 - half:
                    continue
                if t > t1 + half:
                    break
                decoded_t.append(t)
                decoded.append(frame.to_ndarray(format=fmt))
        except (av.error.FFmpegError, ValueError) as exc:
            raise FormatError(f"{path} cannot be decoded near t={t0:.3f}s ({_one_line(exc)}): truncated or corrupt "
                              f"video") from None
        if not decoded:
            raise FormatError(f"{path} has no frame between {t0:.3f}s and {t1:.3f}s: the video is shorter than "
                              f"meta/episodes says (truncated?)")
        dt = np.asarray(decoded_t)
        order = np.argsort(dt)
        dt = dt[order]
        pos = np.clip(np.searchsorted(dt, times), 1, max(1, len(dt) - 1))
        left = np.clip(pos - 1, 0, len(dt) - 1)
        right = np.clip(pos, 0, len(dt) - 1)
        pick = np.where(np.abs(dt[left] - times) <= np.abs(dt[right] - times), left, right)
        gaps = np.abs(dt[pick] - times)
        if gaps.max() > half:
            raise FormatError(f"{path} has no frame within half a frame period of t={times[gaps.argmax()]:.4f}s "
                              f"(nearest is {gaps.max():.4f}s away): the video is truncated or its timestamps "
                              f"do not match meta/episodes")
        chosen = [decoded[order[k]] for k in pick]
        return np.stack([_fit_camera(image, src) for image in chosen])

    def _container(self, path: Path) -> Any:
        if path not in self._open:
            if len(self._open) >= 8:  # bound open files on datasets with many cameras / rotated files
                self.close()
            self._open[path] = _open_video(path)
        return self._open[path]

    def close(self) -> None:
        for container in self._open.values():
            container.close()
        self._open.clear()


def _open_video(path: Path) -> Any:
    if not path.exists():
        raise FormatError(f"{path} is missing; meta/episodes points to it for a video feature")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise FormatError(f"{path} cannot be opened as a video ({_one_line(exc)}): the file is truncated or "
                          f"corrupt; re-encode it or import the dataset without this camera") from None
    if not container.streams.video:
        container.close()
        raise FormatError(f"{path} holds no video stream")
    return container


def _mp4_truncation(path: Path) -> str | None:
    """Why an mp4's top-level boxes do not tile the file (a cut-off download or copy), or None.

    With the index (moov) before the media data, a truncated file still opens and reports its full
    duration; only the box sizes show that the media data ends early.
    """
    size = path.stat().st_size
    pos = 0
    with open(path, "rb") as fh:
        while pos < size:
            fh.seek(pos)
            head = fh.read(16)
            if len(head) < 8:
                return f"ends inside a box header at byte {pos}"
            box, kind = struct.unpack(">I4s", head[:8])
            if box == 1 and len(head) == 16:
                box = struct.unpack(">Q", head[8:16])[0]
            elif box == 0:
                return None  # the last box runs to the end of the file by definition
            if box < 8:
                return f"has a malformed '{kind.decode('latin-1')}' box at byte {pos}"
            if pos + box > size:
                return (f"is truncated: its '{kind.decode('latin-1')}' box needs {pos + box} bytes, the file has "
                        f"{size}")
            pos += box
    return None


def _video_duration(path: Path) -> float:
    """Seconds of video in ``path`` (end of the last frame), from the container's index."""
    container = _open_video(path)
    try:
        stream = container.streams.video[0]
        if stream.duration is not None:
            end = float(stream.duration * stream.time_base)
            if stream.start_time is not None:
                end += float(stream.start_time * stream.time_base)
            return end
        return float(container.duration or 0) / 1e6
    finally:
        container.close()


# --------------------------------------------------------------------------------------------------
# Import: the source
# --------------------------------------------------------------------------------------------------


@dataclass
class _EpisodeRef:
    """Where episode ``index`` lives: its data file (and row groups) and its video segments."""

    index: int
    length: int
    tasks: list[str]
    data_path: Path
    row_groups: list[int] | None = None  # None: every row group of the file, filtered by episode_index
    videos: dict[str, tuple[Path, float]] = field(default_factory=dict)  # key -> (mp4, from_timestamp)
    table: pa.Table | None = None  # salvaged rows, already decoded from a footerless file


class LeRobotSource:
    """A LeRobot dataset opened for import: ``spec``, ``tasks``, ``len()`` and lazy iteration over episodes.

    Opening reads only metadata (info.json, meta/episodes, tasks, parquet footers, video indexes) and
    refuses a broken dataset with one ``FormatError`` line; iterating reads one episode at a time.
    """

    def __init__(self, root: Path, *, salvage: bool = False) -> None:
        self.root = Path(root)
        self.info_path = self.root / "meta" / "info.json"
        info = _load_json(self.info_path, "not a LeRobot dataset (expected meta/info.json with "
                                          "codebase_version, fps and features)")
        if not isinstance(info, dict):
            raise FormatError(f"{self.info_path}: expected a JSON object, got {type(info).__name__}")
        self.info: dict[str, Any] = info
        version = info.get("codebase_version")
        if version not in READABLE_VERSIONS:
            raise FormatError(f"{self.info_path}: codebase_version {version!r} is not supported; demoforge reads "
                              f"{', '.join(READABLE_VERSIONS)} (convert older datasets with lerobot first)")
        self.version: str = version
        self.warnings: list[str] = []
        self.salvaged: str | None = None
        sidecar = self._sidecar_spec()
        self.spec, self._sources, self.skipped = _spec_from_info(info, self.info_path, sidecar)
        self._fps = float(self.spec.fps)
        self.tasks: list[str]
        self._episodes: list[_EpisodeRef]
        if version == "v3.0":
            self.tasks = self._v3_tasks()
            self._episodes = self._salvage() if salvage else self._v3_episodes()
        else:
            self.tasks = self._v2_tasks()
            self._episodes = self._v2_episodes()
        self._check_videos()
        self._meta = self._sidecar_episodes()

    # -- public --------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._episodes)

    def __iter__(self) -> Iterator[Episode]:
        videos = _VideoCache()
        try:
            for ref in self._episodes:
                yield self._read(ref, videos)
        finally:
            videos.close()

    def episode(self, i: int) -> Episode:
        """Episode ``i`` alone (random access)."""
        videos = _VideoCache()
        try:
            return self._read(self._episodes[i], videos)
        finally:
            videos.close()

    @property
    def lengths(self) -> list[int]:
        return [ref.length for ref in self._episodes]

    # -- metadata ------------------------------------------------------------------------------------

    def _sidecar_spec(self) -> dict | None:
        path = self.root / SPEC_SIDECAR
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            self.warnings.append(f"{path} is unreadable; kinds are guessed from feature names")
            return None
        return data if isinstance(data, dict) else None

    def _sidecar_episodes(self) -> dict[int, dict]:
        """Our metadata by episode_index; ignored when it no longer matches the dataset (edited by lerobot)."""
        path = self.root / EPISODES_SIDECAR
        if not path.exists():
            return {}
        try:
            rows = {int(r["episode_index"]): r for r in _load_jsonl(path)}
        except (FormatError, KeyError, TypeError, ValueError):
            self.warnings.append(f"{path} is unreadable; episode metadata falls back to tasks")
            return {}
        stale = [ref.index for ref in self._episodes
                 if ref.index not in rows or rows[ref.index].get("length") != ref.length]
        if stale:
            self.warnings.append(f"{path} does not match meta/episodes (episodes {stale[:5]}); ignored")
            return {}
        return rows

    def _v3_tasks(self) -> list[str]:
        path = self.root / "meta" / "tasks.parquet"
        _parquet_file(path)
        df = pd.read_parquet(path)
        if "task" in df.columns:
            tasks = df["task"]
        else:
            # lerobot reads tasks.iloc[task_index].name: the index, named "task" (0.6) or unnamed (0.4)
            tasks = pd.Series(df.index, index=df.index)
        order = np.argsort(df["task_index"].to_numpy()) if "task_index" in df.columns else np.arange(len(df))
        tasks = [tasks.iloc[k] for k in order]
        if not all(isinstance(t, str) for t in tasks):
            raise FormatError(f"{path}: task names are not strings (written without the pandas index?)")
        return tasks

    def _v2_tasks(self) -> list[str]:
        rows = _load_jsonl(self.root / "meta" / "tasks.jsonl")
        return [str(r["task"]) for r in sorted(rows, key=lambda r: r["task_index"])]

    def _v3_episodes(self) -> list[_EpisodeRef]:
        meta_dir = self.root / "meta" / "episodes"
        files = sorted(meta_dir.glob("chunk-*/file-*.parquet")) if meta_dir.is_dir() else []
        if not files:
            raise FormatError(self._missing_episodes_message(meta_dir))
        table = self._episode_rows(files)
        total = self.info.get("total_episodes")
        if total != table.num_rows:
            raise FormatError(
                f"{meta_dir} has {table.num_rows} episode rows but {self.info_path} total_episodes is {total}: the "
                f"recording was not finalized or the files were edited; lerobot would trust total_episodes and fail "
                f"(rows 0..{table.num_rows - 1} are listed)")
        refs = [self._v3_ref(row, k) for k, row in enumerate(table.to_pylist())]
        self._check_data_files(refs)
        return refs

    def _episode_rows(self, files: list[Path]) -> pa.Table:
        tables = []
        for path in files:
            pf = _parquet_file(path)
            wanted = [n for n in pf.schema_arrow.names if not n.startswith("stats/")]  # stats are large, unused
            tables.append(pf.read(columns=wanted))
        try:
            table = pa.concat_tables(tables, promote_options="permissive")
        except pa.ArrowInvalid as exc:
            raise FormatError(f"{files[0].parent.parent}: episode files have incompatible columns "
                              f"({_one_line(exc)})") from None
        missing = {"episode_index", "length"} - set(table.column_names)
        if missing:
            raise FormatError(f"{files[0]}: columns {sorted(missing)} are missing; expected LeRobot v3.0 episode rows")
        return table.sort_by("episode_index")

    def _v3_ref(self, row: dict, position: int) -> _EpisodeRef:
        where = f"{self.root / 'meta' / 'episodes'} row {position}"
        if row["episode_index"] != position:
            raise FormatError(f"{where}: episode_index is {row['episode_index']}, expected {position} (episode "
                              f"indices must be 0..N-1 in order)")
        template = self.info.get("data_path") or DATA_PATH
        try:
            data = self.root / template.format(chunk_index=int(row["data/chunk_index"]),
                                               file_index=int(row["data/file_index"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise FormatError(f"{where}: cannot locate the data file ({_one_line(exc)})") from None
        videos = {}
        vtemplate = self.info.get("video_path") or VIDEO_PATH
        for src in self._sources:
            if src.storage == "video":
                try:
                    path = self.root / vtemplate.format(video_key=src.name,
                                                        chunk_index=int(row[f"videos/{src.name}/chunk_index"]),
                                                        file_index=int(row[f"videos/{src.name}/file_index"]))
                    videos[src.name] = (path, float(row[f"videos/{src.name}/from_timestamp"]))
                except (KeyError, TypeError, ValueError):
                    raise FormatError(f"{where}: columns videos/{src.name}/* are missing; expected the episode's "
                                      f"video file and from_timestamp") from None
        tasks = [str(t) for t in (row.get("tasks") or [])]
        return _EpisodeRef(position, int(row["length"]), tasks, data, None, videos)

    def _check_data_files(self, refs: list[_EpisodeRef]) -> None:
        """Every data file has a footer and the row groups holding each episode; totals add up."""
        by_file: dict[Path, list[_EpisodeRef]] = {}
        for ref in refs:
            by_file.setdefault(ref.data_path, []).append(ref)
        rows = 0
        for path, file_refs in by_file.items():
            if _footerless(path):
                raise FormatError(f"{path} has no parquet footer ({path.stat().st_size} bytes, truncated or never "
                                  f"closed); {_salvage_report(self, [path])}")
            pf = _parquet_file(path)
            rows += pf.metadata.num_rows
            self._locate_row_groups(pf, path, file_refs)
        total = sum(r.length for r in refs)
        if total != self.info.get("total_frames", total):
            raise FormatError(f"{self.info_path}: total_frames is {self.info.get('total_frames')} but meta/episodes "
                              f"lengths add up to {total}")
        if rows < total:
            raise FormatError(f"{self.root / 'data'}: data files hold {rows} rows but meta/episodes lists {total} "
                              f"frames; some episodes were not written")

    @staticmethod
    def _locate_row_groups(pf: pq.ParquetFile, path: Path, refs: list[_EpisodeRef]) -> None:
        """Use episode_index statistics to read only the row groups of each episode (one per episode)."""
        names = pf.schema_arrow.names
        if "episode_index" not in names:
            raise FormatError(f"{path}: column 'episode_index' is missing; expected LeRobot frame columns")
        col = names.index("episode_index")
        spans = []
        for g in range(pf.metadata.num_row_groups):
            st = pf.metadata.row_group(g).column(col).statistics
            if st is None or not st.has_min_max:
                return  # no statistics: read the whole file per episode and filter
            spans.append((st.min, st.max))
        for ref in refs:
            ref.row_groups = [g for g, (lo, hi) in enumerate(spans) if lo <= ref.index <= hi]
            if not ref.row_groups:
                raise FormatError(f"{path} holds no rows of episode {ref.index} (meta/episodes points there)")

    def _missing_episodes_message(self, meta_dir: Path) -> str:
        data_files = sorted((self.root / "data").glob("chunk-*/*.parquet"))
        broken = [p for p in data_files if _footerless(p)]
        claim = (f"info.json claims {self.info.get('total_episodes')} episodes / "
                 f"{self.info.get('total_frames')} frames")
        if broken:
            report = _salvage_report(self, broken)
            return (f"{broken[0]} has no parquet footer and {meta_dir} is missing: the recording process died "
                    f"before finalize(); {claim}; {report}")
        return (f"{meta_dir} is missing ({claim}): the dataset was not finalized or was copied incompletely; "
                f"lerobot cannot load it either")

    def _v2_episodes(self) -> list[_EpisodeRef]:
        rows = sorted(_load_jsonl(self.root / "meta" / "episodes.jsonl"), key=lambda r: r["episode_index"])
        total = self.info.get("total_episodes")
        if total is not None and total != len(rows):
            raise FormatError(f"{self.root / 'meta' / 'episodes.jsonl'} has {len(rows)} episodes but "
                              f"{self.info_path} total_episodes is {total}")
        chunks = int(self.info.get("chunks_size") or CHUNKS_SIZE)
        template = self.info.get("data_path") or "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
        vtemplate = self.info.get("video_path") or \
            "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
        refs = []
        for row in rows:
            e = int(row["episode_index"])
            data = self.root / template.format(episode_chunk=e // chunks, episode_index=e)
            videos = {s.name: (self.root / vtemplate.format(episode_chunk=e // chunks, video_key=s.name,
                                                            episode_index=e), 0.0)
                      for s in self._sources if s.storage == "video"}
            tasks = row.get("tasks") or []
            refs.append(_EpisodeRef(e, int(row["length"]), [str(t) for t in tasks], data, None, videos))
        for ref in refs:
            pf = _parquet_file(ref.data_path)
            if pf.metadata.num_rows != ref.length:
                raise FormatError(f"{ref.data_path} holds {pf.metadata.num_rows} rows but meta/episodes.jsonl says "
                                  f"episode {ref.index} has {ref.length}")
        return refs

    def _check_videos(self) -> None:
        """Each video file opens and is long enough for the last episode that points into it."""
        needed: dict[Path, float] = {}
        for ref in self._episodes:
            for path, t0 in ref.videos.values():
                needed[path] = max(needed.get(path, 0.0), t0 + ref.length / self._fps)
        for path, end in needed.items():
            if path.exists() and path.suffix == ".mp4" and (problem := _mp4_truncation(path)):
                raise FormatError(f"{path} {problem}; re-download or re-encode it (the episodes in other video "
                                  f"files are intact)")
            duration = _video_duration(path)
            if duration and duration + 0.5 / self._fps < end:
                raise FormatError(f"{path} holds {duration:.3f}s of video but meta/episodes needs {end:.3f}s: the "
                                  f"file is truncated; episodes ending before {duration:.3f}s are intact")

    # -- episodes ------------------------------------------------------------------------------------

    def _read(self, ref: _EpisodeRef, videos: _VideoCache) -> Episode:
        where = f"{ref.data_path} episode {ref.index}"
        table = self._frames(ref, where)
        n = table.num_rows
        data: dict[str, np.ndarray] = {}
        frame_index = table.column("frame_index").to_numpy() if "frame_index" in table.column_names \
            else np.arange(n)
        for src in self._sources:
            if src.storage == "video":
                path, t0 = ref.videos[src.name]
                data[src.name] = videos.frames(path, t0 + frame_index / self._fps, src)
            elif src.name not in table.column_names:
                raise FormatError(f"{where}: column '{src.name}' is missing (declared in meta/info.json)")
            elif src.storage == "image":
                data[src.name] = _camera_column(table.column(src.name), src, self.root, where)
            else:
                data[src.name] = _numeric_column(table.column(src.name), src, n)
        return Episode(data=data, meta=self._episode_meta(ref, table), id=self._meta.get(ref.index, {}).get("id"))

    def _frames(self, ref: _EpisodeRef, where: str) -> pa.Table:
        if ref.table is not None:
            return ref.table
        pf = _parquet_file(ref.data_path)
        columns = [s.name for s in self._sources if s.storage != "video"]
        columns += [c for c in ("frame_index", "episode_index", "task_index") if c in pf.schema_arrow.names]
        columns = [c for c in columns if c in pf.schema_arrow.names]
        try:
            table = pf.read_row_groups(ref.row_groups, columns=columns) if ref.row_groups is not None \
                else pf.read(columns=columns)
        except (pa.ArrowInvalid, OSError) as exc:
            raise FormatError(f"{where}: the data cannot be read ({_one_line(exc)})") from None
        if "episode_index" in table.column_names:
            table = table.filter(pc.equal(table.column("episode_index"), ref.index))
        if "frame_index" in table.column_names:
            table = table.sort_by("frame_index")
        if table.num_rows != ref.length:
            raise FormatError(f"{where}: {table.num_rows} rows found, meta/episodes says length {ref.length}")
        return table

    def _episode_meta(self, ref: _EpisodeRef, table: pa.Table) -> EpisodeMeta:
        origin = {"format": f"lerobot-{self.version}", "path": str(self.root), "episode": ref.index}
        saved = self._meta.get(ref.index)
        if saved is not None:
            try:
                meta = EpisodeMeta.from_dict(saved.get("meta"), f"{self.root / EPISODES_SIDECAR} episode {ref.index}")
                meta.origin = origin
                return meta
            except DemoforgeError:
                self.warnings.append(f"{self.root / EPISODES_SIDECAR}: episode {ref.index} metadata is invalid; "
                                     f"ignored")
        tasks = list(ref.tasks)
        if "task_index" in table.column_names:
            for t in pc.unique(table.column("task_index")).to_pylist():
                if 0 <= t < len(self.tasks) and self.tasks[t] not in tasks:
                    tasks.append(self.tasks[t])
        meta = EpisodeMeta(task=tasks[0] if tasks else "unknown task", origin=origin)
        if len(tasks) > 1:
            meta.extra = {"lerobot_tasks": tasks}
        return meta

    # -- salvage (crashed before finalize) ----------------------------------------------------------

    def _salvage(self) -> list[_EpisodeRef]:
        meta_dir = self.root / "meta" / "episodes"
        known: dict[int, dict] = {}
        if meta_dir.is_dir() and any(meta_dir.glob("chunk-*/file-*.parquet")):
            try:
                return self._v3_episodes()  # intact after all: nothing to salvage
            except FormatError:
                known = self._known_rows(meta_dir)
        data_files = sorted((self.root / "data").glob("chunk-*/*.parquet"))
        refs: list[_EpisodeRef] = []
        for path in data_files:
            if _footerless(path):
                table = _read_footerless(path, self._salvage_columns())
            else:
                table = _parquet_file(path).read()
            for e in sorted(set(table.column("episode_index").to_pylist())):
                rows = table.filter(pc.equal(table.column("episode_index"), e))
                refs.append(_EpisodeRef(int(e), rows.num_rows, [], path, None, {}, rows))
        refs.sort(key=lambda r: r.index)
        if not refs:
            raise FormatError(f"{self.root / 'data'}: nothing can be salvaged (no complete row group in any data file)")
        for ref in refs:
            row = known.get(ref.index)
            if row is not None and int(row.get("length", -1)) == ref.length:
                located = self._v3_ref(row, ref.index)
                ref.tasks, ref.videos = located.tasks, located.videos
        video_keys = [s.name for s in self._sources if s.storage == "video"]
        for key in video_keys:
            if not all(key in ref.videos for ref in refs):
                self._salvage_video(key, refs)
        total = sum(r.length for r in refs)
        self.salvaged = (f"salvaged {len(refs)} of {self.info.get('total_episodes')} episodes "
                         f"({total} of {self.info.get('total_frames')} frames) from complete row groups")
        self.warnings.append(self.salvaged)
        return refs

    def _known_rows(self, meta_dir: Path) -> dict[int, dict]:
        """Readable meta/episodes rows by episode_index (empty when they are unreadable too)."""
        try:
            table = self._episode_rows(sorted(meta_dir.glob("chunk-*/file-*.parquet")))
        except FormatError:
            return {}
        return {int(r["episode_index"]): r for r in table.to_pylist()}

    def _salvage_video(self, key: str, refs: list[_EpisodeRef]) -> None:
        """Episodes are back to back in one mp4 per camera when lerobot died before rotating files."""
        files = sorted((self.root / "videos" / key).glob("chunk-*/*.mp4"))
        total = sum(r.length for r in refs)
        if len(files) == 1 and abs(_video_duration(files[0]) - total / self._fps) < 0.5 / self._fps:
            start = 0
            for ref in refs:
                ref.videos[key] = (files[0], start / self._fps)
                start += ref.length
            return
        self._sources = [s for s in self._sources if s.name != key]
        self.spec = DatasetSpec(fps=self.spec.fps, robot_type=self.spec.robot_type,
                                features={n: f for n, f in self.spec.features.items() if n != key})
        self.skipped.append(key)
        self.warnings.append(f"{self.root / 'videos' / key}: cannot match video files to salvaged episodes; "
                             f"camera '{key}' skipped")

    def _salvage_columns(self) -> list[tuple[str, str, str]]:
        """(column, LeRobot dtype, storage) in the data parquet's column order, from info.json."""
        out = []
        for name, f in self.info["features"].items():
            if f.get("dtype") == "video":
                continue
            storage = "image" if f.get("dtype") == "image" else \
                "scalar" if [int(s) for s in f.get("shape") or [1]] in ([1], []) else "vector"
            out.append((name, str(f.get("dtype")), storage))
        return out


def read_lerobot(root: Path, *, salvage: bool = False) -> LeRobotSource:
    """Open a LeRobot dataset (v3.0, v2.1 or v2.0) at ``root`` for import.

    Returns a ``LeRobotSource`` whose ``spec`` maps LeRobot features onto our kinds and whose iteration
    yields ``Episode`` objects lazily. Metadata demoforge exported (``meta/demoforge_episodes.jsonl``) is
    restored; otherwise each episode's task comes from the tasks table. Broken datasets (missing or bad
    info.json, unsupported version, footerless or missing parquet, truncated mp4, counts that disagree)
    are refused with a one-line ``FormatError``. ``salvage=True`` reads a v3.0 recording that died before
    ``finalize()`` from the complete row groups of its footerless data files.
    """
    return LeRobotSource(root, salvage=salvage)


# --------------------------------------------------------------------------------------------------
# Salvage: reading the complete row groups of a parquet file that has no footer
# --------------------------------------------------------------------------------------------------
#
# A parquet file is "PAR1", then per row group the column chunks in schema order, each a sequence of
# pages (a dictionary page, then data pages), then the footer (schema + row group index). lerobot writes
# one row group per episode and flushes it at save_episode(); a crash before finalize() loses only the
# footer. Every page starts with a self-describing Thrift header, so the pages can be walked without the
# footer and decoded with the schema from info.json. Supported: what pyarrow writes by default (data page
# v1 or v2, PLAIN or dictionary encoding, snappy/zstd/gzip/uncompressed, optional columns, lists).


class _Thrift:
    """Just enough of Thrift's compact protocol to read parquet page headers."""

    def __init__(self, buf: bytes, pos: int) -> None:
        self.buf, self.pos = buf, pos

    def varint(self) -> int:
        shift = result = 0
        while True:
            if self.pos >= len(self.buf):
                raise EOFError
            b = self.buf[self.pos]
            self.pos += 1
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def struct(self) -> dict[int, Any]:
        fields: dict[int, Any] = {}
        last = 0
        while True:
            if self.pos >= len(self.buf):
                raise EOFError
            byte = self.buf[self.pos]
            self.pos += 1
            if byte == 0:
                return fields
            delta, ftype = byte >> 4, byte & 0x0F
            last = last + delta if delta else self.zigzag()
            fields[last] = self.value(ftype)

    def value(self, ftype: int) -> Any:
        if ftype in (1, 2):
            return ftype == 1
        if ftype == 3:
            self.pos += 1
            return self.buf[self.pos - 1]
        if ftype in (4, 5, 6):
            return self.zigzag()
        if ftype == 7:
            self.pos += 8
            return None
        if ftype == 8:
            n = self.varint()
            self.pos += n
            return self.buf[self.pos - n:self.pos]
        if ftype in (9, 10):
            head = self.buf[self.pos]
            self.pos += 1
            size, etype = head >> 4, head & 0x0F
            if size == 15:
                size = self.varint()
            if etype in (1, 2):  # booleans inside a list take one byte each
                self.pos += size
                return [b == 1 for b in self.buf[self.pos - size:self.pos]]
            return [self.value(etype) for _ in range(size)]
        if ftype == 12:
            return self.struct()
        raise ValueError(f"unsupported thrift type {ftype}")


def _rle_hybrid(buf: bytes, pos: int, end: int, width: int, count: int) -> np.ndarray:
    """Decode ``count`` values of parquet's RLE / bit-packed hybrid encoding from buf[pos:end]."""
    out = np.empty(count, np.int64)
    n = 0
    t = _Thrift(buf, pos)
    nbytes = (width + 7) // 8
    while n < count and t.pos < end:
        header = t.varint()
        if header & 1:
            groups = header >> 1
            raw = np.frombuffer(buf, np.uint8, groups * width, t.pos)
            t.pos += groups * width
            if width:
                bits = np.unpackbits(raw, bitorder="little").reshape(-1, width).astype(np.int64)
                values = (bits << np.arange(width)).sum(axis=1)
            else:
                values = np.zeros(groups * 8, np.int64)
            take = min(len(values), count - n)
            out[n:n + take] = values[:take]
            n += take
        else:
            run = header >> 1
            value = int.from_bytes(buf[t.pos:t.pos + nbytes], "little")
            t.pos += nbytes
            take = min(run, count - n)
            out[n:n + take] = value
            n += take
    if n < count:
        raise ValueError("RLE data ends early")
    return out


_PHYSICAL = {"float32": np.dtype("<f4"), "float64": np.dtype("<f8"), "int64": np.dtype("<i8"),
             "int32": np.dtype("<i4"), "int16": np.dtype("<i4"), "int8": np.dtype("<i4"),
             "uint8": np.dtype("<i4"), "uint16": np.dtype("<i4")}


def _decompress(codec: int, data: bytes, size: int) -> bytes:
    if codec == 0:
        return data
    if codec == 1:
        return imagecodecs.snappy_decode(data)
    if codec == 2:
        return imagecodecs.gzip_decode(data)
    if codec == 6:
        return imagecodecs.zstd_decode(data)
    raise ValueError(f"compression codec {codec} is not supported by the salvage reader")


def _plain(data: bytes, pos: int, count: int, dtype: str) -> list | np.ndarray:
    if dtype in ("binary", "string"):
        values = []
        for _ in range(count):
            (n,) = struct.unpack_from("<i", data, pos)
            values.append(bytes(data[pos + 4:pos + 4 + n]))
            pos += 4 + n
        return values
    if dtype == "bool":
        packed = np.frombuffer(data, np.uint8, (count + 7) // 8, pos)
        return np.unpackbits(packed, bitorder="little")[:count].astype(bool)
    phys = _PHYSICAL[dtype]
    return np.frombuffer(data, phys, count, pos).copy()


@dataclass
class _Leaf:
    """One leaf column of the data parquet: its value type and Dremel levels."""

    column: str
    dtype: str  # numpy dtype name, or "binary" / "string"
    max_def: int
    max_rep: int
    values: list = field(default_factory=list)
    defs: list = field(default_factory=list)
    reps: list = field(default_factory=list)


def _leaves(columns: list[tuple[str, str, str]]) -> list[_Leaf]:
    leaves = []
    for name, dtype, storage in columns:
        if storage == "image":
            leaves += [_Leaf(name, "binary", 2, 0), _Leaf(name, "string", 2, 0)]
        elif storage == "vector":
            leaves.append(_Leaf(name, dtype, 3, 1))  # optional list, repeated group, optional element
        else:
            leaves.append(_Leaf(name, "string" if dtype == "string" else dtype, 1, 0))
    return leaves


def _read_page(buf: bytes, pos: int) -> tuple[dict, bytes, int]:
    t = _Thrift(buf, pos)
    header = t.struct()
    size = header[3]
    if t.pos + size > len(buf):
        raise EOFError
    return header, buf[t.pos:t.pos + size], t.pos + size


def _decode_data_page(header: dict, body: bytes, leaf: _Leaf, dictionary: Any,
                      codec: int) -> tuple[Any, np.ndarray, np.ndarray]:
    """Values, definition levels and repetition levels of one data page."""
    if header[1] == 3:  # DATA_PAGE_V2: levels are stored uncompressed before the (maybe compressed) values
        h = header[8]
        count, rep_len, def_len = h[1], h.get(6, 0), h.get(5, 0)
        reps = np.zeros(count, np.int64)
        if leaf.max_rep:
            reps = _rle_hybrid(body, 0, rep_len, leaf.max_rep.bit_length(), count)
        defs = np.zeros(count, np.int64)
        if leaf.max_def:
            defs = _rle_hybrid(body, rep_len, rep_len + def_len, leaf.max_def.bit_length(), count)
        rest = body[rep_len + def_len:]
        data = _decompress(codec, rest, header[2] - rep_len - def_len) if h.get(7, True) else rest
        pos, encoding = 0, h[4]
    else:
        h = header[5]
        count, encoding = h[1], h[2]
        data = _decompress(codec, body, header[2])
        pos = 0
        reps = np.zeros(count, np.int64)
        if leaf.max_rep:
            (n,) = struct.unpack_from("<i", data, pos)
            reps = _rle_hybrid(data, pos + 4, pos + 4 + n, leaf.max_rep.bit_length(), count)
            pos += 4 + n
        defs = np.zeros(count, np.int64)
        if leaf.max_def:
            (n,) = struct.unpack_from("<i", data, pos)
            defs = _rle_hybrid(data, pos + 4, pos + 4 + n, leaf.max_def.bit_length(), count)
            pos += 4 + n
    present = int(np.count_nonzero(defs == leaf.max_def)) if leaf.max_def else count
    if encoding in (2, 8):  # PLAIN_DICTIONARY / RLE_DICTIONARY
        width = data[pos]
        idx = _rle_hybrid(data, pos + 1, len(data), width, present)
        values = [dictionary[i] for i in idx] if isinstance(dictionary, list) else dictionary[idx]
    elif encoding == 0:
        values = _plain(data, pos, present, leaf.dtype)
    else:
        raise ValueError(f"page encoding {encoding} is not supported by the salvage reader")
    return values, defs, reps


def _scan_pages(buf: bytes, leaves: list[_Leaf], codec_guess: list[int]) -> list[list[tuple]]:
    """Walk pages from byte 4; return, per complete row group, each leaf's (values, defs, reps)."""
    groups: list[list[tuple[Any, np.ndarray, np.ndarray]]] = []
    pos = 4
    while True:
        chunks: list[tuple[Any, np.ndarray, np.ndarray]] = []
        rows_in_group: int | None = None
        try:
            for leaf in leaves:
                values: list = []
                defs: list[np.ndarray] = []
                reps: list[np.ndarray] = []
                dictionary: Any = None
                rows = 0
                while rows_in_group is None or rows < rows_in_group:
                    header, body, nxt = _read_page(buf, pos)
                    if header[1] == 2:  # dictionary page: starts a column chunk
                        if values or defs:
                            break  # the next chunk begins: this one (of the first leaf) is complete
                        dh = header[7]
                        dictionary = _plain(_decompress(codec_guess[0], body, header[2]), 0, dh[1], leaf.dtype)
                        pos = nxt
                        continue
                    if header[1] not in (0, 3):
                        raise ValueError("unexpected page type")
                    v, d, r = _decode_data_page(header, body, leaf, dictionary, codec_guess[0])
                    values.append(v)
                    defs.append(d)
                    reps.append(r)
                    rows += int(np.count_nonzero(r == 0))
                    pos = nxt
                    if rows_in_group is None and pos < len(buf):
                        # first leaf: the chunk ends where the next dictionary page (next leaf) begins
                        try:
                            peek, _, _ = _read_page(buf, pos)
                        except (EOFError, IndexError, KeyError):
                            break
                        if peek[1] == 2:
                            break
                if rows_in_group is None:
                    rows_in_group = rows
                elif rows != rows_in_group:
                    raise ValueError("column chunks of a row group disagree on the row count")
                chunks.append((values, np.concatenate(defs) if defs else np.zeros(0, np.int64),
                               np.concatenate(reps) if reps else np.zeros(0, np.int64)))
        except (EOFError, IndexError, KeyError, ValueError, struct.error, RuntimeError):
            return groups  # the row group being written when the process died is incomplete
        if not rows_in_group:
            return groups
        groups.append(chunks)


def _assemble(leaf: _Leaf, values: list, defs: np.ndarray, reps: np.ndarray) -> pa.Array:
    """Rebuild one column of a row group from its values and Dremel levels."""
    flat: list = []
    for v in values:
        flat += list(v) if isinstance(v, list) else v.tolist()
    if leaf.max_rep == 0:
        out: list = []
        it = iter(flat)
        for d in defs:
            out.append(next(it) if d == leaf.max_def else None)
        return out  # type: ignore[return-value]
    rows: list = []
    it = iter(flat)
    for d, r in zip(defs, reps):
        if r == 0:
            rows.append([] if d >= 1 else None)
        if d == leaf.max_def:
            rows[-1].append(next(it))
    return rows  # type: ignore[return-value]


def _codec_of(buf: bytes) -> int:
    """Guess the compression codec from the first page: try each until the page decompresses to its size."""
    header, body, _ = _read_page(buf, 4)
    for codec in (1, 6, 2, 0):
        try:
            if len(_decompress(codec, body, header[2])) == header[2]:
                return codec
        except Exception:
            continue
    raise ValueError("unknown compression")


def _read_footerless(path: Path, columns: list[tuple[str, str, str]]) -> pa.Table:
    """The complete row groups of a footerless parquet file, as a table (may have 0 rows)."""
    buf = path.read_bytes()
    leaves = _leaves(columns)
    try:
        codec = _codec_of(buf)
    except (EOFError, IndexError, KeyError, ValueError, struct.error):
        return pa.table({"episode_index": pa.array([], pa.int64())})
    tables = []
    for group in _scan_pages(buf, leaves, [codec]):
        cols: dict[str, Any] = {}
        k = 0
        for name, dtype, storage in columns:
            if storage == "image":
                b = _assemble(leaves[k], *group[k])
                p = _assemble(leaves[k + 1], *group[k + 1])
                cols[name] = pa.array([{"bytes": x, "path": y.decode() if y else None} for x, y in zip(b, p)],
                                      pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
                k += 2
                continue
            values = _assemble(leaves[k], *group[k])
            if dtype == "string":
                values = [v.decode() if v is not None else None for v in values]
                cols[name] = pa.array(values, pa.string())
            elif storage == "vector":
                cols[name] = pa.array(values, pa.list_(pa.from_numpy_dtype(np.dtype(dtype))))
            else:
                cols[name] = pa.array(values, pa.from_numpy_dtype(np.dtype(dtype)))
            k += 1
        tables.append(pa.table(cols))
    if not tables:
        return pa.table({"episode_index": pa.array([], pa.int64())})
    return pa.concat_tables(tables)


def _salvage_report(source: LeRobotSource, broken: list[Path]) -> str:
    """What a footerless recording still holds, in words for the refusal message."""
    try:
        columns = source._salvage_columns()
        episodes = frames = 0
        for path in broken:
            table = _read_footerless(path, columns)
            episodes += len(set(table.column("episode_index").to_pylist()))
            frames += table.num_rows
    except Exception as exc:  # the report must never turn a clear refusal into a stack trace
        return f"its pages could not be scanned ({_one_line(exc)}): nothing can be salvaged"
    if not episodes:
        return "no complete row group survives in the footerless file: every episode in it is lost"
    claimed = source.info.get("total_frames")
    lost = f"the other {claimed - frames} frames are lost" if isinstance(claimed, int) and claimed > frames \
        else "nothing else is lost"
    return (f"{episodes} complete episodes ({frames} frames) survive as row groups without the footer, {lost}; "
            f"read them with read_lerobot(root, salvage=True)")
