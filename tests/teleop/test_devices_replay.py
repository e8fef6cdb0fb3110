"""Replay device tests against a real zarr store filled with the toolkit's sample episodes."""

from __future__ import annotations

import numpy as np
import pytest

from teleop.device import END, QUIT, START, make_device
from teleop.devices.replay import Replay
from toolkit.errors import DemoforgeError
from toolkit.sample import sample_episode, sample_spec
from toolkit.store import Store


@pytest.fixture
def store_with_episode(tmp_path):
    spec = sample_spec(cameras=0)
    episode = sample_episode(spec, 1, seed=3, length=12)
    with Store.create(tmp_path / "store", spec) as store:
        episode_id = store.append(episode)
    return tmp_path / "store", episode_id, episode.data["action"]


def test_replays_actions_with_start_and_end(store_with_episode):
    path, episode_id, actions = store_with_episode
    device = Replay(path, episode_id)
    device.connect()
    commands = [device.read(None) for _ in range(len(actions))]
    np.testing.assert_array_equal(np.stack([c.action for c in commands]), actions)
    assert all(c.action.dtype == np.float32 for c in commands)
    assert commands[0].events == frozenset({START})
    assert commands[-1].events == frozenset({END})
    assert all(not c.events for c in commands[1:-1])
    assert device.remaining == 0
    after = device.read(None)
    assert after.events == frozenset({QUIT})
    assert not after.action[:6].any() and after.action[6] == actions[-1, 6]
    device.close()


def test_registered_by_name(store_with_episode):
    path, episode_id, actions = store_with_episode
    device = make_device("replay", store_path=str(path), episode_id=episode_id)
    device.connect()
    np.testing.assert_array_equal(device.read(None).action, actions[0])


def test_errors_are_one_line(store_with_episode, tmp_path):
    path, episode_id, _ = store_with_episode
    for device, match in [
        (Replay(path, "no-such-episode"), "no-such-episode"),
        (Replay(tmp_path / "nowhere", episode_id), "no such store"),
        (Replay(path, episode_id, feature="observation.images.front"), "no feature"),
        (Replay(path, episode_id, feature="next.reward"), "expected \\(7,\\)"),
        (Replay(), "needs store_path"),
    ]:
        with pytest.raises(DemoforgeError, match=match) as err:
            device.connect()
        assert "\n" not in str(err.value)
    with pytest.raises(DemoforgeError, match="before connect"):
        Replay(path, episode_id).read(None)
