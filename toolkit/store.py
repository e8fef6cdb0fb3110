"""The episode store: a zarr v3 group holding one group per episode, and a catalog beside them.

Layout (readable in a minute, like diffusion_policy's ReplayBuffer)::

    store.zarr/
      zarr.json                    root group; attributes["demoforge"] = {format_version, spec, storage}
      episodes/zarr.json           group
      episodes/000042/zarr.json    one episode; attributes["demoforge"] = {id, length, created, meta, committed}
      episodes/000042/<feature>    one array per feature, time on axis 0
      catalog.sqlite               fast index over the episodes' metadata (rebuildable, see catalog.py)
      .staging/  .trash/           work in progress; never read
      .pending/                    markers of in-place changes whose catalog row is not written yet

Arrays: state/action/scalar features are one chunk per episode (blosc-zstd, bitshuffle). Images
are one-frame chunks inside one shard per episode, so a random frame costs one small read, a trim
slices the shard's bytes without re-encoding, and an episode is one file per camera. Depth, masks and
point clouds are one shard per episode too, with inner chunks of about 1 MiB (as many frames as fit,
at least one), compressed with blosc-zstd level 1 and byte shuffle: their per-chunk cost, not the
bytes, dominated appending them frame by frame, and a fast level loses little on noisy floats. RGB
images are JPEG (or JPEG-XL) through ``toolkit.codecs``; everything else, and images with
``image_codec="lossless"``, uses zarr's standard codecs only. The array files are the ones zarr
writes, byte for byte, but written by ``toolkit.arrayfiles`` (zarr's per-call overhead cost more
than encoding a point cloud), with every chunk of an episode encoded at once on a few threads.

Commit protocol: an episode is written completely under ``.staging/``, its ``zarr.json`` (id,
``committed``) last, flushed to disk, then renamed to ``episodes/<id>`` with a no-replace rename, which
is the commit point; nothing of it is written between the flush and the rename. ``append_many``
flushes a whole batch at once (``fsops.Flusher``: one ``syncfs`` where Linux makes that a full flush, else an
fsync of every file and folder). Readers list ``episodes/`` and read only groups whose attributes say
``committed``, so a reader never sees a partial episode and a writer killed at any moment leaves every
earlier episode intact. Deleting
renames an episode out of ``episodes/`` first; trimming writes the shortened episode beside it and
swaps the two directories atomically. Nothing ever rewrites another episode, and appending costs the
same at any store size.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import wait
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np
import zarr
import zarr.api.asynchronous as zarr_async
from zarr.codecs import BloscCodec
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync
from zarr.storage import LocalStore, MemoryStore

from toolkit import arrayfiles, fsops
from toolkit.catalog import Catalog
from toolkit.codecs import JpegCodec, JpegXlCodec
from toolkit.episode import Episode, EpisodeMeta, NonFinitePolicy, check_episode
from toolkit.errors import StoreError
from toolkit.progress import track
from toolkit.shards import slice_shard
from toolkit.spec import DatasetSpec, Feature

FORMAT_VERSION = 1
ATTR = "demoforge"
EPISODES = "episodes"
STAGING = ".staging"
TRASH = ".trash"
PENDING = ".pending"
ID_WIDTH = 6

_LOSSLESS = BloscCodec(cname="zstd", clevel=5, shuffle="bitshuffle")  # small arrays, masks, lossless images
# Depth and point clouds: noisy floats that compress ~1.5x at any level; level 1 with byte shuffle
# encodes ~10x faster than level 5 with bitshuffle for ~7% more bytes (benchmarks/bench_pointcloud.py).
_FAST_LOSSLESS = BloscCodec(cname="zstd", clevel=1, shuffle="shuffle")
_FRAMED_KINDS = ("image", "depth", "mask", "pointcloud")  # one shard per episode
_CHUNK_BYTES = 1 << 20  # inner chunk size of depth, masks and point clouds (images: one frame)


@dataclass(frozen=True)
class StorageOptions:
    """How arrays are encoded. ``image_codec``: ``jpeg`` (quality 1-100), ``jpegxl`` (quality mapped to a
    JPEG-XL distance) or ``lossless`` (blosc-zstd). ``fsync``: flush each episode to disk before its commit."""

    image_codec: Literal["jpeg", "jpegxl", "lossless"] = "jpeg"
    image_quality: int = 90
    fsync: bool = True

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StorageOptions:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_json_atomic(path: Path, value: dict[str, Any], durable: bool = False) -> None:
    """Replace ``path`` by a new document in one step; ``durable``: the new bytes reach the disk before
    the rename does, so a crash leaves the old document or the new one, never an empty file."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "w") as fh:
        fh.write(json.dumps(value, indent=2))
        if durable:
            fh.flush()
            os.fsync(fh.fileno())
    os.replace(tmp, path)
    if durable:
        fsops.fsync_dir(path.parent)


def parse_root(meta: dict[str, Any], where: str) -> tuple[DatasetSpec, StorageOptions]:
    """The spec and storage options from a store's root ``zarr.json`` document (local or remote);
    ``where`` names the store in the one-line errors."""
    attrs = (meta.get("attributes") or {}).get(ATTR)
    if not isinstance(attrs, dict) or "spec" not in attrs:
        raise StoreError(f"{where}/zarr.json: field 'attributes.{ATTR}' is missing: not a demoforge store")
    version = attrs.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise StoreError(f"{where}/zarr.json: format_version {version!r} is newer than this demoforge reads "
                         f"(<= {FORMAT_VERSION}); upgrade demoforge")
    spec = DatasetSpec.from_dict(attrs["spec"], f"{where}/zarr.json spec")
    return spec, StorageOptions.from_dict(attrs.get("storage") or {})


def _jpegxl_distance(quality: int) -> float:
    # libjxl's own quality-to-distance mapping for quality >= 30 (q90 -> d1.0, q100 -> lossless).
    return max(0.0, 0.1 + (100 - quality) * 0.09)


class Store:
    """A demoforge episode store on a local path. Open with ``Store.create`` or ``Store.open``."""

    def __init__(self, root: Path, spec: DatasetSpec, options: StorageOptions, writable: bool) -> None:
        self.root = root
        self.spec = spec
        self.options = options
        self.writable = writable
        self.catalog = Catalog(root / "catalog.sqlite", readonly=not writable, scores_root=root)
        self._next_hint: int | None = None  # number of the next episode id, from the catalog on first use
        self._documents: dict[tuple, bytes] = {}  # array zarr.json documents by feature, shape and codec
        self._reconcile()
        if writable:
            self._clean_staging()

    # -- opening -------------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, spec: DatasetSpec, options: StorageOptions | None = None,
               exist_ok: bool = False) -> Store:
        """Make a new empty store at ``path`` (refuses an existing store unless ``exist_ok``)."""
        from toolkit import remote  # a URL: file:// is this local store, other schemes toolkit/remote.py
        if remote.is_url(path) and remote.local_path(path) is None:
            return remote.RemoteStore.create(path, spec, options, exist_ok)  # type: ignore[return-value]
        root = remote.local_path(path) or Path(path)
        spec = spec.validated(f"{root}: spec")
        options = options or StorageOptions()
        if (root / "zarr.json").exists():
            if exist_ok:
                store = cls.open(root, mode="a")
                spec.check_compatible(store.spec, f"{root}")
                return store
            raise StoreError(f"{root}: a store already exists here (choose another --out or delete it)")
        if root.exists() and any(root.iterdir()):
            raise StoreError(f"{root}: the directory is not empty and is not a demoforge store")
        group = zarr.open_group(LocalStore(root), mode="w", zarr_format=3)
        group.create_group(EPISODES)
        group.attrs[ATTR] = {
            "format_version": FORMAT_VERSION,
            "spec": spec.to_dict(),
            "storage": asdict(options),
            "created": _now(),
        }
        return cls(root, spec, options, writable=True)

    @classmethod
    def open(cls, path: str | Path, mode: Literal["r", "a"] = "r") -> Store:
        """Open an existing store for reading (``r``) or appending and editing (``a``)."""
        from toolkit import remote  # a URL: file:// is this local store, other schemes toolkit/remote.py
        if remote.is_url(path) and remote.local_path(path) is None:
            return remote.RemoteStore.open(path, mode)  # type: ignore[return-value]
        root = remote.local_path(path) or Path(path)
        if not root.exists():
            raise StoreError(f"{root}: no such store")
        meta = _read_json(root / "zarr.json")
        if meta is None:
            raise StoreError(f"{root}: not a demoforge store (zarr.json is missing or not JSON)")
        spec, options = parse_root(meta, str(root))
        return cls(root, spec, options, writable=(mode == "a"))

    def close(self) -> None:
        self.catalog.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- listing -------------------------------------------------------------------------------
    @property
    def _episodes_dir(self) -> Path:
        return self.root / EPISODES

    def _entry_path(self, episode_id: str) -> Path:
        return self._episodes_dir / episode_id / "zarr.json"

    def _disk_ids(self) -> set[str]:
        with os.scandir(self._episodes_dir) as it:
            return {e.name for e in it if e.is_dir() and not e.name.startswith(".")}

    def _disk_entry(self, episode_id: str) -> dict[str, Any] | None:
        meta = _read_json(self._entry_path(episode_id))
        entry = ((meta or {}).get("attributes") or {}).get(ATTR)
        return entry if isinstance(entry, dict) and entry.get("committed") else None

    def _pending_ids(self) -> set[str]:
        """Episodes changed in place (trim, metadata) whose catalog row may not have caught up."""
        pending = self.root / PENDING
        return {p.name for p in pending.iterdir()} if pending.is_dir() else set()

    def _mark_pending(self, episode_id: str) -> None:
        (self.root / PENDING).mkdir(exist_ok=True)
        (self.root / PENDING / episode_id).touch()

    def _clear_pending(self, episode_id: str) -> None:
        (self.root / PENDING / episode_id).unlink(missing_ok=True)

    def _reconcile(self) -> None:
        """Bring the catalog in step with the committed episodes on disk (cheap when nothing changed).

        Appends and deletes show up as a difference between the ids in ``episodes/`` and in the
        catalog; in-place changes leave a marker in ``.pending/`` until their catalog row is written.
        """
        on_disk = self._disk_ids()
        pending = self._pending_ids()
        in_catalog = set(self.catalog.ids())
        if on_disk and "revision" not in self.catalog.column_names():
            pending = pending | on_disk  # a catalog from before episode revisions: re-index every row
        if on_disk == in_catalog and not pending:
            return
        if not self.writable:
            # A read-only reader must not write; index the episodes in memory instead.
            self.catalog.close()
            self.catalog = Catalog(None, scores_root=self.root)
            in_catalog, pending = set(), set()
        self.catalog.remove(in_catalog - on_disk)
        stale = (on_disk - in_catalog) | (pending & on_disk)
        entries = [e for e in (self._disk_entry(i) for i in sorted(stale)) if e]
        self.catalog.upsert(entries)
        for episode_id in pending:
            self._clear_pending(episode_id)

    def _clean_staging(self) -> None:
        """Remove work left behind by writers that died (their pid is gone)."""
        for parent in (self.root / STAGING, self.root / TRASH):
            if not parent.is_dir():
                continue
            for child in parent.iterdir():
                pid = child.name.split("-", 1)[0]
                if pid.isdigit() and not _pid_alive(int(pid)):
                    shutil.rmtree(child, ignore_errors=True)

    def unreadable(self) -> dict[str, str]:
        """Episode folders that are not committed episodes, with the reason (for ``validate``)."""
        problems = {}
        for name in sorted(self._disk_ids()):
            path = self._entry_path(name)
            if not path.exists():
                problems[name] = f"{path}: missing (the episode folder has no group metadata)"
            elif _read_json(path) is None:
                problems[name] = f"{path}: not valid JSON"
            elif self._disk_entry(name) is None:
                problems[name] = f"{path}: field 'attributes.{ATTR}.committed' is missing"
        return problems

    def in_step(self) -> bool:
        """Whether this handle still shows every committed change: its catalog is the store's own file (a
        reader that found it behind at open indexes in memory and misses later appends) and counts every
        episode folder. Long-lived readers (the dashboard) re-open when it is False."""
        return self.catalog.path is not None and len(self._disk_ids()) == len(self.catalog)

    def rebuild_catalog(self) -> int:
        """Re-index every committed episode from its own attributes; returns the count."""
        self.catalog.clear()
        entries = [e for e in (self._disk_entry(i) for i in sorted(self._disk_ids())) if e]
        self.catalog.upsert(entries)
        return len(entries)

    def ids(self, where: str | None = None) -> list[str]:
        """Committed episode ids in order, optionally filtered (see ``toolkit.query``)."""
        return self.catalog.select(where)

    def __len__(self) -> int:
        return len(self.catalog)

    def __contains__(self, episode_id: str) -> bool:
        return self._disk_entry(episode_id) is not None

    # -- reading -------------------------------------------------------------------------------
    def entry(self, episode_id: str) -> dict[str, Any]:
        """The stored attributes of an episode: id, length, created, meta."""
        entry = self._disk_entry(episode_id)
        if entry is None:
            raise StoreError(f"{self.root}: no committed episode '{episode_id}'")
        return entry

    def meta(self, episode_id: str) -> EpisodeMeta:
        return EpisodeMeta(**self.entry(episode_id)["meta"])

    def _open_group(self, episode_id: str) -> zarr.Group:
        return zarr.open_group(LocalStore(self._episodes_dir / episode_id, read_only=True), mode="r")

    def group(self, episode_id: str) -> zarr.Group:
        """The committed episode's zarr group, read-only (its arrays are lazy)."""
        self.entry(episode_id)
        return self._open_group(episode_id)

    def array(self, episode_id: str, feature: str) -> zarr.Array:
        """A lazy zarr array for one feature of one episode (index it to read frames)."""
        if feature not in self.spec.features:
            raise StoreError(f"{self.root}: no feature '{feature}' (features: {sorted(self.spec.features)})")
        self.entry(episode_id)
        return zarr.open_array(LocalStore(self._episodes_dir / episode_id / feature, read_only=True), mode="r")

    def read(self, episode_id: str, features: Iterable[str] | None = None) -> Episode:
        """Load an episode's arrays (all features, or the ones named) into memory."""
        return self.read_many([episode_id], features)[0]

    def read_many(self, ids: Iterable[str], features: Iterable[str] | None = None) -> list[Episode]:
        """Load several episodes at once (one trip through zarr's event loop for all their arrays: the
        per-call overhead, not the bytes, dominates reading small state and action arrays)."""
        ids = list(ids)
        names = list(features) if features is not None else list(self.spec.features)
        unknown = [n for n in names if n not in self.spec.features]
        if unknown:
            raise StoreError(f"{self.root}: no feature(s) {unknown} (features: {sorted(self.spec.features)})")
        entries = [self.entry(i) for i in ids]
        folders = [self._episodes_dir / i for i in ids]
        arrays = sync(_read_arrays(folders, names))
        return [Episode(data=dict(zip(names, data)), meta=EpisodeMeta(**entry["meta"]), id=episode_id)
                for episode_id, entry, data in zip(ids, entries, arrays)]

    def read_batch(self, features: Iterable[str] | None = None) -> int:
        """How many episodes to read at once: one when any framed feature (camera frames, depth, point
        clouds) is read, so memory stays at one episode; 16 for small arrays, where batching pays."""
        names = list(self.spec.features) if features is None else list(features)
        return 1 if any(self.spec.features[n].kind in _FRAMED_KINDS for n in names) else 16

    def episodes(self, ids: Iterable[str] | None = None, features: Iterable[str] | None = None) -> Iterator[Episode]:
        """Episodes one at a time, read in batches of ``read_batch(features)``."""
        names = None if features is None else list(features)
        ids = list(self.ids() if ids is None else ids)
        batch = self.read_batch(names)
        for start in range(0, len(ids), batch):
            yield from self.read_many(ids[start:start + batch], names)

    # -- writing -------------------------------------------------------------------------------
    def _require_writable(self) -> None:
        if not self.writable:
            raise StoreError(f"{self.root}: opened read-only")

    def _flusher(self) -> fsops.Flusher:
        return fsops.Flusher(self.root, self.options.fsync)

    def _staging_dir(self) -> Path:
        path = self.root / STAGING / f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        path.parent.mkdir(exist_ok=True)
        return path

    def _layout(self, feature: Feature, array: np.ndarray) -> dict[str, Any]:
        """``create_array`` arguments for one feature's array: dtype, chunks, shards, codecs."""
        if feature.dtype == "string":
            return {"dtype": str, "chunks": array.shape}
        if feature.kind not in _FRAMED_KINDS:
            return {"dtype": array.dtype, "chunks": array.shape, "compressors": _LOSSLESS}
        length = max(1, array.shape[0])
        frames = 1 if feature.kind == "image" else max(1, min(length, _CHUNK_BYTES // max(1, array[0].nbytes)))
        shard = -(-length // frames) * frames  # whole episode, rounded up to whole inner chunks
        return {"dtype": array.dtype, "chunks": (frames, *feature.shape), "shards": (shard, *feature.shape),
                **self._frame_codecs(feature)}

    def _write_arrays(self, folder: Path, arrays: dict[str, np.ndarray]) -> None:
        """Write every array of ``arrays`` (named features) into the group folder ``folder``: the files
        zarr would write, byte for byte (see ``_start_writing``). The group's own ``zarr.json`` is the
        caller's (``_set_entry``)."""
        self._start_writing(folder, arrays).finish()

    def _start_writing(self, folder: Path, arrays: dict[str, np.ndarray]) -> arrayfiles.Writing:
        """Start writing ``arrays`` into ``folder``: this thread makes the folders and array documents,
        and each chunk file is encoded and written by a task on the store's threads (blosc, the image
        codecs and file writes release the GIL), so the files of several episodes are in flight at once.
        Arrays whose layout ``plan_array`` does not handle (text) are written through zarr by ``finish``."""
        writing = arrayfiles.Writing(folder, [], {})
        try:
            self._plan_files(writing, arrays)
        except BaseException:
            writing.cancel()
            wait(writing.tasks)
            raise
        if writing.rest:
            writing.layouts = {name: self._layout(self.spec.features[name], a) for name, a in writing.rest.items()}
        return writing

    def _plan_files(self, writing: arrayfiles.Writing, arrays: dict[str, np.ndarray]) -> None:
        folder = writing.folder
        folder.mkdir(parents=True, exist_ok=True)
        for name, array in arrays.items():
            document = self._array_document(name, array)
            plan = arrayfiles.plan_array(json.loads(document), array) if document else None
            if plan is None:
                writing.rest[name] = array
                continue
            made = {name}
            os.mkdir(folder / name)
            arrayfiles.write_file(folder / name / "zarr.json", [document])
            for key, chunks in plan.files:
                steps = f"{name}/{key}".split("/")
                for depth in range(2, len(steps)):  # the key's folders, top down (c, c/0, ...)
                    sub = "/".join(steps[:depth])
                    if sub not in made:
                        os.mkdir(folder / sub)
                        made.add(sub)
                writing.tasks.append(fsops.submit(arrayfiles.write_chunk_file, folder / name / key, plan, chunks))

    def _array_document(self, name: str, array: np.ndarray) -> bytes | None:
        """The ``zarr.json`` zarr writes for this array (made by zarr itself, in memory, once per shape);
        None for text, which zarr writes whole."""
        feature = self.spec.features[name]
        if feature.dtype == "string":
            return None
        key = (name, array.shape, array.dtype.str, self.options.image_codec, self.options.image_quality)
        document = self._documents.get(key)
        if document is None:
            made = zarr.create_array(MemoryStore(), shape=array.shape, config={"write_empty_chunks": True},
                                     **self._layout(feature, array))
            document = made.metadata.to_buffer_dict(default_buffer_prototype())["zarr.json"].to_bytes()
            if len(self._documents) >= 512:  # episode lengths vary: keep the cache bounded
                self._documents.clear()
            self._documents[key] = document
        return document

    def _frame_codecs(self, feature: Feature) -> dict[str, Any]:
        lossy = feature.kind == "image" and self.options.image_codec != "lossless"
        if feature.kind in ("depth", "pointcloud"):
            return {"compressors": _FAST_LOSSLESS}
        if not lossy:
            return {"compressors": _LOSSLESS}
        if self.options.image_codec == "jpegxl":
            return {"serializer": JpegXlCodec(distance=_jpegxl_distance(self.options.image_quality)), "compressors": None}
        return {"serializer": JpegCodec(quality=self.options.image_quality), "compressors": None}

    def _commit(self, staged: Path, entry: dict[str, Any], flusher: fsops.Flusher) -> str:
        """Commit one fully written staging group under a fresh id; returns the id."""
        return self._commit_all([(staged, entry)], flusher)[0]

    def _commit_all(self, staged: list[tuple[Path, dict[str, Any]]], flusher: fsops.Flusher) -> list[str]:
        """Commit fully written staging groups, in order; returns their ids.

        Each group's attributes (its id, the committed mark) are written into its ``zarr.json`` first,
        then the whole batch is flushed to disk at once, then each group is renamed into ``episodes/``
        with a no-replace rename (one episode's commit point), then ``episodes/`` is flushed and the
        catalog rows written. Nothing of an episode is written between the flush and its rename: if
        another writer took its id meanwhile, the new id is written and flushed before the next try.
        """
        first = self._next_number()
        for k, (path, entry) in enumerate(staged):
            entry["id"] = f"{first + k:0{ID_WIDTH}d}"
            _set_entry(path, entry)
        flusher.flush([path for path, _ in staged])
        ids = [self._rename_in(path, entry, flusher) for path, entry in staged]
        flusher.flush_dir(self._episodes_dir)
        self.catalog.upsert([entry for _, entry in staged])
        return ids

    def _next_number(self) -> int:
        if self._next_hint is None:
            last = self.catalog.max_id()
            self._next_hint = int(last) + 1 if last and last.isdigit() else 0
        return self._next_hint

    def _rename_in(self, staged: Path, entry: dict[str, Any], flusher: fsops.Flusher) -> str:
        """Rename a flushed staging group to ``episodes/<its id>``, taking the next id while another
        writer holds it (its ``zarr.json`` rewritten and flushed again first)."""
        while True:
            try:
                fsops.rename_noreplace(staged, self._episodes_dir / entry["id"])
                break
            except FileExistsError:
                entry["id"] = f"{int(entry['id']) + 1:0{ID_WIDTH}d}"
                _set_entry(staged, entry)
                flusher.flush_file(staged / "zarr.json")
        self._next_hint = int(entry["id"]) + 1
        return entry["id"]

    def append(self, episode: Episode, nonfinite: NonFinitePolicy = "flag") -> str:
        """Check, write and commit one episode; returns its id. The store is unchanged if this raises."""
        return self.append_many([episode], nonfinite)[0]

    def append_many(self, episodes: Iterable[Episode], nonfinite: NonFinitePolicy = "flag") -> list[str]:
        """Check, write and commit several episodes in order; returns their ids. Each is committed
        atomically on its own, as by ``append``, but they share one flush: cheaper than one ``append``
        each. The store is unchanged if checking or writing any of them raises."""
        self._require_writable()
        checked = [check_episode(e, self.spec, f"{self.root}: new episode ({e.meta.task!r})", nonfinite)
                   for e in episodes]
        staged: list[tuple[Path, dict[str, Any]]] = []
        writings: list[arrayfiles.Writing] = []
        try:
            with self._flusher() as flusher:  # opened before anything is written (see fsops.Flusher)
                for episode in checked:  # every episode's files in flight at once
                    path = self._staging_dir()
                    staged.append((path, {"id": None, "length": episode.length, "created": _now(),
                                          "meta": episode.meta.to_dict()}))
                    arrays = {name: episode.data[name] for name in self.spec.features}
                    writings.append(self._start_writing(path, arrays))
                for writing in writings:
                    writing.finish()
                return self._commit_all(staged, flusher)
        finally:
            for writing in writings:
                writing.cancel()
            for writing in writings:  # a started file must be closed before its folder is removed
                wait(writing.tasks)
            for path, _ in staged:
                if path.exists():
                    shutil.rmtree(path, ignore_errors=True)

    def copy_from(self, source: Store, episode_id: str, meta_update: dict[str, Any] | None = None) -> str:
        """Copy an episode's stored bytes from another store (no re-encoding); returns the new id."""
        self._require_writable()
        entry = dict(source.entry(episode_id))
        self.spec.check_compatible(source.spec, f"{source.root}")
        staged = self._staging_dir()
        try:
            with self._flusher() as flusher:
                shutil.copytree(source._episodes_dir / episode_id, staged)
                meta = dict(entry["meta"])
                meta.update(meta_update or {})
                EpisodeMeta.from_dict(meta, f"{source.root}: episode {episode_id} metadata")
                entry.update(meta=meta, created=_now())
                return self._commit(staged, entry, flusher)
        finally:
            if staged.exists():
                shutil.rmtree(staged, ignore_errors=True)

    def update_meta(self, episode_id: str, **changes: Any) -> EpisodeMeta:
        """Change metadata fields of one episode (tags, success, notes ...) in place, atomically."""
        self._require_writable()
        entry = self.entry(episode_id)
        meta = EpisodeMeta.from_dict({**entry["meta"], **changes}, f"{self.root}: episode {episode_id}")
        entry["meta"] = meta.to_dict()
        self._mark_pending(episode_id)
        _set_entry(self._episodes_dir / episode_id, entry, durable=self.options.fsync)
        self.catalog.upsert([entry])
        self._clear_pending(episode_id)
        return meta

    def delete(self, ids: Iterable[str]) -> list[str]:
        """Delete episodes; each disappears atomically. Unknown ids are refused before anything changes."""
        self._require_writable()
        ids = list(ids)
        unknown = [i for i in ids if i not in self]
        if unknown:
            raise StoreError(f"{self.root}: no committed episode(s) {unknown[:5]}; nothing was deleted")
        trash = self.root / TRASH
        trash.mkdir(exist_ok=True)
        for episode_id in ids:
            target = trash / f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
            os.rename(self._episodes_dir / episode_id, target)  # the episode is gone from here on
            self.catalog.remove([episode_id])
            shutil.rmtree(target, ignore_errors=True)
        return ids

    def trim(self, episode_id: str, start: int, stop: int) -> int:
        """Keep frames ``[start, stop)`` of an episode, without re-encoding images; returns the new length.

        The trimmed copy is written beside the episode and swapped in atomically, so a crash leaves
        either the old or the new episode. Flag frame ranges are shifted to the new frame numbers.
        """
        self._require_writable()
        entry = self.entry(episode_id)
        length = entry["length"]
        if not (0 <= start < stop <= length):
            raise StoreError(
                f"{self.root}: episode {episode_id}: frame range [{start}, {stop}) must lie within [0, {length}) "
                "and keep at least one frame"
            )
        staged = self._staging_dir()
        source_dir = self._episodes_dir / episode_id
        try:
            with self._flusher() as flusher:
                copied = {}
                for name, feature in self.spec.features.items():
                    if not self._slice_shard(staged, name, feature, source_dir / name, length, start, stop):
                        source = zarr.open_array(LocalStore(source_dir / name, read_only=True), mode="r")
                        copied[name] = np.asarray(source[start:stop])  # lossless: decode and re-encode
                self._write_arrays(staged, copied)
                meta = dict(entry["meta"])
                meta["flags"] = _shift_flags(meta.get("flags") or {}, start, stop)
                if not meta["flags"]:
                    del meta["flags"]
                entry.update(length=stop - start, meta=meta, trimmed_from=[start, stop, length])
                _set_entry(staged, entry)
                flusher.flush([staged])
            self._mark_pending(episode_id)
            self._swap_in(staged, source_dir)
            self.catalog.upsert([entry])
            self._clear_pending(episode_id)
        finally:
            if staged.exists():
                shutil.rmtree(staged, ignore_errors=True)
        return stop - start

    def _slice_shard(self, staged: Path, name: str, feature: Feature, src: Path, length: int,
                     start: int, stop: int) -> bool:
        """Trim an image array by slicing its shard of one-frame chunks (never decoded, so JPEG frames
        suffer no second generation loss); False for every other array, which the caller re-encodes."""
        if feature.kind != "image" or feature.dtype == "string":
            return False
        source = zarr.open_array(LocalStore(src, read_only=True), mode="r")
        if source.shards is None or source.chunks[0] != 1 or source.shards[0] != length:
            return False
        shape = (stop - start, *feature.shape)
        group = zarr.open_group(LocalStore(staged), mode="a", zarr_format=3)
        arr = group.create_array(
            name, shape=shape, dtype=source.dtype, chunks=(1, *feature.shape), shards=shape,
            serializer=source.serializer, compressors=source.compressors,
        )
        zero = (0,) * len(source.shape)
        shard_key = source.metadata.chunk_key_encoding.encode_chunk_key(zero)
        target_key = arr.metadata.chunk_key_encoding.encode_chunk_key(zero)
        shard = (src / shard_key).read_bytes()
        target = staged / name / target_key
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(slice_shard(shard, length, start, stop))
        return True

    def _swap_in(self, staged: Path, current: Path) -> None:
        if fsops.exchange(staged, current):
            return  # staged now holds the old episode and is removed by the caller
        old = self.root / TRASH / f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        old.parent.mkdir(exist_ok=True)
        os.rename(current, old)
        os.rename(staged, current)
        shutil.rmtree(old, ignore_errors=True)


async def _read_arrays(folders: list[Path], names: list[str]) -> list[list[np.ndarray]]:
    """Every named array of every episode folder, read concurrently."""
    async def one(path: Path) -> np.ndarray:
        array = await zarr_async.open_array(store=LocalStore(path, read_only=True), mode="r")
        return np.asarray(await array.getitem(Ellipsis))

    async def episode(folder: Path) -> list[np.ndarray]:
        return list(await asyncio.gather(*(one(folder / name) for name in names)))

    return list(await asyncio.gather(*(episode(f) for f in folders)))


def _set_entry(group_dir: Path, entry: dict[str, Any], durable: bool = False) -> None:
    """Write an episode's attributes (with the committed mark) into its group's zarr.json, atomically;
    ``durable``: flushed to disk before it replaces the old document (an edit of a committed episode)."""
    path = group_dir / "zarr.json"
    meta = _read_json(path) or {"attributes": {}, "zarr_format": 3, "node_type": "group"}  # as zarr writes it
    meta.setdefault("attributes", {})[ATTR] = {**entry, "committed": True}
    _write_json_atomic(path, meta, durable)


def _shift_flags(flags: dict[str, Any], start: int, stop: int) -> dict[str, Any]:
    out = {}
    for name, flag in flags.items():
        frames = [[max(a, start) - start, min(b, stop) - start] for a, b in flag.get("frames", []) if a < stop and b > start]
        if frames:
            out[name] = {**flag, "frames": frames}
    return out


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def merge_stores(sources: list[Store], out: str | Path, where: str | None = None) -> Store:
    """A new store holding the episodes of every source (matching ``where``), bytes copied as stored."""
    if not sources:
        raise StoreError("merge: no source stores given")
    first = sources[0]
    for other in sources[1:]:
        first.spec.check_compatible(other.spec, f"merge {other.root} into {first.root}")
    target = Store.create(out, first.spec, first.options)
    chosen = [(source, episode_id) for source in sources for episode_id in source.ids(where)]
    for source, episode_id in track(chosen, len(chosen), f"copying into {Path(out).name}"):
        target.copy_from(source, episode_id, {"extra": _copied_extra(source, episode_id)})
    return target


def _copied_extra(source: Store, episode_id: str) -> dict[str, Any]:
    extra = dict(source.entry(episode_id)["meta"].get("extra") or {})
    extra["copied_from"] = {"store": str(source.root), "id": episode_id}
    return extra
