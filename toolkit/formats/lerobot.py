"""LeRobot datasets without lerobot: export v3.0, import v3.0 / v2.1 / v2.0, salvage crashed recordings.

Everything on disk is parquet + JSON + mp4, written and read with pyarrow, pandas (``tasks.parquet``
only), imagecodecs (PNG) and PyAV. The format facts are in ``shared/reference/lerobot_v30.md``; the real
lerobot library judges our output in the tests (``shared/tools/lerobot-oracle``), never at run time.

The pieces, in the order data flows through them:

- ``lerobot_layout``: where things live (version, path templates, sidecar names, default columns)
- ``lerobot_features``: our features <-> LeRobot's info.json features, both ways
- ``lerobot_export``: the writer (data parquet, PNG frames or video, meta files), with
  ``lerobot_stats`` (stats.json) and ``lerobot_video`` (mp4 encoding)
- ``lerobot_import``: the reader (v3.0 and v2.x, refusals), with ``lerobot_video`` (mp4 decoding)
  and ``lerobot_salvage`` (the page reader for data files that lost their footer)
"""

from __future__ import annotations

from toolkit.formats.lerobot_export import export_lerobot
from toolkit.formats.lerobot_import import LeRobotSource, read_lerobot
from toolkit.formats.summary import ExportSummary

__all__ = ["ExportSummary", "LeRobotSource", "export_lerobot", "read_lerobot"]
