"""Local transport: each host is a path on this machine (the embedded default)."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rollout.hosts import orphans
from rollout.hosts.transports.base import (
    NEW_FILE_MODE,
    CommandResult,
    FileState,
    FileTail,
    SwapResult,
    refuse_unknown_targets,
)
from rollout.util.atomic import TEMP_SUFFIX, exchange, fsync_dir, write_temp
from rollout.util.errors import BadInput

# Host paths are compared and swapped under one process-wide lock per path, so two threads
# never interleave a compare with a swap on the same file.
_PATH_LOCKS: dict[str, threading.Lock] = {}
_PATH_LOCKS_GUARD = threading.Lock()


def _path_lock(path: str) -> threading.Lock:
    with _PATH_LOCKS_GUARD:
        return _PATH_LOCKS.setdefault(path, threading.Lock())


def sha256_bytes(data: bytes) -> str:
    """Return the hex sha256 of `data`."""
    return hashlib.sha256(data).hexdigest()


def read_file(path: Path) -> FileState:
    """Return the FileState of a local path."""
    try:
        data = path.read_bytes()
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        return FileState(sha256=None)
    return FileState(sha256=sha256_bytes(data), mode=mode, data=data)


OUTPUT_KEPT = 1 << 20
READ_CHUNK = 1 << 20


def read_file_from(path: Path, offset: int, guard: int) -> FileTail | None:
    """Read a local file from `offset` in pieces of 1 MiB, up to its size when opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        st = os.fstat(fd)
        size = st.st_size
        head = os.pread(fd, guard, 0)
        start = max(0, min(offset, size) - guard)
        before = os.pread(fd, min(offset, size) - start, start) if offset > 0 else b""
    except BaseException:
        os.close(fd)
        raise

    def chunks() -> Iterator[bytes]:
        try:
            at = offset
            while at < size:
                piece = os.pread(fd, min(READ_CHUNK, size - at), at)
                if not piece:
                    return
                at += len(piece)
                yield piece
        finally:
            os.close(fd)

    return FileTail(f"{st.st_dev}:{st.st_ino}", size, head, before, chunks())


def swap_checked(target: Path, data: bytes | None, expect: str | None, mode: int) -> SwapResult:
    """Put `data` (None: nothing) at `target` and make sure what it displaced hashes to `expect`.
    Another process may write `target` between our hash check and the rename; an exchange of
    the two names (renameat2) hands back the displaced bytes, and if they are not the recorded
    ones the exchange is undone, so that write is never lost and the host reads as drifted.
    Without an exchange (another OS or filesystem) the hash is checked again just before a plain
    rename, which narrows the window to that of the rename itself."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if data is None:
        return _remove_checked(target, expect)
    tmp = write_temp(target, data, mode)
    try:
        if expect is None:
            # No file to displace: a hard link never replaces a file someone just created.
            try:
                os.link(tmp, target)
            except FileExistsError:
                return SwapResult(False, read_file(target).sha256, "a file appeared during the swap")
            return SwapResult(True, sha256_bytes(data))
        if exchange(tmp, target):
            displaced = read_file(tmp)
            if displaced.sha256 != expect:
                _undo_exchange(tmp, target, data)
                return SwapResult(False, displaced.sha256, "file changed during the swap")
            return SwapResult(True, sha256_bytes(data))
        now = read_file(target).sha256
        if now != expect:
            return SwapResult(False, now, "file changed during the swap")
        os.replace(tmp, target)
        return SwapResult(True, sha256_bytes(data))
    finally:
        tmp.unlink(missing_ok=True)
        fsync_dir(target.parent)


def _undo_exchange(tmp: Path, target: Path, ours: bytes) -> None:
    """Give `target` back the bytes our exchange displaced (they sit at `tmp`)."""
    exchange(tmp, target)
    if read_file(tmp).data != ours:
        # A third write landed in between: keep it beside the file rather than delete it.
        os.rename(tmp, target.with_name(f"{target.name}.rollout-conflict-{os.getpid()}"))


def _remove_checked(target: Path, expect: str | None) -> SwapResult:
    if expect is None:
        return SwapResult(True, None)
    aside = target.with_name(f".{target.name}.{os.getpid()}.remove{TEMP_SUFFIX}")
    try:
        os.rename(target, aside)
    except FileNotFoundError:
        return SwapResult(False, None, "file removed during the swap")
    displaced = read_file(aside)
    if displaced.sha256 != expect:
        try:
            os.link(aside, target)  # put it back unless someone wrote a new one meanwhile
            aside.unlink()
        except FileExistsError:
            os.rename(aside, target.with_name(f"{target.name}.rollout-conflict-{os.getpid()}"))
        return SwapResult(False, displaced.sha256, "file changed during the swap")
    aside.unlink()
    fsync_dir(target.parent)
    return SwapResult(True, None)


@dataclass
class LocalSession:
    """A 'host' that is a folder on this machine."""

    host: str
    cwd: Path

    def _abs(self, path: str) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.cwd / p

    def read(self, path: str) -> FileState:
        return read_file(self._abs(path))

    def read_from(self, path: str, offset: int, guard: int) -> FileTail | None:
        """Return the file from `offset` on, with its identity, first and preceding bytes."""
        return read_file_from(self._abs(path), offset, guard)

    def swap(self, path: str, data: bytes | None, expect_sha256: str | None, mode: int | None) -> SwapResult:
        target = self._abs(path)
        with _path_lock(str(target)):
            current = read_file(target)
            if current.sha256 != expect_sha256:
                return SwapResult(False, current.sha256, "file changed since it was recorded")
            keep = current.mode if current.mode is not None else mode
            result = swap_checked(target, data, expect_sha256, keep if keep is not None else NEW_FILE_MODE)
        return result

    def promote(
        self, src: str, path: str, expect_src: str, expect_sha256: str | None, mode: int | None
    ) -> SwapResult:
        source, target = self._abs(src), self._abs(path)
        first, second = sorted((str(source), str(target)))
        with _path_lock(first), _path_lock(second):
            staged = read_file(source)
            if staged.sha256 != expect_src or staged.data is None:
                return SwapResult(False, None, "the file to promote changed", source_changed=True)
            current = read_file(target)
            if current.sha256 != expect_sha256:
                return SwapResult(False, current.sha256, "file changed since it was recorded")
            keep = current.mode if current.mode is not None else mode
            result = swap_checked(
                target, staged.data, expect_sha256, keep if keep is not None else NEW_FILE_MODE
            )
            if result.swapped:
                source.unlink(missing_ok=True)
        return result

    def run(self, command: str, env: dict[str, str], timeout: float, cwd: str | None) -> CommandResult:
        started = time.monotonic()
        mark = orphans.new_mark()
        # Output goes to a file, not a pipe: a process the check leaves behind holding its stdout
        # would keep a pipe open, and the verb would wait on it long past the timeout.
        with tempfile.TemporaryFile() as out:
            proc = subprocess.Popen(
                command,
                shell=True,
                cwd=cwd or self.cwd,
                env={**os.environ, **env, orphans.MARK: mark},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            error = None
            try:
                code: int | None = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                code, error = None, f"timed out after {timeout:g}s"
            # A check is a job: what it started in its process group ends with it, and after a
            # timeout so does anything that left the group (found by its mark).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            if error is not None:
                orphans.kill_marked(mark)
            proc.wait()
            size = out.seek(0, os.SEEK_END)
            out.seek(max(0, size - OUTPUT_KEPT))  # a check that prints gigabytes keeps its tail
            text = out.read().decode(errors="replace")
        return CommandResult(code, text, error, time.monotonic() - started)

    def cleanup(self, path: str) -> list[str]:
        target = self._abs(path)
        gone = []
        for tmp in target.parent.glob(f".{glob.escape(target.name)}.*{TEMP_SUFFIX}"):
            tmp.unlink(missing_ok=True)
            gone.append(str(tmp))
        return gone

    def close(self) -> None:
        return None


@dataclass
class LocalTransport:
    """Hosts simulated as paths; commands run here with the playbook folder as cwd."""

    base_dir: Path
    concurrency: int = 8
    name: str = "local"

    def open(self, host: str) -> LocalSession:
        return LocalSession(host=host, cwd=self.base_dir)

    def resolve_path(self, template: str, host: str) -> str:
        return str(self.base_dir / Path(template.replace("{host}", host)).expanduser())


@dataclass(frozen=True)
class LocalOptions:
    concurrency: int = 8


class LocalKind:
    name = "local"

    def parse_options(self, targets: dict[str, Any], where: str) -> LocalOptions:
        refuse_unknown_targets(targets, ("concurrency",), "local", where)
        conc = targets.get("concurrency", 8)
        if not isinstance(conc, int) or isinstance(conc, bool) or conc < 1:
            raise BadInput(f"{where}: targets.concurrency: must be a whole number >= 1, got {conc!r}")
        return LocalOptions(concurrency=conc)

    def build(self, options: Any, base_dir: Path, hosts: tuple[str, ...]) -> LocalTransport:
        return LocalTransport(base_dir=base_dir, concurrency=options.concurrency)


KIND = LocalKind()
