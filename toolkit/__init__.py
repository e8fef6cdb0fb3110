"""demoforge's core: data model, episode store, catalog, format converters and the command line."""

from toolkit.episode import Episode, EpisodeMeta
from toolkit.errors import DemoforgeError
from toolkit.spec import DatasetSpec, Feature

__all__ = ["DatasetSpec", "DemoforgeError", "Episode", "EpisodeMeta", "Feature"]
