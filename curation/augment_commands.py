"""``demoforge augment greenscreen|pointcloud``: flags -> parameters -> ``augment_store``, then a summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from curation.augment import Augmentation, AugmentSummary, augment_store
from toolkit.errors import DemoforgeError
from toolkit.store import Store


def numbers(flag: str, text: str | None, count: int | None = None) -> tuple[float, ...] | None:
    """``"0.1,0.1"`` -> (0.1, 0.1); ``count`` checks how many (one-line error naming the flag)."""
    if text is None or text == "":
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise DemoforgeError(f"{flag} {text!r}: expected comma-separated numbers") from None
    if count is not None and len(values) != count:
        raise DemoforgeError(f"{flag} {text!r}: expected {count} comma-separated numbers")
    return values


def build(kind: type, **fields: Any) -> Any:
    """The parameter dataclass from flags; its own checks become one-line errors."""
    try:
        return kind(**{k: v for k, v in fields.items() if v is not None})
    except (ValueError, TypeError) as e:
        raise DemoforgeError(f"augment: {e}") from None


def run(store_path: Path, out: Path, augmentation: Augmentation, where: str | None, seed: int,
        limit: int | None, console: Console) -> AugmentSummary:
    with Store.open(store_path) as source:
        summary = augment_store(source, out, augmentation, where, seed, limit)
    rejected = sum(summary.rejected.values())
    console.print(f"{augmentation.name}: {summary.generated} synthetic episodes from {summary.sources} source "
                  f"episodes -> {summary.out}" + (f"; rejected {rejected}:" if rejected else ""))
    for reason, count in summary.rejected.most_common():
        console.print(f"  {count} x {reason}")
    console.print(f"filter them with --where 'provenance.augmentation' (source: provenance.source_id)")
    return summary


def choice(flag: str, value: str | None, allowed: tuple[str, ...]) -> None:
    """A one-line error naming the flag when ``value`` is not one of ``allowed`` (None: flag not given)."""
    if value is not None and value not in allowed:
        raise DemoforgeError(f"{flag} {value!r}: expected one of {', '.join(allowed)}")


def pointcloud_command(store: Path, out: Path, where: str | None, seed: int, limit: int | None, console: Console,
                       **flags: Any) -> AugmentSummary:
    """Flags -> ``PointCloudParams``: one field per flag (``--plane-threshold`` -> ``plane_threshold``);
    a flag left out (None or absent) keeps the field's default. Bad choices fail in one line."""
    from curation.pointcloud import CHOICES, PointCloudEdit, PointCloudParams

    for name, allowed in CHOICES.items():
        choice("--" + name, flags.get(name), allowed)
    boxes = tuple(numbers("--box", b, 6) for b in flags.pop("boxes") or ())
    params = build(
        PointCloudParams, boxes=boxes or None,
        object_range=numbers("--range", flags.pop("object_range"), 2),
        target_range=numbers("--target-range", flags.pop("target_range"), 2),
        yaw=numbers("--yaw", flags.pop("yaw")),
        frames=tuple(int(v) for v in numbers("--frames", flags.pop("frames")) or ()) or None,
        workspace=numbers("--workspace", flags.pop("workspace"), 6),
        **flags)
    return run(store, out, PointCloudEdit(params), where, seed, limit, console)


def greenscreen_command(store: Path, out: Path, where: str | None, seed: int, limit: int | None, console: Console,
                        **flags: Any) -> AugmentSummary:
    from curation.greenscreen import COVERAGE_FACTOR, GreenScreen, GreenScreenParams

    cameras = tuple(c.strip() for c in (flags.pop("cameras") or "").split(",") if c.strip())
    params = build(GreenScreenParams, cameras=cameras, scale=numbers("--scale", flags.pop("scale"), 2), **flags)
    params.check()
    summary = run(store, out, GreenScreen(params), where, seed, limit, console)
    console.print(f"keyed fraction per camera: factors.{COVERAGE_FACTOR}.<camera> "
                  f"(e.g. --where 'factors.{COVERAGE_FACTOR}.front > 0.3'); matte: {params.mask_feature}")
    return summary
