"""3Dconnexion SpaceMouse through pyspacemouse 2.1 (direct HID, no spacenavd).

Each ``read()`` drains every HID report queued since the last tick and acts on the newest state, so the
robot never lags the hand: pyspacemouse's own ``read()`` consumes one report per call while the puck
sends one every 8-16 ms, and a slower loop would otherwise build a backlog (PySpaceMouse issue #57).
Button press edges are collected across all drained reports, so a click shorter than a tick still counts.

Axis mapping: pyspacemouse's ``AxisConvention.HID_Z_UP`` by default (+x right, +y away from the user,
+z up; roll/pitch/yaw right-handed about x/y/z), i.e. pushing the cap right gives +dx, pushing it away
gives +dy, lifting it gives +dz, twisting it counter-clockwise seen from above gives +dyaw. Per axis:
normalised value (350 counts = 1) -> deadzone (rescaled so motion starts at 0) -> ``axis_scale`` (a
negative entry flips the axis) -> clipped to [-1, 1] -> times ``max_translation`` / ``max_rotation``.

pyspacemouse is imported inside ``connect()`` so machines without it (or without libhidapi) can still
import ``teleop.devices``.
"""

from __future__ import annotations

import contextlib
import io
import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from teleop.device import END, Command, register
from teleop.devices._options import config_from
from toolkit.errors import DemoforgeError

AXES = ("x", "y", "z", "roll", "pitch", "yaw")
CONVENTIONS = ("hid_z_up", "hid", "ros", "unity")

# Vendor 256f is 3Dconnexion; older (Logitech-era) models such as the SpaceNavigator use 046d.
UDEV_RULES = (
    'KERNEL=="hidraw*", ATTRS{idVendor}=="256f", MODE="0666"\n'
    'KERNEL=="hidraw*", ATTRS{idVendor}=="046d", MODE="0666"\n'
)
UDEV_FILE = "/etc/udev/rules.d/99-spacemouse.rules"
HIDAPI_HINT = "install the hidapi library: sudo apt-get install libhidapi-hidraw0 (macOS: brew install hidapi)"


@dataclass
class SpaceMouseConfig:
    """How puck deflection becomes an end-effector delta; command-line flags map onto these fields."""

    max_translation: float = 0.02  # metres per tick at full deflection
    max_rotation: float = 0.15  # radians per tick at full deflection
    deadzone: float = 0.05  # fraction of full deflection ignored around rest (pucks rarely rest at 0)
    axis_scale: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)  # x y z roll pitch yaw; negative flips
    invert: tuple[str, ...] = ()  # axis names to flip, e.g. ("y", "yaw"); same as a negative axis_scale
    axis_convention: str = "hid_z_up"  # pyspacemouse AxisConvention: hid_z_up | hid | ros | unity
    mode: Literal["full", "translation", "rotation"] = "full"
    gripper_button: int | None = 0  # press toggles the gripper target between 0 (open) and 1 (closed)
    end_button: int | None = 1  # press raises END
    device: str | None = None  # pyspacemouse model name (e.g. "SpaceMouseCompact"); None = first found
    device_path: str | None = None  # e.g. /dev/hidraw3; wins over ``device`` (use it for receivers, issue #49)
    stale_after: float | None = 0.25  # seconds without a report -> treat the puck as at rest
    max_reports_per_tick: int = 4096  # drain bound, so a misbehaving device cannot stall a tick

    def __post_init__(self) -> None:
        self.axis_scale = tuple(float(v) for v in self.axis_scale)
        self.invert = tuple(self.invert)
        if len(self.axis_scale) != 6:
            raise DemoforgeError(f"spacemouse axis_scale: expected 6 numbers (x y z roll pitch yaw), got {len(self.axis_scale)}")
        if bad := [a for a in self.invert if a not in AXES]:
            raise DemoforgeError(f"spacemouse invert: unknown axis {bad[0]!r}; expected some of {', '.join(AXES)}")
        if self.mode not in ("full", "translation", "rotation"):
            raise DemoforgeError(f"spacemouse mode: expected full, translation or rotation, got {self.mode!r}")
        if self.axis_convention.lower() not in CONVENTIONS:
            raise DemoforgeError(
                f"spacemouse axis_convention: expected one of {', '.join(CONVENTIONS)}, got {self.axis_convention!r}"
            )
        if not 0.0 <= self.deadzone < 1.0:
            raise DemoforgeError(f"spacemouse deadzone: expected a fraction in [0, 1), got {self.deadzone}")
        if self.max_translation < 0 or self.max_rotation < 0:
            raise DemoforgeError("spacemouse max_translation/max_rotation: expected non-negative numbers")

    def gains(self) -> np.ndarray:
        """Per-axis factor applied after the deadzone (axis_scale with ``invert`` folded in)."""
        g = np.array(self.axis_scale, np.float64)
        for name in self.invert:
            g[AXES.index(name)] *= -1
        if self.mode == "translation":
            g[3:] = 0
        elif self.mode == "rotation":
            g[:3] = 0
        return g


def shape_axes(raw: np.ndarray, config: SpaceMouseConfig) -> np.ndarray:
    """Normalised puck axes (6,) -> action deltas (6,) in metres / radians per tick."""
    raw = np.asarray(raw, np.float64)
    dz = config.deadzone
    shaped = np.sign(raw) * np.clip((np.abs(raw) - dz) / (1.0 - dz), 0.0, None)
    shaped = np.clip(shaped * config.gains(), -1.0, 1.0)
    limits = np.array([config.max_translation] * 3 + [config.max_rotation] * 3)
    return (shaped * limits).astype(np.float32)


@register("spacemouse")
class SpaceMouse:
    """A SpaceMouse as a demoforge ``Device`` (6-DoF deltas, gripper toggle, END button)."""

    name = "spacemouse"

    def __init__(self, config: SpaceMouseConfig | None = None, **overrides: Any) -> None:
        self.config: SpaceMouseConfig = config_from(config, overrides, SpaceMouseConfig, "spacemouse")
        self._mouse: Any = None
        self._hid_errors: tuple[type[BaseException], ...] = (OSError,)
        self._buttons: list[int] = []
        self._gripper = 0.0
        self._t = -1.0  # pyspacemouse's stamp (perf_counter) of the newest report; -1 = none yet
        self._axes = np.zeros(6, np.float64)
        self.reports = 0  # HID reports consumed over the device's life (for diagnostics and tests)
        self.last_drained = 0  # reports consumed by the latest read()

    # -- connection --------------------------------------------------------------------------------
    def connect(self) -> None:
        if self._mouse is not None:
            return
        try:
            import pyspacemouse
            from easyhid import HIDException
        except ImportError:
            raise DemoforgeError(
                "spacemouse: pyspacemouse is not installed: pip install 'pyspacemouse>=2.1,<2.2'"
            ) from None
        except OSError as exc:  # easyhid dlopens hidapi at import; a broken library fails here
            raise DemoforgeError(f"spacemouse: cannot load the hidapi library ({exc}); {HIDAPI_HINT}") from None
        self._hid_errors = (HIDException, OSError)
        cfg = self.config
        convention = pyspacemouse.AxisConvention(cfg.axis_convention.lower())
        where = cfg.device_path or cfg.device or "any supported model"
        try:
            # pyspacemouse print()s "... found"; keep stdout for the recorder's own display.
            with contextlib.redirect_stdout(io.StringIO()):
                if cfg.device_path:
                    mouse = pyspacemouse.open_by_path(cfg.device_path, nonblocking=True, axis_convention=convention)
                else:
                    mouse = pyspacemouse.open(device=cfg.device, nonblocking=True, axis_convention=convention)
        except AttributeError:
            # easyhid fell back to dlopen(None): hid_enumerate is missing from the process.
            raise DemoforgeError(f"spacemouse: the hidapi library is missing; {HIDAPI_HINT}") from None
        except FileNotFoundError as exc:
            raise DemoforgeError(f"spacemouse device_path {cfg.device_path!r}: {exc} (list devices: pyspacemouse --list-connected)") from None
        except ValueError as exc:
            raise DemoforgeError(f"spacemouse device {where!r}: {' '.join(str(exc).split())[:300]}") from None
        except RuntimeError as exc:
            raise self._open_error(str(exc), where) from None
        self._mouse = mouse
        self._buttons = [0] * len(mouse.info.button_specs)
        for index, label in ((cfg.gripper_button, "gripper_button"), (cfg.end_button, "end_button")):
            if index is not None and not 0 <= index < len(self._buttons):
                self.close()
                raise DemoforgeError(
                    f"spacemouse {label}: {mouse.name} has buttons 0..{len(self._buttons) - 1}, got {index}"
                )
        self._gripper = 0.0
        self._t, self._axes = -1.0, np.zeros(6, np.float64)
        self._drain()  # forget whatever queued up before we were ready

    @staticmethod
    def _open_error(message: str, where: str) -> DemoforgeError:
        if "HID API" in message:
            return DemoforgeError(f"spacemouse: the hidapi library is missing; {HIDAPI_HINT}")
        if "Failed to open" in message:
            rules = "; ".join(UDEV_RULES.strip().splitlines())
            return DemoforgeError(
                f"spacemouse {where}: found but cannot open it (permission denied, or spacenavd/3DxWare holds it); "
                f"put these lines in {UDEV_FILE}: {rules}; then sudo udevadm control --reload-rules && "
                "sudo udevadm trigger and replug"
            )
        if "not found" in message or "No connected" in message:
            return DemoforgeError(
                f"spacemouse: no SpaceMouse found ({where}); plug it in (receiver: pass device_path) "
                "and check with: pyspacemouse --list-connected"
            )
        return DemoforgeError(f"spacemouse {where}: {' '.join(message.split())[:300]}")

    def close(self) -> None:
        mouse, self._mouse = self._mouse, None
        if mouse is not None:
            with contextlib.suppress(*self._hid_errors):
                mouse.close()

    def __enter__(self) -> SpaceMouse:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading -----------------------------------------------------------------------------------
    def _drain(self) -> set[int]:
        """Consume every queued report; returns the buttons that went down during the drain."""
        pressed: set[int] = set()
        mouse = self._mouse
        count = 0
        for _ in range(self.config.max_reports_per_tick):
            try:
                state = mouse.read()
            except self._hid_errors as exc:
                raise DemoforgeError(f"spacemouse: reading {mouse.name} failed ({exc}); is it still plugged in?") from None
            # pyspacemouse stamps ``t`` only when it processed a report: an unchanged stamp means the
            # non-blocking read came back empty, so the queue is drained.
            if state.t == self._t:
                break
            self._t = state.t
            count += 1
            buttons = list(state.buttons)  # the library mutates one list in place: compare copies
            pressed.update(i for i, (now, was) in enumerate(zip(buttons, self._buttons)) if now and not was)
            self._buttons = buttons
            self._axes = np.array([getattr(state, a) for a in AXES], np.float64)
        self.last_drained = count
        self.reports += count
        return pressed

    def read(self, observation: dict[str, np.ndarray] | None = None) -> Command:
        if self._mouse is None:
            raise DemoforgeError("spacemouse: read() before connect()")
        pressed = self._drain()
        events: set[str] = set()
        if self.config.gripper_button in pressed:
            self._gripper = 1.0 - self._gripper
        if self.config.end_button in pressed:
            events.add(END)
        action = np.zeros(7, np.float32)
        # At rest the puck stops sending (after three zero reports); if those were lost, the last
        # deflection would stick, so an old report counts as rest.
        stale = self.config.stale_after is not None and time.perf_counter() - self._t > self.config.stale_after
        if not stale:
            action[:6] = shape_axes(self._axes, self.config)
        action[6] = self._gripper
        return Command(action, frozenset(events))

    @property
    def raw_axes(self) -> np.ndarray:
        """The newest normalised axes (x, y, z, roll, pitch, yaw) as pyspacemouse reported them."""
        return self._axes.copy()

    @property
    def gripper(self) -> float:
        return self._gripper
