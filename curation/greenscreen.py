"""Green-screen augmentation: key out the green screen, composite a new background behind the scene.

Method: GreenAug (Teoh, Patidar, Ma, James 2024, "Green Screen Augmentation Enables Scene Generalisation
in Robotic Manipulation", arXiv 2407.07868; code eugeneteoh/greenaug, which keys with
eugeneteoh/chromakey ``chromakey/torch.py``; algorithm after gc-films.com). Per pixel:

1. YCbCr (0-255 scale): ``Y = .299R + .587G + .114B``, ``Cb = .564(B - Y)``, ``Cr = .713(R - Y)``.
2. ``d = |(Cb, Cr) - (Cb, Cr)_key|``: luma is ignored, so shading on the screen does not matter.
3. background alpha ``a = 1`` if ``d < tola``, ``0`` if ``d >= tolb``, linear in between.
4. ``out = clip(x - a * key_rgb + a * background)``: subtracting the key removes the green of soft edges.

Where we depart from the reference code, and why:

- Speed: ``a`` comes from a table over every RGB colour (2^24 uint8 entries, built once per key and
  tolerances), so a frame costs one gather instead of a colour conversion, a square root and clamps; the
  composite is float32. ``reference_composite`` is the formula as written (float64, unfused); the two agree
  within 1 grey level (``a`` is quantised to 1/255).
- Key: ``key="auto"`` measures the key from the data (``estimate_key``) instead of a fixed ``#439f82``: a
  key must be measured from *your* screen (pure green lies at d ~ 45 from ``#439f82`` and would not key).
- Blur: the torch version GreenAug trains with does not blur ``a``; the numpy version blurs it with
  sigma 1.5. We follow the torch version by default (``blur_sigma=0``); set 1.5 for the numpy behaviour.
- Spill suppression (not in GreenAug): foreground pixels whose chroma is near the key (``d < 2 tolb``)
  get their green clamped towards ``max(R, B)``, weighted by ``spill * (1 - a)`` and by how near they are.
- Temporal consistency: GreenAug draws a texture per image; we draw one per episode copy by default
  (``per_frame=False``) so a policy sees a consistent scene; ``per_frame=True`` is GreenAug's behaviour.
- The matte is kept as a mask feature (``a * 255``, uint8), and the keyed fraction ("coverage", which
  the paper found to correlate with success) is returned in each sample's parameters.
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
def _rgb_grid(r: np.ndarray) -> np.ndarray:
    """Every (R, G, B) for the R values in ``r``, in LUT order (index = R << 16 | G << 8 | B)."""
    g, b = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    grid = np.empty((len(r), 256, 256, 3), np.float64)
    grid[..., 0] = r[:, None, None]
    grid[..., 1] = g
    grid[..., 2] = b
    return grid


@functools.lru_cache(maxsize=8)
def _tables(key: tuple[int, int, int], tola: float, tolb: float) -> tuple[np.ndarray, np.ndarray]:
    """(alpha, spill weight) as uint8 tables over every RGB colour; built in 16 slices to bound memory."""
    alpha = np.empty(1 << 24, np.uint8)
    spill = np.empty(1 << 24, np.uint8)
    kcb, kcr = cbcr(np.array(key, np.float64))
    for r0 in range(0, 256, 16):
        cb, cr = cbcr(_rgb_grid(np.arange(r0, r0 + 16)))
        d = np.hypot(cb - kcb, cr - kcr).ravel()
        a = soft_alpha(d, tola, tolb)
        near = np.clip((2 * tolb - d) / max(tolb, 1e-6), 0.0, 1.0)
        sl = slice(r0 << 16, (r0 + 16) << 16)
        alpha[sl] = np.rint(a * 255)
        spill[sl] = np.rint((1 - a) * near * 255)
    return alpha, spill


def soft_alpha(d: np.ndarray, tola: float, tolb: float) -> np.ndarray:
    """GreenAug's matte from the CbCr distance: 1 below ``tola``, 0 from ``tolb``, linear between."""
    if tolb <= tola:
        return (d < tola).astype(np.float64)
    return np.clip((tolb - d) / (tolb - tola), 0.0, 1.0)


def _lut_index(image: np.ndarray) -> np.ndarray:
    rgb = image.astype(np.int32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


# ---------------------------------------------------------------------------------- per frame
def matte(image: np.ndarray, key_rgb: np.ndarray, tola: float, tolb: float, blur_sigma: float = 0.0) -> np.ndarray:
    """Background alpha of uint8 (..., H, W, 3) images as uint8 (..., H, W), 255 = keyed (background)."""
    alpha_lut, _ = _tables(tuple(int(c) for c in key_rgb), float(tola), float(tolb))
    a = alpha_lut[_lut_index(image)]
    if blur_sigma > 0:  # the numpy chromakey's soft edges; over H and W only, never across frames
        sigma = (0,) * (a.ndim - 2) + (blur_sigma, blur_sigma)
        a = np.clip(gaussian_filter(a.astype(np.float32), sigma) + 0.5, 0, 255).astype(np.uint8)
    return a


def background_delta(background: np.ndarray, key_rgb: np.ndarray) -> np.ndarray:
    """``background - key`` in float32: computed once per episode when the background is fixed."""
    return background.astype(np.float32) - key_rgb.astype(np.float32)


def composite(image: np.ndarray, alpha: np.ndarray, background: np.ndarray, key_rgb: np.ndarray,
              delta: np.ndarray | None = None) -> np.ndarray:
    """``clip(x + a (background - key))`` for uint8 images, alpha uint8 (255 = 1); background broadcasts
    over leading (time) axes, so one background serves a whole episode; ``delta`` is
    ``background_delta(background, key_rgb)`` when the caller has it already."""
    diff = background_delta(background, key_rgb) if delta is None else delta
    out = image + (alpha[..., None] * np.float32(1 / 255)) * diff
    return np.clip(out + 0.5, 0, 255, out=out).astype(np.uint8)


def suppress_spill(out: np.ndarray, image: np.ndarray, key_rgb: np.ndarray, tola: float, tolb: float,
                   strength: float) -> np.ndarray:
    """Pull green towards ``max(R, B)`` on foreground pixels near the key hue (in place on ``out``)."""
    if strength <= 0:
        return out
    _, spill_lut = _tables(tuple(int(c) for c in key_rgb), float(tola), float(tolb))
    w = spill_lut[_lut_index(image)]
    where = np.nonzero(w)  # few pixels: the screen's fringe and green-tinted foreground
    if not where[0].size:
        return out
    px = out[where].astype(np.float32)
    excess = np.maximum(px[:, 1] - np.maximum(px[:, 0], px[:, 2]), 0)
    px[:, 1] -= strength * (w[where] / np.float32(255)) * excess
    out[where] = np.clip(px + 0.5, 0, 255).astype(np.uint8)
    return out


def reference_composite(image: np.ndarray, key_rgb: np.ndarray, tola: float, tolb: float,
                        background: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The formula as one writes it from the paper (float64, one step at a time, one image): the
    benchmark's baseline and the tests' oracle. Returns (composite uint8, alpha float64)."""
    x = image.astype(np.float64)
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
    a = alpha[..., None]
    out = x - a * k + a * background.astype(np.float64)
    return np.rint(np.clip(out, 0, 255)).astype(np.uint8), alpha


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
    version: ClassVar[str] = "1"

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

    def key_camera(self, frames: np.ndarray, key_rgb: np.ndarray | None, background: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Composite uint8 frames (T, H, W, 3) over ``background`` ((H, W, 3) or per frame (T, H, W, 3));
        returns (frames, matte). No key: frames unchanged, matte zero."""
        p = self.params
        if key_rgb is None:
            return frames, np.zeros(frames.shape[:-1], np.uint8)
        out = np.empty_like(frames)
        alpha = np.empty(frames.shape[:-1], np.uint8)
        fixed = background_delta(background, key_rgb) if background.ndim == 3 else None
        for t in range(len(frames)):  # per frame: bounded memory for long episodes
            alpha[t] = a = matte(frames[t], key_rgb, p.tola, p.tolb, p.blur_sigma)
            bg = background if background.ndim == 3 else background[t]
            mixed = composite(frames[t], a, bg, key_rgb, fixed)
            out[t] = suppress_spill(mixed, frames[t], key_rgb, p.tola, p.tolb, p.spill)
        return out, alpha

    def generate(self, episode: Episode, spec: DatasetSpec, seed: int) -> Iterator[Synthetic]:
        cams = self.cameras(spec)
        keys = {cam: self._key(episode.data[feature]) for cam, feature in cams.items()}
        for copy in range(self.params.copies):
            rng = np.random.default_rng([seed, copy])
            data = dict(episode.data)
            sample: dict[str, Any] = {"copy": copy, "key": {}, "background": {}, "coverage": {}}
            for cam, feature in cams.items():
                frames = episode.data[feature]
                hw = frames.shape[1:3]
                if self.params.per_frame:
                    drawn = [self._background(rng, hw) for _ in range(len(frames))]
                    background = np.stack([bg for bg, _ in drawn])
                    info: Any = {"per_frame": [i["id"] for _, i in drawn]}
                else:
                    background, info = self._background(rng, hw)
                data[feature], alpha = self.key_camera(frames, keys[cam], background)
                data[self.params.mask_feature.format(cam=cam)] = alpha
                sample["key"][cam] = None if keys[cam] is None else key_hex(keys[cam])
                sample["background"][cam] = info
                sample["coverage"][cam] = round(float(alpha.mean()) / 255, 4)
            meta = dataclasses.replace(episode.meta)
            yield Synthetic(Episode(data=data, meta=meta), params=sample)
