"""Live elicitation of compatible demonstrations: feedback to the operator after each recorded episode.

The paper's protocol (Gandhi et al. 2022, see ``curation.compatibility``): operators watch base demos,
then record with feedback; after each demonstration they see its compatibility with the base policy, and
when it is rejected, the moments where they went wrong and what the base style does instead.

``Elicitor`` fits the compatibility pass on a base set once and is then usable directly as
``teleop.session.record_session``'s ``after_episode`` hook::

    elicitor = Elicitor.from_store(store, 'operator == "alice"')
    record_session(env, device, store, config, episodes=10, after_episode=elicitor)

Each call prints (rich) the episode's compatibility score M, compatible or not, its bad and good steps,
a strip of the per-step scores ``c_t`` (red: bad steps), the worst windows with frames, seconds and what
differed, and a one-line hint when the episode is incompatible. ``feedback(episode)`` returns the same as
data (``Feedback``); ``history`` keeps every feedback of the session.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rich.console import Console, Group
from rich.text import Text

from curation.compatibility import CompatibilityParams, CompatibilityPass, Window
from toolkit.episode import Episode
from toolkit.errors import DemoforgeError
from toolkit.spec import DatasetSpec
from toolkit.store import Store

FAMILIAR = "actions differ from the base policy in a familiar state"


@dataclass
class Feedback:
    """What the operator is told about one episode."""

    episode: str | None
    score: float | None  # compatibility M in [0, 1]
    compatible: bool | None
    bad_steps: int
    good_steps: int
    max_bad: int
    length: int
    fps: float
    windows: list[Window]
    step_scores: np.ndarray  # c_t = max(0, 1 - L/lambda) per step, NaN where not scored
    bad: np.ndarray  # per-step bad mask
    hint: str | None = None
    reason: str | None = None  # why the episode could not be scored

    def seconds(self, frame: int) -> float:
        return frame / self.fps if self.fps > 0 else 0.0

    def window_lines(self) -> list[str]:
        """One line per worst window: frames, seconds, what was wrong."""
        return [f"frames {w.start}-{w.stop} ({self.seconds(w.start):.1f}-{self.seconds(w.stop):.1f} s): "
                f"{FAMILIAR}: {w.what}" for w in self.windows]


@dataclass
class Elicitor:
    """A fitted compatibility pass plus what is needed to talk to an operator about it."""

    compat: CompatibilityPass
    spec: DatasetSpec
    base_where: str = ""
    base_ids: list[str] = field(default_factory=list)
    history: list[Feedback] = field(default_factory=list)
    warned: bool = False

    @classmethod
    def from_store(cls, store: Store, base_where: str, params: CompatibilityParams | None = None) -> Elicitor:
        """Fit the base policy on the episodes of ``store`` that ``base_where`` selects."""
        compat = CompatibilityPass(params or CompatibilityParams())
        ids = store.ids(base_where)
        need = compat.params.min_base
        if len(ids) < need:
            raise DemoforgeError(f"--compat-base {base_where!r}: selects {len(ids)} episode(s) in {store.root}; "
                                 f"the base policy needs at least {need}")
        episodes = list(store.episodes(ids, compat.features(store.spec)))
        compat.fit(episodes, store.spec)
        return cls(compat, store.spec, base_where, list(ids))

    # -- feedback as data ------------------------------------------------------------------------------
    def feedback(self, episode: Episode) -> Feedback:
        r = self.compat.assess(episode, self.spec)
        fb = Feedback(episode.id, r.score, r.compatible, r.bad_steps, r.good_steps, r.max_bad, r.length,
                      float(self.spec.fps), r.windows, r.step_score, r.bad, reason=r.reason)
        if r.compatible is False and r.windows:
            fb.hint = self._hint(episode, fb)
        return fb

    def _hint(self, episode: Episode, fb: Feedback) -> str:
        """``mimic the base style: at 1.2-3.3 s the base operators would move down where you move +x;
        watch base episode ep_000012``: the worst window's difference and the base demonstration nearest
        to those states."""
        w = fb.windows[0]
        policy = self.compat.policy
        assert policy is not None
        what = w.what.split(";")[0]
        if what.startswith("you ") and ", the base policy would " in what:
            yours, theirs = what[4:].split(", the base policy would ", 1)
            theirs = theirs.split(" (")[0]
            text = (f"at {fb.seconds(w.start):.1f}-{fb.seconds(w.stop):.1f} s the base operators {theirs} "
                    f"where you {yours}")
        else:
            text = f"at {fb.seconds(w.start):.1f}-{fb.seconds(w.stop):.1f} s: {what}"
        s, a = policy.raw(episode, self.spec)
        sz, _ = policy.standardise(s[w.start:w.stop], a[w.start:w.stop], self.compat.params.action_clip)
        ok = np.isfinite(sz).all(axis=1)
        own = policy.base_ids.get(str(episode.id)) if episode.id is not None else None
        groups = policy.ensemble.nearest_groups(sz[ok], exclude=own) if ok.any() else np.zeros(0, int)
        names = {g: i for i, g in policy.base_ids.items()}
        nearest = [names[g] for g in groups if g in names]
        if nearest:
            text += f"; watch base episode {Counter(nearest).most_common(1)[0][0]} to see how they do it"
        return "mimic the base style: " + text

    # -- feedback on screen ----------------------------------------------------------------------------
    def render(self, fb: Feedback) -> Group:
        base = f"{len(self.base_ids)} episodes"
        if self.base_where:
            base = f"{self.base_where!r}, {base}"
        head = Text(f"compatibility with the base set ({base}): ")
        if fb.score is None:
            head.append("not scored", style="bold yellow")
            head.append(f" ({fb.reason})")
            return Group(head)
        style = "bold green" if fb.compatible else "bold red"
        head.append(f"{fb.score:.2f}", style=style)
        head.append("  ")
        head.append("compatible" if fb.compatible else "INCOMPATIBLE", style=style)
        head.append(f"  {fb.bad_steps} bad steps (at most {fb.max_bad} for {fb.length} steps), {fb.good_steps} good")
        lines: list[Any] = [head, _strip(fb)]
        if fb.windows:
            lines.append(Text("  worst moments:" if not fb.compatible else "  bad steps (few enough):"))
            for i, line in enumerate(fb.window_lines(), 1):
                lines.append(Text(f"   {i}. {line}"))
        if fb.hint:
            lines.append(Text(f"  hint: {fb.hint}", style="yellow"))
        return Group(*lines)

    def __call__(self, episode: Episode, console: Console) -> None:
        """``record_session``'s ``after_episode`` hook: score the episode and print the feedback."""
        policy = self.compat.policy
        if not self.warned and policy is not None and policy.base_episodes < self.compat.params.advised_base:
            console.print(f"[yellow]the base set has only {policy.base_episodes} episodes: compatible/incompatible "
                          f"verdicts are unreliable below about {self.compat.params.advised_base}[/yellow]")
        self.warned = True
        fb = self.feedback(episode)
        self.history.append(fb)
        console.print(self.render(fb))


def _strip(fb: Feedback, width: int = 80) -> Text:
    """The per-step scores c_t as a coloured strip (one cell per step, or per few steps when long): green
    compatible, yellow doubtful, red a bad step."""
    n = len(fb.step_scores)
    cells = min(n, width)
    text = Text("  steps ")
    for i in range(cells):
        lo, hi = i * n // cells, max(i * n // cells + 1, (i + 1) * n // cells)
        c = fb.step_scores[lo:hi]
        c = c[np.isfinite(c)]
        if fb.bad[lo:hi].any():
            text.append("x", style="bold red")
        elif c.size == 0:
            text.append(" ")
        elif c.min() >= 0.5:
            text.append("=", style="green")
        else:
            text.append("-", style="yellow")
    return text
