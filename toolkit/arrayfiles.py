"""Zarr v3 array files written directly, for the store's hot path (byte-identical to what zarr writes).

zarr's write path costs several milliseconds of Python per array (event loop trips, the codec pipeline,
a task per chunk): more than encoding a 2 MiB point cloud. Every array whose layout uses only the codecs
below is written here instead, as the very files zarr writes: the array's ``zarr.json`` comes from zarr
itself (``Store._array_document``), chunks are encoded by the same libraries with the same settings, and
shards follow the zarr v3 sharding spec (inner chunks, then an index of (offset, nbytes) uint64 pairs and
its CRC32C; see toolkit/shards.py). tests/test_store.py compares both writers' files byte for byte.
Anything else (text, a codec added later) goes through zarr unchanged (``write_group``).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import Future, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import google_crc32c
import imagecodecs
import numpy as np
import zarr.api.asynchronous as zarr_async
from numcodecs import Blosc
from zarr.core.sync import sync
from zarr.storage import LocalStore


async def write_group(folder: Path, arrays: dict[str, np.ndarray], layouts: dict[str, dict[str, Any]]) -> None:
    """A group at ``folder`` (created, or opened if it exists) with every array written concurrently."""
    group = await zarr_async.open_group(store=LocalStore(folder), mode="a", zarr_format=3)

    async def one(name: str) -> None:
        array = arrays[name]
        # write_empty_chunks: skip zarr's compare-every-chunk-with-the-fill-value pass (2 ms a point
        # cloud); recorded frames are never all fill value worth leaving out.
        arr = await group.create_array(name, shape=array.shape, config={"write_empty_chunks": True}, **layouts[name])
        await arr.setitem(Ellipsis, array)

    await asyncio.gather(*(one(name) for name in arrays))




_SHUFFLE = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}
_INDEX_CODECS = [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}]
_CHUNK_KEYS = {"name": "default", "configuration": {"separator": "/"}}


@dataclass
class Writing:
    """An episode's arrays on their way into ``folder``: the chunk-file tasks, and the arrays left to zarr."""

    folder: Path
    tasks: list[Future]
    rest: dict[str, np.ndarray]
    layouts: dict[str, dict[str, Any]] | None = None

    def finish(self) -> None:
        """Wait for every chunk file (then raise the first error), then write the arrays left to zarr."""
        wait(self.tasks)
        for task in self.tasks:
            task.result()
        if self.rest:
            sync(write_group(self.folder, self.rest, self.layouts or {}))

    def cancel(self) -> None:
        """Drop the files not started yet (the episode will not be committed)."""
        for task in self.tasks:
            task.cancel()


@dataclass
class _ArrayPlan:
    """How one array is written: its chunk files (key -> the chunks it holds: one, or a shard's inner
    chunks in order) and the function that encodes one chunk."""

    files: list[tuple[str, list[np.ndarray]]]
    sharded: bool
    encode: Callable[[np.ndarray], bytes]


def plan_array(doc: dict[str, Any], array: np.ndarray) -> _ArrayPlan | None:
    """The files of ``array`` under the zarr.json ``doc``, or None when this writer does not handle the
    layout (zarr writes it). Handled: numeric arrays chunked along time only (axis 0), plain or sharded
    (index at the end), chunk codecs as in ``_chunk_encoder``, fill value 0."""
    if (array.dtype.kind not in "biuf" or array.ndim == 0 or array.shape[0] == 0
            or tuple(doc.get("shape", ())) != array.shape or doc.get("fill_value") != 0
            or doc.get("chunk_key_encoding") != _CHUNK_KEYS or doc.get("storage_transformers")
            or (doc.get("chunk_grid") or {}).get("name") != "regular"):
        return None
    outer = tuple(doc["chunk_grid"]["configuration"]["chunk_shape"])
    codecs = doc.get("codecs") or []
    sharded = bool(codecs) and codecs[0].get("name") == "sharding_indexed"
    inner = outer
    if sharded:
        conf = codecs[0]["configuration"]
        if len(codecs) != 1 or conf.get("index_location", "end") != "end" or conf.get("index_codecs") != _INDEX_CODECS:
            return None
        inner, codecs = tuple(conf["chunk_shape"]), conf["codecs"]
    if outer[1:] != array.shape[1:] or inner[1:] != array.shape[1:] or outer[0] % inner[0]:
        return None
    encode = _chunk_encoder(codecs, array.dtype)
    if encode is None:
        return None
    files = []
    for start in range(0, array.shape[0], outer[0]):
        chunks = []
        for first in range(start, start + outer[0], inner[0]):
            chunk = array[first:first + inner[0]]
            if len(chunk) < inner[0]:  # chunks are stored whole: the part past the end holds the fill value
                chunk = np.concatenate([chunk, np.zeros((inner[0] - len(chunk), *array.shape[1:]), array.dtype)])
            chunks.append(chunk)
        files.append(("/".join(["c", str(start // outer[0])] + ["0"] * (array.ndim - 1)), chunks))
    return _ArrayPlan(files, sharded, encode)


def _chunk_encoder(codecs: list[dict[str, Any]], dtype: np.dtype) -> Callable[[np.ndarray], bytes] | None:
    """A function encoding one chunk through ``codecs`` (zarr v3 chunk codecs: ``bytes`` little-endian or
    one of toolkit/codecs.py's image codecs, called exactly as there, then any number of ``blosc``);
    None for any other codec list."""
    if not codecs:
        return None
    first, rest = codecs[0], codecs[1:]
    conf = first.get("configuration") or {}
    if first["name"] == "bytes" and conf.get("endian", "little") == "little":
        little = dtype.newbyteorder("<")

        def serialize(chunk: np.ndarray) -> Any:
            return np.ascontiguousarray(chunk, dtype=little).reshape(-1).view(np.uint8)
    elif first["name"] == "demoforge.jpeg" and set(conf) == {"quality"}:
        def serialize(chunk: np.ndarray) -> Any:
            return imagecodecs.jpeg8_encode(np.ascontiguousarray(chunk[0]), level=conf["quality"])
    elif first["name"] == "demoforge.jpegxl" and set(conf) == {"distance", "effort"}:
        lossless = conf["distance"] == 0

        def serialize(chunk: np.ndarray) -> Any:
            return imagecodecs.jpegxl_encode(np.ascontiguousarray(chunk[0]), lossless=lossless,
                                             distance=None if lossless else conf["distance"], effort=conf["effort"])
    else:
        return None
    compressors = []
    for codec in rest:
        c = codec.get("configuration") or {}
        if codec["name"] != "blosc" or set(c) != {"typesize", "cname", "clevel", "shuffle", "blocksize"}:
            return None
        compressors.append(Blosc(cname=c["cname"], clevel=c["clevel"], shuffle=_SHUFFLE[c["shuffle"]],
                                 blocksize=c["blocksize"], typesize=c["typesize"]))

    def encode(chunk: np.ndarray) -> bytes:
        data = serialize(chunk)
        for compressor in compressors:
            data = compressor.encode(data)
        return data if isinstance(data, bytes) else bytes(data)

    return encode


def write_chunk_file(path: Path, plan: _ArrayPlan, chunks: list[np.ndarray]) -> None:
    encoded = [plan.encode(chunk) for chunk in chunks]
    write_file(path, _shard(encoded) if plan.sharded else encoded)


def _shard(chunks: list[bytes]) -> list[bytes]:
    """A shard's parts: its encoded inner chunks, their (offset, nbytes) index, the index's CRC32C."""
    index = np.empty((len(chunks), 2), dtype="<u8")
    offset = 0
    for i, chunk in enumerate(chunks):
        index[i] = offset, len(chunk)
        offset += len(chunk)
    raw = index.tobytes()
    return [*chunks, raw, google_crc32c.value(raw).to_bytes(4, "little")]


def write_file(path: Path, parts: list[bytes]) -> None:
    """A new file holding ``parts`` one after the other (refuses to overwrite: staging is fresh)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    try:
        for part in parts:
            view = memoryview(part)
            while view:
                view = view[os.write(fd, view):]
    finally:
        os.close(fd)
