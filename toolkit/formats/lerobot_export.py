"""Writing a LeRobot v3.0 dataset: data parquet, PNG frames or mp4 video, stats and the meta files.

The layout is in ``lerobot_layout``; which of our features become which LeRobot features is in
``lerobot_features``. Features LeRobot has no standard place for (depth, point clouds, masks, text) are
skipped and listed in ``ExportSummary.skipped``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import av
import imagecodecs
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from toolkit.episode import Episode, check_episode
from toolkit.errors import FormatError
from toolkit.formats.lerobot_features import Column, plan_columns
from toolkit.formats.lerobot_layout import (
    CHUNKS_SIZE,
    CODEBASE_VERSION,
    DATA_FILE_SIZE_MB,
    DATA_PATH,
    DEFAULT_COLUMNS,
    EPISODES_PATH,
    EPISODES_SIDECAR,
    SPEC_SIDECAR,
    VIDEO_FILE_SIZE_MB,
    VIDEO_PATH,
    next_file,
)
from toolkit.formats.lerobot_stats import StatsAggregator, episode_stats
from toolkit.formats.lerobot_video import ENCODERS, GOP, VideoWriter
from toolkit.formats.staging import staged
from toolkit.formats.summary import ExportSummary
from toolkit.spec import DatasetSpec

FORMAT = "lerobot"
PNG_LEVEL = 6  # lerobot's compress_level for image features


# ----------------------------------------------------------------------------------------- data files


def _arrow_type(col: Column) -> pa.DataType:
    if col.storage == "image":
        return pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    value = pa.from_numpy_dtype(np.dtype(col.info["dtype"]))
    return value if col.storage == "scalar" else pa.list_(value, col.width)


def _data_schema(columns: list[Column]) -> pa.Schema:
    fields = [pa.field(c.name, _arrow_type(c)) for c in columns if c.storage != "video"]
    fields.append(pa.field("timestamp", pa.float32()))
    fields += [pa.field(n, pa.int64()) for n in DEFAULT_COLUMNS[1:]]
    return pa.schema(fields)


def _episode_table(columns: list[Column], schema: pa.Schema, data: dict[str, np.ndarray], fps: int,
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


class DataWriter:
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
        self.chunk, self.file = (0, 0) if self.file < 0 else next_file(self.chunk, self.file)
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


# ------------------------------------------------------------------------------------ the entry point


def _check_export_args(spec: DatasetSpec, out: Path, video: bool, vcodec: str, overwrite: bool) -> int:
    if float(spec.fps) != int(spec.fps):
        raise FormatError(f"{out}: spec fps {spec.fps} is not an integer; LeRobot v3.0 stores an integer fps")
    if video and vcodec not in ENCODERS:
        raise FormatError(f"{out}: vcodec '{vcodec}' is not supported; expected one of {sorted(ENCODERS)}")
    if video:
        try:
            av.codec.Codec(ENCODERS[vcodec][0], "w")
        except Exception:
            raise FormatError(f"{out}: this PyAV build has no '{ENCODERS[vcodec][0]}' encoder; "
                              f"try vcodec='h264'") from None
    if out.exists() and not out.is_dir():
        raise FormatError(f"{out}: exists and is not a directory; expected a new or empty output directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise FormatError(f"{out}: directory is not empty; pass overwrite=True (--overwrite) to replace it")
    return int(spec.fps)


def _check_video_shape(col: Column, out: Path) -> None:
    h, w, _ = col.feature.shape
    if h % 2 or w % 2:
        raise FormatError(f"{out}: feature '{col.name}' is {h}x{w}; yuv420p video needs even height and width "
                          f"(export in image mode instead)")


def _info_json(spec: DatasetSpec, columns: list[Column], fps: int, episodes: int, frames: int, tasks: int,
               video: bool, encoder: tuple | None, crf: int | None, data_mb: float, video_mb: float) -> dict:
    features: dict[str, Any] = {}
    for col in columns:
        entry = dict(col.info)
        if col.storage == "video":
            h, w, c = col.feature.shape
            _, codec, default_crf, preset = encoder
            entry["info"] = {"video.height": h, "video.width": w, "video.codec": codec, "video.pix_fmt": "yuv420p",
                             "video.fps": fps, "video.channels": c, "has_audio": False, "video.g": GOP,
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
    columns, skipped = plan_columns(spec, video)
    if not columns:
        raise FormatError(f"{out}: spec has no feature LeRobot can store (skipped {skipped})")
    for col in columns:
        if col.storage == "video":
            _check_video_shape(col, out)
    with staged(out) as tmp:  # also on Ctrl-C: nothing half-written survives
        tmp.mkdir()
        counts = _write_dataset(spec, columns, skipped, episodes, tmp, fps, video, vcodec, crf,
                                data_file_size_mb, video_file_size_mb)
        if counts[0] == 0:
            raise FormatError(f"{out}: no episodes to export")
    n_episodes, n_frames, data_files, video_files = counts
    return ExportSummary(out=out, format=FORMAT, episodes=n_episodes, frames=n_frames, skipped=skipped,
                         mode="video" if video else "image", vcodec=vcodec if video else None,
                         data_files=data_files, video_files=video_files)


def _write_dataset(spec: DatasetSpec, columns: list[Column], skipped: list[str], episodes: Iterable[Episode],
                   root: Path, fps: int, video: bool, vcodec: str, crf: int | None, data_mb: float,
                   video_mb: float) -> tuple[int, int, int, int]:
    schema = _data_schema(columns)
    data_writer = DataWriter(root, schema, data_mb * 1e6)
    video_writers = {c.name: VideoWriter(root, c.name, c.feature.shape[0], c.feature.shape[1], fps, vcodec, crf,
                                         video_mb * 1e6) for c in columns if c.storage == "video"}
    if video_writers:
        os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its banner to stderr per file otherwise
    tasks: dict[str, int] = {}
    rows: list[dict[str, Any]] = []
    totals = StatsAggregator()
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
                stats = episode_stats(columns, ep.data, table)
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
    encoder = ENCODERS[vcodec] if video else None
    info = _info_json(spec, columns, fps, len(rows), frames, len(tasks), video, encoder, crf, data_mb, video_mb)
    (root / "meta" / "info.json").write_text(json.dumps(info, indent=4))
    sidecar_spec = {"spec": spec.to_dict(), "exported": [c.name for c in columns], "skipped": skipped}
    (root / SPEC_SIDECAR).write_text(json.dumps(sidecar_spec, indent=2))
    n_video_files = sum(w.files for w in video_writers.values())
    return len(rows), frames, data_writer.files, n_video_files
