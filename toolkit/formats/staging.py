"""Write an export under a hidden sibling name, then move it into place: ``out`` is never half written.

Whole export outputs only (a file or a directory tree); the store's own commit steps are in ``toolkit/fsops.py``.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def sibling(out: Path, tag: str) -> Path:
    """A hidden, unique name next to ``out``: ``.<name>.<tag>-<8 hex>``."""
    return out.with_name(f".{out.name}.{tag}-{uuid.uuid4().hex[:8]}")


def remove(path: Path) -> None:
    """Delete a file or a directory tree; nothing there is fine."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def move_into_place(tmp: Path, out: Path) -> None:
    """Put the finished ``tmp`` at ``out``.

    A file replaces a file in one step; anything else already at ``out`` (a directory, or a file where a
    directory goes) is moved aside first and deleted once ``tmp`` is in place.
    """
    if not out.exists() or (out.is_file() and tmp.is_file()):
        os.replace(tmp, out)
        return
    old = sibling(out, "old")
    os.replace(out, old)
    os.replace(tmp, out)
    remove(old)


@contextmanager
def staged(out: Path) -> Iterator[Path]:
    """Yield the temporary path to write ``out`` to; it is moved to ``out`` when the block completes.

    When the block raises (Ctrl-C included) the temporary path is deleted and ``out`` is left as it was.
    The caller creates whatever it writes at the yielded path (a file or a directory).
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = sibling(out, "tmp")
    try:
        yield tmp
        move_into_place(tmp, out)
    except BaseException:
        remove(tmp)
        raise
