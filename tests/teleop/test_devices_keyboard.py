"""Keyboard device tests through a real pseudo-terminal: key bytes go in on the master side."""

from __future__ import annotations

import os
import select
import termios
import time

import numpy as np
import pytest

from teleop.device import DISCARD, END, FAILURE, QUIT, RERECORD, START, SUCCESS, make_device
from teleop.devices.keyboard import Keyboard
from toolkit.errors import DemoforgeError


@pytest.fixture
def term():
    master, slave = os.openpty()
    original = termios.tcgetattr(slave)
    kb = Keyboard(fd=slave, show_help=False)
    kb.connect()
    yield kb, master, slave, original
    kb.close()
    os.close(master)
    os.close(slave)


def typed(kb: Keyboard, master: int, slave: int, keys: bytes):
    """Type ``keys`` and read one tick once the terminal has delivered them."""
    os.write(master, keys)
    assert select.select([slave], [], [], 2.0)[0], "the pty never delivered the keys"
    time.sleep(0.01)
    return kb.read(None)


@pytest.mark.parametrize(
    ("key", "index", "value"),
    [(b"w", 0, 0.01), (b"s", 0, -0.01), (b"a", 1, 0.01), (b"d", 1, -0.01), (b"r", 2, 0.01), (b"f", 2, -0.01),
     (b"q", 5, 0.05), (b"e", 5, -0.05), (b"W", 0, 0.01),
     (b"\x1b[A", 0, 0.01), (b"\x1b[B", 0, -0.01), (b"\x1b[D", 1, 0.01), (b"\x1b[C", 1, -0.01)],
)
def test_motion_keys(term, key, index, value):
    kb, master, slave, _ = term
    command = typed(kb, master, slave, key)
    expected = np.zeros(7, np.float32)
    expected[index] = value
    np.testing.assert_allclose(command.action, expected, atol=1e-7)
    assert command.events == frozenset()
    idle = kb.read(None)  # nothing typed since: no motion
    assert not idle.action.any() and not idle.events


def test_presses_in_one_tick_add_up_and_clip(term):
    kb, master, slave, _ = term
    assert typed(kb, master, slave, b"wa").action[:2].tolist() == pytest.approx([0.01, 0.01])
    assert typed(kb, master, slave, b"wwwww").action[0] == pytest.approx(0.02)  # max_translation
    assert typed(kb, master, slave, b"ws").action[0] == 0.0
    assert typed(kb, master, slave, b"qqqqqqqq").action[5] == pytest.approx(0.15)  # max_rotation


def test_gripper_toggle_holds(term):
    kb, master, slave, _ = term
    assert typed(kb, master, slave, b" ").action[6] == 1.0
    assert kb.read(None).action[6] == 1.0
    assert typed(kb, master, slave, b"w").action[6] == 1.0
    assert typed(kb, master, slave, b" ").action[6] == 0.0


@pytest.mark.parametrize(
    ("key", "events"),
    [(b"\r", {END, SUCCESS}), (b"\n", {END, SUCCESS}), (b"\x7f", {DISCARD}), (b"\x08", {DISCARD}),
     (b"x", {DISCARD}), (b"n", {START}), (b"\x1b", {QUIT}), (b"\x03", {QUIT}), (b"z", {END, FAILURE}),
     (b"u", {RERECORD})],
)
def test_event_keys(term, key, events):
    kb, master, slave, _ = term
    command = typed(kb, master, slave, key)
    assert command.events == frozenset(events)
    assert not command.action[:6].any()


def test_raw_mode_and_restore(term):
    kb, master, slave, original = term
    mode = termios.tcgetattr(slave)
    assert not mode[3] & (termios.ICANON | termios.ECHO | termios.ISIG)
    typed(kb, master, slave, b"w")
    assert not select.select([master], [], [], 0.05)[0]  # no echo back to the terminal
    kb.close()
    assert termios.tcgetattr(slave) == original
    kb.close()  # twice is fine
    with pytest.raises(DemoforgeError, match="before connect"):
        kb.read(None)


def test_registered_and_refuses_non_terminal():
    read_end, write_end = os.pipe()
    try:
        kb = make_device("keyboard", fd=read_end, show_help=False)
        assert isinstance(kb, Keyboard)
        with pytest.raises(DemoforgeError, match="not a terminal"):
            kb.connect()
    finally:
        os.close(read_end)
        os.close(write_end)
