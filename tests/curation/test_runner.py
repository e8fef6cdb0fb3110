"""The runner on a real store: scores saved in the store and joined into the catalog, stale scores
visible, partial re-runs merged, the report valid, a process pool giving the same result as one process."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

from curation.base import DatasetResult, EpisodeResult, Finding, Flag
from curation.runner import curate_store
from toolkit.episode import Episode
from toolkit.errors import DemoforgeError
from toolkit.sample import sample_episodes, sample_spec
from toolkit.spec import DatasetSpec
from toolkit.store import Store
from toolkit.validation import validate


@dataclass(frozen=True)
class PeakParams:
    threshold: float = 0.0


class PeakPass:
    """A pass whose answers are known: the frame of the largest |action| and whether it exceeds a threshold."""

    name: ClassVar[str] = "peak"
    version: ClassVar[str] = "1"

    def __init__(self, params: PeakParams | None = None) -> None:
        self.params = params or PeakParams()

    def features(self, spec: DatasetSpec) -> list[str]:
        return ["action"]

    def score(self, episode: Episode, spec: DatasetSpec) -> EpisodeResult:
        norm = np.abs(episode.data["action"]).max(axis=1)
        frame = int(norm.argmax())
        return EpisodeResult(id=episode.id, scores={"peak": float(norm[frame]), "high": bool(norm[frame] > self.params.threshold)},
                             flags={"peak": Flag([[frame, frame + 1]], f"largest action {norm[frame]:.3f}")},
                             payload={"peak": float(norm[frame])})

    def reduce(self, results: list[EpisodeResult], spec: DatasetSpec) -> DatasetResult:
        peaks = [r.payload["peak"] for r in results]
        top = results[int(np.argmax(peaks))].id
        return DatasetResult(episodes={r.id: r for r in results}, summary={"mean_peak": float(np.mean(peaks))},
                             findings=[Finding("info", f"episode {top} has the largest action", episodes=[top])])


@pytest.fixture
def store(tmp_path):
    spec = sample_spec(cameras=1, height=24, width=32)
    store = Store.create(tmp_path / "s.zarr", spec)
    for episode in sample_episodes(spec, 12, seed=3):
        store.append(episode)
    return store


def expected_peaks(store: Store) -> dict[str, float]:
    return {i: float(np.abs(store.read(i, ["action"]).data["action"]).max()) for i in store.ids()}


def test_scores_are_saved_joined_and_filterable(store):
    run = curate_store(store, [PeakPass()], workers=1)
    validate(run.report, "curation_report", "report")
    assert json.loads((store.root / "curation" / "report.json").read_text()) == run.report
    columns = store.catalog.columns()
    truth = expected_peaks(store)
    assert np.allclose(columns["peak.peak"], [truth[i] for i in columns["id"]])
    assert not columns["peak.stale"].any()
    assert all(flags == ["peak"] for flags in columns["peak.flags"])
    median = float(np.median(list(truth.values())))
    assert sorted(store.ids(f"peak.peak > {median}")) == sorted(i for i, v in truth.items() if v > median)
    # a reader opened afterwards sees the same columns
    reader = Store.open(store.root)
    assert np.allclose(reader.catalog.columns()["peak.peak"], columns["peak.peak"])


def test_trim_and_new_parameters_make_scores_stale(store):
    curate_store(store, [PeakPass()], workers=1)
    first = store.ids()[0]
    store.trim(first, 1, store.entry(first)["length"])
    stale = dict(zip(store.catalog.columns()["id"], store.catalog.columns()["peak.stale"]))
    assert stale[first] and sum(stale.values()) == 1
    # re-run on half the episodes with other parameters: the other half becomes stale, keeps its rows
    half = store.ids()[:6]
    curate_store(store, [PeakPass(PeakParams(threshold=10.0))], where=f"id in {half}", workers=1)
    columns = store.catalog.columns()
    stale = dict(zip(columns["id"], columns["peak.stale"]))
    assert [i for i, s in stale.items() if s] == store.ids()[6:]
    assert not np.isnan(columns["peak.peak"]).any()


def test_a_new_episode_has_no_score_and_counts_as_stale(store):
    curate_store(store, [PeakPass()], workers=1)
    store.append(sample_episodes(store.spec, 1, seed=99)[0])
    columns = store.catalog.columns()
    assert np.isnan(columns["peak.peak"][-1]) and columns["peak.stale"][-1]


def test_process_pool_matches_one_process(store):
    one = curate_store(store, [PeakPass()], workers=1).results["peak"]
    two = curate_store(store, [PeakPass()], workers=2).results["peak"]
    assert {i: r.scores for i, r in one.episodes.items()} == {i: r.scores for i, r in two.episodes.items()}
    assert one.summary == two.summary


def test_refusals_are_one_line(store, tmp_path):
    with pytest.raises(DemoforgeError, match="selects no episodes"):
        curate_store(store, [PeakPass()], where="length < 0")
    with pytest.raises(DemoforgeError, match="read-only"):
        curate_store(Store.open(store.root), [PeakPass()])


def test_an_unreadable_episode_is_reported_and_the_rest_scored(store):
    broken = store.ids()[3]
    chunk = next((store.root / "episodes" / broken / "action").rglob("c/*/*"))
    chunk.write_bytes(b"not a blosc frame")
    run = curate_store(store, [PeakPass()], workers=1)
    assert list(run.failed) == [broken] and run.report["failed"] == run.failed
    columns = store.catalog.columns()
    scored = dict(zip(columns["id"], columns["peak.peak"]))
    assert np.isnan(scored[broken]) and not np.isnan([v for i, v in scored.items() if i != broken]).any()
