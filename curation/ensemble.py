"""The compatibility pass's base policy: K bootstrap k-nearest-neighbour regressors.

Member ``i`` is a deterministic regressor ``pi_i(s)``: the mean action of the ``neighbors`` base rows
nearest to ``s`` (Euclidean distance on already standardised states) among the rows of its bootstrap
sample. The bootstrap draws *episodes* with replacement (an episode drawn twice has its rows twice), not
single (state, action) pairs: consecutive steps of one demonstration are near copies, so a per-step
bootstrap leaves every member with the same neighbours and their disagreement stops measuring anything.

The model is plain numpy arrays (states, actions, each row's episode, each member's row indices), so it
pickles small and fast to worker processes; the KD-trees are rebuilt lazily after unpickling.

``predict(x, exclude=...)`` answers leave-one-episode-out: each row of ``x`` ignores the base rows of one
episode. That is how the base set is scored against a policy that never saw the demonstration in
question (threshold calibration, and base episodes scored by the pass).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.spatial import cKDTree


@dataclass
class KnnEnsemble:
    """``states`` (n, ds) and ``actions`` (n, da): standardised base rows; ``groups`` (n,): each row's
    episode (0..episodes-1); ``members``: one array of row indices per member (its bootstrap sample)."""

    states: np.ndarray
    actions: np.ndarray
    groups: np.ndarray
    members: list[np.ndarray]
    neighbors: int = 5
    _trees: list[cKDTree] | None = field(default=None, repr=False, compare=False)
    _all: cKDTree | None = field(default=None, repr=False, compare=False)

    @classmethod
    def fit(cls, states: np.ndarray, actions: np.ndarray, groups: np.ndarray, members: int = 5,
            neighbors: int = 5, seed: int = 0) -> KnnEnsemble:
        """Draw ``members`` bootstrap samples of the episodes in ``groups`` (seeded). A sample holding a
        single distinct episode is redrawn when there are two or more, so that leaving one episode out
        always leaves a neighbour."""
        groups = np.asarray(groups, np.int64)
        n_groups = int(groups.max()) + 1 if len(groups) else 0
        rows = [np.flatnonzero(groups == g) for g in range(n_groups)]
        rng = np.random.default_rng(seed)
        samples = []
        for _ in range(members):
            while True:
                pick = rng.integers(0, n_groups, n_groups)
                if n_groups < 2 or len(np.unique(pick)) >= 2:
                    break
            samples.append(np.concatenate([rows[g] for g in np.sort(pick)]))
        return cls(np.ascontiguousarray(states, np.float64), np.ascontiguousarray(actions, np.float64),
                   groups, samples, int(neighbors))

    # pickling: arrays only; trees are rebuilt on first use
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_trees"] = None
        state["_all"] = None
        return state

    @property
    def trees(self) -> list[cKDTree]:
        if self._trees is None:
            self._trees = [cKDTree(self.states[idx]) for idx in self.members]
        return self._trees

    def predict(self, x: np.ndarray, exclude: np.ndarray | int | None = None) -> np.ndarray:
        """Every member's prediction for the states ``x`` (T, ds): an array (K, T, da). ``exclude``: an
        episode (one int for all rows, or one per row) whose base rows are ignored; None ignores none."""
        x = np.ascontiguousarray(x, np.float64)
        out = np.empty((len(self.members), len(x), self.actions.shape[1]))
        if len(x) == 0:
            return out
        if exclude is not None:
            exclude = np.broadcast_to(np.asarray(exclude, np.int64), (len(x),))
        for m, (idx, tree) in enumerate(zip(self.members, self.trees)):
            if exclude is None:
                k = min(self.neighbors, len(idx))
                _, nearest = tree.query(x, k)
                out[m] = self.actions[idx[nearest.reshape(len(x), k)]].mean(axis=1)
            else:
                out[m] = self._predict_excluding(x, idx, tree, exclude)
        return out

    def _predict_excluding(self, x: np.ndarray, idx: np.ndarray, tree: cKDTree, exclude: np.ndarray) -> np.ndarray:
        """Mean action of the ``neighbors`` nearest rows not in the excluded episode. Rows are asked for
        a few more neighbours than needed, and those still short (their own episode crowds the nearest
        places) again with four times as many, until every row has enough or the sample runs out."""
        k, n = self.neighbors, len(idx)
        out = np.empty((len(x), self.actions.shape[1]))
        todo = np.arange(len(x))
        ask = min(n, k + 16)
        while len(todo):
            _, nearest = tree.query(x[todo], ask)
            rows = idx[nearest.reshape(len(todo), ask)]
            keep = self.groups[rows] != exclude[todo, None]
            chosen = keep & (np.cumsum(keep, axis=1) <= k)
            count = chosen.sum(axis=1)
            done = (count >= k) | (ask >= n)
            if done.any():
                # ``count`` >= 1 always: every sample holds two distinct episodes (see ``fit``)
                w = chosen[done][..., None]
                out[todo[done]] = (w * self.actions[rows[done]]).sum(axis=1) / np.maximum(count[done], 1)[:, None]
            todo = todo[~done]
            ask = min(n, ask * 4)
        return out

    def nearest_groups(self, x: np.ndarray, exclude: int | None = None) -> np.ndarray:
        """The base episode (group) of the row nearest to each state in ``x`` over the whole base set
        (ignoring episode ``exclude``): which base demonstration shows what to do there."""
        if self._all is None:
            self._all = cKDTree(self.states)
        ask = min(len(self.states), 1 if exclude is None else self.neighbors + 64)
        _, nearest = self._all.query(np.ascontiguousarray(x, np.float64), ask)
        nearest = nearest.reshape(len(x), ask)
        groups = self.groups[nearest]
        if exclude is None:
            return groups[:, 0]
        other = groups != exclude
        first = np.argmax(other, axis=1)
        return np.where(other.any(axis=1), groups[np.arange(len(x)), first], -1)
