"""Cut a range of inner chunks out of a zarr v3 shard without decoding them.

Trimming frames off an episode must not re-encode its JPEG frames (each generation loses quality).
Image arrays are stored as one shard per episode holding one-frame inner chunks, so a trim is a
byte-level slice of the shard, following the zarr v3 sharding spec (``sharding_indexed`` with
``index_location: end`` and index codecs ``[bytes(little), crc32c]``): the shard is the inner chunks'
bytes followed by an index of ``(offset, nbytes)`` uint64 pairs, one per inner chunk in C order, and a
4-byte CRC32C of that index. Missing chunks have offset and nbytes ``2**64 - 1``.
"""

from __future__ import annotations

import google_crc32c
import numpy as np

_MISSING = np.uint64(2**64 - 1)


def _index(shard: bytes, n_chunks: int) -> np.ndarray:
    size = n_chunks * 16
    raw = shard[-(size + 4):-4]
    crc = int.from_bytes(shard[-4:], "little")
    if google_crc32c.value(raw) != crc:
        raise ValueError("shard index checksum mismatch")
    return np.frombuffer(raw, dtype="<u8").reshape(n_chunks, 2)


def slice_shard(shard: bytes, n_chunks: int, start: int, stop: int) -> bytes:
    """A new shard holding inner chunks ``start:stop`` (along the only chunked axis) of ``shard``."""
    index = _index(shard, n_chunks)
    parts, entries, offset = [], [], 0
    for off, nbytes in index[start:stop]:
        if off == _MISSING:
            entries.append((_MISSING, _MISSING))
            continue
        parts.append(shard[int(off):int(off + nbytes)])
        entries.append((np.uint64(offset), nbytes))
        offset += int(nbytes)
    raw_index = np.array(entries, dtype="<u8").reshape(-1, 2).tobytes()
    crc = google_crc32c.value(raw_index).to_bytes(4, "little")
    return b"".join(parts) + raw_index + crc
