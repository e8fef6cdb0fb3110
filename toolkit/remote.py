"""An episode store on object storage, opened by fsspec URL (``s3://bucket/lab.zarr``, ``memory://lab.zarr``).

Same layout as the local store (``toolkit.store``), same files byte for byte, so either can read what
the other wrote once the objects are copied::

    lab.zarr/
      zarr.json                    root group; attributes["demoforge"] = {format_version, spec, storage}
      episodes/zarr.json           group
      episodes/000042/<feature>/   one array per feature (written first)
      episodes/000042/zarr.json    attributes["demoforge"] = {id, length, created, meta, committed} (written LAST)
      claims/000042                an empty object: id 000042 is taken (never deleted, so ids are never reused)

There is no rename on object storage, so the commit point is the episode group's ``zarr.json``:

1. **Claim an id** with an exclusive create of ``claims/<id>`` (S3 conditional put ``If-None-Match: *``;
   ``O_EXCL`` on a local path; a process lock for ``memory://``). Another writer holding the id makes
   the create fail, and the writer tries the next id. Two recorders never get the same id.
2. **Write every array object** of the episode under ``episodes/<id>/`` (the files ``toolkit.arrayfiles``
   writes, encoded locally, then uploaded concurrently), and wait until every upload is acknowledged.
3. **Write ``episodes/<id>/zarr.json``** carrying ``attributes.demoforge.committed``. One PUT is atomic
   on S3 (a reader sees the whole object or none), and S3 is strongly read-after-write consistent, so a
   reader that sees the document sees every array written before it.

A reader lists ``episodes/*/zarr.json`` and accepts an episode only when that document parses and carries
``attributes.demoforge.committed``; arrays of an id without it (a writer killed in step 2) are ignored,
and removed only by an explicit ``cleanup()``, never by a reader. The catalog is in memory, built from
that listing when the store is opened (one LIST plus one GET per episode) and rebuilt by ``refresh()``.

Edits: ``update_meta`` rewrites the group document in one PUT (last writer wins between two concurrent
editors of the same episode); ``delete`` removes the committed document first (the episode is gone from
then on), then its arrays. ``trim`` and ``copy_from`` are refused: copy the store to a local path.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

import fsspec
import numpy as np
import zarr
import zarr.api.asynchronous as zarr_async
from zarr.core.sync import sync
from zarr.storage import FsspecStore
from zarr.storage._fsspec import _make_async

from toolkit.catalog import Catalog
from toolkit.episode import Episode, EpisodeMeta, NonFinitePolicy, check_episode
from toolkit.errors import StoreError
from toolkit.spec import DatasetSpec
from toolkit.store import (ATTR, EPISODES, FORMAT_VERSION, ID_WIDTH, StorageOptions, Store, _now, parse_root)

CLAIMS = "claims"
_URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]+):/")
_GROUP = {"attributes": {}, "zarr_format": 3, "node_type": "group"}  # a group's zarr.json as zarr writes it
_MEMORY_LOCK = threading.Lock()  # memory:// has no exclusive create across threads; one process holds it all


def is_url(path: str | Path) -> bool:
    """True for ``scheme://...`` (also ``scheme:/...``: ``pathlib.Path`` folds the double slash)."""
    return bool(_URL.match(str(path)))


def normalise_url(path: str | Path) -> str:
    """The URL ``path`` names, with the double slash that ``pathlib.Path`` folds restored."""
    text = str(path)
    match = _URL.match(text)
    if match and not text.startswith(f"{match.group(1)}://"):
        text = f"{match.group(1)}://{text[len(match.group(0)):]}"
    return text.rstrip("/")


def local_path(url: str | Path) -> Path | None:
    """The local path of a ``file:`` URL (``file:///data/lab.zarr`` -> ``/data/lab.zarr``), else None."""
    text = str(url)
    if not text.lower().startswith("file:"):
        return None
    return Path("/" + text[len("file:"):].lstrip("/"))


def _entry_of(document: bytes | None) -> dict[str, Any] | None:
    """An episode's attributes when its group document is committed, else None."""
    try:
        entry = (json.loads(document or b"").get("attributes") or {}).get(ATTR)
    except (ValueError, AttributeError):
        return None
    return entry if isinstance(entry, dict) and entry.get("committed") else None


class _Encoder:
    """The local store's array writer (``Store._start_writing`` and its helpers), borrowed as is, so a
    remote episode's objects are the very files a local episode holds."""

    _start_writing = Store._start_writing
    _plan_files = Store._plan_files
    _array_document = Store._array_document
    _layout = Store._layout
    _frame_codecs = Store._frame_codecs

    def __init__(self, spec: DatasetSpec, options: StorageOptions) -> None:
        self.spec = spec
        self.options = options
        self._documents: dict[tuple, bytes] = {}


class RemoteStore:
    """A demoforge episode store on an fsspec filesystem (S3 and the like). Open with ``RemoteStore.create``
    or ``RemoteStore.open`` (``Store.create`` / ``Store.open`` dispatch URLs here)."""

    def __init__(self, url: str, fs: fsspec.AbstractFileSystem, path: str, spec: DatasetSpec,
                 options: StorageOptions, writable: bool) -> None:
        self.root = url
        self.fs = fs
        self.path = path.rstrip("/")
        self.spec = spec
        self.options = options
        self.writable = writable
        self.catalog = Catalog(None)
        self._entries: dict[str, dict[str, Any]] = {}
        self._next_hint: int | None = None
        self._encoder = _Encoder(spec, options)
        self._async_fs: Any = None
        self.refresh()

    # -- opening -------------------------------------------------------------------------------
    @staticmethod
    def _filesystem(url: str, storage_options: dict[str, Any] | None) -> tuple[fsspec.AbstractFileSystem, str]:
        try:
            fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
        except ImportError as e:
            raise StoreError(f"{url}: this URL needs an extra package ({e}); for s3:// install demoforge[s3]") from None
        except ValueError as e:
            raise StoreError(f"{url}: not a URL fsspec can open ({e})") from None
        return fs, path

    @classmethod
    def create(cls, url: str, spec: DatasetSpec, options: StorageOptions | None = None, exist_ok: bool = False,
               storage_options: dict[str, Any] | None = None) -> RemoteStore:
        """Make a new empty store at ``url`` (refuses an existing store unless ``exist_ok``)."""
        url = normalise_url(url)
        spec = spec.validated(f"{url}: spec")
        options = options or StorageOptions()
        fs, path = cls._filesystem(url, storage_options)
        root = {**_GROUP, "attributes": {ATTR: {"format_version": FORMAT_VERSION, "spec": spec.to_dict(),
                                                 "storage": asdict(options), "created": _now()}}}
        try:
            _exclusive_put(fs, f"{path}/zarr.json", json.dumps(root, indent=2).encode())
        except FileExistsError:
            if not exist_ok:
                raise StoreError(f"{url}: a store already exists here (choose another --out or delete it)") from None
            store = cls.open(url, mode="a", storage_options=storage_options)
            spec.check_compatible(store.spec, url)
            return store
        except Exception as e:  # noqa: BLE001 - as in open
            raise StoreError(f"{url}: cannot create the store ({type(e).__name__}: {_short(e)})") from None
        fs.pipe_file(f"{path}/{EPISODES}/zarr.json", json.dumps(_GROUP, indent=2).encode())
        return cls(url, fs, path, spec, options, writable=True)

    @classmethod
    def open(cls, url: str, mode: Literal["r", "a"] = "r",
             storage_options: dict[str, Any] | None = None) -> RemoteStore:
        """Open an existing store for reading (``r``) or appending and editing (``a``)."""
        url = normalise_url(url)
        fs, path = cls._filesystem(url, storage_options)
        try:
            document = fs.cat_file(f"{path}/zarr.json")
        except FileNotFoundError:
            raise StoreError(f"{url}: no such store (no zarr.json)") from None
        except Exception as e:  # noqa: BLE001 - no bucket, no credentials, no endpoint: one line, not a trace
            raise StoreError(f"{url}: cannot read the store ({type(e).__name__}: {_short(e)})") from None
        try:
            meta = json.loads(document)
        except ValueError:
            meta = None
        if not isinstance(meta, dict):
            raise StoreError(f"{url}/zarr.json: not JSON: not a demoforge store")
        spec, options = parse_root(meta, url)
        return cls(url, fs, path, spec, options, writable=(mode == "a"))

    # Handles close like the local store's (its catalog), and work as context managers the same way.
    close = Store.close
    __enter__ = Store.__enter__
    __exit__ = Store.__exit__

    # -- listing -------------------------------------------------------------------------------
    def _episode_path(self, episode_id: str) -> str:
        return f"{self.path}/{EPISODES}/{episode_id}"

    def _documents(self) -> dict[str, bytes | None]:
        """Every episode group document under ``episodes/``, by id (None: unreadable)."""
        names = self._episode_names()
        if not names:
            return {}
        paths = {f"{self._episode_path(n)}/zarr.json": n for n in names}
        fetched = self.fs.cat(list(paths), on_error="return")
        out: dict[str, bytes | None] = {}
        for path, value in fetched.items():
            if isinstance(value, FileNotFoundError):
                continue  # arrays without a group document: an uncommitted episode
            out[path.rstrip("/").split("/")[-2]] = value if isinstance(value, bytes) else None
        return out

    def _episode_names(self) -> list[str]:
        """The names under ``episodes/`` (one delimited listing, not every object)."""
        self.fs.invalidate_cache(f"{self.path}/{EPISODES}")
        try:
            listed = self.fs.ls(f"{self.path}/{EPISODES}", detail=True)
        except FileNotFoundError:
            return []
        return sorted(i["name"].rstrip("/").split("/")[-1] for i in listed if i.get("type") == "directory")

    def refresh(self) -> int:
        """Rebuild the in-memory catalog from the committed episodes in the store; returns the count."""
        entries = {i: e for i, e in ((i, _entry_of(d)) for i, d in self._documents().items()) if e}
        self._entries = dict(sorted(entries.items()))
        self.catalog.clear()
        self.catalog.upsert(self._entries.values())
        return len(self._entries)

    rebuild_catalog = refresh

    def unreadable(self) -> dict[str, str]:
        """Episode ids with objects but no committed group document, with the reason (for ``validate``)."""
        documents = self._documents()
        problems = {i: f"{self._episode_path(i)}/zarr.json: field 'attributes.{ATTR}.committed' is missing"
                    for i, d in documents.items() if _entry_of(d) is None}
        for name in self._episode_names():
            if name not in documents:
                problems[name] = f"{self._episode_path(name)}: no group metadata (uncommitted; see cleanup())"
        return dict(sorted(problems.items()))

    ids = Store.ids  # both ask the catalog
    __len__ = Store.__len__

    def __contains__(self, episode_id: str) -> bool:
        return self._fetch_entry(episode_id) is not None

    def _fetch_entry(self, episode_id: str) -> dict[str, Any] | None:
        try:
            return _entry_of(self.fs.cat_file(f"{self._episode_path(episode_id)}/zarr.json"))
        except (FileNotFoundError, ValueError):
            return None

    # -- reading -------------------------------------------------------------------------------
    def entry(self, episode_id: str) -> dict[str, Any]:
        """The stored attributes of an episode: id, length, created, meta (from the listing, or fetched
        when the episode was committed after it)."""
        entry = self._entries.get(episode_id) or self._fetch_entry(episode_id)
        if entry is None:
            raise StoreError(f"{self.root}: no committed episode '{episode_id}'")
        return entry

    def meta(self, episode_id: str) -> EpisodeMeta:
        return EpisodeMeta(**self.entry(episode_id)["meta"])

    def _zarr_store(self, subpath: str) -> FsspecStore:
        if self._async_fs is None:
            self._async_fs = _make_async(self.fs)
        return FsspecStore(self._async_fs, read_only=True, path=f"{self.path}/{EPISODES}/{subpath}")

    def group(self, episode_id: str) -> zarr.Group:
        """The committed episode's zarr group, read-only (its arrays are lazy)."""
        self.entry(episode_id)
        return zarr.open_group(self._zarr_store(episode_id), mode="r")

    def array(self, episode_id: str, feature: str) -> zarr.Array:
        """A lazy zarr array for one feature of one episode (index it to read frames)."""
        if feature not in self.spec.features:
            raise StoreError(f"{self.root}: no feature '{feature}' (features: {sorted(self.spec.features)})")
        self.entry(episode_id)
        return zarr.open_array(self._zarr_store(f"{episode_id}/{feature}"), mode="r")

    def read(self, episode_id: str, features: Iterable[str] | None = None) -> Episode:
        """Load an episode's arrays (all features, or the ones named) into memory."""
        return self.read_many([episode_id], features)[0]

    def read_many(self, ids: Iterable[str], features: Iterable[str] | None = None) -> list[Episode]:
        """Load several episodes at once (every array of every episode fetched concurrently)."""
        ids = list(ids)
        names = list(features) if features is not None else list(self.spec.features)
        unknown = [n for n in names if n not in self.spec.features]
        if unknown:
            raise StoreError(f"{self.root}: no feature(s) {unknown} (features: {sorted(self.spec.features)})")
        entries = [self.entry(i) for i in ids]
        stores = [[self._zarr_store(f"{i}/{n}") for n in names] for i in ids]
        arrays = sync(_read_arrays(stores))
        return [Episode(data=dict(zip(names, data)), meta=EpisodeMeta(**entry["meta"]), id=episode_id)
                for episode_id, entry, data in zip(ids, entries, arrays)]

    # The same as the local store's: they use only the spec, ``ids``, ``read_many`` and ``writable``.
    read_batch = Store.read_batch
    episodes = Store.episodes
    _require_writable = Store._require_writable

    def _claim(self) -> str:
        """Take the next free episode id by an exclusive create of ``claims/<id>``; retries the next id
        while another writer holds it."""
        if self._next_hint is None:
            self.fs.invalidate_cache(f"{self.path}/{CLAIMS}")
            try:
                names = [p.rstrip("/").split("/")[-1] for p in self.fs.ls(f"{self.path}/{CLAIMS}", detail=False)]
            except FileNotFoundError:
                names = []
            numbers = [int(n) for n in [*names, *self._entries] if n.isdigit()]
            self._next_hint = max(numbers) + 1 if numbers else 0
        while True:
            episode_id = f"{self._next_hint:0{ID_WIDTH}d}"
            self._next_hint += 1
            try:
                _exclusive_put(self.fs, f"{self.path}/{CLAIMS}/{episode_id}", _now().encode())
                return episode_id
            except FileExistsError:
                continue

    def _encode(self, arrays: dict[str, np.ndarray]) -> dict[str, bytes]:
        """The episode's array objects (relative key -> bytes), encoded as the local store writes them."""
        folder = Path(tempfile.mkdtemp(prefix="demoforge-remote-"))
        try:
            self._encoder._start_writing(folder / "episode", arrays).finish()
            base = folder / "episode"
            return {p.relative_to(base).as_posix(): p.read_bytes() for p in sorted(base.rglob("*")) if p.is_file()}
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _upload(self, episode_id: str, objects: dict[str, bytes]) -> None:
        prefix = self._episode_path(episode_id)
        self.fs.pipe({f"{prefix}/{key}": data for key, data in objects.items() if key != "zarr.json"})

    def _commit_entry(self, entry: dict[str, Any], document: dict[str, Any] | None = None) -> None:
        """Write the group document with the committed mark: the commit point of an episode."""
        document = dict(document or _GROUP)
        document["attributes"] = {**(document.get("attributes") or {}), ATTR: {**entry, "committed": True}}
        self.fs.pipe_file(f"{self._episode_path(entry['id'])}/zarr.json", json.dumps(document, indent=2).encode())

    def append(self, episode: Episode, nonfinite: NonFinitePolicy = "flag") -> str:
        """Check, write and commit one episode; returns its id. Readers see nothing of it if this raises."""
        return self.append_many([episode], nonfinite)[0]

    def append_many(self, episodes: Iterable[Episode], nonfinite: NonFinitePolicy = "flag") -> list[str]:
        """Check, write and commit several episodes in order, each atomically on its own; returns their ids.
        Every episode is checked and encoded before anything is uploaded."""
        self._require_writable()
        checked = [check_episode(e, self.spec, f"{self.root}: new episode ({e.meta.task!r})", nonfinite)
                   for e in episodes]
        encoded = [self._encode({name: e.data[name] for name in self.spec.features}) for e in checked]
        ids = []
        for episode, objects in zip(checked, encoded):
            episode_id = self._claim()
            self._upload(episode_id, objects)
            entry = {"id": episode_id, "length": episode.length, "created": _now(), "meta": episode.meta.to_dict()}
            group = json.loads(objects["zarr.json"]) if "zarr.json" in objects else None  # text arrays via zarr
            self._commit_entry(entry, group)
            entry["committed"] = True
            self._entries[episode_id] = entry
            self.catalog.upsert([entry])
            ids.append(episode_id)
        return ids

    def update_meta(self, episode_id: str, **changes: Any) -> EpisodeMeta:
        """Change metadata fields of one episode in place: one PUT of its group document (atomic; between
        two editors of the same episode the last one wins)."""
        self._require_writable()
        path = f"{self._episode_path(episode_id)}/zarr.json"
        try:
            document = json.loads(self.fs.cat_file(path))
        except (FileNotFoundError, ValueError):
            document = None
        entry = _entry_of(json.dumps(document).encode()) if document else None
        if entry is None:
            raise StoreError(f"{self.root}: no committed episode '{episode_id}'")
        meta = EpisodeMeta.from_dict({**entry["meta"], **changes}, f"{self.root}: episode {episode_id}")
        entry["meta"] = meta.to_dict()
        self._commit_entry(entry, document)
        self._entries[episode_id] = entry
        self.catalog.upsert([entry])
        return meta

    def delete(self, ids: Iterable[str]) -> list[str]:
        """Delete episodes: the committed document first (the episode is gone from then on), then its
        arrays. The id stays claimed, so it is never reused. Unknown ids are refused before anything changes."""
        self._require_writable()
        ids = list(ids)
        unknown = [i for i in ids if i not in self]
        if unknown:
            raise StoreError(f"{self.root}: no committed episode(s) {unknown[:5]}; nothing was deleted")
        for episode_id in ids:
            self.fs.rm_file(f"{self._episode_path(episode_id)}/zarr.json")
            self._entries.pop(episode_id, None)
            self.catalog.remove([episode_id])
            self._remove_objects(episode_id)
        return ids

    def _remove_objects(self, episode_id: str) -> None:
        prefix = self._episode_path(episode_id)
        self.fs.invalidate_cache(prefix)
        try:
            self.fs.rm(prefix, recursive=True)
        except FileNotFoundError:
            pass

    def cleanup(self, older_than: float = 3600.0) -> list[str]:
        """Remove the array objects of uncommitted episodes (writers that died between claiming an id and
        committing it) whose claim is older than ``older_than`` seconds, so a live writer's episode in
        flight is left alone. Explicit only: readers never delete. Returns the ids cleaned."""
        self._require_writable()
        committed = {i for i, d in self._documents().items() if _entry_of(d)}
        cleaned = []
        now = time.time()
        for name in self._episode_names():
            if name in committed:
                continue
            try:
                claimed = _mtime(self.fs.info(f"{self.path}/{CLAIMS}/{name}"))
            except FileNotFoundError:
                claimed = None
            if claimed is not None and now - claimed < older_than:
                continue
            self._remove_objects(name)
            cleaned.append(name)
        return cleaned

    def trim(self, episode_id: str, start: int, stop: int) -> int:
        raise StoreError(f"{self.root}: trim is not supported on a remote store; copy it to a local path first")

    def copy_from(self, source: Any, episode_id: str, meta_update: dict[str, Any] | None = None) -> str:
        raise StoreError(f"{self.root}: copying stored bytes into a remote store is not supported; "
                         "append the episodes (store.append(source.read(id))) or merge into a local store")


async def _read_arrays(stores: list[list[FsspecStore]]) -> list[list[np.ndarray]]:
    """Every array of every episode (one zarr store each), read concurrently."""
    async def one(store: FsspecStore) -> np.ndarray:
        array = await zarr_async.open_array(store=store, mode="r")
        return np.asarray(await array.getitem(Ellipsis))

    async def episode(row: list[FsspecStore]) -> list[np.ndarray]:
        return list(await asyncio.gather(*(one(s) for s in row)))

    return list(await asyncio.gather(*(episode(row) for row in stores)))


def _exclusive_put(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> None:
    """Create ``path`` holding ``data`` only if nothing is there; FileExistsError otherwise. S3: a PUT with
    ``If-None-Match: *``; local files: ``O_EXCL``; memory: under a process-wide lock."""
    protocols = (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)
    if "memory" in protocols:
        with _MEMORY_LOCK:
            if fs.exists(path):
                raise FileExistsError(path)
            fs.pipe_file(path, data)
        return
    if "file" in protocols or "local" in protocols:
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    fs.pipe_file(path, data, mode="create")


def _mtime(info: dict[str, Any]) -> float | None:
    value = info.get("LastModified") or info.get("mtime") or info.get("created")
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    return value.timestamp() if hasattr(value, "timestamp") else None


def _short(e: BaseException) -> str:
    return " ".join(str(e).split())[:200] or type(e).__name__
