"""``demoforge record``: build the environment, the device and the store from flags, then record."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from teleop.device import Device, make_device
from teleop.env import Environment
from teleop.envs import make_env
from teleop.recorder import RecorderConfig, recording_spec
from teleop.session import SessionResult, record_session
from toolkit.episode import Episode
from toolkit.errors import DemoforgeError
from toolkit.store import Store

Feedback = Callable[[Episode, Console], None]


def build_device(name: str, env: Environment, style: str, seed: int, replay_store: Path | None,
                 replay_episode: str | None) -> Device:
    """The device called ``name``; the scripted operator drives ``env`` in the given style."""
    import teleop.devices  # noqa: F401  (registers spacemouse, keyboard, replay)

    if name == "scripted":
        from teleop.sim.scripted import scripted_operator

        return scripted_operator(env, style, seed)  # type: ignore[arg-type]
    if name == "replay":
        if replay_store is None or replay_episode is None:
            raise DemoforgeError("--device replay: give --replay-store and --replay-episode")
        return make_device("replay", store_path=replay_store, episode_id=replay_episode)
    return make_device(name)


def record_command(out: Path, env_name: str, task: str, device_name: str, episodes: int, operator: str | None,
                   style: str, fps: float, max_steps: int, seed: int, height: int, width: int,
                   replay_store: Path | None, replay_episode: str | None, console: Console,
                   realtime: bool = True, feedback: Callable[[Store], Feedback] | None = None) -> SessionResult:
    """Record from flags. ``feedback(store)`` builds the hook shown to the operator after each episode
    (e.g. compatibility with a base set), once the store is open."""
    env = make_env(env_name, task=task, height=height, width=width)
    try:
        device = build_device(device_name, env, style, seed, replay_store, replay_episode)
        store = Store.create(out, recording_spec(env.spec, fps), exist_ok=True)
        operator = operator or (f"scripted:{style}" if device_name == "scripted" else device_name)
        episodes = 1 if device_name == "replay" else episodes  # a replay plays its one episode
        # The keyboard starts an episode with 'n'; the SpaceMouse has no start button and records at once.
        config = RecorderConfig(fps=fps, max_steps=max_steps, operator=operator,
                                wait_for_start=device_name == "keyboard", realtime=realtime)
        after = feedback(store) if feedback else None
        return record_session(env, device, store, config, episodes, seed, console, after_episode=after)
    finally:
        env.close()
