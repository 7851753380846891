"""Check kind `run`: a shell command on every cohort host, or once on the control machine."""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rollout.checks.base import CheckSpec, GateContext, Measurement
from rollout.hosts.transports.base import CommandResult, HostSession
from rollout.hosts.transports.local import LocalSession
from rollout.util.atomic import TEMP_SUFFIX
from rollout.util.errors import BadInput
from rollout.util.redact import redact_text

TAIL_CHARS = 2000


class RunKind:
    name = "run"
    keys = frozenset({"run"})

    def parse(self, spec: dict[str, Any], where: str, base_dir: Path) -> str:
        command = spec.get("run")
        if not isinstance(command, str) or not command.strip():
            raise BadInput(f"{where}.run: must be a non-empty shell command, got {command!r}")
        return command

    def evaluate(self, check: CheckSpec, ctx: GateContext) -> list[Measurement]:
        command: str = check.options
        listing = "".join(f"{h}\n" for h in ctx.canary).encode()
        with local_hosts_file(ctx, listing) as local_file:
            if check.on == "local":
                session = LocalSession(host="local", cwd=ctx.playbook.base_dir)
                env = ctx.env_for(None, local_file)
                result = session.run(command, env, check.timeout, None)
                return [_measure(check, None, result.exit_code, result.output, result.error)]

            def one(s: HostSession) -> CommandResult:
                if isinstance(s, LocalSession):
                    return s.run(command, ctx.env_for(s.host, local_file), check.timeout, None)
                return _run_with_remote_list(s, command, ctx, listing, check.timeout)

            results = ctx.fleet.map(ctx.canary, one, label=f"check {check.name}")
        out = []
        for host in ctx.canary:
            r = results[host]
            if r.value is None:
                out.append(_measure(check, host, None, "", r.error))
            else:
                out.append(_measure(check, host, r.value.exit_code, r.value.output, r.value.error))
        return out


@contextlib.contextmanager
def local_hosts_file(ctx: GateContext, listing: bytes) -> Iterator[str]:
    """Write the cohort's hosts, one per line, to a temp file in the rollout's folder (swept as
    debris if a verb is killed) and remove it when the check is done; yield its absolute path."""
    folder = ctx.state_dir if ctx.state_dir.is_dir() else Path(tempfile.gettempdir())
    fd, name = tempfile.mkstemp(prefix=".hosts.", suffix=TEMP_SUFFIX, dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(listing)
        os.chmod(name, 0o644)  # a check may run as another user (sudo -u) and still read it
        yield str(Path(name).resolve())
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)


def _run_with_remote_list(
    session: HostSession, command: str, ctx: GateContext, listing: bytes, timeout: float
) -> CommandResult:
    """Run on a remote host with the host list put there first (in its home) and removed after."""
    path = f".rollout-hosts-{secrets.token_hex(8)}"
    put = session.swap(path, listing, None, 0o600)
    if not put.swapped:  # no list on the host: the check still runs, with ROLLOUT_HOSTS if short
        return session.run(command, ctx.env_for(session.host), timeout, None)
    try:
        resolve = getattr(session, "abspath", None)  # the remote home's path, where it has one
        where = str(resolve(path)) if callable(resolve) else path
        return session.run(command, ctx.env_for(session.host, where), timeout, None)
    finally:
        with contextlib.suppress(Exception):
            session.swap(path, None, hashlib.sha256(listing).hexdigest(), None)


def _measure(
    check: CheckSpec, host: str | None, code: int | None, output: str, error: str | None
) -> Measurement:
    # Redact before cutting: a tail that starts mid-line could keep a value and lose its key.
    tail = redact_text(output)[-TAIL_CHARS:]
    details: dict[str, Any] = {"exit_code": code, "output_tail": tail}
    if error is not None:
        return Measurement(check.name, host, "error", error, check.enforce, details)
    if code == 0:
        return Measurement(check.name, host, "pass", "exit 0", check.enforce, details)
    last = tail.strip().splitlines()[-1] if tail.strip() else "no output"
    return Measurement(check.name, host, "fail", f"exit {code}: {last}", check.enforce, details)


KIND = RunKind()
