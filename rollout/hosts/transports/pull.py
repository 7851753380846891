"""Transport `pull`: hosts (laptops) whose agent fetches its assignment and reports what it holds.

Nothing here reaches a host. A session answers from what the host's agent last reported (the
inbox in the state folder's `.pull/`, or the tables of a PostgreSQL state: the PullBackend the
verb binds): a read is the hash the agent reported (and the bytes it
uploaded, before anything was assigned); a swap of the live file is accepted as an assignment
(`pending`: the engine records it and the assignment is published for the agent to fetch), or
refused as drift when the agent reports other bytes than the ones expected. A path the agent does
not hold as a config (the shadow path) lives on the server only: staging there is a no-op. A
usage-log source with the path `pull:usage` reads the usage records the agent forwarded.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rollout.hosts.pullstore import PullBackend, PullStore, Report
from rollout.hosts.transports.base import CommandResult, FileState, SwapResult, refuse_unknown_targets
from rollout.util.errors import BadInput, TransportError

USAGE_PATH = "pull:usage"


def _sha(data: bytes | None) -> str | None:
    return None if data is None else hashlib.sha256(data).hexdigest()


@dataclass
class PullSession:
    """One pull host, as its latest report shows it."""

    host: str
    store: PullBackend
    _report: Report | None = None

    def _latest(self) -> Report:
        if self._report is None:
            self._report = self.store.read_report(self.host)
        if self._report is None:
            raise TransportError("its agent has not reported to the server yet")
        if not self._report.files:
            # It reported before anything named its file (nothing assigned yet): not "no file".
            raise TransportError("its agent has not reported its file yet")
        return self._report

    def holds(self, path: str) -> bool:
        """Return True when the agent's latest report names `path` with its bytes (uploaded, when
        there is a file): what a baseline or a patched candidate can be computed from."""
        report = self._latest()
        if path not in report.files:
            return False  # not told to watch it yet (it polled before any rollout named it)
        sha = report.files[path]
        data = report.uploaded.get(path)
        return sha is None or (data is not None and _sha(data) == sha)

    def read(self, path: str) -> FileState:
        report = self._latest()
        if path in report.files:
            sha = report.files[path]
            data = report.uploaded.get(path)
            return FileState(sha, None, data if data is not None and _sha(data) == sha else None)
        if path != USAGE_PATH:
            if not report.files:  # it polled before a rollout named its files: not read yet
                raise TransportError("its agent has not reported its files yet")
            return FileState(None)  # the shadow path: kept on the server, never on the laptop
        usage = self.store.read_usage(self.host)
        if usage is None:
            return FileState(None)
        return FileState(_sha(usage), 0o600, usage)

    def swap(self, path: str, data: bytes | None, expect_sha256: str | None, mode: int | None) -> SwapResult:
        return self._assign(path, _sha(data), expect_sha256)

    def promote(
        self, src: str, path: str, expect_src: str, expect_sha256: str | None, mode: int | None
    ) -> SwapResult:
        return self._assign(path, expect_src, expect_sha256)

    def _assign(self, path: str, target: str | None, expect: str | None) -> SwapResult:
        report = self._latest()
        if path not in report.files:
            # Not a file the agent holds (the shadow path): kept on the server, nothing to send.
            return SwapResult(True, target)
        held = report.files[path]
        if held == target:
            return SwapResult(True, target)  # it already holds it: confirmed
        if held == expect:
            return SwapResult(True, target, "assigned; waiting for its agent to confirm", pending=True)
        return SwapResult(False, held, "its agent reports other bytes than the recorded ones")

    def run(self, command: str, env: dict[str, str], timeout: float, cwd: str | None) -> CommandResult:
        return CommandResult(
            None,
            "",
            error=(
                f"{self.host} is a pull host: commands do not run on it; use `on: local` or a "
                "metric check over the usage its agent forwards"
            ),
        )

    def cleanup(self, path: str) -> list[str]:
        return []

    def close(self) -> None:
        return None


@dataclass
class PullTransport:
    """Pull hosts, answered from the pull store the verb that builds it binds (a state folder's
    `.pull/`, or a PostgreSQL state's tables)."""

    base_dir: Path
    concurrency: int = 16
    name: str = "pull"
    state_dir: Path | None = field(default=None)
    store: PullBackend | None = field(default=None)

    def bind_state_dir(self, state_dir: Path) -> None:
        """Answer from this state folder's inbox."""
        self.state_dir = state_dir
        self.store = PullStore(state_dir)

    def bind_pull_store(self, store: PullBackend) -> None:
        """Answer from `store` (edges.backends.open_pull_store chose it from --state)."""
        self.store = store

    def open(self, host: str) -> PullSession:
        if self.store is None:
            raise TransportError("transport pull: no state folder bound")
        return PullSession(host=host, store=self.store)

    def resolve_path(self, template: str, host: str) -> str:
        return template.replace("{host}", host)


@dataclass(frozen=True)
class PullOptions:
    poll_interval: float = 60.0


class PullKind:
    name = "pull"

    def parse_options(self, targets: dict[str, Any], where: str) -> PullOptions:
        refuse_unknown_targets(targets, ("poll_interval",), "pull", where)
        interval = targets.get("poll_interval", 60)
        if not isinstance(interval, int | float) or isinstance(interval, bool) or not 1 <= interval <= 86400:
            raise BadInput(
                f"{where}: targets.poll_interval: must be seconds from 1 to 86400, got {interval!r}"
            )
        return PullOptions(poll_interval=float(interval))

    def build(self, options: Any, base_dir: Path, hosts: tuple[str, ...]) -> PullTransport:
        return PullTransport(base_dir=base_dir)


KIND = PullKind()
