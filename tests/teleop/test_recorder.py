"""The recorder's loop, lifecycle, timing statistics and crash safety, on a real store.

The operator is a scripted event sequence (a physical operator cannot exist in a test); the
environment is the synthetic camera source, so the tests measure the recorder itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from teleop.device import DISCARD, END, FAILURE, QUIT, RERECORD, START, SUCCESS, Command
from teleop.recorder import WALL_TIME, Recorder, RecorderConfig, recording_spec
from teleop.synthetic import SyntheticEnv
from toolkit.store import Store


class EventScript:
    """Moves +x every tick and raises the given events at the given ticks; can stall on one tick."""

    name = "script"

    def __init__(self, events: dict[int, set[str]], stall: dict[int, float] | None = None) -> None:
        self.events, self.stall, self.tick = events, stall or {}, 0

    def connect(self) -> None:
        pass

    def read(self, observation):
        self.tick += 1
        time.sleep(self.stall.get(self.tick, 0.0))
        action = np.zeros(7, np.float32)
        action[0] = 0.01
        return Command(action, frozenset(self.events.get(self.tick, set())))

    def close(self) -> None:
        pass


def _recorder(tmp_path: Path, device, **config) -> Recorder:
    env = SyntheticEnv(cameras=2, height=48, width=64)
    store = Store.create(tmp_path / "rec.zarr", recording_spec(env.spec, config.get("fps", 50)))
    return Recorder(env, device, store, RecorderConfig(**{"fps": 50, "operator": "tester", **config}))


def test_episode_lifecycle_keep_discard_rerecord_quit(tmp_path):
    script = EventScript({5: {END, SUCCESS}, 9: {DISCARD}, 12: {RERECORD}, 20: {FAILURE}, 22: {QUIT}})
    rec = _recorder(tmp_path, script)
    kept = rec.record_episode(seed=1)
    assert kept.kept and kept.frames == 5 and kept.success is True
    assert not rec.record_episode(seed=2).kept  # discarded at tick 9
    assert not rec.record_episode(seed=3).kept  # re-record at tick 12
    last = rec.record_episode(seed=4)
    assert last.quit and last.kept and last.success is False and last.frames == 10
    ids = rec.close()
    store = Store.open(tmp_path / "rec.zarr")
    assert store.ids() == ids and len(ids) == 2
    first = store.read(ids[0])
    assert first.meta.operator == "tester" and first.meta.factors == {"seed": 1} and first.meta.success is True
    np.testing.assert_allclose(first.data["action"][:, 0], 0.01)
    # the observation of frame t is the state before frame t's action: x grows by 0.01 per frame
    np.testing.assert_allclose(first.data["observation.state"][:, 0], 0.01 * np.arange(5), atol=1e-6)
    assert np.all(np.diff(first.data[WALL_TIME][:, 0]) > 0)
    assert first.meta.timing["target_hz"] == 50 and first.meta.timing["overruns"] == 0


def test_waits_for_start_and_stops_at_max_steps(tmp_path):
    rec = _recorder(tmp_path, EventScript({4: {START}}), wait_for_start=True, max_steps=7)
    result = rec.record_episode()
    assert result.kept and result.frames == 7
    rec.close()


def test_overruns_and_dropped_frames_are_measured(tmp_path):
    period = 1 / 50
    rec = _recorder(tmp_path, EventScript({12: {END}}, stall={4: 3.5 * period}))
    result = rec.record_episode()
    assert result.timing["overruns"] >= 1
    assert result.timing["dropped_frames"] >= 2  # 3.5 periods late swallows at least 2 whole ticks
    assert result.timing["jitter_max_s"] >= 2 * period
    ids = rec.close()
    assert Store.open(tmp_path / "rec.zarr").ids() == ids


RECORD_FOREVER = textwrap.dedent(
    """
    import sys, numpy as np
    from teleop.device import Command, END
    from teleop.recorder import Recorder, RecorderConfig, recording_spec
    from teleop.synthetic import SyntheticEnv
    from toolkit.store import Store

    class Steady:
        name = "steady"
        def __init__(self): self.t = 0
        def connect(self): pass
        def close(self): pass
        def read(self, obs):
            self.t += 1
            return Command(np.full(7, 0.001, np.float32), frozenset({END}) if self.t % 12 == 0 else frozenset())

    env = SyntheticEnv(cameras=2, height=48, width=64)
    store = Store.open(sys.argv[1], mode="a")
    rec = Recorder(env, Steady(), store, RecorderConfig(fps=100))
    print("ready", flush=True)
    try:
        while True:
            rec.record_episode()
    except KeyboardInterrupt:
        print("committed", len(rec.close()), flush=True)
    """
)


def _wait_for_a_commit(root: Path, before: int, timeout: float = 30.0) -> None:
    """Block until the recorder has committed a new episode, so the interrupt lands mid-session."""
    deadline = time.monotonic() + timeout
    while sum(1 for p in (root / "episodes").iterdir() if p.is_dir()) <= before:
        assert time.monotonic() < deadline, "the recorder committed nothing"
        time.sleep(0.02)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_kill_or_ctrl_c_mid_recording_keeps_every_committed_episode(tmp_path, sig):
    env = SyntheticEnv(cameras=2, height=48, width=64)
    root = tmp_path / "rec.zarr"
    Store.create(root, recording_spec(env.spec, 100)).close()
    for delay in (0.05, 0.4):
        proc = subprocess.Popen([sys.executable, "-c", RECORD_FOREVER, str(root)], stdout=subprocess.PIPE, text=True,
                                cwd=Path(__file__).resolve().parents[2])
        assert proc.stdout.readline().strip() == "ready"
        _wait_for_a_commit(root, before=len(Store.open(root)))
        time.sleep(delay)  # then interrupt at some point of a later episode
        os.kill(proc.pid, sig)
        out = proc.stdout.read()
        proc.wait(timeout=60)
        store = Store.open(root, mode="a")
        assert len(store) > 0
        for episode_id in store.ids():
            assert store.entry(episode_id)["length"] == 12  # never a partial episode
        if sig == signal.SIGINT:
            assert out.startswith("committed")
        store.close()
