"""Reading the complete row groups of a LeRobot data parquet that has no footer (a recording that crashed).

A parquet file is "PAR1", then per row group the column chunks in schema order, each a sequence of
pages (a dictionary page, then data pages), then the footer (schema + row group index). lerobot writes
one row group per episode and flushes it at save_episode(); a crash before finalize() loses only the
footer. Every page starts with a self-describing Thrift header, so the pages can be walked without the
footer and decoded with the schema from info.json. Supported: what pyarrow writes by default (data page
v1 or v2, PLAIN or dictionary encoding, snappy/zstd/gzip/uncompressed, optional columns, lists).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import imagecodecs
import numpy as np
import pyarrow as pa

from toolkit.errors import one_line


def footerless(path: Path) -> bool:
    """True when the file starts like parquet but does not end with the 'PAR1' footer magic."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
            fh.seek(max(0, path.stat().st_size - 4))
            tail = fh.read(4)
    except OSError:
        return False
    return head == b"PAR1" and tail != b"PAR1"


def salvage_columns(info: dict) -> list[tuple[str, str, str]]:
    """(column, LeRobot dtype, storage) in the data parquet's column order, from info.json."""
    out = []
    for name, f in info["features"].items():
        if f.get("dtype") == "video":
            continue
        storage = "image" if f.get("dtype") == "image" else \
            "scalar" if [int(s) for s in f.get("shape") or [1]] in ([1], []) else "vector"
        out.append((name, str(f.get("dtype")), storage))
    return out


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


def read_footerless(path: Path, columns: list[tuple[str, str, str]]) -> pa.Table:
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


def salvage_report(info: dict, broken: list[Path]) -> str:
    """What a footerless recording still holds, in words for the refusal message."""
    try:
        columns = salvage_columns(info)
        episodes = frames = 0
        for path in broken:
            table = read_footerless(path, columns)
            episodes += len(set(table.column("episode_index").to_pylist()))
            frames += table.num_rows
    except Exception as exc:  # the report must never turn a clear refusal into a stack trace
        return f"its pages could not be scanned ({one_line(exc)}): nothing can be salvaged"
    if not episodes:
        return "no complete row group survives in the footerless file: every episode in it is lost"
    claimed = info.get("total_frames")
    lost = f"the other {claimed - frames} frames are lost" if isinstance(claimed, int) and claimed > frames \
        else "nothing else is lost"
    return (f"{episodes} complete episodes ({frames} frames) survive as row groups without the footer, {lost}; "
            f"import them with 'demoforge import --salvage' (or read_lerobot(root, salvage=True))")
