"""Local transport: each host is a path on this machine (the embedded default)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rollout.atomic import write_atomic
from rollout.errors import BadInput
from rollout.transports.base import CommandResult, FileState, SwapResult

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


def atomic_write(path: Path, data: bytes, mode: int) -> None:
    """Replace a host's file atomically, creating its folder if needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data, mode)


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

    def swap(self, path: str, data: bytes | None, expect_sha256: str | None, mode: int | None) -> SwapResult:
        target = self._abs(path)
        with _path_lock(str(target)):
            current = read_file(target)
            if current.sha256 != expect_sha256:
                return SwapResult(False, current.sha256, "file changed since it was recorded")
            if data is None:
                target.unlink(missing_ok=True)
            else:
                keep = current.mode if current.mode is not None else mode
                atomic_write(target, data, keep if keep is not None else 0o644)
        _test_pause()
        return SwapResult(True, sha256_bytes(data) if data is not None else None)

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
            atomic_write(target, staged.data, keep if keep is not None else 0o644)
            source.unlink(missing_ok=True)
        _test_pause()
        return SwapResult(True, expect_src)

    def run(self, command: str, env: dict[str, str], timeout: float, cwd: str | None) -> CommandResult:
        started = time.monotonic()
        proc = subprocess.Popen(
            command,
            shell=True,
            cwd=cwd or self.cwd,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            return CommandResult(
                None,
                out.decode(errors="replace"),
                f"timed out after {timeout:g}s",
                time.monotonic() - started,
            )
        return CommandResult(proc.returncode, out.decode(errors="replace"), None, time.monotonic() - started)

    def close(self) -> None:
        return None


def _test_pause() -> None:
    # Narrow seam for the kill -9 test: slow each swap so a kill lands mid-activation.
    pause = os.environ.get("ROLLOUT_TEST_SWAP_PAUSE")
    if pause:
        time.sleep(float(pause))


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
        extra = set(targets) - {"transport", "hosts", "concurrency"}
        if extra:
            key = sorted(extra)[0]
            raise BadInput(
                f"{where}: targets.{key}: unknown key for transport 'local' "
                "(expected: transport, hosts, concurrency)"
            )
        conc = targets.get("concurrency", 8)
        if not isinstance(conc, int) or isinstance(conc, bool) or conc < 1:
            raise BadInput(f"{where}: targets.concurrency: must be a whole number >= 1, got {conc!r}")
        return LocalOptions(concurrency=conc)

    def build(self, options: Any, base_dir: Path, hosts: tuple[str, ...]) -> LocalTransport:
        return LocalTransport(base_dir=base_dir, concurrency=options.concurrency)


KIND = LocalKind()
