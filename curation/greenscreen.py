"""Green-screen augmentation: key out the green screen, composite a new background behind the scene.

Method: GreenAug (Teoh, Patidar, Ma, James 2024, "Green Screen Augmentation Enables Scene Generalisation
in Robotic Manipulation", arXiv 2407.07868; code eugeneteoh/greenaug, which keys with
eugeneteoh/chromakey ``chromakey/torch.py``; algorithm after gc-films.com). Per pixel:

1. YCbCr (0-255 scale): ``Y = .299R + .587G + .114B``, ``Cb = .564(B - Y)``, ``Cr = .713(R - Y)``.
2. ``d = |(Cb, Cr) - (Cb, Cr)_key|``: luma is ignored, so shading on the screen does not matter.
3. background alpha ``a = 1`` if ``d < tola``, ``0`` if ``d >= tolb``, linear in between.
4. ``out = clip(x - a * key_rgb + a * background)``: subtracting the key removes the green of soft edges.

Where we depart from the reference code, and why:

- Speed (``Keyer``): the integer (Cb, Cr) of each pixel (uint16 arithmetic, within 0.5 of the exact
  values) indexes a 64 KiB table over (Cb, Cr) cells that settles every pixel whose whole cell lies inside
  ``tola`` (keyed) or beyond reach (``tolb``; ``2 tolb`` with spill suppression) as 255 or 0; only the
  rest, the soft band and the key hue's neighbourhood, get the float64 formula. Settled pixels composite
  in uint8 (``clip(x - key + background)`` is an integer where ``a = 1``). The output is byte for byte
  ``reference_composite`` (the formula as written: float64, unfused), and the matte is ``rint(255 a)``.
- Key: ``key="auto"`` measures the key from the data (``estimate_key``) instead of a fixed ``#439f82``: a
  key must be measured from *your* screen (pure green lies at d ~ 45 from ``#439f82`` and would not key).
- Blur: the torch version GreenAug trains with does not blur ``a``; the numpy version blurs it with
  sigma 1.5. We follow the torch version by default (``blur_sigma=0``); set 1.5 for the numpy behaviour
  (the composite then takes ``a = matte / 255`` from the blurred matte).
- Spill suppression (not in GreenAug): foreground pixels whose chroma is near the key (``d < 2 tolb``)
  get their green clamped towards ``max(R, B)``, weighted by ``spill * (1 - a)`` and by how near they are.
- Temporal consistency: GreenAug draws a texture per image; we draw one per episode copy by default
  (``per_frame=False``) so a policy sees a consistent scene; ``per_frame=True`` is GreenAug's behaviour.
- The matte is kept as a mask feature (``rint(255 a)``, uint8), and the keyed fraction ("coverage", which
  the paper found to correlate with success) goes into each sample's parameters and into the episode's
  factors (``greenscreen_coverage.<cam>``), a catalog column one can filter on.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from scipy.ndimage import gaussian_filter

from curation.augment import Synthetic
from curation.textures import BackgroundBank, crop_resize, make_bank
from toolkit.episode import Episode
from toolkit.errors import DemoforgeError
from toolkit.spec import DatasetSpec, Feature

GREENAUG_KEY = "#439f82"  # GreenAug's examples and conf/mask.yaml
IMAGE_PREFIX = "observation.images."
_HEX = re.compile(r"^#?[0-9a-fA-F]{6}$")
COVERAGE_FACTOR = "greenscreen_coverage"  # + ".<cam>": the catalog column factors.greenscreen_coverage.<cam>
_FACTOR_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")


# ------------------------------------------------------------------------------------ colour
def cbcr(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cb and Cr (without their constant offset, which cancels in distances) of RGB on a 0-255 scale."""
    rgb = np.asarray(rgb, np.float64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    return 0.564 * (b - y), 0.713 * (r - y)


def parse_key(key: str) -> np.ndarray:
    """``"#439f82"`` or ``"439f82"`` -> uint8 RGB."""
    if not _HEX.match(key):
        raise DemoforgeError(f"--key {key!r}: expected 'auto' or a hex colour such as #439f82")
    h = key.lstrip("#")
    return np.array([int(h[i:i + 2], 16) for i in (0, 2, 4)], np.uint8)


def key_hex(key_rgb: np.ndarray) -> str:
    return "#" + "".join(f"{int(c):02x}" for c in key_rgb)


def estimate_key(frames: np.ndarray, min_fraction: float = 0.005, saturation: int = 24,
                 radius: float = 20.0) -> np.ndarray | None:
    """The screen's colour measured from frames (N, H, W, 3), or None if there is no screen in view.

    Candidates are green-dominant pixels (``G - max(R, B) >= saturation``); the screen is the densest
    cluster of their CbCr (the mode of a 2-D histogram with 4-unit bins), so green objects elsewhere in the
    view do not pull the key; the key is the per-channel median RGB of the pixels within 12 units of that
    mode (RGB, because the composite subtracts the key colour). None if fewer than ``min_fraction`` of
    the pixels are candidates (a wrist camera that never sees the screen).
    """
    pix = frames[:, ::2, ::2].reshape(-1, 3).astype(np.int16)
    green = pix[:, 1] - np.maximum(pix[:, 0], pix[:, 2]) >= saturation
    if green.sum() < max(16, min_fraction * len(pix)):
        return None
    cand = pix[green]
    cb, cr = cbcr(cand)
    edges = np.arange(-128, 129, 4)
    hist, _, _ = np.histogram2d(cb, cr, bins=(edges, edges))
    i, j = np.unravel_index(int(np.argmax(hist)), hist.shape)
    centre_cb, centre_cr = edges[i] + 2.0, edges[j] + 2.0
    for _ in range(3):  # shading stretches the cluster along a line: re-centre on its median, twice
        near = np.hypot(cb - centre_cb, cr - centre_cr) < radius
        centre_cb, centre_cr = float(np.median(cb[near])), float(np.median(cr[near]))
    return np.round(np.median(cand[near], axis=0)).astype(np.uint8)


# ------------------------------------------------------------------------------------- tables
# Cb and Cr from RGB (cbcr above), and the same rows scaled by 256 and rounded to integers. Each integer row
# sums to zero, so 256 Cb and 256 Cr lie within +-32640 and uint16 arithmetic that wraps is exact mod 2^16.
_CHROMA = np.array([[-0.564 * 0.299, -0.564 * 0.587, 0.564 * (1 - 0.114)],
                    [0.713 * (1 - 0.299), -0.713 * 0.587, -0.713 * 0.114]])
_CHROMA_INT = np.array([[-43, -85, 128], [128, -107, -21]])
# Largest gap between the integer and the exact Cb or Cr over every RGB colour (about 0.49), plus room for
# float rounding: a cell of the table widens by this much on every side before it is classified.
_CHROMA_ERR = float(255 * np.abs(_CHROMA - _CHROMA_INT / 256).sum(axis=1).max()) + 1e-6
EXACT = 1  # table value for cells that need the exact formula: never a final table answer (0 or 255)


def _chroma_index(image: np.ndarray) -> np.ndarray:
    """Per pixel of uint8 (..., 3): uint16 ``floor(Cb) mod 256 << 8 | floor(Cr) mod 256`` of the integer
    Cb and Cr (within ``_CHROMA_ERR`` of the exact ones), shape (...)."""
    # Planes first: the sums then run over contiguous memory, which is faster than reading every third byte
    # three times over, even counting the copy.
    planes = np.ascontiguousarray(image.reshape(-1, 3).T)
    cb, cr = (_weighted_sum(planes, row) for row in _CHROMA_INT)
    np.bitwise_and(cb, 0xFF00, out=cb)
    np.right_shift(cr, 8, out=cr)
    return np.bitwise_or(cb, cr, out=cb).reshape(image.shape[:-1])


def _weighted_sum(planes: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``sum(w * plane)`` in uint16 that wraps (negative weights as their two's complement)."""
    acc = np.multiply(planes[0], np.uint16(int(weights[0]) % 65536), dtype=np.uint16)
    term = np.empty_like(acc)
    for plane, w in zip(planes[1:], weights[1:]):
        np.multiply(plane, np.uint16(int(w) % 65536), out=term, dtype=np.uint16)
        np.add(acc, term, out=acc)
    return acc


def _cell_distances(centre: float) -> tuple[np.ndarray, np.ndarray]:
    """For the 256 cells of one chroma axis (index = floor mod 256): the nearest and farthest distance, along
    that axis, from ``centre`` to any value the cell may hold (the cell widened by ``_CHROMA_ERR``)."""
    i = np.arange(256)
    lo = np.where(i < 128, i, i - 256) - _CHROMA_ERR
    hi = lo + 1 + 2 * _CHROMA_ERR
    near = np.maximum(np.maximum(lo - centre, centre - hi), 0.0)
    far = np.maximum(np.abs(lo - centre), np.abs(hi - centre))
    return near, far


@functools.lru_cache(maxsize=64)
def _class_table(key: tuple[int, int, int], tola: float, tolb: float, reach: float) -> np.ndarray:
    """uint8 over the 2^16 (Cb, Cr) cells of ``_chroma_index``: 255 where every colour of the cell is
    certainly keyed (``d < tola``), 0 where none comes within ``reach`` (matte 0 and no spill), ``EXACT``
    where the exact formula must decide. 64 KiB: it stays in cache, and it builds in about a millisecond,
    so measuring a key per episode costs nothing."""
    kcb, kcr = cbcr(np.array(key, np.float64))
    near_cb, far_cb = _cell_distances(float(kcb))
    near_cr, far_cr = _cell_distances(float(kcr))
    nearest = np.hypot(near_cb[:, None], near_cr[None, :])
    farthest = np.hypot(far_cb[:, None], far_cr[None, :])
    table = np.full((256, 256), EXACT, np.uint8)
    table[nearest >= reach + 1e-9] = 0
    table[farthest < tola - 1e-9] = 255
    return table.ravel()


# ------------------------------------------------------------------------------------- exact
def _exact_alpha(pixels: np.ndarray, key_rgb: np.ndarray, tola: float, tolb: float) -> tuple[np.ndarray, np.ndarray]:
    """(alpha, d) in float64 for uint8 pixels (..., 3): GreenAug's formula one step at a time. The reference
    composite and the pixels the table leaves undecided both use it, so they agree bit for bit."""
    x = pixels.astype(np.float64)
    y = 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]
    cb = 0.564 * (x[..., 2] - y) + 128
    cr = 0.713 * (x[..., 0] - y) + 128
    k = key_rgb.astype(np.float64)
    ky = 0.299 * k[0] + 0.587 * k[1] + 0.114 * k[2]
    kcb = 0.564 * (k[2] - ky) + 128
    kcr = 0.713 * (k[0] - ky) + 128
    d = np.sqrt((cb - kcb) ** 2 + (cr - kcr) ** 2)
    alpha = np.zeros_like(d)
    alpha[d < tola] = 1.0
    between = (d >= tola) & (d < tolb)
    alpha[between] = 1.0 - (d[between] - tola) / (tolb - tola)
    return alpha, d


def _blend(pixels: np.ndarray, alpha: np.ndarray, background: np.ndarray, key_rgb: np.ndarray) -> np.ndarray:
    """``rint(clip(x - a key + a background))`` for pixels (..., 3) and alpha float (...): the reference's
    arithmetic (the keyer uses it only where alpha is strictly between 0 and 1)."""
    a = alpha[..., None]
    out = pixels.astype(np.float64) - a * key_rgb.astype(np.float64) + a * background.astype(np.float64)
    return np.rint(np.clip(out, 0, 255)).astype(np.uint8)


def _blend_matte(pixels: np.ndarray, matte: np.ndarray, background: np.ndarray, key_rgb: np.ndarray) -> np.ndarray:
    """``rint(clip(x - a key + a background))`` with ``a = matte / 255`` for pixel lists (n, 3), matte uint8
    (n,), in integers: ``matte (background - key) / 255`` is never halfway between two integers (255 is
    odd), so rounding half up is rounding to the nearest, as ``rint`` does on the float formula."""
    step = matte.astype(np.int32)[:, None] * (background.astype(np.int32) - key_rgb.astype(np.int32))
    step = (2 * step + 255) // 510
    return np.clip(pixels + step, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------- per frame
@dataclass(frozen=True)
class Backdrop:
    """A background (H, W, 3) uint8 prepared for one key. Where the matte is 255 the composite is
    ``clip(x - key + background)``, an integer: it is done in uint8 as a rise by ``max(background - key, 0)``
    saturating at 255, then a fall by ``max(key - background, 0)`` saturating at 0 (one of the two is 0)."""

    image: np.ndarray
    rise: np.ndarray
    fall: np.ndarray


def prepare_backdrop(background: np.ndarray, key_rgb: np.ndarray) -> Backdrop:
    """A ``Backdrop`` for ``background`` (uint8 (H, W, 3)); once per episode when the background is fixed."""
    image = np.ascontiguousarray(background, np.uint8)  # C order: mixed layouts make every pass slow
    signed = image.astype(np.int16) - key_rgb.astype(np.int16)
    rise = np.clip(signed, 0, 255).astype(np.uint8)
    fall = np.clip(-signed, 0, 255).astype(np.uint8)
    return Backdrop(image, rise, fall)


def _hard_composite(image: np.ndarray, matte: np.ndarray, backdrop: Backdrop, out: np.ndarray) -> None:
    """``out`` = image where the matte is 0, ``clip(image - key + background)`` where it is 255, in uint8
    (other matte values give junk there: the caller overwrites those pixels). Rows without a keyed pixel
    are copied, not computed: a screen seldom fills the whole frame."""
    np.copyto(out, image)
    rows = np.flatnonzero(matte.any(axis=1))
    if not rows.size:
        return
    r = slice(int(rows[0]), int(rows[-1]) + 1)
    x, o = image[r], out[r]
    mask = np.stack([matte[r]] * 3, axis=-1)  # 0/255 per channel: '&' keeps or zeroes the step
    rise = np.bitwise_and(backdrop.rise[r], mask)
    fall = np.bitwise_and(backdrop.fall[r], mask, out=mask)
    np.minimum(rise, np.invert(x, out=o), out=rise)  # headroom 255 - x: the rise stops at 255
    np.add(x, rise, out=o)
    np.minimum(fall, o, out=fall)  # and the fall stops at 0
    np.subtract(o, fall, out=o)


def _c_ordered(array: np.ndarray | None) -> bool:
    return array is not None and array.flags.c_contiguous


def _edge_rows(matte: np.ndarray) -> np.ndarray:
    """Bool per row of mattes (..., H, W), over all frames: the row is not constant, or differs from the
    next row."""
    edge = (matte[..., :, 1:] != matte[..., :, :-1]).any(axis=-1)
    edge[..., :-1] |= (matte[..., 1:, :] != matte[..., :-1, :]).any(axis=-1)
    return edge.reshape(-1, matte.shape[-2]).any(axis=0)


class Keyer:
    """Keys frames against one screen colour: the matte and the composite, identical to
    ``reference_composite`` without blur (matte ``rint(255 a)``).

    Per frame: the integer (Cb, Cr) of every pixel indexes a 64 KiB table (``_class_table``) that settles
    almost every pixel as keyed (255) or far from the key (0); only the undecided ones, near the
    tolerances or, with spill suppression, near the key hue, get the float64 formula. The composite of
    settled pixels is uint8 arithmetic (``Backdrop``). ``blur_sigma > 0`` blurs the matte and composites
    its soft values with ``a = matte / 255`` (``_blend_matte``, exact in integers).
    """

    def __init__(self, key_rgb: np.ndarray, tola: float, tolb: float, spill: float = 0.0,
                 blur_sigma: float = 0.0) -> None:
        self.key = np.asarray(key_rgb, np.uint8)
        self.tola, self.tolb, self.spill, self.blur_sigma = float(tola), float(tolb), float(spill), float(blur_sigma)
        reach = max(self.tola, self.tolb, 2 * self.tolb if self.spill > 0 else 0.0)
        self.table = _class_table(tuple(int(c) for c in self.key), self.tola, self.tolb, reach)

    def _classify(self, image: np.ndarray, out: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        """(unblurred matte uint8 (...), written into ``out`` when given; flat indices of the pixels the
        table left undecided; their alpha and d)."""
        matte = np.take(self.table, _chroma_index(image), out=out, mode="clip")  # indices < 2^16: no checks
        undecided = np.flatnonzero(matte == EXACT)
        alpha, d = _exact_alpha(image.reshape(-1, 3)[undecided], self.key, self.tola, self.tolb)
        matte.reshape(-1)[undecided] = np.rint(alpha * 255)
        return matte, undecided, alpha, d

    def _blur(self, matte: np.ndarray) -> np.ndarray:
        """Gaussian blur of a matte (..., H, W) over H and W, never across frames. Only the rows that hold
        an edge, and the blur's reach around them, are filtered: the rows above and below are flat and
        equal to their neighbours, so the blur would give them back unchanged."""
        out = matte.copy()
        rows = np.flatnonzero(_edge_rows(matte))
        if not rows.size:
            return out
        reach = int(4.0 * self.blur_sigma + 0.5) + 1  # gaussian_filter's default truncate is 4 sigma
        band = slice(max(0, int(rows[0]) - reach), min(matte.shape[-2], int(rows[-1]) + 2 + reach))
        sigma = (0,) * (matte.ndim - 2) + (self.blur_sigma, self.blur_sigma)
        blurred = gaussian_filter(matte[..., band, :], sigma, output=np.float32)
        blurred += 0.5
        out[..., band, :] = np.clip(blurred, 0, 255, out=blurred)
        return out

    def undecided_share(self, image: np.ndarray) -> float:
        """The share of the pixels of uint8 (..., 3) that the table leaves to the exact formula: the work
        that grows with how much of the view lies near the tolerances (or the key hue, with spill)."""
        return float((np.take(self.table, _chroma_index(image), mode="clip") == EXACT).mean())

    def matte(self, image: np.ndarray) -> np.ndarray:
        """Background alpha of uint8 (..., H, W, 3) as uint8 (..., H, W), 255 = keyed (background)."""
        matte = self._classify(image)[0]
        return self._blur(matte) if self.blur_sigma > 0 else matte

    def __call__(self, image: np.ndarray, backdrop: Backdrop, out: np.ndarray | None = None,
                 matte_out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Composite one uint8 frame (H, W, 3) over ``backdrop``; returns (frame, matte), also written into
        ``out`` and ``matte_out`` when given (e.g. a slot of the episode's arrays)."""
        image = np.ascontiguousarray(image)
        frame = out if _c_ordered(out) else np.empty(image.shape, np.uint8)  # pixels are written through views
        direct = matte_out if _c_ordered(matte_out) and self.blur_sigma == 0 else None
        matte, undecided, alpha, d = self._classify(image, direct)
        if self.blur_sigma > 0:
            matte = self._blur(matte)
        _hard_composite(image, matte, backdrop, frame)
        flat, pixels, bg = frame.reshape(-1, 3), image.reshape(-1, 3), backdrop.image.reshape(-1, 3)
        if self.blur_sigma > 0:  # the blur moved the soft edge: composite the matte's own soft values
            soft = np.flatnonzero((matte != 0) & (matte != 255))
            flat[soft] = _blend_matte(pixels[soft], matte.reshape(-1)[soft], bg[soft], self.key)
        else:
            soft = (alpha > 0) & (alpha < 1)
            flat[undecided[soft]] = _blend(pixels[undecided[soft]], alpha[soft], bg[undecided[soft]], self.key)
        if self.spill > 0:
            self._suppress_spill(flat, undecided, alpha, d)
        if out is not None and frame is not out:
            out[...] = frame
        if matte_out is not None and matte is not matte_out:
            matte_out[...] = matte
        return frame, matte

    def _suppress_spill(self, flat: np.ndarray, undecided: np.ndarray, alpha: np.ndarray, d: np.ndarray) -> None:
        """Pull green towards ``max(R, B)`` on pixels (n, 3 view ``flat``) that are partly foreground and
        whose chroma is near the key: weight ``spill (1 - a) clip((2 tolb - d) / tolb, 0, 1)``."""
        near = np.clip((2 * self.tolb - d) / max(self.tolb, 1e-6), 0.0, 1.0)
        weight = self.spill * (1 - alpha) * near
        hit = weight > 0
        idx = undecided[hit]
        px = flat[idx].astype(np.float32)
        excess = np.maximum(px[:, 1] - np.maximum(px[:, 0], px[:, 2]), 0)
        px[:, 1] -= weight[hit].astype(np.float32) * excess
        flat[idx] = np.clip(px + 0.5, 0, 255).astype(np.uint8)


def matte(image: np.ndarray, key_rgb: np.ndarray, tola: float, tolb: float, blur_sigma: float = 0.0) -> np.ndarray:
    """Background alpha of uint8 (..., H, W, 3) images as uint8 (..., H, W), 255 = keyed (background);
    without blur it is ``rint(255 a)`` of the reference's alpha, exactly."""
    return Keyer(key_rgb, tola, tolb, blur_sigma=blur_sigma).matte(image)


def composite(image: np.ndarray, alpha: np.ndarray, background: np.ndarray, key_rgb: np.ndarray) -> np.ndarray:
    """``rint(clip(x - a key + a background))`` for uint8 images (..., H, W, 3) and a uint8 matte
    (..., H, W) (``a = alpha / 255`` exactly); ``background`` is one (H, W, 3) for every frame or one per
    frame. Within 1 grey level of the reference, whose alpha is not quantised to 1/255; ``Keyer`` does the
    matte and the composite together and equals the reference."""
    h, w = image.shape[-3:-1]
    frames = np.ascontiguousarray(image).reshape(-1, h, w, 3)
    mattes = np.ascontiguousarray(alpha).reshape(-1, h, w)
    backgrounds = np.broadcast_to(background, image.shape).reshape(-1, h, w, 3)
    key = np.asarray(key_rgb, np.uint8)
    out = np.empty(frames.shape, np.uint8)  # C order: pixels are written through flat views
    for t in range(len(frames)):
        prepared = prepare_backdrop(backgrounds[t], key)
        _hard_composite(frames[t], mattes[t], prepared, out[t])
        soft = np.flatnonzero((mattes[t] != 0) & (mattes[t] != 255))
        out[t].reshape(-1, 3)[soft] = _blend_matte(frames[t].reshape(-1, 3)[soft], mattes[t].reshape(-1)[soft],
                                                   prepared.image.reshape(-1, 3)[soft], key)
    return out.reshape(image.shape)


def reference_composite(image: np.ndarray, key_rgb: np.ndarray, tola: float, tolb: float,
                        background: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The formula as one writes it from the paper (float64, one step at a time, one image): the
    benchmark's baseline and the tests' oracle. Returns (composite uint8, alpha float64)."""
    alpha, _ = _exact_alpha(image, key_rgb, tola, tolb)
    return _blend(image, alpha, background, key_rgb), alpha


# -------------------------------------------------------------------------------- augmentation
@dataclass(frozen=True)
class GreenScreenParams:
    """One field per command-line flag of ``demoforge augment greenscreen``.

    key: "auto" (measured per episode and camera, ``estimate_key``) or a hex colour (``#439f82``).
    tola, tolb: CbCr distances where the matte starts to fall and reaches foreground (GreenAug's
        configs: 30 / 35; its function defaults 10 / 30).
    cameras: image features or camera names to key; empty = every image feature.
    backgrounds: "procedural" (``curation.textures``) or a folder of png/jpg images.
    per_frame: a new background every frame (GreenAug) instead of one per episode copy.
    copies: synthetic episodes per source episode.
    scale: range of the crop's side as a fraction of the largest crop of the frame's aspect ratio.
    spill: spill suppression strength, 0 (off) .. 1.
    blur_sigma: Gaussian blur of the matte in pixels (0 = GreenAug's torch version; 1.5 = numpy version).
    mask_feature: name of the saved matte, ``{cam}`` replaced by the camera name.
    key_frames: frames spread over the episode that ``key="auto"`` measures.
    """

    key: str = "auto"
    tola: float = 30.0
    tolb: float = 35.0
    cameras: tuple[str, ...] = ()
    backgrounds: str = "procedural"
    per_frame: bool = False
    copies: int = 1
    scale: tuple[float, float] = (0.5, 1.0)
    spill: float = 0.5
    blur_sigma: float = 0.0
    mask_feature: str = "observation.mask.{cam}.greenscreen"
    key_frames: int = 8

    def check(self) -> None:
        """Raise a one-line ``DemoforgeError`` naming the flag that is out of range."""
        if self.key != "auto":
            parse_key(self.key)
        if not 0 <= self.tola <= self.tolb:
            raise DemoforgeError(f"--tola {self.tola} / --tolb {self.tolb}: expected 0 <= tola <= tolb")
        if self.copies < 1:
            raise DemoforgeError(f"--copies {self.copies}: expected at least 1")
        lo, hi = self.scale
        if not 0 < lo <= hi <= 1:
            raise DemoforgeError(f"--scale {lo} {hi}: expected 0 < min <= max <= 1")
        if not 0 <= self.spill <= 1:
            raise DemoforgeError(f"--spill {self.spill}: expected 0 .. 1")
        if self.blur_sigma < 0:
            raise DemoforgeError(f"--blur-sigma {self.blur_sigma}: expected >= 0")
        if "{cam}" not in self.mask_feature:
            raise DemoforgeError(f"--mask-feature {self.mask_feature!r}: expected a name with {{cam}}")


class GreenScreen:
    """GreenAug-Rand as an augmentation (see the module docstring for the method and departures)."""

    name: ClassVar[str] = "greenscreen"
    version: ClassVar[str] = "2"  # 2: exact keyer (spill and blur may differ by one grey level from 1)

    def __init__(self, params: GreenScreenParams | None = None, bank: BackgroundBank | None = None) -> None:
        self.params = params or GreenScreenParams()
        self.params.check()
        self.bank = bank or make_bank(self.params.backgrounds)

    def cameras(self, spec: DatasetSpec) -> dict[str, str]:
        """Camera name -> image feature, for the cameras this augmentation keys."""
        images = {n[len(IMAGE_PREFIX):]: n for n in spec.of_kind("image") if n.startswith(IMAGE_PREFIX)}
        if not self.params.cameras:
            return images
        out = {}
        for cam in self.params.cameras:
            name = cam[len(IMAGE_PREFIX):] if cam.startswith(IMAGE_PREFIX) else cam
            if name not in images:
                raise DemoforgeError(f"--cameras {cam}: no image feature {IMAGE_PREFIX}{name} "
                                     f"(have {sorted(images)})")
            out[name] = images[name]
        return out

    def output_spec(self, spec: DatasetSpec) -> DatasetSpec:
        features = dict(spec.features)
        for cam, image in self.cameras(spec).items():
            h, w = spec.features[image].shape[:2]
            features[self.params.mask_feature.format(cam=cam)] = Feature(
                "uint8", (h, w), "mask", ("height", "width"),
                f"green-screen matte of {image}: 255 = keyed background (replaced), 0 = kept, between = soft edge")
        return dataclasses.replace(spec, features=features)

    def _key(self, frames: np.ndarray) -> np.ndarray | None:
        if self.params.key != "auto":
            return parse_key(self.params.key)
        picks = np.unique(np.linspace(0, len(frames) - 1, min(self.params.key_frames, len(frames))).astype(int))
        return estimate_key(frames[picks])

    def _background(self, rng: np.random.Generator, hw: tuple[int, int]) -> tuple[np.ndarray, dict[str, Any]]:
        image, info = self.bank.draw(rng)
        bg, crop = crop_resize(image, hw[0], hw[1], self.params.scale, rng)
        return bg, {**info, "crop": crop}

    def key_camera(self, frames: np.ndarray, key_rgb: np.ndarray | None,
                   background: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Composite uint8 frames (T, H, W, 3) over ``background`` ((H, W, 3) or per frame (T, H, W, 3));
        returns (frames, matte). No key: frames unchanged, matte zero."""
        p = self.params
        if key_rgb is None:
            return frames, np.zeros(frames.shape[:-1], np.uint8)
        keyer = Keyer(key_rgb, p.tola, p.tolb, p.spill, p.blur_sigma)
        out = np.empty(frames.shape, np.uint8)
        alpha = np.empty(frames.shape[:-1], np.uint8)
        fixed = prepare_backdrop(background, key_rgb) if background.ndim == 3 else None
        for t in range(len(frames)):  # per frame: bounded memory for long episodes
            backdrop = fixed if fixed is not None else prepare_backdrop(background[t], key_rgb)
            keyer(frames[t], backdrop, out[t], alpha[t])
        return out, alpha

    def _backgrounds(self, rng: np.random.Generator, frames: np.ndarray) -> tuple[np.ndarray, Any]:
        """One background (H, W, 3) for the episode copy, or one per frame (T, H, W, 3) with ``per_frame``,
        and its provenance (the draw's kind, id and crop; per frame, the ids)."""
        hw = frames.shape[1:3]
        if not self.params.per_frame:
            return self._background(rng, hw)
        drawn = [self._background(rng, hw) for _ in range(len(frames))]
        return np.stack([bg for bg, _ in drawn]), {"per_frame": [info["id"] for _, info in drawn]}

    def generate(self, episode: Episode, spec: DatasetSpec, seed: int) -> Iterator[Synthetic]:
        """``copies`` composites of the episode; each carries its keyed fraction per camera ("coverage":
        the matte's mean over the episode, soft edges by their alpha; 0 where no screen was found) in its
        parameters and, so that the catalog can filter on it, as the factor ``greenscreen_coverage.<cam>``."""
        cams = self.cameras(spec)
        keys = {cam: self._key(episode.data[feature]) for cam, feature in cams.items()}
        for copy in range(self.params.copies):
            rng = np.random.default_rng([seed, copy])
            data = dict(episode.data)
            sample: dict[str, Any] = {"copy": copy, "key": {}, "background": {}, "coverage": {}}
            for cam, feature in cams.items():
                background, info = self._backgrounds(rng, episode.data[feature])
                data[feature], alpha = self.key_camera(episode.data[feature], keys[cam], background)
                data[self.params.mask_feature.format(cam=cam)] = alpha
                sample["key"][cam] = None if keys[cam] is None else key_hex(keys[cam])
                sample["background"][cam] = info
                sample["coverage"][cam] = round(float(alpha.mean()) / 255, 4)
            factors = {**episode.meta.factors, **coverage_factors(sample["coverage"])}
            meta = dataclasses.replace(episode.meta, factors=factors)  # a new dict: the source's stays as it was
            yield Synthetic(Episode(data=data, meta=meta), params=sample)


def coverage_factors(coverage: dict[str, float]) -> dict[str, float]:
    """Camera -> keyed fraction as episode factors ``greenscreen_coverage.<cam>`` (factor names allow
    letters, digits, ``_ . -``; any other character of a camera name becomes ``_``)."""
    return {f"{COVERAGE_FACTOR}.{_FACTOR_UNSAFE.sub('_', cam)}": value for cam, value in coverage.items()}
