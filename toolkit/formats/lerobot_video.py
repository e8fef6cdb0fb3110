"""LeRobot's mp4 files: encode episodes back to back, decode the frames of one episode, check a file is whole."""

from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from toolkit.errors import FormatError, one_line
from toolkit.formats.lerobot_features import Source, fit_camera
from toolkit.formats.lerobot_layout import VIDEO_PATH, next_file

# demoforge name -> (PyAV encoder, codec name lerobot records in info.json, default crf, preset option)
ENCODERS: dict[str, tuple[str, str, int, str | None]] = {
    "libsvtav1": ("libsvtav1", "av1", 30, "12"),
    "av1": ("libsvtav1", "av1", 30, "12"),
    "libaom-av1": ("libaom-av1", "av1", 30, None),
    "h264": ("libx264", "h264", 23, "veryfast"),
    "libx264": ("libx264", "h264", 23, "veryfast"),
    "hevc": ("libx265", "hevc", 28, "veryfast"),
    "libx265": ("libx265", "hevc", 28, "veryfast"),
}
GOP = 2  # lerobot's default: every other frame is a keyframe, so random access stays cheap


class VideoWriter:
    """One camera's mp4 files: episodes encoded back to back, a new file once the limit is reached."""

    def __init__(self, root: Path, key: str, height: int, width: int, fps: int, vcodec: str,
                 crf: int | None, limit_bytes: float) -> None:
        encoder, _, default_crf, preset = ENCODERS[vcodec]
        self.options = {"g": str(GOP), "crf": str(default_crf if crf is None else crf)}
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
        self.chunk, self.file = (0, 0) if self.file < 0 else next_file(self.chunk, self.file)
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


class VideoCache:
    """Open video containers, kept while an iteration runs (episodes of one file are read in order)."""

    def __init__(self) -> None:
        self._open: dict[Path, Any] = {}

    def frames(self, path: Path, times: np.ndarray, src: Source) -> np.ndarray:
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
            raise FormatError(f"{path} cannot be decoded near t={t0:.3f}s ({one_line(exc)}): truncated or corrupt "
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
        return np.stack([fit_camera(image, src) for image in chosen])

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
        raise FormatError(f"{path} cannot be opened as a video ({one_line(exc)}): the file is truncated or "
                          f"corrupt; re-encode it or import the dataset without this camera") from None
    if not container.streams.video:
        container.close()
        raise FormatError(f"{path} holds no video stream")
    return container


def mp4_truncation(path: Path) -> str | None:
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


def video_duration(path: Path) -> float:
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
