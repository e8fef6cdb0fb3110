"""Atomic filesystem steps the store's commit protocol is built from (local POSIX filesystems).

A directory rename is the commit point of every change to a local store: an episode is written in
full under a staging name, flushed to disk, then renamed into ``episodes/``. Linux's ``renameat2``
gives two extra guarantees a plain ``os.rename`` lacks: *no-replace* (two writers can never claim
the same episode id) and *exchange* (a trimmed episode replaces the old one in one step).
"""

from __future__ import annotations

import ctypes
import errno
import os
from pathlib import Path

_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2
_libc = ctypes.CDLL(None, use_errno=True)
_renameat2 = getattr(_libc, "renameat2", None)


def _rename2(src: Path, dst: Path, flags: int) -> bool:
    """True when renameat2 did it; False when the kernel or filesystem does not support the flag."""
    if _renameat2 is None:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(dst))


def rename_noreplace(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst``; raise ``FileExistsError`` if ``dst`` exists (never replaces it)."""
    if _rename2(src, dst, _RENAME_NOREPLACE):
        return
    # Fallback: rename(2) refuses to replace a non-empty directory, and a committed episode is never empty.
    if dst.exists():
        raise FileExistsError(errno.EEXIST, "exists", str(dst))
    os.rename(src, dst)


def exchange(a: Path, b: Path) -> bool:
    """Swap two directories atomically; False when the filesystem cannot (the caller falls back)."""
    return _rename2(a, b, _RENAME_EXCHANGE)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """Flush every file and directory under ``root`` so a rename that follows commits durable data."""
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(dirpath))
