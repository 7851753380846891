"""`rollout agent`: the laptop side of a pull fleet (poll, apply, report)."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rollout.commands.common import Report
from rollout.hosts.agent import AgentConfig, PollResult, poll_once, run_forever
from rollout.util import yamlload
from rollout.util.errors import OK, REFUSED, ROLLBACK_INCOMPLETE, ROLLED_BACK, UNEXPECTED, BadInput

_KEYS = {"server", "host", "token_file", "interval", "state_file", "usage_log", "opencode_db"}


def read_config(path: str) -> dict[str, Any]:
    """Return the agent's config file (YAML or JSON: server, host, token_file, interval, ...)."""
    try:
        data = yamlload.safe_load(Path(path).read_text())
    except OSError as e:
        raise BadInput(f"--config: {path}: cannot read it ({e})") from None
    if not isinstance(data, dict):
        raise BadInput(f"--config: {path}: must be a mapping of {', '.join(sorted(_KEYS))}")
    extra = sorted(set(data) - _KEYS)
    if extra:
        raise BadInput(f"{path}: {extra[0]}: unknown key (expected: {', '.join(sorted(_KEYS))})")
    return data


def read_token(path: Path, shown: str) -> str:
    """Return the host's token from its file; refuse (as ssh refuses a private key file open to
    others) a file that other users can read or write: the token is the host's password. (The
    messages say "--token-file F", never "token-file: F", which redaction would mask.)"""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        raise BadInput(f"--token-file {shown} cannot be read ({e.strerror})") from None
    try:
        mode = os.fstat(fd).st_mode
        data = os.read(fd, 4096)
    finally:
        os.close(fd)
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise BadInput(
            f"--token-file {shown} can be read or written by other users (mode {stat.S_IMODE(mode):04o}); "
            f"the token is this host's secret, run chmod 600 {shown}"
        )
    token = data.decode(errors="replace").strip()
    if not token:
        raise BadInput(f"--token-file {shown} is empty")
    return token


def make_config(
    server: str | None,
    host: str | None,
    token_file: str | None,
    interval: float | None,
    state_file: str | None,
    usage_log: str | None,
    config: str | None,
    opencode_db: str | None = None,
) -> AgentConfig:
    """Return the agent's settings from flags (which win) and the config file; raise BadInput."""
    found = read_config(config) if config else {}
    server = server or found.get("server")
    host = host or found.get("host")
    token_file = token_file or found.get("token_file")
    for flag, value in (("--server", server), ("--host", host), ("--token-file", token_file)):
        if not value:
            raise BadInput(f"{flag} is required (or in --config)")
    assert server and host and token_file
    if not str(server).startswith(("http://", "https://")):
        raise BadInput(f"--server: must start with http:// or https://, got {server!r}")
    token = read_token(Path(token_file).expanduser(), str(token_file))
    usage = usage_log or found.get("usage_log")
    state = state_file or found.get("state_file")
    store = opencode_db or found.get("opencode_db")
    if store is not None and not isinstance(store, str):
        raise BadInput(f"{config}: opencode_db: must be a path, got {store!r}")
    reader: Callable[[Path, Any, int], Any] | None = None
    if store:
        from rollout.checks.metrics.opencode_forward import new_records as reader
    return AgentConfig(
        server=str(server),
        host=str(host),
        token=token,
        interval=interval if interval is not None else found.get("interval"),
        state_file=Path(state).expanduser() if state else None,
        usage_log=Path(usage).expanduser() if usage else None,
        opencode_db=Path(store).expanduser() if store else None,
        read_opencode=reader,
    )


def exit_code(result: PollResult) -> int:
    """Return `--once`'s exit code, the most serious outcome first: 4 a file could not be put back,
    3 the switch failed here (activate, ready) and the files were put back, 5 drift (nothing
    written), 1 anything else that went wrong (server unreachable, report not confirmed), 0 done."""
    if result.lost:
        return ROLLBACK_INCOMPLETE
    if result.switch_failed:
        return ROLLED_BACK
    if result.drift:
        return REFUSED
    return OK if result.ok else UNEXPECTED


def agent(cfg: AgentConfig, once: bool, say: Any) -> Report:
    """Poll once (exit code: see `exit_code`) or forever."""
    if not once:
        run_forever(cfg, say)
    result = poll_once(cfg)
    report = Report(exit_code=exit_code(result), data={"ok": result.ok, "lines": result.lines})
    for line in result.lines:
        say(line, not result.ok)
    if result.ok and not result.lines:
        say(f"{cfg.host}: in step with the server", False)
    return report
