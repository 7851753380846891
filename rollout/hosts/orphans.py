"""Processes a check leaves behind: marked through their environment, stopped when they outlive it.

Every check started on this machine carries `ROLLOUT_CHECK_OWNER=<pid>:<start>:<token>` (the verb's
process and its start time, and a token of its own). A check's process group is killed when it
ends; a process that left the group (`setsid cmd &`) is found by its token when the check timed
out, and by its dead owner when the verb that started it was killed (`kill -9`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
from pathlib import Path

MARK = "ROLLOUT_CHECK_OWNER"
_PROC = Path("/proc")


def _start_time(pid: int) -> str:
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[19]  # field 22: start time in clock ticks


_owner: tuple[int, str] | None = None


def new_mark() -> str:
    """Return the environment value for one check started by this process."""
    global _owner
    if _owner is None or _owner[0] != os.getpid():  # read once per process (and again after a fork)
        _owner = (os.getpid(), _start_time(os.getpid()))
    return f"{_owner[0]}:{_owner[1]}:{secrets.token_hex(6)}"


def _marked() -> list[tuple[int, str]]:
    """Return (pid, mark) of every process here that carries a check mark."""
    found = []
    needle = f"{MARK}=".encode()
    for entry in _PROC.iterdir() if _PROC.is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        for item in environ.split(b"\0"):
            if item.startswith(needle):
                found.append((int(entry.name), item[len(needle) :].decode(errors="replace")))
                break
    return found


def _kill(pid: int) -> None:
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)


def kill_marked(mark: str) -> list[int]:
    """Kill every process still carrying `mark` (one check's leftovers)."""
    pids = [pid for pid, m in _marked() if m == mark and pid != os.getpid()]
    for pid in pids:
        _kill(pid)
    return pids


def reap() -> list[int]:
    """Kill every marked process whose owner is gone (the verb that started it was killed)."""
    pids = []
    for pid, m in _marked():
        owner, start, _ = (m.split(":") + ["", ""])[:3]
        if not owner.isdigit() or int(owner) == os.getpid():
            continue
        if _start_time(int(owner)) != start:
            pids.append(pid)
            _kill(pid)
    return pids
