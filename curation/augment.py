"""What an augmentation is, and the runner that writes its synthetic episodes into a store.

An augmentation reads one source episode and yields new episodes (``Synthetic``): green-screen
overlays (``curation.greenscreen``), DemoGen-style point-cloud edits (``curation.pointcloud``). It has
a ``name``, a ``version`` and frozen ``params`` like a curation pass; ``generate`` is pure and
deterministic under its seed, so the same source, parameters and seed give the same bytes.

``augment_store`` reads every selected source episode, writes each generated episode into the output
store with provenance metadata (source episode and store, augmentation, its parameters plus the
sample's own, seed), and counts the rejected samples by reason. Writing runs on a background thread
(``_Writer``) so that generating the next samples overlaps encoding and flushing the last ones. Synthetic episodes are ordinary
episodes: they can be filtered (``provenance.augmentation``), scored and exported like any other.
"""

from __future__ import annotations

import queue
import threading
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from curation.base import params_dict
from toolkit.episode import Episode
from toolkit.errors import DemoforgeError
from toolkit.progress import track
from toolkit.spec import DatasetSpec
from toolkit.store import Store


@dataclass
class Synthetic:
    """One generated sample: the new episode (data for every feature of the output spec, and metadata
    copied from the source), the parameters drawn for it, or the reason it was rejected."""

    episode: Episode | None
    params: dict[str, Any] = field(default_factory=dict)
    rejected: str | None = None  # one line: why this sample is not kept (left the workspace, ...)


@runtime_checkable
class Augmentation(Protocol):
    name: ClassVar[str]
    version: ClassVar[str]
    params: Any  # a frozen dataclass

    def output_spec(self, spec: DatasetSpec) -> DatasetSpec:
        """The spec of the generated episodes (the source's, plus e.g. a matte feature)."""

    def generate(self, episode: Episode, spec: DatasetSpec, seed: int) -> Iterator[Synthetic]:
        """New samples from one source episode; pure and deterministic under ``seed``."""


def episode_seed(seed: int, episode_id: str) -> int:
    """The seed for one source episode: stable across runs and machines (not Python's salted hash)."""
    return (seed * 1_000_003 + zlib.crc32(episode_id.encode())) % (2**31)


@dataclass
class AugmentSummary:
    out: Path
    sources: int
    generated: int
    rejected: Counter = field(default_factory=Counter)  # reason -> count
    ids: list[str] = field(default_factory=list)


def augment_store(source: Store, out: Path, augmentation: Augmentation, where: str | None = None,
                  seed: int = 0, limit: int | None = None) -> AugmentSummary:
    """Generate from every episode ``where`` selects into a new store at ``out`` (appends to an existing
    store with the same spec). Each episode is committed atomically, so Ctrl-C keeps what was written."""
    ids = source.ids(where)
    if not ids:
        raise DemoforgeError(f"--where {where!r}: selects no episodes in {source.root}")
    spec = augmentation.output_spec(source.spec)
    target = Store.create(out, spec, source.options, exist_ok=True)
    summary = AugmentSummary(out=target.root, sources=len(ids), generated=0)
    base_params = params_dict(augmentation.params)
    source_store = str(source.root.resolve())
    with _Writer(target) as writer:
        for episode_id in track(ids, len(ids), f"{augmentation.name}: {len(ids)} source episodes"):
            episode = source.read(episode_id)
            sample_seed = episode_seed(seed, episode_id)
            for sample in augmentation.generate(episode, source.spec, sample_seed):
                if sample.rejected or sample.episode is None:
                    summary.rejected[sample.rejected or "no episode"] += 1
                    continue
                provenance = {"source_id": episode_id, "source_store": source_store,
                              "augmentation": f"{augmentation.name}/{augmentation.version}",
                              "params": {**base_params, **sample.params}, "seed": sample_seed}
                meta = replace(sample.episode.meta, provenance=provenance)
                writer.put(Episode(data=sample.episode.data, meta=meta))
                summary.generated += 1
                if limit is not None and summary.generated >= limit:
                    break
            else:
                continue
            break
    summary.ids = writer.ids
    return summary


class _Writer:
    """Appends episodes to a store on a background thread, in order, in batches of whatever is queued
    (up to ``batch``; ``append_many``: one flush to disk per batch). Generation (numpy) keeps the
    calling thread busy while the store's encoding (blosc, on its own threads) and flushing release the
    GIL, so the two overlap on two cores. The queue is bounded, so memory stays at a few episodes.
    Leaving the ``with`` block waits for every queued episode; leaving it by an exception (Ctrl-C) drops
    the queued ones and keeps the committed ones (each commit is atomic). An error in the writer is
    raised in the caller's thread at its next ``put`` or at exit."""

    def __init__(self, store: Store, depth: int = 12, batch: int = 8) -> None:
        self.store, self.batch = store, batch
        self.ids: list[str] = []
        self._queue: queue.Queue[Episode | None] = queue.Queue(maxsize=depth)
        self._abort = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="augment-writer", daemon=True)

    def __enter__(self) -> _Writer:
        self._thread.start()
        return self

    def put(self, episode: Episode | None) -> None:
        while True:
            self._raise()
            if not self._thread.is_alive():
                raise DemoforgeError("augment: the writer stopped before every episode was written")
            try:
                self._queue.put(episode, timeout=0.1)
                return
            except queue.Full:
                continue

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None:
            self._abort.set()
            self._thread.join()
            return
        self.put(None)
        self._thread.join()
        self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _next(self) -> Episode | None:
        while not self._abort.is_set():
            try:
                return self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
        return None

    def _run(self) -> None:
        try:
            done = False
            while not done:
                item = self._next()
                if item is None:
                    return
                batch = [item]
                while len(batch) < self.batch:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        done = True
                        break
                    batch.append(item)
                if self._abort.is_set():
                    return
                self.ids.extend(self.store.append_many(batch))
        except BaseException as exc:  # handed to the caller's thread
            self._error = exc
