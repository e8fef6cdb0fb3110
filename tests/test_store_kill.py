"""SIGKILL a writer at many random moments; the store must open with exactly the committed episodes.

The writer appends deterministic sample episodes (tagged with their index) and prints each index
after ``append`` returns. An episode is committed at its rename, a moment before the print, so the
store holds every printed episode and at most one more, each complete and equal to what was written.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from toolkit.checks import validate_store
from toolkit.sample import sample_episode, sample_spec
from toolkit.store import Store

SPEC = sample_spec(cameras=2, height=48, width=64, depth=True)

WRITER = textwrap.dedent(
    """
    import sys
    from toolkit.sample import sample_episode, sample_spec
    from toolkit.store import Store
    spec = sample_spec(cameras=2, height=48, width=64, depth=True)
    store = Store.open(sys.argv[1], mode="a")
    start = int(sys.argv[2])
    print("ready", flush=True)
    for i in range(start, start + 10_000):
        episode = sample_episode(spec, i)
        episode.meta.extra = {"index": i}
        store.append(episode)
        print(i, flush=True)
    """
)

EDITOR = textwrap.dedent(
    """
    import sys
    from toolkit.store import Store
    store = Store.open(sys.argv[1], mode="a")
    print("ready", flush=True)
    while True:
        for episode_id in store.ids():
            length = store.entry(episode_id)["length"]
            if length > 4:
                store.trim(episode_id, 1, length - 1)
                print("trim", episode_id, flush=True)
    """
)


def _run_and_kill(script: str, args: list[str], delay: float) -> list[str]:
    proc = subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[1])
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(delay)
    os.kill(proc.pid, signal.SIGKILL)
    lines = proc.stdout.read().split()
    proc.wait()
    return lines


def _check_episode(store: Store, episode_id: str) -> int:
    back = store.read(episode_id)
    index = back.meta.extra["index"]
    original = sample_episode(SPEC, index)
    np.testing.assert_array_equal(back.data["observation.state"], original.data["observation.state"])
    np.testing.assert_array_equal(back.data["observation.depth.front"], original.data["observation.depth.front"])
    assert back.data["observation.images.front"].shape == original.data["observation.images.front"].shape
    return index


@pytest.mark.slow
def test_sigkill_while_appending_keeps_exactly_the_committed_episodes(tmp_path):
    root = tmp_path / "s.zarr"
    Store.create(root, SPEC).close()
    rng = random.Random(1234)
    printed: list[int] = []
    next_index = 0
    for _ in range(16):
        lines = _run_and_kill(WRITER, [str(root), str(next_index)], rng.uniform(0.0, 0.6))
        printed += [int(x) for x in lines]
        store = Store.open(root, mode="a")  # opens, cleans the dead writer's staging, catalog in step
        indices = sorted(_check_episode(store, i) for i in store.ids())
        assert set(printed) <= set(indices), "a committed episode was lost"
        unprinted = set(indices) - set(printed)
        assert len(unprinted) <= 1, f"more than the one in-flight episode appeared: {unprinted}"
        printed = indices
        next_index = max(indices, default=-1) + 1
        staging = root / ".staging"
        assert not staging.exists() or not any(staging.iterdir()), "the dead writer's staging was not cleaned"
        store.close()
    assert len(printed) > 5, "the writer never got far enough for the test to mean anything"
    assert validate_store(root, deep=True).startswith(f"{root}: {len(printed)} episodes")


@pytest.mark.slow
def test_sigkill_while_trimming_leaves_old_or_new_episode(tmp_path):
    root = tmp_path / "s.zarr"
    store = Store.create(root, SPEC)
    for i in range(6):
        episode = sample_episode(SPEC, i, length=60)
        episode.meta.extra = {"index": i}
        store.append(episode)
    store.close()
    rng = random.Random(99)
    for _ in range(6):
        _run_and_kill(EDITOR, [str(root)], rng.uniform(0.05, 0.5))
        store = Store.open(root, mode="a")
        assert len(store) == 6
        for episode_id in store.ids():
            back = store.read(episode_id)
            length = back.length
            cut = (60 - length) // 2  # each trim removes one frame at each end
            original = sample_episode(SPEC, back.meta.extra["index"], length=60)
            np.testing.assert_array_equal(back.data["observation.state"],
                                          original.data["observation.state"][cut:60 - cut])
            assert store.catalog.rows([episode_id])[0]["length"] == length
        store.close()
