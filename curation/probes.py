"""Information measures and cheap probes over integer-coded labels, one sample per episode.

Plug-in entropy and mutual information (nats), balanced accuracy, stratified k-fold cross-validation,
and two small classifiers written in numpy (categorical naive Bayes and a k-nearest-neighbour vote), as
the shortcut pass needs them to ask "can the task be told from this factor alone?" (Xing et al. 2025
use a trained policy for that; these probes are our data-side stand-in).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def entropy_of_counts(counts: np.ndarray) -> float:
    """Plug-in Shannon entropy (nats) of a histogram of counts."""
    n = counts.sum()
    if n == 0:
        return 0.0
    p = counts[counts > 0] / n
    return float(-(p * np.log(p)).sum())


def entropy(codes: np.ndarray) -> float:
    """Plug-in Shannon entropy (nats) of integer codes."""
    return entropy_of_counts(np.bincount(codes)) if len(codes) else 0.0


def mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    """Plug-in mutual information (nats) of two integer code arrays of equal length."""
    return float(mi_batch(a[None, :], b, int(a.max(initial=0)) + 1, int(b.max(initial=0)) + 1)[0])


def mi_batch(a: np.ndarray, b: np.ndarray, na: int, nb: int) -> np.ndarray:
    """MI of each row of ``a`` (R, n) with ``b`` (n,): one bincount for every row, so the permutation
    baseline costs one pass."""
    rows, n = a.shape
    if n == 0:
        return np.zeros(rows)
    flat = (np.arange(rows)[:, None] * (na * nb) + a * nb + b[None, :]).ravel()
    joint = np.bincount(flat, minlength=rows * na * nb).reshape(rows, na, nb) / n
    pa, pb = joint.sum(2, keepdims=True), joint.sum(1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(joint > 0, joint * np.log(joint / (pa * pb)), 0.0)
    return np.maximum(terms.sum((1, 2)), 0.0)


def balanced_accuracy(y: np.ndarray, predicted: np.ndarray) -> float:
    """Mean per-class recall over the classes present in ``y``."""
    classes = np.unique(y)
    return float(np.mean([(predicted[y == c] == c).mean() for c in classes])) if len(classes) else 0.0


def stratified_folds(y: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Stratified fold index per sample (each sample is one episode, so folds never share an episode)."""
    rng = np.random.default_rng(seed)
    fold = np.zeros(len(y), np.int64)
    offset = 0
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        # Continue the round robin across classes so small classes do not all start in fold 0.
        fold[idx] = (np.arange(len(idx)) + offset) % folds
        offset += len(idx)
    return fold


Predictor = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (train mask, test mask) -> predictions


def cross_validate(predict: Predictor, y: np.ndarray, folds: int, seed: int) -> float:
    """Balanced accuracy of out-of-fold predictions."""
    k = max(2, min(folds, len(y)))
    fold = stratified_folds(y, k, seed)
    predicted = np.full(len(y), -1)
    for f in range(k):
        test = fold == f
        if test.any() and not test.all():
            predicted[test] = predict(~test, test)
    return balanced_accuracy(y, predicted)


def naive_bayes(X: np.ndarray, y: np.ndarray, n_classes: int) -> Predictor:
    """Categorical naive Bayes on integer columns with a uniform class prior (the balanced-accuracy
    optimum) and add-one smoothing; one column is a per-bin likelihood vote."""
    levels = X.max(axis=0, initial=0) + 1

    def predict(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        score = np.zeros((int(test.sum()), n_classes))
        Xtr, ytr, Xte = X[train], y[train], X[test]
        class_n = np.bincount(ytr, minlength=n_classes)
        for j, L in enumerate(levels):
            counts = np.zeros((n_classes, L))
            np.add.at(counts, (ytr, Xtr[:, j]), 1.0)
            log_p = np.log((counts + 1.0) / (class_n[:, None] + L))
            score += log_p[:, Xte[:, j]].T
        return score.argmax(axis=1)

    return predict


def nearest_neighbours(X: np.ndarray, y: np.ndarray, n_classes: int, k: int) -> Predictor:
    """k-nearest-neighbour vote on features standardised with the training fold's statistics."""

    def predict(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        Xtr, Xte, ytr = X[train], X[test], y[train]
        mu, sd = Xtr.mean(0), Xtr.std(0)
        sd[sd == 0] = 1.0
        A, B = (Xtr - mu) / sd, (Xte - mu) / sd
        d = (B * B).sum(1)[:, None] - 2 * B @ A.T + (A * A).sum(1)[None, :]
        kk = min(k, len(ytr))
        # argpartition finds the k nearest in linear time; only those k are then ordered.
        part = np.argpartition(d, kk - 1, axis=1)[:, :kk]
        nearest = np.take_along_axis(part, np.argsort(np.take_along_axis(d, part, 1), axis=1, kind="stable"), 1)
        votes = np.zeros((len(B), n_classes))
        # A hair less weight per rank: ties go to the nearer neighbours.
        np.add.at(votes, (np.arange(len(B))[:, None], ytr[nearest]), 1.0 - 1e-3 * np.arange(kk))
        return votes.argmax(axis=1)

    return predict
