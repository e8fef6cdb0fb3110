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
import platform
import re
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

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


# -- threads for work that releases the GIL (encoding chunks, fsync) ------------------------------
_pool: ThreadPoolExecutor | None = None
_pool_pid = 0


def _threads() -> ThreadPoolExecutor:
    """The store's shared threads, for work that releases the GIL: encoding chunks, fsync."""
    global _pool, _pool_pid
    if _pool is None or _pool_pid != os.getpid():  # a forked child inherits the pool but not its threads
        _pool, _pool_pid = ThreadPoolExecutor(max(4, os.cpu_count() or 1), "demoforge-store"), os.getpid()
    return _pool


def submit(func: Callable[..., Any], *args: Any) -> Future:
    return _threads().submit(func, *args)


def parallel_map(func: Callable[[Any], Any], items: list[Any]) -> list[Any]:
    return [func(item) for item in items] if len(items) < 2 else list(_threads().map(func, items))


# -- flushing to disk ----------------------------------------------------------------------------
# Filesystems whose syncfs(2) is known to write back every dirty page and inode and commit the journal
# before returning: ext2/3/4, xfs, btrfs, f2fs, tmpfs (nothing to flush). Not network or FUSE filesystems
# (FUSE's syncfs does nothing unless the server implements it) nor overlayfs: those fsync every file.
_SYNCFS_FILESYSTEMS = frozenset({0xEF53, 0x58465342, 0x9123683E, 0xF2F52010, 0x01021994})
_libc = ctypes.CDLL(None, use_errno=True)
_libc_syncfs = getattr(_libc, "syncfs", None)
_libc_statfs = getattr(_libc, "statfs", None)
_syncfs_by_device: dict[int, bool] = {}


def _kernel_at_least(version: tuple[int, ...]) -> bool:
    found = re.match(r"(\d+)\.(\d+)", platform.release()) if platform.system() == "Linux" else None
    return bool(found) and tuple(int(x) for x in found.groups()) >= version


def _syncfs_works(root: Path) -> bool:
    """True when one ``syncfs`` makes everything written under ``root`` durable, and reports write errors
    (Linux >= 5.8, which reports writeback errors to syncfs, on a filesystem of ``_SYNCFS_FILESYSTEMS``)."""
    if _libc_syncfs is None or _libc_statfs is None or not _kernel_at_least((5, 8)):
        return False
    device = os.stat(root).st_dev
    if device not in _syncfs_by_device:
        buf = ctypes.create_string_buffer(512)  # struct statfs; f_type (a C long) comes first
        known = _libc_statfs(os.fsencode(root), buf) == 0
        _syncfs_by_device[device] = known and (ctypes.c_long.from_buffer(buf).value & 0xFFFFFFFF) in _SYNCFS_FILESYSTEMS
    return _syncfs_by_device[device]


def fsync_path(path: Path | str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Flusher:
    """Makes written files durable before a commit rename, as cheaply as the filesystem allows.

    Where ``_syncfs_works``, one ``syncfs`` of the store's filesystem flushes a whole batch of episodes
    (one journal commit, instead of one per file and directory); elsewhere every file and directory is
    fsynced, the calls issued concurrently. syncfs also flushes what other programs wrote to that
    filesystem, so it waits longer while another program writes a lot; it is never less durable.
    Open it *before* writing: syncfs reports the writeback errors that happen after its descriptor was
    opened. Does nothing when ``enabled`` is False (``StorageOptions.fsync``).
    """

    def __init__(self, root: Path, enabled: bool) -> None:
        self.enabled = enabled
        self._fd: int | None = None
        if enabled and _syncfs_works(root):
            self._fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def __enter__(self) -> Flusher:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    @property
    def uses_syncfs(self) -> bool:
        return self._fd is not None

    def flush(self, trees: list[Path]) -> None:
        """Every file and directory under each of ``trees`` (and the trees themselves)."""
        if not self.enabled:
            return
        if self._fd is not None:
            if _libc_syncfs(self._fd) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"syncfs: {os.strerror(err)}", str(trees[0] if trees else ""))
            return
        paths: list[str] = []
        for tree in trees:
            for dirpath, _dirnames, filenames in os.walk(tree):
                paths.append(dirpath)
                paths.extend(os.path.join(dirpath, name) for name in filenames)
        parallel_map(fsync_path, paths)

    def flush_file(self, path: Path) -> None:
        """One rewritten file and the directory holding it."""
        if self.enabled:
            fsync_path(path)
            fsync_dir(path.parent)

    def flush_dir(self, path: Path) -> None:
        """One directory's entries (the renames into it)."""
        if self.enabled:
            fsync_dir(path)
