"""SpaceMouse device tests: the real pyspacemouse 2.1 code path fed by a fake HID device.

The fake stands in for easyhid's ``HIDDevice`` (the object hidapi hands pyspacemouse) and is reached through
``pyspacemouse.api.Enumeration``, so enumeration, ``pyspacemouse.open``/``open_by_path``, the device specs
from ``devices.toml``, report parsing, scaling and the axis convention are the library's own code. Report
bytes follow the USB HID layout pyspacemouse parses: report 1 = translation int16 LE x, y, z (+ rotation in
bytes 7-12 on "combined" devices), report 2 = rotation rx, ry, rz, report 3 = button bits. Raw values use
the HID axes: +x right, +y toward the user, +z down (pressing), rotations right-handed about those axes.
"""

from __future__ import annotations

import ctypes.util
import struct
import time
from collections import deque

import numpy as np
import pytest

pyspacemouse = pytest.importorskip("pyspacemouse")
from easyhid import HIDException  # noqa: E402

from teleop.device import END, make_device  # noqa: E402
from teleop.devices.spacemouse import SpaceMouse, SpaceMouseConfig  # noqa: E402
from toolkit.errors import DemoforgeError  # noqa: E402

COMPACT = (0x256F, 0xC635)  # split reports (1 = translation, 2 = rotation)
WIRELESS = (0x256F, 0xC62E)  # combined report 1 with all six axes


def trans(x: int, y: int, z: int) -> bytes:
    return bytes([1]) + struct.pack("<hhh", x, y, z)


def rot(rx: int, ry: int, rz: int) -> bytes:
    return bytes([2]) + struct.pack("<hhh", rx, ry, rz)


def combined(*six: int) -> bytes:
    return bytes([1]) + struct.pack("<6h", *six)


def buttons(mask: int) -> bytes:
    return bytes([3, mask & 0xFF, (mask >> 8) & 0xFF])


class FakeHID:
    """Duck-types easyhid.HIDDevice: queued reports come out of ``read`` like hidapi's buffer."""

    def __init__(self, vid_pid: tuple[int, int] = COMPACT, path: str = "/dev/hidraw-fake0", fail_open: bool = False):
        self.vendor_id, self.product_id = vid_pid
        self.path = path
        self.product_string = "SpaceMouse (fake)"
        self.manufacturer_string = "3Dconnexion"
        self.release_number = 0x0437
        self.serial_number = ""
        self.fail_open = fail_open
        self.queue: deque[bytes] = deque()
        self.is_open = False
        self.nonblocking: bool | None = None
        self.read_sizes: list[int] = []

    def open(self) -> None:
        if self.fail_open:
            raise HIDException("Failed to open device")
        self.is_open = True

    def close(self) -> None:
        self.is_open = False

    def set_nonblocking(self, flag: bool) -> None:
        self.nonblocking = flag

    def write(self, data: bytes, report_id: int = 0) -> int:
        return len(data)

    def read(self, size: int = 64, timeout: int | None = None) -> bytearray:
        if not self.is_open:
            raise HIDException("HIDDevice not open")
        self.read_sizes.append(size)
        if not self.queue:
            return bytearray()  # easyhid's answer to a non-blocking read with nothing queued
        report = self.queue.popleft()[:size]
        return bytearray(report) + bytearray(size - len(report))  # hidapi returns the whole buffer

    def push(self, *reports: bytes) -> None:
        self.queue.extend(reports)


@pytest.fixture
def hid(monkeypatch):
    """The list of fake HID interfaces pyspacemouse's enumeration will see."""
    devices: list[FakeHID] = []

    class FakeEnumeration:
        def __init__(self, vid: int = 0, pid: int = 0) -> None:
            self.device_list = list(devices)

        def find(self, **filters) -> list[FakeHID]:
            return list(self.device_list)

    monkeypatch.setattr(pyspacemouse.api, "Enumeration", FakeEnumeration)
    return devices


@pytest.fixture
def compact(hid):
    dev = FakeHID(COMPACT)
    hid.append(dev)
    return dev


def connected(**options) -> SpaceMouse:
    mouse = SpaceMouse(SpaceMouseConfig(**options))
    mouse.connect()
    return mouse


def rest() -> tuple[bytes, bytes]:
    return trans(0, 0, 0), rot(0, 0, 0)


# -- axes ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("gesture", "reports", "index"),
    [
        ("push right", [trans(350, 0, 0)], 0),
        ("push away from the user", [trans(0, -350, 0)], 1),
        ("lift the cap", [trans(0, 0, -350)], 2),
        ("tilt right about +x", [rot(350, 0, 0)], 3),
        ("tilt about +y (z-up frame)", [rot(0, -350, 0)], 4),
        ("twist counter-clockwise from above", [rot(0, 0, -350)], 5),
    ],
)
def test_axis_signs(compact, gesture, reports, index):
    mouse = connected(deadzone=0.0)
    compact.push(*reports)
    action = mouse.read(None).action
    expected = np.zeros(7, np.float32)
    expected[index] = 0.02 if index < 3 else 0.15
    np.testing.assert_allclose(action, expected, atol=1e-6, err_msg=gesture)
    compact.push(*rest())
    np.testing.assert_allclose(mouse.read(None).action, np.zeros(7), atol=1e-7)
    mouse.close()


def test_scaling_clipping_and_axis_options(compact):
    mouse = connected(deadzone=0.0, max_translation=0.01, max_rotation=0.2)
    compact.push(trans(175, 0, 0), rot(0, 0, 0))
    assert mouse.read(None).action[0] == pytest.approx(0.005, rel=1e-5)  # 175/350 of full scale
    compact.push(trans(700, -700, 0))  # wireless pucks exceed 350 counts: clipped to full scale
    a = mouse.read(None).action
    assert a[0] == pytest.approx(0.01) and a[1] == pytest.approx(0.01)
    mouse.close()

    mouse = connected(deadzone=0.0, axis_scale=(0.5, 1, 1, 1, 1, 2), invert=("y",))
    compact.push(trans(350, -350, 0), rot(0, 0, -70))
    a = mouse.read(None).action
    assert a[0] == pytest.approx(0.01)  # axis_scale 0.5
    assert a[1] == pytest.approx(-0.02)  # inverted y
    assert a[5] == pytest.approx(0.15 * 0.2 * 2)  # yaw gain 2
    mouse.close()

    mouse = connected(deadzone=0.0, mode="translation")
    compact.push(trans(350, 0, 0), rot(350, 350, 350))
    a = mouse.read(None).action
    assert a[0] == pytest.approx(0.02) and not a[3:6].any()
    mouse.close()

    mouse = connected(deadzone=0.0, mode="rotation")
    compact.push(trans(350, 0, 0), rot(350, 0, 0))
    a = mouse.read(None).action
    assert a[0] == 0 and a[3] == pytest.approx(0.15)
    mouse.close()


def test_deadzone_is_rescaled(compact):
    mouse = connected(deadzone=0.05)
    compact.push(trans(14, -14, 10), rot(-14, 5, 0))  # all below 5 % of full scale: drift at rest
    assert not mouse.read(None).action.any()
    compact.push(trans(35, 0, 0))  # 10 % -> (0.10 - 0.05) / 0.95 of full scale
    assert mouse.read(None).action[0] == pytest.approx(0.02 * 0.05 / 0.95, rel=1e-5)
    compact.push(trans(350, 0, 0))
    assert mouse.read(None).action[0] == pytest.approx(0.02)
    mouse.close()


def test_combined_report_device(hid):
    dev = FakeHID(WIRELESS)
    hid.append(dev)
    mouse = connected(deadzone=0.0)
    dev.push(combined(350, 0, 0, 0, 0, -350))
    a = mouse.read(None).action
    np.testing.assert_allclose(a, [0.02, 0, 0, 0, 0, 0.15, 0], atol=1e-6)
    assert set(dev.read_sizes) == {13}  # pyspacemouse reads the whole 13-byte combined report
    mouse.close()


# -- buttons ---------------------------------------------------------------------------------------

def test_gripper_toggles_on_press_edges_only(compact):
    mouse = connected()
    assert mouse.read(None).action[6] == 0.0
    compact.push(buttons(0b01))
    assert mouse.read(None).action[6] == 1.0
    compact.push(trans(0, 0, 0), buttons(0b01))  # still held: no new edge
    assert mouse.read(None).action[6] == 1.0
    assert mouse.read(None).action[6] == 1.0
    compact.push(buttons(0b00))  # release keeps the target
    assert mouse.read(None).action[6] == 1.0
    compact.push(buttons(0b01), buttons(0b00))  # a click shorter than a tick still counts
    assert mouse.read(None).action[6] == 0.0
    mouse.close()


def test_end_button_raises_end_once(compact):
    mouse = connected()
    compact.push(buttons(0b10))
    first = mouse.read(None)
    assert first.events == frozenset({END}) and first.action[6] == 0.0
    compact.push(buttons(0b10))
    assert mouse.read(None).events == frozenset()  # held
    assert mouse.read(None).events == frozenset()  # nothing new
    compact.push(buttons(0b00), buttons(0b10))
    assert END in mouse.read(None).events
    mouse.close()


def test_button_options(compact):
    mouse = connected(gripper_button=1, end_button=None)
    compact.push(buttons(0b10))
    c = mouse.read(None)
    assert c.action[6] == 1.0 and not c.events
    mouse.close()
    with pytest.raises(DemoforgeError, match="end_button"):
        connected(end_button=5)
    assert not compact.is_open


# -- draining --------------------------------------------------------------------------------------

def test_read_drains_to_latest_report(compact):
    mouse = connected(deadzone=0.0)
    compact.push(*[trans(35 * k, 0, 0) for k in range(1, 11)])  # 10 reports queued since the last tick
    a = mouse.read(None).action
    assert a[0] == pytest.approx(0.02)  # the newest (350 counts), not the oldest (35)
    assert mouse.last_drained == 10 and not compact.queue
    compact.push(trans(0, 0, 0), *[trans(350, 0, 0)] * 5, trans(0, 0, 0))  # released within the tick
    assert mouse.read(None).action[0] == 0.0
    assert mouse.last_drained == 7
    mouse.close()


def test_connect_discards_backlog(compact):
    compact.push(trans(350, 0, 0), buttons(0b10))
    mouse = connected()
    c = mouse.read(None)
    assert mouse.last_drained == 0
    # The pre-connect deflection is the current state (it was the newest report) but not a press edge.
    assert END not in c.events
    mouse.close()


def test_stale_state_counts_as_rest(compact):
    mouse = connected(deadzone=0.0, stale_after=0.05)
    compact.push(trans(350, 0, 0))
    assert mouse.read(None).action[0] == pytest.approx(0.02)
    assert mouse.read(None).action[0] == pytest.approx(0.02)  # still fresh: held deflection
    time.sleep(0.08)
    assert mouse.read(None).action[0] == 0.0
    mouse.close()


# -- connection and errors -------------------------------------------------------------------------

def test_open_sets_nonblocking_and_close_is_idempotent(compact, capsys):
    mouse = make_device("spacemouse", deadzone=0.1)
    assert isinstance(mouse, SpaceMouse) and mouse.config.deadzone == 0.1
    mouse.connect()
    assert compact.is_open and compact.nonblocking is True
    assert capsys.readouterr().out == ""  # pyspacemouse's "found" print is kept off our stdout
    mouse.close()
    mouse.close()
    assert not compact.is_open
    with pytest.raises(DemoforgeError, match="before connect"):
        mouse.read(None)


def test_open_by_path(hid, tmp_path):
    node = tmp_path / "hidraw7"
    node.touch()
    hid.append(FakeHID(COMPACT, path="/dev/hidraw-other"))
    target = FakeHID(COMPACT, path=str(node))
    hid.append(target)
    mouse = connected(device_path=str(node), deadzone=0.0)
    target.push(trans(0, 0, -350))
    assert mouse.read(None).action[2] == pytest.approx(0.02)
    mouse.close()
    with pytest.raises(DemoforgeError, match="device_path") as err:
        connected(device_path=str(tmp_path / "missing"))
    assert "\n" not in str(err.value)


def test_no_device_found(hid):
    with pytest.raises(DemoforgeError, match="no SpaceMouse found"):
        connected()
    with pytest.raises(DemoforgeError, match="no SpaceMouse found"):
        connected(device="SpaceMouseCompact")
    with pytest.raises(DemoforgeError, match="Unknown device"):
        connected(device="NoSuchPuck")


def test_permission_denied_prints_udev_rule(hid):
    hid.append(FakeHID(COMPACT, fail_open=True))
    with pytest.raises(DemoforgeError) as err:
        connected()
    message = str(err.value)
    assert "\n" not in message
    assert 'KERNEL=="hidraw*", ATTRS{idVendor}=="256f", MODE="0666"' in message
    assert 'ATTRS{idVendor}=="046d"' in message and "udevadm" in message


def test_hidapi_missing_names_the_package(monkeypatch):
    class NoHidapi:  # what easyhid does when it fell back to dlopen(None)
        def __init__(self, *args, **kwargs):
            raise AttributeError("function/symbol 'hid_enumerate' not found in library '<None>'")

    monkeypatch.setattr(pyspacemouse.api, "Enumeration", NoHidapi)
    for options in ({}, {"device": "SpaceMouseCompact"}):
        with pytest.raises(DemoforgeError, match="apt-get install libhidapi-hidraw0"):
            connected(**options)


@pytest.mark.skipif(ctypes.util.find_library("hidapi-hidraw") is not None, reason="libhidapi is installed here")
def test_hidapi_missing_on_this_machine():
    with pytest.raises(DemoforgeError, match="libhidapi-hidraw0"):
        connected()


def test_config_errors():
    with pytest.raises(DemoforgeError, match="axis_scale"):
        SpaceMouseConfig(axis_scale=(1, 1, 1))
    with pytest.raises(DemoforgeError, match="invert"):
        SpaceMouseConfig(invert=("w",))
    with pytest.raises(DemoforgeError, match="mode"):
        SpaceMouseConfig(mode="both")  # type: ignore[arg-type]
    with pytest.raises(DemoforgeError, match="axis_convention"):
        SpaceMouseConfig(axis_convention="legacy")
    with pytest.raises(DemoforgeError, match="unknown option 'speed'"):
        make_device("spacemouse", speed=3)
