"""Terminal keyboard teleoperation: works in any terminal, including over SSH without X.

The terminal is put in a raw-ish mode (no line buffering, no echo, no signal keys; output processing
kept so prints still look right) and polled without blocking with ``select``. Terminals send key
presses, not key releases, so each press (or auto-repeat) moves one step; presses that arrive within a
tick add up, clipped to the per-tick maximum. ``close()`` restores the terminal (also at exit).

Keys: w/s +x/-x, a/d +y/-y, r/f +z/-z, q/e +yaw/-yaw (arrow keys: up/down x, left/right y),
space toggles the gripper, n START, Enter END + SUCCESS, z END + FAILURE, Backspace or x DISCARD,
u RERECORD (discard and start again), Esc or Ctrl-C QUIT.
"""

from __future__ import annotations

import atexit
import os
import select
import sys
import termios
from dataclasses import dataclass
from typing import Any

import numpy as np

from teleop.device import DISCARD, END, FAILURE, QUIT, RERECORD, START, SUCCESS, Command, register
from teleop.devices._options import config_from
from toolkit.errors import DemoforgeError

# key byte -> (action index, sign)
MOTION = {
    ord("w"): (0, 1), ord("s"): (0, -1),
    ord("a"): (1, 1), ord("d"): (1, -1),
    ord("r"): (2, 1), ord("f"): (2, -1),
    ord("q"): (5, 1), ord("e"): (5, -1),
}
ARROWS = {ord("A"): (0, 1), ord("B"): (0, -1), ord("D"): (1, 1), ord("C"): (1, -1)}  # ESC [ A..D
EVENTS = {
    ord("n"): frozenset({START}),
    ord("\r"): frozenset({END, SUCCESS}), ord("\n"): frozenset({END, SUCCESS}),
    ord("z"): frozenset({END, FAILURE}), ord("u"): frozenset({RERECORD}),
    0x7F: frozenset({DISCARD}), 0x08: frozenset({DISCARD}), ord("x"): frozenset({DISCARD}),
    0x03: frozenset({QUIT}),  # Ctrl-C arrives as a byte because ISIG is off
}
ESC, SPACE = 0x1B, ord(" ")
HELP = ("keyboard: w/s x  a/d y  r/f z  q/e yaw  space gripper  n start  Enter end+success  "
        "z end+failure  Backspace/x discard  u re-record  Esc/Ctrl-C quit")


@dataclass
class KeyboardConfig:
    translation_step: float = 0.01  # metres per key press
    rotation_step: float = 0.05  # radians per key press
    max_translation: float = 0.02  # metres per tick, however many presses arrived
    max_rotation: float = 0.15  # radians per tick
    fd: int | None = None  # terminal file descriptor; None = stdin (tests pass a pty)
    show_help: bool = True  # print the key map to stderr on connect
    escape_wait: float = 0.01  # seconds to wait for the rest of an escape sequence after a lone Esc


@register("keyboard")
class Keyboard:
    """The terminal keyboard as a demoforge ``Device``."""

    name = "keyboard"

    def __init__(self, config: KeyboardConfig | None = None, **overrides: Any) -> None:
        self.config: KeyboardConfig = config_from(config, overrides, KeyboardConfig, "keyboard")
        self._fd: int | None = None
        self._saved: list[Any] | None = None
        self._gripper = 0.0

    def connect(self) -> None:
        if self._fd is not None:
            return
        fd = self.config.fd if self.config.fd is not None else sys.stdin.fileno()
        if not os.isatty(fd):
            raise DemoforgeError("--device keyboard: stdin is not a terminal; run in a terminal (ssh -t for remote)")
        self._saved = termios.tcgetattr(fd)
        mode = termios.tcgetattr(fd)
        mode[0] &= ~(termios.ICRNL | termios.IXON | termios.INLCR | termios.IGNCR)  # iflag
        mode[3] &= ~(termios.ICANON | termios.ECHO | termios.ISIG | termios.IEXTEN)  # lflag
        mode[6][termios.VMIN] = 0
        mode[6][termios.VTIME] = 0
        termios.tcsetattr(fd, termios.TCSANOW, mode)
        self._fd = fd
        self._gripper = 0.0
        atexit.register(self.close)
        if self.config.show_help:
            print(HELP, file=sys.stderr, flush=True)

    def close(self) -> None:
        fd, saved = self._fd, self._saved
        self._fd = self._saved = None
        if fd is not None and saved is not None:
            atexit.unregister(self.close)
            try:
                # TCSAFLUSH: keys typed during the session must not spill into the shell afterwards.
                termios.tcsetattr(fd, termios.TCSAFLUSH, saved)
            except termios.error:
                pass  # the terminal went away (ssh dropped); nothing left to restore

    def __enter__(self) -> Keyboard:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _pending(self, wait: float = 0.0) -> bytes:
        """Every byte the terminal has for us now (waiting up to ``wait`` for the first)."""
        assert self._fd is not None
        chunks = []
        timeout = wait
        while select.select([self._fd], [], [], timeout)[0]:
            try:
                chunk = os.read(self._fd, 4096)
            except OSError:  # EIO: the terminal hung up
                return b"\x03"
            if not chunk:
                break
            chunks.append(chunk)
            timeout = 0.0
        return b"".join(chunks)

    def read(self, observation: dict[str, np.ndarray] | None = None) -> Command:
        if self._fd is None:
            raise DemoforgeError("keyboard: read() before connect()")
        keys = self._pending()
        if keys.endswith(b"\x1b"):  # a lone Esc, or an arrow key split across reads?
            keys += self._pending(self.config.escape_wait)
        delta = np.zeros(6, np.float64)
        events: set[str] = set()
        i = 0
        while i < len(keys):
            key = keys[i]
            i += 1
            if key == ESC:
                if i < len(keys) and keys[i] in (ord("["), ord("O")):
                    # CSI/SS3 sequence: parameters, then a final byte in 0x40..0x7e
                    j = i + 1
                    while j < len(keys) and not 0x40 <= keys[j] <= 0x7E:
                        j += 1
                    if j < len(keys) and keys[j] in ARROWS:
                        axis, sign = ARROWS[keys[j]]
                        delta[axis] += sign
                    i = j + 1
                else:
                    events.add(QUIT)
                continue
            if ord("A") <= key <= ord("Z"):
                key += 32  # caps lock / shift: same key
            if key in MOTION:
                axis, sign = MOTION[key]
                delta[axis] += sign
            elif key == SPACE:
                self._gripper = 1.0 - self._gripper
            elif key in EVENTS:
                events |= EVENTS[key]
        cfg = self.config
        action = np.zeros(7, np.float32)
        action[:3] = np.clip(delta[:3] * cfg.translation_step, -cfg.max_translation, cfg.max_translation)
        action[3:6] = np.clip(delta[3:] * cfg.rotation_step, -cfg.max_rotation, cfg.max_rotation)
        action[6] = self._gripper
        return Command(action, frozenset(events))
