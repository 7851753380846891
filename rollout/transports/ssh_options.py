"""Options of `transport: ssh`: the `targets.ssh` block and host specs like `user@host:port`."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rollout.durations import parse_duration
from rollout.errors import BadInput

TARGET_KEYS = ("transport", "hosts", "ssh")
SSH_KEYS = (
    "user",
    "port",
    "key_file",
    "known_hosts",
    "host_key_policy",
    "connect_timeout",
    "command_timeout",
    "concurrency",
    "ssh_config",
)
POLICIES = ("strict", "accept-new")
_USER = re.compile(r"^[A-Za-z0-9._][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class HostSpec:
    """Where one host of the playbook is reached; None fields fall back to the ssh block."""

    user: str | None
    hostname: str
    port: int | None


@dataclass(frozen=True)
class SshOptions:
    """The validated `targets.ssh` block; relative paths are resolved by `resolved()`."""

    user: str | None = None
    port: int | None = None
    key_file: str | None = None
    known_hosts: str = "~/.ssh/known_hosts"
    host_key_policy: str = "strict"
    connect_timeout: float = 10.0
    command_timeout: float = 60.0
    concurrency: int = 20
    ssh_config: bool | str = True

    def resolved(self, base_dir: Path) -> SshOptions:
        """Return a copy with file paths made absolute (relative to the playbook folder)."""

        def absolute(p: str) -> str:
            return str(base_dir / Path(p).expanduser())

        return replace(
            self,
            key_file=absolute(self.key_file) if self.key_file else None,
            known_hosts=absolute(self.known_hosts),
            ssh_config=absolute(self.ssh_config) if isinstance(self.ssh_config, str) else self.ssh_config,
        )


def parse_host(spec: str) -> HostSpec:
    """Split `name`, `user@host`, `host:port`, `user@[v6]:port` into parts; raise ValueError."""
    user: str | None = None
    rest = spec.strip()
    if "@" in rest:
        user, _, rest = rest.rpartition("@")
        if not _USER.match(user):
            raise ValueError(f"invalid user {user!r}")
    port_text: str | None = None
    if rest.startswith("["):
        hostname, sep, tail = rest[1:].partition("]")
        if not sep or (tail and not tail.startswith(":")):
            raise ValueError("expected [address]:port")
        port_text = tail[1:] if tail else None
    elif rest.count(":") == 1:
        hostname, _, port_text = rest.partition(":")
    else:
        hostname = rest  # a name, or a bare IPv6 address
    if not hostname or any(c.isspace() or c in "'\"`$;&|<>\\" for c in hostname):
        raise ValueError(f"invalid host name {hostname!r}")
    port = None
    if port_text is not None:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"invalid port {port_text!r}")
        port = int(port_text)
    return HostSpec(user, hostname, port)


def parse_options(targets: dict[str, Any], where: str) -> SshOptions:
    """Validate `targets` for transport ssh; raise BadInput naming file and field."""
    extra = sorted(set(targets) - set(TARGET_KEYS), key=str)
    if extra:
        raise BadInput(
            f"{where}: targets.{extra[0]}: unknown key for transport 'ssh' "
            f"(expected: {', '.join(TARGET_KEYS)}; ssh settings go under targets.ssh)"
        )
    for i, host in enumerate(targets.get("hosts") or []):
        try:
            parse_host(str(host))
        except ValueError as e:
            raise BadInput(f"{where}: targets.hosts[{i}]: {host!r}: {e}") from None
    block = targets.get("ssh") or {}
    if not isinstance(block, dict):
        raise BadInput(f"{where}: targets.ssh: must be a mapping, got {type(block).__name__}")
    unknown = sorted(set(block) - set(SSH_KEYS), key=str)
    if unknown:
        raise BadInput(
            f"{where}: targets.ssh.{unknown[0]}: unknown key (expected one of: {', '.join(SSH_KEYS)})"
        )

    def fail(key: str, message: str) -> BadInput:
        return BadInput(f"{where}: targets.ssh.{key}: {message}")

    opts = SshOptions()
    values: dict[str, Any] = {}
    if "user" in block:
        user = block["user"]
        if not isinstance(user, str) or not _USER.match(user):
            raise fail("user", f"must be a user name, got {user!r}")
        values["user"] = user
    if "port" in block:
        port = block["port"]
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise fail("port", f"must be a port number from 1 to 65535, got {port!r}")
        values["port"] = port
    for key in ("key_file", "known_hosts"):
        if key in block:
            value = block[key]
            if not isinstance(value, str) or not value.strip():
                raise fail(key, f"must be a file path, got {value!r}")
            values[key] = value
    if "host_key_policy" in block:
        policy = block["host_key_policy"]
        if policy not in POLICIES:
            raise fail("host_key_policy", f"must be one of {', '.join(POLICIES)}, got {policy!r}")
        values["host_key_policy"] = policy
    for key in ("connect_timeout", "command_timeout"):
        if key in block:
            seconds = parse_duration(block[key])
            if seconds is None or seconds <= 0:
                raise fail(key, f"must be a duration like 10s or 2m, got {block[key]!r}")
            values[key] = seconds
    if "concurrency" in block:
        conc = block["concurrency"]
        if not isinstance(conc, int) or isinstance(conc, bool) or conc < 1:
            raise fail("concurrency", f"must be a whole number >= 1, got {conc!r}")
        values["concurrency"] = conc
    if "ssh_config" in block:
        cfg = block["ssh_config"]
        if not isinstance(cfg, bool) and (not isinstance(cfg, str) or not cfg.strip()):
            raise fail("ssh_config", f"must be true, false or a file path, got {cfg!r}")
        values["ssh_config"] = cfg
    return replace(opts, **values)
