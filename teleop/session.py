"""A recording session: several episodes through one recorder, with a live status line and a clean
stop on Ctrl-C (the episode in hand is dropped; every committed one stays)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.text import Text

from teleop.device import Device
from teleop.env import Environment
from teleop.recorder import Recorder, RecorderConfig
from toolkit.episode import Episode
from toolkit.store import Store


@dataclass
class SessionResult:
    ids: list[str]
    kept: int
    discarded: int
    interrupted: bool


def _status(state: dict[str, Any]) -> Text:
    rate = state["frames"] / state["elapsed"] if state["elapsed"] > 0 else 0.0
    return Text(
        f"episode {state['episode']}  kept {state['kept']}  frames {state['frames']}  "
        f"{rate:5.1f} Hz  {state['elapsed']:6.1f} s  overruns {state['overruns']}"
    )


def record_session(env: Environment, device: Device, store: Store, config: RecorderConfig, episodes: int,
                   seed: int = 0, console: Console | None = None,
                   after_episode: Callable[[Episode, Console], None] | None = None) -> SessionResult:
    """Record up to ``episodes`` kept episodes (seeds ``seed``, ``seed+1``, ...) or until QUIT / Ctrl-C.

    ``after_episode(episode, console)`` runs after each kept episode, before the next one starts (live
    feedback to the operator, e.g. its compatibility with a base set).
    """
    console = console or Console(stderr=True)
    state = {"episode": 0, "kept": 0, "frames": 0, "elapsed": 0.0, "overruns": 0}
    live = Live(_status(state), console=console, refresh_per_second=4, transient=True) if sys.stderr.isatty() else None

    def on_tick(tick: dict[str, Any]) -> None:
        state.update(frames=tick["frames"], elapsed=tick["elapsed"], overruns=tick["overruns"])
        if live:
            live.update(_status(state))

    device.connect()
    recorder = Recorder(env, device, store, config, on_tick=on_tick)
    kept = discarded = attempt = 0
    interrupted = False
    started = time.perf_counter()
    try:
        if live:
            live.start()
        while kept < episodes:
            state["episode"] = attempt
            result = recorder.record_episode(seed + attempt)
            attempt += 1
            kept += result.kept
            discarded += not result.kept
            state["kept"] = kept
            outcome = "kept" if result.kept else "discarded"
            success = {True: "success", False: "failure", None: "unlabelled"}[result.success]
            console.print(f"episode {attempt - 1}: {outcome}, {result.frames} frames, {success}, "
                          f"{result.timing['period_mean_s'] and 1 / result.timing['period_mean_s']:.1f} Hz, "
                          f"overruns {result.timing['overruns']}")
            if after_episode and result.episode is not None:
                if live:
                    live.stop()
                after_episode(result.episode, console)
                if live:
                    live.start()
            if result.quit:
                break
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if live:
            live.stop()
        device.close()
        ids = recorder.close()
    console.print(f"recorded {len(ids)} episodes into {store.root} in {time.perf_counter() - started:.1f} s"
                  + (" (interrupted: the episode in progress was dropped)" if interrupted else ""))
    return SessionResult(ids=ids, kept=kept, discarded=discarded, interrupted=interrupted)
