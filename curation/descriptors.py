"""Image descriptors for visual diversity: a deterministic lightweight one, and an optional pretrained one.

Both return a unit-length, non-negative float32 vector per episode (computed from a few evenly spaced
frames), so the cosine distance between two episodes lies in [0, 1] whichever descriptor made them and
the diversity pass treats them alike.

- ``lightweight`` (always available, deterministic, no model): per frame a 64-bin joint RGB histogram
  (4 levels per channel) embedded by its square root, so the Euclidean distance between two embeddings is
  the Hellinger distance between the histograms up to a factor sqrt 2, plus an 8 x 8 grayscale thumbnail
  (block means of a copy subsampled to about 64 pixels a side).
  The histogram sees colour changes (a backdrop, an object colour, the light level); the thumbnail sees
  layout (where things are). It is blind to texture and semantics: two differently shaped objects of the
  same colour and size look alike to it.
- ``pretrained``: the 512-d pooled features of torchvision's ImageNet ResNet-18, used only when torch and
  torchvision are installed *and* the weights are already in the torch hub cache: demoforge never
  downloads weights. (Lin et al. 2025 used DINOv2 as a policy encoder; torchvision does not ship DINOv2,
  and ResNet-18 is the smallest widely cached general-purpose image model.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from toolkit.errors import DemoforgeError

KINDS = ("auto", "lightweight", "pretrained")
HIST_LEVELS = 4  # per channel: 4**3 = 64 joint colour bins
THUMB = 8  # thumbnail side, pixels

_MODELS: dict[str, Any] = {}  # per-process cache so each worker loads the network once, not per episode


def frame_indices(length: int, count: int) -> np.ndarray:
    """``count`` frame indices spread evenly over ``[0, length)``, first and last included, no repeats."""
    if length <= 0:
        return np.zeros(0, np.int64)
    return np.unique(np.linspace(0, length - 1, max(1, count)).round().astype(np.int64))


def _thumbnail(gray: np.ndarray) -> np.ndarray:
    """Block-mean ``THUMB x THUMB`` thumbnail of a (H, W) image (index sampling when it is smaller)."""
    h, w = gray.shape
    if h < THUMB or w < THUMB:
        rows = np.linspace(0, h - 1, THUMB).round().astype(int)
        cols = np.linspace(0, w - 1, THUMB).round().astype(int)
        return gray[np.ix_(rows, cols)]
    h8, w8 = h - h % THUMB, w - w % THUMB
    return gray[:h8, :w8].reshape(THUMB, h8 // THUMB, THUMB, w8 // THUMB).mean(axis=(1, 3))


def lightweight_descriptor(frames: np.ndarray) -> np.ndarray:
    """Unit float32 descriptor of ``frames`` (K, H, W, 3) uint8: per frame sqrt colour histogram + thumbnail."""
    shift = 8 - int(np.log2(HIST_LEVELS))
    parts = []
    for frame in np.asarray(frames, np.uint8):
        q = frame >> shift  # uint8 throughout: 64 joint bins fit, and it is 5x faster than int32
        joint = (q[..., 0] * HIST_LEVELS + q[..., 1]) * HIST_LEVELS + q[..., 2]
        hist = np.bincount(joint.ravel(), minlength=HIST_LEVELS ** 3) / joint.size
        parts.append(np.sqrt(hist))  # unit norm: histograms compare by Hellinger distance
        # An 8 x 8 thumbnail needs no more than ~64 pixels a side: subsample before averaging.
        stride = max(1, min(frame.shape[:2]) // (8 * THUMB))
        gray = frame[::stride, ::stride].mean(axis=2, dtype=np.float32)
        parts.append(_thumbnail(gray).ravel() / (255.0 * THUMB))  # norm <= 1, same weight as the histogram
    vector = np.concatenate(parts) if parts else np.zeros(1)
    norm = float(np.linalg.norm(vector))
    return (vector / norm if norm > 0 else vector).astype(np.float32)


def _weights_path() -> tuple[Any, Path]:
    import torch
    from torchvision.models import ResNet18_Weights

    weights = ResNet18_Weights.DEFAULT
    return weights, Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name


def pretrained_unavailable() -> str | None:
    """Why the pretrained descriptor cannot run here, in one line (None when it can)."""
    try:
        import torch  # noqa: F401
        import torchvision  # noqa: F401
    except ImportError:
        return "torch and torchvision are not installed"
    _, path = _weights_path()
    if not path.exists():
        return f"the ResNet-18 weights are not cached at {path} (demoforge does not download weights)"
    return None


def resolve(kind: str) -> tuple[str, str]:
    """The descriptor to use for ``kind`` (``auto``, ``lightweight``, ``pretrained``) and why, in one line.

    ``auto`` takes the pretrained model when it can run offline, the lightweight descriptor otherwise;
    ``pretrained`` raises a one-line ``DemoforgeError`` when it cannot run.
    """
    if kind not in KINDS:
        raise DemoforgeError(f"DiversityParams.descriptor: expected one of {', '.join(KINDS)}, got {kind!r}")
    if kind == "lightweight":
        return "lightweight", "asked for"
    reason = pretrained_unavailable()
    if reason is None:
        return "pretrained", "torchvision ResNet-18 from the local cache"
    if kind == "pretrained":
        raise DemoforgeError(f"DiversityParams.descriptor='pretrained': {reason}; use 'lightweight' or 'auto'")
    return "lightweight", f"pretrained model unavailable: {reason}"


def pretrained_descriptor(frames: np.ndarray) -> np.ndarray:
    """Unit float32 descriptor of ``frames`` (K, H, W, 3) uint8: mean ResNet-18 pooled features (512-d)."""
    import torch
    from torchvision.models import resnet18

    if "resnet18" not in _MODELS:
        weights, path = _weights_path()
        model = resnet18()
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        model.fc = torch.nn.Identity()  # keep the 512-d pooled features, drop the ImageNet classifier
        _MODELS["resnet18"] = (model.eval(), weights.transforms())
    model, transform = _MODELS["resnet18"]
    with torch.no_grad():
        batch = transform(torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2))
        vector = model(batch).mean(dim=0).numpy().astype(np.float64)
    norm = float(np.linalg.norm(vector))
    return (vector / norm if norm > 0 else vector).astype(np.float32)


def describe(frames: np.ndarray, kind: str) -> np.ndarray:
    """The descriptor of ``frames`` made by a resolved ``kind`` (``lightweight`` or ``pretrained``)."""
    return pretrained_descriptor(frames) if kind == "pretrained" else lightweight_descriptor(frames)
