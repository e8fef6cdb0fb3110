"""diffusion_policy / UMI / DemoGen replay buffers: one zarr v2 group, every episode concatenated.

Layout (diffusion_policy ``common/replay_buffer.py``)::

    <root>/                   .zattrs: demoforge_spec, demoforge_layout (JSON; other readers ignore them)
      data/<key>              (N_total, ...) every feature, episodes back to back, time on axis 0
      meta/episode_ends       int64 (E,), exclusive cumulative end of each episode: episode i is
                              [episode_ends[i-1], episode_ends[i])
                              .zattrs: demoforge_episodes (metadata and id of each episode, in order)

Feature name -> key (``buffer_key``): ``action -> action``, ``next.reward -> reward``,
``next.done -> done``; otherwise drop ``observation.``, turn ``images.<cam>`` into ``<cam>_image``
(diffusion_policy's robomimic datasets use ``agentview_image``) and ``depth.<cam>`` into
``<cam>_depth``, ``pointcloud`` into ``point_cloud`` (DemoGen), then ``.`` into ``_``:
``observation.state -> state``, ``observation.images.front -> front_image``.

Arrays: images uint8 (N, H, W, C) in one-frame chunks ``(1, H, W, C)`` encoded with imagecodecs'
numcodecs codecs (ids ``imagecodecs_jpegxl`` / ``imagecodecs_jpeg2k``; readers call
``imagecodecs.numcodecs.register_codecs()`` first, as diffusion_policy does with its vendored copy); the
codec configuration written holds only keys that imagecodecs 2022.9.26 (diffusion_policy's pin) accepts.
Everything else (low-dim, depth, masks, point clouds) is lossless Blosc zstd with bitshuffle
(diffusion_policy's ``'disk'`` preset). The group is zarr v2, readable by zarr-python 2.12.

Import reads any such group (a directory, or a ``.zarr.zip`` as UMI writes) and guesses each key's kind;
see ``read_replay_buffer``.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import imagecodecs.numcodecs as image_numcodecs
import numcodecs
import numpy as np
import zarr
import zarr.storage

from toolkit.episode import Episode, EpisodeMeta, check_episode
from toolkit.errors import DemoforgeError, FormatError, one_line
from toolkit.formats.dtypes import portable_dtype
from toolkit.formats.keys import check_distinct, flat_key
from toolkit.formats.staging import remove, staged
from toolkit.formats.summary import ExportSummary
from toolkit.spec import DatasetSpec, Feature

FORMAT = "replay_buffer"
ImageCodec = Literal["jpegxl", "jpeg2k", "none"]
KINDS = ("state", "action", "image", "depth", "pointcloud", "mask", "scalar", "skip")
LOWDIM_COMPRESSOR = numcodecs.Blosc(cname="zstd", clevel=5, shuffle=numcodecs.Blosc.BITSHUFFLE)
CHUNK_BYTES = 1 << 20  # non-image chunks hold about 1 MiB of steps
DEFAULT_FPS = 10.0  # diffusion_policy's real-robot data; a replay buffer does not record its rate

image_numcodecs.register_codecs(verbose=False)


class _PortableJpegxl(image_numcodecs.Jpegxl):
    """imagecodecs' Jpegxl whose stored configuration older imagecodecs (2022.9.26) can still parse."""

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        return {k: config[k] for k in ("id", "level", "effort", "distance", "lossless", "decodingspeed") if k in config}


class _PortableJpeg2k(image_numcodecs.Jpeg2k):
    """imagecodecs' Jpeg2k whose stored configuration older imagecodecs (2022.9.26) can still parse."""

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        return {k: config[k] for k in ("id", "level", "reversible") if k in config}


def image_compressor(codec: ImageCodec, lossless: bool = False) -> numcodecs.abc.Codec:
    """The numcodecs codec for one-frame image chunks.

    JPEG-XL lossy follows diffusion_policy's default (distance 0.3, effort 3, decodingspeed 1). Pass
    ``lossless=False`` explicitly: current imagecodecs' ``Jpegxl()`` is lossless by default.
    """
    if codec == "jpegxl":
        if lossless:
            return _PortableJpegxl(lossless=True, effort=3)
        return _PortableJpegxl(lossless=False, distance=0.3, effort=3, decodingspeed=1)
    if codec == "jpeg2k":
        return _PortableJpeg2k(reversible=True) if lossless else _PortableJpeg2k(level=50)
    if codec == "none":
        return numcodecs.Blosc(cname="zstd", clevel=5, shuffle=numcodecs.Blosc.BITSHUFFLE)
    raise FormatError(f"image_codec '{codec}' is not one of jpegxl, jpeg2k, none")


def buffer_key(name: str) -> str:
    """The ``data/<key>`` for a feature name (see the module docstring)."""
    special = {"action": "action", "next.reward": "reward", "next.done": "done",
               "observation.pointcloud": "point_cloud", "pointcloud": "point_cloud"}
    return special.get(name) or flat_key(name)


def _time_chunk(step_shape: tuple[int, ...], dtype: np.dtype) -> int:
    step_bytes = max(1, int(np.prod(step_shape, dtype=np.int64)) * dtype.itemsize)
    return max(1, CHUNK_BYTES // step_bytes)


def _layout(spec: DatasetSpec, out: Path) -> tuple[dict[str, str], list[str]]:
    layout: dict[str, str] = {}
    skipped: list[str] = []
    for name, f in spec.features.items():
        if f.dtype == "string":
            skipped.append(f"feature '{name}': text features are not written to a replay buffer")
            continue
        layout[name] = buffer_key(name)
    check_distinct(layout, out, "data/{}")
    if not layout:
        raise FormatError(f"{out}: the spec has no feature a replay buffer can hold")
    return layout, skipped


def _zip_dir(src: Path, dst: Path) -> None:
    # ZIP_STORED, as zarr's ZipStore writes by default: chunks are compressed already
    with zipfile.ZipFile(dst, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as z:
        for file in sorted(src.rglob("*")):
            if file.is_file():
                z.write(file, file.relative_to(src).as_posix())


def export_replay_buffer(
    spec: DatasetSpec,
    episodes: Iterable[Episode],
    out: Path,
    *,
    image_codec: ImageCodec = "jpegxl",
    lossless: bool = False,
    overwrite: bool = False,
) -> ExportSummary:
    """Write ``episodes`` (streamed) as a diffusion_policy replay buffer at ``out`` (a directory, or a ``.zip``).

    Each episode is appended with one resize and one write per array; ``meta/episode_ends`` is written
    last. Everything goes to a temporary path renamed into place when complete. ``lossless`` makes
    images exact (JPEG-XL lossless or reversible JPEG 2000).
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise FormatError(f"{out}: already exists (pass overwrite=True to replace it)")
    compressor = image_compressor(image_codec, lossless)
    spec = spec.validated(f"{out} spec")
    layout, skipped = _layout(spec, out)
    summary = ExportSummary(out=out, format=FORMAT, skipped=skipped)
    zipped = out.name.endswith(".zip")
    with staged(out) as tmp:
        tmp_dir = tmp.with_name(tmp.name + ".d") if zipped else tmp
        try:
            _write_buffer(tmp_dir, spec, layout, episodes, compressor, summary)
            if zipped:
                _zip_dir(tmp_dir, tmp)
        finally:
            if zipped:
                remove(tmp_dir)
    return summary


def _write_buffer(root_path: Path, spec: DatasetSpec, layout: dict[str, str], episodes: Iterable[Episode],
                  compressor: numcodecs.abc.Codec, summary: ExportSummary) -> None:
    """Write the replay buffer as a zarr v2 directory at ``root_path``; counts go into ``summary``."""
    out = summary.out
    root = zarr.open_group(zarr.storage.LocalStore(root_path), mode="w", zarr_format=2)
    data = root.require_group("data")
    meta_group = root.require_group("meta")
    arrays: dict[str, zarr.Array] = {}
    ends: list[int] = []
    metas: list[dict[str, Any]] = []
    total = 0
    for i, episode in enumerate(episodes):
        episode = check_episode(episode, spec, f"{out} episode {i}")
        n = episode.length
        for name, key in layout.items():
            value = episode.data[name]
            if key not in arrays:
                f = spec.features[name]
                step = tuple(f.shape)
                if f.kind == "image":
                    chunks, comp = (1, *step), compressor
                else:
                    chunks, comp = (_time_chunk(step, value.dtype), *step), LOWDIM_COMPRESSOR
                arrays[key] = data.create_array(
                    key, shape=(0, *step), chunks=chunks, dtype=value.dtype, compressors=comp
                )
            array = arrays[key]
            array.resize((total + n, *array.shape[1:]))
            array[total:total + n] = value
        total += n
        ends.append(total)
        entry: dict[str, Any] = {"meta": episode.meta.to_dict()}
        if episode.id is not None:
            entry["id"] = episode.id
        metas.append(entry)
        summary.episodes += 1
    if not ends:
        raise FormatError(f"{out}: no episodes to export")
    summary.frames = total
    # diffusion_policy writes episode_ends after the data: an episode exists once its end is recorded
    meta_group.create_array(
        "episode_ends", data=np.asarray(ends, dtype=np.int64), chunks=(max(len(ends), 1),), compressors=None
    )
    meta_group.attrs["demoforge_episodes"] = metas
    root.attrs["demoforge_spec"] = spec.subset(layout).to_dict()
    root.attrs["demoforge_layout"] = layout


# ----------------------------------------------------------------------------------------------- import


def _open_root(path: Path) -> tuple[zarr.Group, Any]:
    """The root group and its store (close the store when done)."""
    if not path.exists():
        raise FormatError(f"{path}: no such file or directory")
    try:
        if path.is_file():
            if not zipfile.is_zipfile(path):
                raise FormatError(f"{path}: not a zarr store (a directory, or a .zarr.zip file)")
            store = zarr.storage.ZipStore(path, mode="r")
        else:
            store = zarr.storage.LocalStore(path, read_only=True)
        return zarr.open_group(store, mode="r"), store
    except DemoforgeError:
        raise
    except Exception as e:  # zarr raises several types for "nothing here"
        raise FormatError(
            f"{path}: not a zarr group ({one_line(e)}); expected a replay buffer with data/ and meta/episode_ends"
        ) from None


def guess_kind(key: str, dtype: np.dtype, step: tuple[int, ...]) -> str:
    """The demoforge kind of ``data/<key>`` from its name, dtype and step shape ('skip' when none fits)."""
    if portable_dtype(dtype) is None:
        return "skip"
    if key == "action" or key.startswith("action"):
        return "action" if len(step) == 1 and dtype.kind in "fiu" else "skip"
    if dtype.kind == "f" and len(step) == 2 and step[-1] in (3, 6) and ("cloud" in key or "pcd" in key or "points" in key):
        return "pointcloud"
    if "depth" in key and len(step) in (2, 3) and dtype.kind in "fu":
        return "depth"
    if dtype == np.uint8 and len(step) == 3 and step[-1] in (1, 3):
        return "image"
    if "mask" in key and len(step) in (2, 3) and dtype.kind in "biu":
        return "mask"
    if dtype.kind == "f" and len(step) == 2 and step[-1] in (3, 6):
        return "pointcloud"
    if dtype.kind == "f" and len(step) == 1:
        return "state"
    if len(step) <= 1:
        return "scalar"
    return "skip"


def _feature_for(key: str, kind: str, dtype: np.dtype, step: tuple[int, ...]) -> tuple[str, Feature]:
    """Feature name and feature for ``data/<key>`` of ``kind``, with the dtype the spec allows."""
    dt = portable_dtype(dtype) or np.dtype("float32")
    if kind == "image":
        stem = re.sub(r"_(image|img|rgb)$", "", key) or key
        return f"observation.images.{stem}", Feature("uint8", step, "image", ("height", "width", "channels"))
    if kind == "depth":
        stem = re.sub(r"_depth$", "", key) or key
        return f"observation.depth.{stem}", Feature("uint16" if dt == np.uint16 else "float32", step, "depth")
    if kind == "action":
        name = "action" if key == "action" else "action." + (key.removeprefix("action_") or key)
        return name, Feature(dt.name if dt.kind == "f" else "float32", step, "action")
    if kind == "state":
        name = "observation.state" if key == "state" else f"observation.{key}"
        return name, Feature(dt.name if dt.kind == "f" else "float32", step, "state")
    if kind == "pointcloud":
        name = "observation.point_cloud" if key in ("point_cloud", "pointcloud") else f"observation.{key}"
        return name, Feature(dt.name if dt.kind == "f" else "float32", step, "pointcloud")
    if kind == "mask":
        mask_dtype = dt.name if dt.name in ("uint8", "uint16", "int32", "bool") else "int32"
        return f"observation.{key}", Feature(mask_dtype, step, "mask")
    name = {"reward": "next.reward", "done": "next.done"}.get(key, f"observation.{key}")
    return name, Feature(dt.name, step, "scalar")


@dataclass
class ReplayBufferSource:
    """A replay buffer opened for import: ``spec``, ``len()``, and episodes read lazily by iteration."""

    path: Path
    spec: DatasetSpec
    episode_ends: np.ndarray
    layout: dict[str, str]  # feature name -> data/<key>
    task: str
    warnings: list[str] = field(default_factory=list)
    metas: list[dict[str, Any]] | None = None  # demoforge's per-episode metadata, when we wrote the store
    task_override: bool = False  # replace the task of restored metadata with ``task``

    def __len__(self) -> int:
        return len(self.episode_ends)

    @property
    def lengths(self) -> list[int]:
        return np.diff(self.episode_ends, prepend=0).astype(int).tolist()

    def __iter__(self) -> Iterator[Episode]:
        root, store = _open_root(self.path)
        try:
            arrays = {name: root[f"data/{key}"] for name, key in self.layout.items()}
            start = 0
            for i, end in enumerate(self.episode_ends.tolist()):
                yield self._episode(arrays, i, start, int(end))
                start = int(end)
        finally:
            store.close()

    def _episode(self, arrays: dict[str, zarr.Array], index: int, start: int, end: int) -> Episode:
        data: dict[str, np.ndarray] = {}
        for name, array in arrays.items():
            try:
                value = np.asarray(array[start:end])
            except Exception as e:
                raise FormatError(
                    f"{self.path}: data/{self.layout[name]} steps {start}..{end}: cannot read ({one_line(e)})"
                ) from None
            data[name] = value.astype(self.spec.features[name].numpy_dtype, copy=False)
        episode_id = None
        if self.metas is not None:
            entry = self.metas[index]
            meta = EpisodeMeta.from_dict(entry.get("meta"), f"{self.path}: meta attribute demoforge_episodes[{index}]")
            episode_id = entry.get("id")
            if self.task_override:
                meta.task = self.task
        else:
            meta = EpisodeMeta(task=self.task)
        meta.origin = {"format": FORMAT, "path": str(self.path), "episode": index}
        return Episode(data=data, meta=meta, id=episode_id)


def _episode_ends(path: Path, root: zarr.Group) -> np.ndarray:
    if "meta" not in root or "episode_ends" not in root["meta"]:
        raise FormatError(f"{path}: meta/episode_ends is missing (a replay buffer needs the end index of each episode)")
    ends = root["meta/episode_ends"]
    if not isinstance(ends, zarr.Array) or ends.ndim != 1 or np.dtype(ends.dtype).kind not in "iu":
        raise FormatError(f"{path}: meta/episode_ends must be a 1-D integer array")
    values = np.asarray(ends[:]).astype(np.int64)
    if len(values) == 0:
        raise FormatError(f"{path}: meta/episode_ends is empty (the buffer holds no episode)")
    steps = np.diff(values, prepend=0)
    if (steps <= 0).any():
        i = int(np.flatnonzero(steps <= 0)[0])
        raise FormatError(
            f"{path}: meta/episode_ends must increase strictly from above 0, but episode_ends[{i}] = {values[i]}"
            + (f" after {values[i - 1]}" if i else "")
        )
    return values


def read_replay_buffer(
    path: Path,
    *,
    task: str | None = None,
    kinds: dict[str, str] | None = None,
    fps: float | None = None,
    salvage: bool = False,
) -> ReplayBufferSource:
    """Open a diffusion_policy-style replay buffer (directory or ``.zarr.zip``) for import; arrays are read lazily.

    Each ``data/<key>`` gets a kind from ``kinds`` (key -> state, action, image, depth, pointcloud,
    mask, scalar or skip) or ``guess_kind``: ``action*`` -> action, float (N,P,3|6) -> pointcloud,
    ``*depth*`` -> depth, uint8 (N,H,W,1|3) -> image, float (N,D) -> state (``state``, ``agent_pos``,
    ``robot0_eef_pos``...), (N,) or (N,k) integers -> scalar. Names follow the kind:
    ``state -> observation.state``, ``point_cloud -> observation.point_cloud``,
    ``<cam>_image|_img|_rgb -> observation.images.<cam>``, ``action -> action``, others ``observation.<key>``.
    Stores we wrote come back with their own spec and metadata.

    Every data array must hold exactly ``episode_ends[-1]`` steps. Arrays that are longer (trailing
    steps of an interrupted ``add_episode``) are refused, or ignored with a warning when ``salvage``.
    A replay buffer records no task or rate: ``task`` defaults to the store's name, ``fps`` to 10.
    """
    path = Path(path)
    kinds = dict(kinds or {})
    for key, kind in kinds.items():
        if kind not in KINDS:
            raise FormatError(f"{path}: kinds['{key}'] = '{kind}' is not one of {', '.join(KINDS)}")
    root, store = _open_root(path)
    try:
        if "data" not in root or not isinstance(root["data"], zarr.Group):
            raise FormatError(f"{path}: no 'data' group (a replay buffer keeps its arrays under data/<key>)")
        ends = _episode_ends(path, root)
        total = int(ends[-1])
        arrays = {key: a for key, a in root["data"].arrays()}
        if not arrays:
            raise FormatError(f"{path}: data/ holds no arrays")
        unknown = sorted(set(kinds) - set(arrays))
        if unknown:
            raise FormatError(f"{path}: kinds names {unknown}, which are not arrays under data/ (have {sorted(arrays)})")
        warnings: list[str] = []
        short = {k: a.shape[0] if a.ndim else 0 for k, a in arrays.items() if (a.shape[0] if a.ndim else 0) < total}
        if short:
            key, length = next(iter(sorted(short.items())))
            raise FormatError(f"{path}: data/{key} holds {length} steps, but meta/episode_ends ends at {total}")
        long = {k: a.shape[0] for k, a in arrays.items() if a.shape[0] > total}
        if long:
            orphans = sorted(set(n - total for n in long.values()))
            desc = ", ".join(f"data/{k} ({n} steps)" for k, n in sorted(long.items()))
            message = (
                f"{desc} hold more than meta/episode_ends[-1] = {total}: {'/'.join(map(str, orphans))} trailing steps "
                "belong to no episode (an interrupted add_episode)"
            )
            if not salvage:
                raise FormatError(f"{path}: {message}; pass salvage=True to import the {len(ends)} complete episodes")
            warnings.append(f"{message}; ignored (salvage)")

        attrs = dict(root.attrs)
        if "demoforge_spec" in attrs and "demoforge_layout" in attrs and not kinds:
            source = _ours(path, root, attrs, ends, task)
        else:
            source = _foreign(path, arrays, ends, task, kinds, fps, warnings)
        source.warnings = warnings + [w for w in source.warnings if w not in warnings]
        return source
    finally:
        store.close()


def _ours(path: Path, root: zarr.Group, attrs: dict[str, Any], ends: np.ndarray, task: str | None) -> ReplayBufferSource:
    try:
        spec = DatasetSpec.from_dict(attrs["demoforge_spec"], f"{path}: root attribute demoforge_spec")
    except DemoforgeError as e:
        raise FormatError(str(e)) from None
    layout = attrs["demoforge_layout"]
    if not isinstance(layout, dict) or set(layout) != set(spec.features):
        raise FormatError(f"{path}: root attribute 'demoforge_layout' must map every feature of demoforge_spec to data/<key>")
    for name, key in layout.items():
        if f"data/{key}" not in root:
            raise FormatError(f"{path}: data/{key} is missing (feature '{name}' of demoforge_spec)")
    metas = dict(root["meta"].attrs).get("demoforge_episodes")
    if not isinstance(metas, list) or len(metas) != len(ends):
        metas = None  # the store was edited by another tool: keep the arrays, lose the metadata
    source = ReplayBufferSource(
        path=path, spec=spec, episode_ends=ends, layout=layout, task=task or _default_task(path), metas=metas,
        task_override=task is not None,
    )
    if metas is None:
        source.warnings.append(
            "meta attribute demoforge_episodes does not match meta/episode_ends; episode metadata not restored"
        )
    return source


def _default_task(path: Path) -> str:
    name = path.name
    for suffix in (".zip", ".zarr"):
        name = name.removesuffix(suffix)
    return name or "unknown task"


def _foreign(
    path: Path,
    arrays: dict[str, zarr.Array],
    ends: np.ndarray,
    task: str | None,
    kinds: dict[str, str],
    fps: float | None,
    warnings: list[str],
) -> ReplayBufferSource:
    features: dict[str, Feature] = {}
    layout: dict[str, str] = {}
    for key, array in sorted(arrays.items()):
        dtype, step = np.dtype(array.dtype), tuple(int(s) for s in array.shape[1:])
        kind = kinds.get(key) or guess_kind(key, dtype, step)
        if kind == "skip":
            if key not in kinds:
                warnings.append(f"data/{key} {dtype}{list(step)} has no demoforge kind and is not imported")
            continue
        name, feature = _feature_for(key, kind, dtype, step)
        if name in features:
            name = f"observation.{key}"
        features[name], layout[name] = feature, key
    if task is None:
        task = _default_task(path)
        warnings.append(f"no task given; episodes get the store's name '{task}'")
    if fps is None:
        fps = DEFAULT_FPS
        warnings.append(f"a replay buffer does not record its rate; fps set to {DEFAULT_FPS:g}")
    try:
        spec = DatasetSpec(fps=fps, features=features).validated(f"{path}: imported spec")
    except DemoforgeError as e:
        raise FormatError(f"{e} (pass kinds= to choose the kind of each data/<key>)") from None
    return ReplayBufferSource(path=path, spec=spec, episode_ends=ends, layout=layout, task=task)
