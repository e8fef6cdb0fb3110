"""Feature statistics as lerobot computes them: per episode, then aggregated into ``meta/stats.json``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from toolkit.formats.lerobot_features import Column
from toolkit.formats.lerobot_layout import DEFAULT_COLUMNS

QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}


def _sample_count(n: int) -> int:
    """lerobot's estimate_num_samples: all frames up to 100, then n**0.75, at most 10 000."""
    return n if n <= 100 else max(100, min(int(n ** 0.75), 10_000))


def _image_stats(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Per-channel stats of uint8 (T, H, W, 3) frames in [0, 1], shaped (3, 1, 1) like lerobot's."""
    idx = np.round(np.linspace(0, len(frames) - 1, _sample_count(len(frames)))).astype(int)
    sample = frames[idx]
    step = max(1, max(sample.shape[1:3]) // 150) if max(sample.shape[1:3]) > 300 else 1
    pixels = sample[:, ::step, ::step].reshape(-1, sample.shape[-1]).astype(np.float64) / 255.0
    stats = _vector_stats(pixels)
    stats["count"] = np.array([len(frames)], np.int64)
    return {k: (v if k == "count" else v.reshape(-1, 1, 1)) for k, v in stats.items()}


def _vector_stats(values: np.ndarray) -> dict[str, np.ndarray]:
    """min/max/mean/std/count/quantiles over axis 0 of an (N, D) array, as float64."""
    values = values.astype(np.float64, copy=False)
    stats = {"min": values.min(0), "max": values.max(0), "mean": values.mean(0), "std": values.std(0),
             "count": np.array([len(values)], np.int64)}
    qs = np.quantile(values, list(QUANTILES.values()), axis=0)
    stats.update({k: qs[i] for i, k in enumerate(QUANTILES)})
    return stats


class StatsAggregator:
    """Running dataset stats from per-episode stats: exact min/max/mean/std, count-weighted quantiles."""

    def __init__(self) -> None:
        self._acc: dict[str, dict[str, Any]] = {}

    def add(self, name: str, stats: dict[str, np.ndarray]) -> None:
        n = int(stats["count"][0])
        acc = self._acc.setdefault(name, {"n": 0, "min": None, "max": None, "sum": 0.0, "sumsq": 0.0,
                                          **{q: 0.0 for q in QUANTILES}})
        acc["n"] += n
        acc["min"] = stats["min"] if acc["min"] is None else np.minimum(acc["min"], stats["min"])
        acc["max"] = stats["max"] if acc["max"] is None else np.maximum(acc["max"], stats["max"])
        acc["sum"] = acc["sum"] + stats["mean"] * n
        acc["sumsq"] = acc["sumsq"] + (stats["std"] ** 2 + stats["mean"] ** 2) * n
        for q in QUANTILES:
            acc[q] = acc[q] + stats[q] * n

    def result(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for name, acc in self._acc.items():
            n = acc["n"]
            mean = acc["sum"] / n
            std = np.sqrt(np.maximum(acc["sumsq"] / n - mean ** 2, 0.0))
            entry = {"min": acc["min"], "max": acc["max"], "mean": mean, "std": std, "count": np.array([n])}
            entry.update({q: acc[q] / n for q in QUANTILES})
            out[name] = {k: np.asarray(v).tolist() for k, v in entry.items()}
        return out


def episode_stats(columns: list[Column], data: dict[str, np.ndarray], table: pa.Table) -> dict[str, dict]:
    stats: dict[str, dict[str, np.ndarray]] = {}
    for col in columns:
        array = data[col.name]
        if col.storage in ("image", "video"):
            stats[col.name] = _image_stats(array)
        else:
            stats[col.name] = _vector_stats(array.reshape(len(array), -1).astype(col.info["dtype"]))
    for name in DEFAULT_COLUMNS:
        stats[name] = _vector_stats(table.column(name).to_numpy().reshape(-1, 1))
    return stats
