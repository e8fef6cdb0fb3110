"""Reading a LeRobot dataset (v3.0, v2.1, v2.0): metadata checked up front, episodes decoded lazily.

Opening reads only metadata and refuses a broken dataset with one ``FormatError`` line: missing or bad
info.json, an unsupported version, footerless or missing parquet, truncated mp4, counts that disagree.
A v3.0 recording that died before ``finalize()`` can be salvaged from its complete row groups
(``lerobot_salvage``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import imagecodecs
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from toolkit.episode import Episode, EpisodeMeta
from toolkit.errors import DemoforgeError, FormatError, one_line
from toolkit.formats.lerobot_features import Source, fit_camera, spec_from_info
from toolkit.formats.lerobot_layout import (
    CHUNKS_SIZE,
    DATA_PATH,
    EPISODES_SIDECAR,
    READABLE_VERSIONS,
    SPEC_SIDECAR,
    V2_DATA_PATH,
    V2_VIDEO_PATH,
    VIDEO_PATH,
)
from toolkit.formats.lerobot_salvage import footerless, read_footerless, salvage_columns, salvage_report
from toolkit.formats.lerobot_video import VideoCache, mp4_truncation, video_duration

# ------------------------------------------------------------------------------------- file helpers


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
        if footerless(path):
            raise FormatError(f"{path} has no parquet footer ({path.stat().st_size} bytes, truncated or never "
                              f"closed): the writing process died before closing it") from None
        raise FormatError(f"{path} is not a readable parquet file ({one_line(exc)})") from None


# -------------------------------------------------------------------------------------- column decoding


def _decode_image(blob: bytes, where: str) -> np.ndarray:
    if blob[:8] == b"\x89PNG\r\n\x1a\n":
        return imagecodecs.png_decode(blob)
    if blob[:2] == b"\xff\xd8":
        return imagecodecs.jpeg8_decode(blob)
    try:
        return imagecodecs.imread(blob)
    except Exception:
        raise FormatError(f"{where}: image bytes are in no format imagecodecs reads (expected PNG)") from None


def _camera_column(col: pa.ChunkedArray, src: Source, root: Path, where: str) -> np.ndarray:
    """Decode an image column (struct<bytes, path>) into (T, *shape) of the feature's dtype."""
    frames = []
    for item in col.to_pylist():
        blob = item.get("bytes") if isinstance(item, dict) else item
        if blob is None and isinstance(item, dict) and item.get("path"):
            path = root / item["path"]
            blob = path.read_bytes() if path.exists() else None
        if blob is None:
            raise FormatError(f"{where}: feature '{src.name}' has a frame with neither bytes nor a readable path")
        frames.append(fit_camera(_decode_image(blob, where), src))
    return np.stack(frames)


def _numeric_column(col: pa.ChunkedArray, src: Source, n: int) -> np.ndarray:
    f = src.feature
    if f.dtype == "string":
        return np.array([str(v) if v is not None else "" for v in col.to_pylist()], dtype=object).reshape(n, *f.shape)
    array = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    while pa.types.is_list(array.type) or pa.types.is_fixed_size_list(array.type) or pa.types.is_large_list(array.type):
        array = array.flatten()  # vectors: fixed_size_list (lerobot) or list (converters, salvage)
    return array.to_numpy(zero_copy_only=False).astype(f.dtype, copy=False).reshape(n, *f.shape)


# ------------------------------------------------------------------------------------------ the source


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
        self.spec, self._sources, self.skipped = spec_from_info(info, self.info_path, sidecar)
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
        videos = VideoCache()
        try:
            for ref in self._episodes:
                yield self._read(ref, videos)
        finally:
            videos.close()

    def episode(self, i: int) -> Episode:
        """Episode ``i`` alone (random access)."""
        videos = VideoCache()
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
                              f"({one_line(exc)})") from None
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
            raise FormatError(f"{where}: cannot locate the data file ({one_line(exc)})") from None
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
            if footerless(path):
                raise FormatError(f"{path} has no parquet footer ({path.stat().st_size} bytes, truncated or never "
                                  f"closed); {salvage_report(self.info, [path])}")
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
        broken = [p for p in data_files if footerless(p)]
        claim = (f"info.json claims {self.info.get('total_episodes')} episodes / "
                 f"{self.info.get('total_frames')} frames")
        if broken:
            report = salvage_report(self.info, broken)
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
        template = self.info.get("data_path") or V2_DATA_PATH
        vtemplate = self.info.get("video_path") or V2_VIDEO_PATH
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
            if path.exists() and path.suffix == ".mp4" and (problem := mp4_truncation(path)):
                raise FormatError(f"{path} {problem}; re-download or re-encode it (the episodes in other video "
                                  f"files are intact)")
            duration = video_duration(path)
            if duration and duration + 0.5 / self._fps < end:
                raise FormatError(f"{path} holds {duration:.3f}s of video but meta/episodes needs {end:.3f}s: the "
                                  f"file is truncated; episodes ending before {duration:.3f}s are intact")

    # -- episodes ------------------------------------------------------------------------------------

    def _read(self, ref: _EpisodeRef, videos: VideoCache) -> Episode:
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
            raise FormatError(f"{where}: the data cannot be read ({one_line(exc)})") from None
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
            if footerless(path):
                table = read_footerless(path, salvage_columns(self.info))
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
        if len(files) == 1 and abs(video_duration(files[0]) - total / self._fps) < 0.5 / self._fps:
            start = 0
            for ref in refs:
                ref.videos[key] = (files[0], start / self._fps)
                start += ref.length
            return
        self._sources = [s for s in self._sources if s.name != key]
        self.spec = self.spec.subset(n for n in self.spec.features if n != key)
        self.skipped.append(key)
        self.warnings.append(f"{self.root / 'videos' / key}: cannot match video files to salvaged episodes; "
                             f"camera '{key}' skipped")


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
