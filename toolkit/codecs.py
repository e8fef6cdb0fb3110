"""Image codecs for zarr v3 arrays: each chunk holds one frame encoded as JPEG or JPEG-XL.

zarr v3 has no image codec and imagecodecs ships none for v3, so demoforge registers its own
``ArrayBytesCodec`` under the names below. The on-disk contract, for any reader that wants to decode
images without demoforge:

* ``demoforge.jpeg``   configuration ``{"quality": int}``: the chunk is one baseline JPEG file (RGB,
  or grayscale for a single channel) of the chunk's frame; the chunk shape must be ``(1, H, W, C)``
  or ``(1, H, W)``.
* ``demoforge.jpegxl`` configuration ``{"distance": float, "effort": int}``: the same with a JPEG-XL
  codestream.

Every other array in a demoforge store uses zarr's standard codecs (bytes + blosc/zstd), so a plain
zarr reader can read everything but the lossy images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

import imagecodecs
import numpy as np
from zarr.abc.codec import ArrayBytesCodec
from zarr.core.array_spec import ArraySpec
from zarr.core.buffer import Buffer, NDBuffer
from zarr.registry import register_codec


def _frame_of(chunk: NDBuffer) -> np.ndarray:
    array = np.asarray(chunk.as_numpy_array())
    if array.shape[0] != 1:
        raise ValueError(f"image codecs need one frame per chunk, got a chunk of shape {array.shape}")
    return array[0]


def _chunk_of(frame: np.ndarray, chunk_spec: ArraySpec) -> NDBuffer:
    frame = frame.reshape(chunk_spec.shape)
    return chunk_spec.prototype.nd_buffer.from_ndarray_like(frame)


@dataclass(frozen=True)
class JpegCodec(ArrayBytesCodec):
    """One JPEG per one-frame chunk (uint8 images, 1 or 3 channels)."""

    is_fixed_size = False
    quality: int = 90

    @classmethod
    def from_dict(cls, data: dict) -> Self:
        return cls(**(data.get("configuration") or {}))

    def to_dict(self) -> dict:
        return {"name": "demoforge.jpeg", "configuration": {"quality": self.quality}}

    def evolve_from_array_spec(self, array_spec: ArraySpec) -> Self:
        return self

    async def _encode_single(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        encoded = imagecodecs.jpeg8_encode(np.ascontiguousarray(_frame_of(chunk_array)), level=self.quality)
        return chunk_spec.prototype.buffer.from_bytes(encoded)

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        frame = imagecodecs.jpeg8_decode(chunk_bytes.to_bytes())
        return _chunk_of(frame, chunk_spec)

    def compute_encoded_size(self, input_byte_length: int, _chunk_spec: ArraySpec) -> int:
        raise NotImplementedError("JPEG output size is not known in advance")


@dataclass(frozen=True)
class JpegXlCodec(ArrayBytesCodec):
    """One JPEG-XL codestream per one-frame chunk; ``distance=0`` is lossless."""

    is_fixed_size = False
    distance: float = 1.0
    effort: int = 3

    @classmethod
    def from_dict(cls, data: dict) -> Self:
        return cls(**(data.get("configuration") or {}))

    def to_dict(self) -> dict:
        return {"name": "demoforge.jpegxl", "configuration": {"distance": self.distance, "effort": self.effort}}

    def evolve_from_array_spec(self, array_spec: ArraySpec) -> Self:
        return self

    async def _encode_single(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        frame = np.ascontiguousarray(_frame_of(chunk_array))
        lossless = self.distance == 0
        encoded = imagecodecs.jpegxl_encode(
            frame, lossless=lossless, distance=None if lossless else self.distance, effort=self.effort
        )
        return chunk_spec.prototype.buffer.from_bytes(encoded)

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        return _chunk_of(imagecodecs.jpegxl_decode(chunk_bytes.to_bytes()), chunk_spec)

    def compute_encoded_size(self, input_byte_length: int, _chunk_spec: ArraySpec) -> int:
        raise NotImplementedError("JPEG-XL output size is not known in advance")


register_codec("demoforge.jpeg", JpegCodec)
register_codec("demoforge.jpegxl", JpegXlCodec)
