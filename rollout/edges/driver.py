"""Who drives a rollout: `run --auto` holds a lock on the rollout's `driver.lock` for as long as it
runs, so `rollout wait` can tell "run --auto is on it" from "waiting for a human" without the
state folder's lock (a kill -9 lets go of it with the process)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

DRIVER = "driver.lock"

_held: dict[Path, int] = {}
_releases: list[Callable[[], None]] = []


def on_release(fn: Callable[[], None]) -> None:
    """Call `fn` in `release_all` too (a backend that marks its driver another way lets go there)."""
    if fn not in _releases:
        _releases.append(fn)


def claim(folder: Path) -> bool:
    """Mark this process as the rollout's driver until `release_all`; False if another drives it."""
    if folder in _held:
        return True
    fd = os.open(folder / DRIVER, os.O_RDWR | os.O_CREAT, 0o644)
    # `wait` takes a shared lock for an instant to look: try again for a moment before giving up.
    for _ in range(40):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                os.close(fd)
                raise
            time.sleep(0.025)
            continue
        with contextlib.suppress(OSError):  # the pid is only for people reading the file
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _held[folder] = fd
        return True
    os.close(fd)
    return False


def release_all() -> None:
    """Let go of every rollout this process drives."""
    while _held:
        _, fd = _held.popitem()
        os.close(fd)
    for fn in _releases:
        fn()


@contextlib.contextmanager
def driving() -> Iterator[None]:
    """Release the driver locks taken inside (by `run --auto`) when the block ends."""
    try:
        yield
    finally:
        release_all()


def is_driven(folder: Path) -> bool:
    """Return True while a live process (`run --auto`) drives the rollout in `folder`."""
    if folder in _held:
        return True
    try:
        fd = os.open(folder / DRIVER, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EACCES):
            return True
        raise
    finally:
        os.close(fd)  # also lets go of the shared lock, if it was taken
    return False


def lock_holder_alive(root: Path) -> bool:
    """Return True when a live process holds the state folder's lock (it writes its pid there)."""
    try:
        text = (root / ".lock").read_text().strip()
    except OSError:
        return False
    if not text.isdigit():
        return False
    try:
        os.kill(int(text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
