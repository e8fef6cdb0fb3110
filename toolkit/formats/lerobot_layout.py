"""Where things live in a LeRobot dataset: version, path templates, file sizes, sidecars, default columns.

v3.0 (what ``export_lerobot`` writes; ``shared/reference/lerobot_v30.md`` has the facts)::

    meta/info.json  meta/stats.json  meta/tasks.parquet  meta/episodes/chunk-000/file-000.parquet
    data/chunk-000/file-000.parquet             one row group per episode, rotated at ~100 MB
    videos/<camera>/chunk-000/file-000.mp4      video mode: episodes back to back, rotated at ~200 MB
    meta/demoforge_spec.json                    our spec (kinds, skipped features); lerobot ignores it
    meta/demoforge_episodes.jsonl               our episode metadata, one line per episode_index

v2.x keeps one parquet (and one mp4 per camera) per episode and lists episodes and tasks in JSON lines.
"""

from __future__ import annotations

CODEBASE_VERSION = "v3.0"
READABLE_VERSIONS = ("v3.0", "v2.1", "v2.0")
CHUNKS_SIZE = 1000  # files per chunk directory, as lerobot
DATA_FILE_SIZE_MB = 100
VIDEO_FILE_SIZE_MB = 200
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
SPEC_SIDECAR = "meta/demoforge_spec.json"
EPISODES_SIDECAR = "meta/demoforge_episodes.jsonl"
DEFAULT_COLUMNS = ("timestamp", "frame_index", "episode_index", "index", "task_index")
V2_DATA_PATH = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
V2_VIDEO_PATH = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"


def next_file(chunk: int, file: int) -> tuple[int, int]:
    """The (chunk_index, file_index) after the given one: a new chunk directory every CHUNKS_SIZE files."""
    return (chunk + 1, 0) if file + 1 >= CHUNKS_SIZE else (chunk, file + 1)
