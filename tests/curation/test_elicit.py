"""Live elicitation end to end: a base set recorded through the real recorder, then a recording session
on the MuJoCo tabletop whose ``after_episode`` hook is the ``Elicitor``, printing into a real rich console."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from rich.console import Console

from curation.compatibility import CompatibilityParams
from curation.elicit import Elicitor
from teleop.recorder import RecorderConfig
from teleop.session import record_session
from teleop.sim.scripted import STYLES, ScriptedOperator
from teleop.sim.tabletop import TabletopConfig, TabletopEnv
from toolkit.errors import DemoforgeError

BASE = 'operator == "careful"'
_CACHE: dict[str, object] = {}


@pytest.fixture
def base_store(sim_store, block, tmp_path_factory):
    """A store holding 20 careful (top-approach) episodes on seeds 0-19, and the elicitor fitted on them."""
    if "store" not in _CACHE:
        store = sim_store(tmp_path_factory.mktemp("elicit") / "store.zarr", [block("careful", count=20, seed=0)])
        _CACHE["store"] = store
        _CACHE["elicitor"] = Elicitor.from_store(store, BASE)
    return _CACHE["store"], _CACHE["elicitor"]


def session(store, elicitor: Elicitor, style: str, operator: str) -> tuple[str, list]:
    """Record two episodes of ``style`` on held-out seeds with the elicitor as the hook; the console text."""
    env = TabletopEnv(TabletopConfig(cameras=(), pointcloud_cameras=()))
    try:
        device = ScriptedOperator(env, replace(STYLES[style], seed=7), max_steps=250)
        config = RecorderConfig(fps=env.spec.fps, max_steps=255, operator=operator, realtime=False)
        console = Console(record=True, width=200, force_terminal=False)
        before = len(elicitor.history)
        result = record_session(env, device, store, config, episodes=2, seed=300, console=console,
                                after_episode=elicitor)
    finally:
        env.close()
    assert result.kept == 2
    return console.export_text(), elicitor.history[before:]


def test_side_operator_is_told_it_is_incompatible_and_where(base_store):
    store, elicitor = base_store
    text, feedback = session(store, elicitor, "side", "side_live")
    print(text)
    assert len(feedback) == 2
    for fb in feedback:
        assert fb.compatible is False and fb.score < 0.9 and fb.bad_steps > fb.max_bad
        assert 1 <= len(fb.windows) <= 3
    scores = [float(s) for s in re.findall(r"\): (\d\.\d\d)  INCOMPATIBLE", text)]
    assert scores == [round(fb.score, 2) for fb in feedback]  # the low score is printed, with the verdict
    assert text.count("INCOMPATIBLE") == 2
    assert re.search(r"\d+ bad steps \(at most \d+ for \d+ steps\)", text)
    windows = re.findall(r"frames (\d+)-(\d+) \((\d+\.\d)-(\d+\.\d) s\): actions differ from the base policy "
                         r"in a familiar state: (.+)", text)
    assert len(windows) >= 2
    for start, stop, t0, t1, what in windows:
        assert float(t0) == pytest.approx(int(start) / 10) and float(t1) == pytest.approx(int(stop) / 10)
        assert "base policy" in what
    assert text.count("hint: mimic the base style:") == 2
    assert "watch base episode" in text


def test_careful_operator_is_told_it_is_compatible(base_store):
    store, elicitor = base_store
    text, feedback = session(store, elicitor, "careful", "careful_live")
    print(text)
    assert all(fb.compatible for fb in feedback)
    assert text.count("  compatible  ") == 2 and "INCOMPATIBLE" not in text and "hint:" not in text
    side = [fb.score for fb in elicitor.history if not fb.compatible]
    assert min(fb.score for fb in feedback) > max(side, default=0.0)


def test_too_small_a_base_set_is_one_line_naming_the_filter(base_store):
    store, _ = base_store
    with pytest.raises(DemoforgeError) as error:
        Elicitor.from_store(store, 'operator == "nobody"')
    message = str(error.value)
    assert "operator == \"nobody\"" in message and "selects 0 episode(s)" in message and "\n" not in message
    with pytest.raises(DemoforgeError, match="at least 30"):
        Elicitor.from_store(store, BASE, CompatibilityParams(min_base=30))
