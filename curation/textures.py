"""Background banks for green-screen compositing: procedural textures and folders of user images.

GreenAug (Teoh et al. 2024, arXiv 2407.07868; code eugeneteoh/greenaug) composites behind the green
screen with the MIL texture set, and ships generators for Perlin textures (cloud / marble / wood with
random colour ramps, 2-16 fBm octaves) and solid colours for its ablation. We ship the procedural side
so nothing needs a download: gradient (Perlin) noise summed over octaves (fBm) and mapped through a
random colour ramp, solid colours, checkerboards and stripes. Any folder of png/jpg images works too.

A bank's ``draw(rng)`` returns an image and a small JSON-friendly description (kind and id), so the
synthetic episode's provenance names the background it got. Same ``rng`` state, same bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import imagecodecs
import numpy as np

from toolkit.errors import DemoforgeError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
KINDS = ("perlin", "solid", "checker", "stripes")
KIND_WEIGHTS = (0.6, 0.15, 0.125, 0.125)  # mostly textured: GreenAug's ablation found texture > solid


class BackgroundBank(Protocol):
    def draw(self, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
        """One uint8 (h, w, 3) background and its description (``kind``, ``id``)."""


# ----------------------------------------------------------------------------------- procedural
def _fade(t: np.ndarray) -> np.ndarray:
    return t * t * t * (t * (t * 6 - 15) + 10)  # Perlin's quintic: C2-continuous across cell edges


def perlin(shape: tuple[int, int], cells: int, rng: np.random.Generator) -> np.ndarray:
    """Gradient noise on a ``cells`` x ``cells`` lattice over the image, float32 roughly in [-1, 1]."""
    h, w = shape
    angles = rng.uniform(0, 2 * np.pi, (cells + 1, cells + 1))
    grad = np.stack([np.cos(angles), np.sin(angles)], -1).astype(np.float32)
    y = np.linspace(0, cells, h, endpoint=False, dtype=np.float32)[:, None]
    x = np.linspace(0, cells, w, endpoint=False, dtype=np.float32)[None, :]
    yi, xi = y.astype(np.int64), x.astype(np.int64)
    fy, fx = y - yi, x - xi

    def corner(dy: int, dx: int) -> np.ndarray:
        g = grad[yi + dy, xi + dx]
        return g[..., 0] * (fx - dx) + g[..., 1] * (fy - dy)

    u, v = _fade(fx), _fade(fy)
    top = corner(0, 0) * (1 - u) + corner(0, 1) * u
    bottom = corner(1, 0) * (1 - u) + corner(1, 1) * u
    return (top * (1 - v) + bottom * v) * np.float32(np.sqrt(2))


def fbm(shape: tuple[int, int], rng: np.random.Generator, octaves: int, base_cells: int = 2) -> np.ndarray:
    """Fractal Brownian motion: octaves of Perlin noise, each twice the frequency and half the amplitude."""
    out = np.zeros(shape, np.float32)
    for o in range(octaves):
        out += perlin(shape, base_cells * 2**o, rng) * np.float32(0.5**o)
    return out


def colour_ramp(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Map values (any range) through a random ramp of 2-5 colour stops to uint8 RGB."""
    lo, hi = float(values.min()), float(values.max())
    t = (values - lo) / max(hi - lo, 1e-6)
    n = int(rng.integers(2, 6))
    stops = np.sort(rng.uniform(0, 1, n))
    stops[0], stops[-1] = 0.0, 1.0
    colours = rng.uniform(0, 255, (n, 3))
    out = np.stack([np.interp(t, stops, colours[:, c]) for c in range(3)], -1)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def perlin_texture(size: int, rng: np.random.Generator) -> np.ndarray:
    """A cloud, marble or wood texture, as GreenAug's Perlin generator makes (style, octaves random)."""
    octaves = int(rng.integers(2, 7))
    noise = fbm((size, size), rng, octaves)
    style = int(rng.integers(3))
    if style == 1:  # marble: veins bent by the noise
        x = np.linspace(0, 1, size, dtype=np.float32)[None, :]
        noise = np.sin((x * rng.uniform(2, 8) + noise * rng.uniform(1, 4)) * np.pi)
    elif style == 2:  # wood: rings around a centre, bent by the noise
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - rng.uniform(0, 1, 2)[:, None, None]
        noise = np.sin((np.hypot(yy, xx) * rng.uniform(8, 24) + noise * 2) * np.pi)
    return colour_ramp(noise, rng)


def pattern_texture(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A solid colour, a checkerboard or stripes in random colours (and period, angle)."""
    a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    if kind == "solid":
        return np.broadcast_to(a.astype(np.uint8), (size, size, 3)).copy()
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    period = rng.uniform(8, size / 2)
    if kind == "checker":
        on = ((yy // period).astype(int) + (xx // period).astype(int)) % 2 == 0
    else:
        theta = rng.uniform(0, np.pi)
        on = ((xx * np.cos(theta) + yy * np.sin(theta)) // period).astype(int) % 2 == 0
    return np.where(on[..., None], a, b).astype(np.uint8)


class ProceduralBank:
    """Procedural textures of ``size`` x ``size`` pixels; each draw takes a fresh texture seed from ``rng``
    and names it (``perlin:123456``), so a provenance id regenerates the same texture."""

    def __init__(self, size: int = 256) -> None:
        self.size = size

    def draw(self, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
        kind = str(rng.choice(KINDS, p=KIND_WEIGHTS))
        tex_seed = int(rng.integers(2**31))
        return self.make(kind, tex_seed), {"kind": kind, "id": f"{kind}:{tex_seed}"}

    def make(self, kind: str, tex_seed: int) -> np.ndarray:
        rng = np.random.default_rng(tex_seed)
        return perlin_texture(self.size, rng) if kind == "perlin" else pattern_texture(kind, self.size, rng)


# ---------------------------------------------------------------------------------- user images
def read_image(path: Path) -> np.ndarray | None:
    """An image file as uint8 (h, w, 3), or None when it cannot be decoded (grey, grey + alpha, RGBA and
    16-bit converted)."""
    try:
        image = np.asarray(imagecodecs.imread(path.read_bytes()))
    except Exception:  # noqa: BLE001 - any undecodable file is skipped, the bank says if none is left
        return None
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        return None
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, -1)
    if image.shape[-1] <= 2:  # grey, or grey and alpha
        image = np.repeat(image[..., :1], 3, -1)
    return np.ascontiguousarray(image[..., :3])


class FolderBank:
    """Every readable png/jpg in a folder (sorted by name, so a seed picks the same file on any machine).
    Images are decoded once and kept; unreadable files are skipped. A folder that cannot be listed, or
    has no readable image, is a one-line ``DemoforgeError`` naming the folder (and the skipped files)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise DemoforgeError(f"--backgrounds {self.folder}: not a folder of png/jpg images")
        self.images: list[tuple[str, np.ndarray]] = []
        skipped: list[str] = []
        for path in self._candidates():
            image = read_image(path)
            if image is not None and min(image.shape[:2]) >= 2:
                self.images.append((path.name, image))
            else:
                skipped.append(path.name)
        if not self.images:
            raise DemoforgeError(f"--backgrounds {self.folder}: no readable png/jpg images in this folder"
                                 + _skipped_note(skipped))

    def _candidates(self) -> list[Path]:
        try:
            return sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        except OSError as e:
            raise DemoforgeError(f"--backgrounds {self.folder}: cannot list the folder ({e.strerror})") from None

    def draw(self, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
        name, image = self.images[int(rng.integers(len(self.images)))]
        return image, {"kind": "image", "id": name}


def _skipped_note(names: list[str], shown: int = 3) -> str:
    """`` (unreadable: a.png, b.jpg, ...)`` for an error message, or nothing."""
    if not names:
        return ""
    listed = ", ".join(" ".join(n.split()) for n in names[:shown])  # a name with a newline stays on one line
    return f" (unreadable: {listed}{', ...' if len(names) > shown else ''})"


def make_bank(backgrounds: str) -> BackgroundBank:
    """``"procedural"`` or a folder path."""
    return ProceduralBank() if backgrounds == "procedural" else FolderBank(backgrounds)


# ------------------------------------------------------------------------------- crop and scale
def _taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear taps along one axis with pixel-centre alignment: (first index, second index, weight of
    the second), one each per output pixel."""
    pos = np.clip((np.arange(n_out, dtype=np.float32) + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)
    first = pos.astype(np.int64)
    return first, np.minimum(first + 1, n_in - 1), pos - first


def resize_bilinear(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of uint8 (h, w, 3) to a C-ordered (height, width, 3) (no OpenCV dependency).

    Separable: columns first, on the source rows only, then rows. Channels stay folded into the last
    axis (width * 3), so every step runs over long contiguous rows rather than 3-element pixels, and the
    result is C-ordered because the compositor's uint8 passes crawl on any other layout. The arithmetic is
    the plain 2-D form's, in its order, so the bytes are the same as before the split.
    """
    h, w = image.shape[:2]
    y0, y1, fy = _taps(h, height)
    x0, x1, fx = _taps(w, width)
    src = image.astype(np.float32)
    fx3 = np.repeat(fx, 3)
    cols = np.take(src, x0, axis=1).reshape(h, width * 3) * (1 - fx3)
    cols += np.take(src, x1, axis=1).reshape(h, width * 3) * fx3
    out = cols[y0] * (1 - fy)[:, None]
    out += cols[y1] * fy[:, None]
    out += 0.5
    np.clip(out, 0, 255, out=out)
    return out.astype(np.uint8).reshape(height, width, 3)


def crop_resize(image: np.ndarray, height: int, width: int, scale: tuple[float, float],
                rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
    """A random crop with the frame's aspect ratio, its side a fraction in ``scale`` of the largest such
    crop, resized to (height, width). Returns the background and the crop ``[y, x, h, w]``."""
    h, w = image.shape[:2]
    full = min(h / height, w / width)  # largest crop with the frame's aspect ratio, in source pixels/pixel
    s = float(rng.uniform(*scale))
    ch, cw = max(1, round(height * full * s)), max(1, round(width * full * s))
    y = int(rng.integers(0, h - ch + 1))
    x = int(rng.integers(0, w - cw + 1))
    return resize_bilinear(image[y:y + ch, x:x + cw], height, width), [y, x, ch, cw]
