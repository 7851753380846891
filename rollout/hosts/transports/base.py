"""The transport seam: how the engine reads, swaps and runs things on one host."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from rollout.util.errors import BadInput

# A file the rollout creates on a host that had none may hold secrets: owner-only unless the
# host's own file said otherwise.
NEW_FILE_MODE = 0o600


@dataclass(frozen=True)
class FileState:
    """What a host holds at a path: absent (sha256 None) or bytes with a hash and mode."""

    sha256: str | None
    mode: int | None = None
    data: bytes | None = None


@dataclass(frozen=True)
class FileTail:
    """A file read from an offset (`HostSession.read_from`, optional for a transport): what it is
    now, its first bytes and the bytes just before the offset (so a reader can tell it was
    rotated, truncated or rewritten), and the bytes from the offset to `size` in pieces."""

    identity: str | None  # "device:inode" where the transport can tell, else None
    size: int
    head: bytes  # the first `guard` bytes (all of them in a shorter file)
    before: bytes  # the `guard` bytes before the offset (fewer near the start)
    chunks: Iterator[bytes]  # the file from the offset up to `size`


@dataclass(frozen=True)
class SwapResult:
    """Outcome of a compare-and-swap: `swapped`, or not (`actual_sha256` is what the target holds)."""

    swapped: bool
    actual_sha256: str | None
    reason: str = ""
    source_changed: bool = False  # promote only: the file to promote was not the expected bytes
    pending: bool = False  # pull: accepted as an assignment; the host has not confirmed it yet


@dataclass(frozen=True)
class CommandResult:
    """A command that ran (exit code and output) or could not be run/finished (error set)."""

    exit_code: int | None
    output: str
    error: str | None = None
    duration_s: float = 0.0


class HostSession(Protocol):
    """One open session to one host, reused for a whole verb and never shared between threads."""

    host: str

    def read(self, path: str) -> FileState:
        """Return the file's hash, mode and bytes (sha256 None when it does not exist)."""

    # Optional: `read_from(path, offset, guard) -> FileTail | None` (None: no such file) reads a
    # growing file from where the last read stopped; without it readers fall back to `read`.

    def swap(self, path: str, data: bytes | None, expect_sha256: str | None, mode: int | None) -> SwapResult:
        """Atomically replace `path` with `data` (None: remove it) if its hash is `expect_sha256`."""

    def promote(
        self, src: str, path: str, expect_src: str, expect_sha256: str | None, mode: int | None
    ) -> SwapResult:
        """Atomically put the bytes of the host's file `src` in place of `path` if `src` hashes to
        `expect_src` and `path` to `expect_sha256`, keeping `path`'s mode (`mode` for a new file),
        then remove `src`. The bytes never leave the host."""

    def run(self, command: str, env: dict[str, str], timeout: float, cwd: str | None) -> CommandResult:
        """Run a shell command on the host with `env` added, killed after `timeout` seconds."""

    def cleanup(self, path: str) -> list[str]:
        """Remove the temp files (`.<name>.*.rollout-tmp`) a killed operation left beside `path`;
        return their names."""

    def close(self) -> None:
        """Release the connection."""


class Transport(Protocol):
    """Opens sessions to hosts; built once per verb from the playbook's `targets`."""

    name: str
    concurrency: int

    def open(self, host: str) -> HostSession:
        """Open a session to `host`; raise TransportError with a reason if it cannot be reached."""

    def resolve_path(self, template: str, host: str) -> str:
        """Return the config path on `host` for a path template (`{host}` substituted)."""


class TransportKind(Protocol):
    """Registry entry: parses the playbook's transport options and builds a Transport."""

    name: str

    def parse_options(self, targets: dict[str, Any], where: str) -> Any:
        """Validate transport-specific keys of `targets` (raise BadInput naming the field)."""

    def build(self, options: Any, base_dir: Path, hosts: tuple[str, ...]) -> Transport:
        """Return a Transport for these hosts."""


def refuse_unknown_targets(targets: dict[str, Any], allowed: tuple[str, ...], kind: str, where: str) -> None:
    """Raise BadInput naming the first key of `targets` transport `kind` does not take."""
    extra = sorted(set(targets) - {"transport", "hosts", *allowed})
    if extra:
        expected = ", ".join(("transport", "hosts", *allowed))
        raise BadInput(f"{where}: targets.{extra[0]}: unknown key for transport '{kind}' (expected: {expected})")

