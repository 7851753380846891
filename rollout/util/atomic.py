"""Atomic file replacement: temp file in the same folder, fsync, rename, fsync the folder."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Any

TEMP_SUFFIX = ".rollout-tmp"


def write_temp(path: Path, data: bytes, mode: int) -> Path:
    """Write `data` to a new durable temp file beside `path` and return its name. It stays 0600
    until its bytes are on disk, so debris left by a crash never shows a secret to others."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
            os.fchmod(f.fileno(), mode)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace `path` with `data` so a reader sees the old bytes or the new, never a mix."""
    tmp = write_temp(path, data, mode)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    """Make the names in `folder` (renames, new links) durable."""
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_renameat2: Any = None


def exchange(a: Path, b: Path) -> bool:
    """Atomically swap the names `a` and `b` (Linux renameat2 RENAME_EXCHANGE); return False
    where the system or filesystem cannot, so the caller falls back to a plain rename."""
    import ctypes  # here, not at the top: loading ctypes costs every verb a few ms

    global _renameat2
    if _renameat2 is None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            _renameat2 = libc.renameat2
            _renameat2.argtypes = [
                ctypes.c_int,
                ctypes.c_char_p,
                ctypes.c_int,
                ctypes.c_char_p,
                ctypes.c_uint,
            ]
        except (OSError, AttributeError):
            _renameat2 = False
    if _renameat2 is False:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(err, os.strerror(err), str(b))
