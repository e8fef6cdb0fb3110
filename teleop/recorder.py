"""The recorder: a fixed-rate control loop that turns device commands and environment observations
into episodes, and a background writer that commits them to a store.

Each tick: read the device (it sees the latest observation), record the observation with that
command's action as one frame (LeRobot's convention: observation and the action taken from it share a
frame), step the environment, then sleep to the next tick of a fixed schedule. A tick that ends after
the next one was due is an *overrun*; whole periods it swallowed are *dropped frames* (the schedule
skips them rather than drifting). Wall time per frame is kept as ``observation.wall_time`` (seconds
since the episode started) and the jitter statistics go into the episode's ``timing`` metadata.

Frames stay in memory until the episode ends; the finished episode goes through a bounded queue to a
writer thread, so the loop never waits on disk. If the queue is full the loop waits, and that
back-pressure is reported. Ctrl-C or a crash loses at most the episode being recorded: every earlier
one is committed atomically by the store.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from teleop.device import DISCARD, END, FAILURE, QUIT, RERECORD, START, SUCCESS, Command, Device
from teleop.env import Environment
from toolkit.episode import Episode, EpisodeMeta
from toolkit.spec import DatasetSpec, Feature
from toolkit.store import Store

WALL_TIME = "observation.wall_time"


def recording_spec(env_spec: DatasetSpec, fps: float) -> DatasetSpec:
    """The store spec for recording an environment at ``fps``: its features plus per-frame wall time."""
    features = dict(env_spec.features)
    features[WALL_TIME] = Feature("float32", (1,), "scalar", description="seconds since the episode started")
    return DatasetSpec(fps=fps, features=features, robot_type=env_spec.robot_type, cameras=env_spec.cameras)


@dataclass
class RecorderConfig:
    """``fps``: control rate; ``max_steps``: an episode ends after this many frames; ``operator``: who
    records; ``wait_for_start``: when False an episode starts at once (no START event needed);
    ``realtime``: pace the loop at ``fps`` (off for simulated scripted recording, where nothing waits)."""

    fps: float = 10.0
    max_steps: int = 300
    operator: str | None = None
    task: str | None = None
    queue_size: int = 2
    wait_for_start: bool = False
    realtime: bool = True  # False: no pacing (a simulator with a scripted operator runs as fast as it can)
    extra_factors: dict[str, Any] = field(default_factory=dict)


def timing_stats(stamps: np.ndarray, period: float, overruns: int, dropped: int, backpressure: float) -> dict[str, Any]:
    """Jitter of the tick times against the ideal schedule, in the episode metadata's ``timing`` form."""
    periods = np.diff(stamps) if len(stamps) > 1 else np.array([period])
    jitter = np.abs(periods - period)
    return {
        "target_hz": 1.0 / period,
        "period_mean_s": float(periods.mean()),
        "period_std_s": float(periods.std()),
        "jitter_p95_s": float(np.percentile(jitter, 95)),
        "jitter_max_s": float(jitter.max()),
        "overruns": int(overruns),
        "dropped_frames": int(dropped),
        "writer_backpressure_s": float(backpressure),
    }


class EpisodeWriter:
    """A thread that appends finished episodes to a store, fed through a bounded queue."""

    def __init__(self, store: Store, maxsize: int = 2) -> None:
        self.store = store
        self.ids: list[str] = []
        self.error: BaseException | None = None
        self._queue: queue.Queue[Episode | None] = queue.Queue(maxsize=maxsize)
        self._thread = threading.Thread(target=self._run, name="demoforge-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (episode := self._queue.get()) is not None:
            try:
                self.ids.append(self.store.append(episode))
            except BaseException as e:  # surfaced to the recording thread on the next submit/close
                self.error = e

    def submit(self, episode: Episode) -> float:
        """Queue an episode; returns the seconds spent waiting for room (back-pressure)."""
        if self.error:
            raise self.error
        t0 = time.perf_counter()
        self._queue.put(episode)
        return time.perf_counter() - t0

    def close(self) -> list[str]:
        """Write everything queued, stop the thread; returns the committed ids."""
        self._queue.put(None)
        self._thread.join()
        if self.error:
            raise self.error
        return self.ids


@dataclass
class EpisodeResult:
    """What happened to one recorded episode."""

    kept: bool
    frames: int
    success: bool | None
    timing: dict[str, Any]
    quit: bool = False
    episode: Episode | None = None  # the kept episode as recorded (in memory; the writer commits a copy)


class Recorder:
    """Drive ``env`` with ``device`` at a fixed rate and write kept episodes into ``store``."""

    def __init__(self, env: Environment, device: Device, store: Store, config: RecorderConfig,
                 on_tick: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.env, self.device, self.store, self.config = env, device, store, config
        self.writer = EpisodeWriter(store, config.queue_size)
        self.on_tick = on_tick
        self._backpressure = 0.0

    def record_episode(self, seed: int | None = None) -> EpisodeResult:
        """Record one episode (until END/DISCARD/QUIT, or ``max_steps``) and hand it to the writer."""
        obs = self.env.reset(seed)
        period = 1.0 / self.config.fps
        frames: dict[str, list[np.ndarray]] = {name: [] for name in self.store.spec.features}
        stamps: list[float] = []  # wall time of each recorded frame, seconds since t0
        started = not self.config.wait_for_start
        success: bool | None = None
        outcome: str | None = None
        overruns = dropped = 0
        t0 = time.perf_counter()
        tick = 0
        while outcome is None:
            command = self.device.read(obs)
            events = command.events
            started = started or START in events
            success = True if SUCCESS in events else False if FAILURE in events else success
            if started:
                stamps.append(time.perf_counter() - t0)
                self._add_frame(frames, obs, command, stamps[-1])
            for event in (QUIT, DISCARD, RERECORD, END):
                if event in events:
                    outcome = event
                    break
            if outcome is None and len(stamps) >= self.config.max_steps:
                outcome = END
            if outcome is None:
                obs = self.env.step(command.action)
            tick += 1
            if self.config.realtime:
                # Fixed schedule: sleep to the next due tick; skip the ticks an overrun swallowed.
                late = time.perf_counter() - (t0 + tick * period)
                if late > 0:
                    overruns += 1
                    missed = int(late // period)
                    dropped += missed
                    tick += missed
                else:
                    time.sleep(-late)
            if self.on_tick:
                self.on_tick({"frames": len(stamps), "elapsed": time.perf_counter() - t0, "overruns": overruns})
        timing = timing_stats(np.array(stamps), period, overruns, dropped, self._backpressure)
        # QUIT ends the session but keeps the episode in hand (as LeRobot's Esc); Ctrl-C discards it.
        keep = outcome in (END, QUIT) and len(stamps) > 0
        if success is None and keep:
            success = bool(self.env.success())
        episode = self._episode(frames, success, timing) if keep else None
        if episode is not None:
            # The wait for room in the writer's queue delays the *next* episode's start, so it is
            # reported in that episode's timing.
            self._backpressure = self.writer.submit(episode)
        return EpisodeResult(kept=keep, frames=len(stamps), success=success, timing=timing, quit=outcome == QUIT,
                             episode=episode)

    def _add_frame(self, frames: dict[str, list[np.ndarray]], obs: dict[str, np.ndarray], command: Command,
                   wall: float) -> None:
        for name in frames:
            if name == "action":
                frames[name].append(np.asarray(command.action, np.float32))
            elif name == WALL_TIME:
                frames[name].append(np.array([wall], np.float32))
            else:
                frames[name].append(obs[name])

    def _episode(self, frames: dict[str, list[np.ndarray]], success: bool | None, timing: dict[str, Any]) -> Episode:
        data = {name: np.stack(values) for name, values in frames.items()}
        factors = {**self.env.factors(), **self.config.extra_factors}
        # Calibration can change per episode (camera-pose factors), so each episode keeps its own copy.
        extra = {"cameras": self.env.spec.cameras} if self.env.spec.cameras else {}
        meta = EpisodeMeta(task=self.config.task or self.env.task, operator=self.config.operator, success=success,
                           factors=factors, timing=timing, extra=extra)
        return Episode(data=data, meta=meta)

    def close(self) -> list[str]:
        """Wait for the writer to commit every kept episode; returns their ids."""
        return self.writer.close()
