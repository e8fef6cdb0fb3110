"""The built-in input devices; importing this package registers them by name.

``spacemouse`` (pyspacemouse, imported only on connect), ``keyboard`` (terminal, works over SSH),
``replay`` (the actions of a stored episode). Build one with ``teleop.device.make_device(name, **options)``.
"""

from teleop.devices.keyboard import Keyboard, KeyboardConfig
from teleop.devices.replay import Replay, ReplayConfig
from teleop.devices.spacemouse import SpaceMouse, SpaceMouseConfig

__all__ = ["Keyboard", "KeyboardConfig", "Replay", "ReplayConfig", "SpaceMouse", "SpaceMouseConfig"]
