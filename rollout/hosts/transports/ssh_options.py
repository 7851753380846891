"""Options of `transport: ssh`: the `targets.ssh` block and host specs like `user@host:port`."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rollout.util.durations import parse_duration
from rollout.util.errors import BadInput

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
    _check_target_keys(targets, where)
    _check_hosts(targets.get("hosts") or [], where)
    block = _ssh_block(targets, where)
    values: dict[str, Any] = {}
    for key in SSH_KEYS:  # in this order: the first bad field named is always the same one
        if key in block:
            try:
                values[key] = _FIELDS[key](block[key])
            except ValueError as e:
                raise BadInput(f"{where}: targets.ssh.{key}: {e}") from None
    return SshOptions(**values)


def _check_target_keys(targets: dict[str, Any], where: str) -> None:
    extra = sorted(set(targets) - set(TARGET_KEYS), key=str)
    if extra:
        raise BadInput(
            f"{where}: targets.{extra[0]}: unknown key for transport 'ssh' "
            f"(expected: {', '.join(TARGET_KEYS)}; ssh settings go under targets.ssh)"
        )


def _check_hosts(hosts: list[Any], where: str) -> None:
    for i, host in enumerate(hosts):
        try:
            parse_host(str(host))
        except ValueError as e:
            raise BadInput(f"{where}: targets.hosts[{i}]: {host!r}: {e}") from None


def _ssh_block(targets: dict[str, Any], where: str) -> dict[str, Any]:
    """Return the `targets.ssh` mapping (empty when left out), refusing keys it does not know."""
    block = targets.get("ssh") or {}
    if not isinstance(block, dict):
        raise BadInput(f"{where}: targets.ssh: must be a mapping, got {type(block).__name__}")
    unknown = sorted(set(block) - set(SSH_KEYS), key=str)
    if unknown:
        raise BadInput(
            f"{where}: targets.ssh.{unknown[0]}: unknown key (expected one of: {', '.join(SSH_KEYS)})"
        )
    return block


# Each field's check: return the value to keep, or raise ValueError saying what it must be.
def _user(value: Any) -> str:
    if not isinstance(value, str) or not _USER.match(value):
        raise ValueError(f"must be a user name, got {value!r}")
    return value


def _port(value: Any) -> int:
    if not _whole(value) or not 0 < value < 65536:
        raise ValueError(f"must be a port number from 1 to 65535, got {value!r}")
    return int(value)


def _file_path(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be a file path, got {value!r}")
    return value


def _policy(value: Any) -> str:
    if value not in POLICIES:
        raise ValueError(f"must be one of {', '.join(POLICIES)}, got {value!r}")
    return str(value)


def _timeout(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds is None or seconds <= 0:
        raise ValueError(f"must be a duration like 10s or 2m, got {value!r}")
    return seconds


def _concurrency(value: Any) -> int:
    if not _whole(value) or value < 1:
        raise ValueError(f"must be a whole number >= 1, got {value!r}")
    return int(value)


def _ssh_config(value: Any) -> bool | str:
    if not isinstance(value, bool) and (not isinstance(value, str) or not value.strip()):
        raise ValueError(f"must be true, false or a file path, got {value!r}")
    return value


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_FIELDS: dict[str, Callable[[Any], Any]] = {
    "user": _user,
    "port": _port,
    "key_file": _file_path,
    "known_hosts": _file_path,
    "host_key_policy": _policy,
    "connect_timeout": _timeout,
    "command_timeout": _timeout,
    "concurrency": _concurrency,
    "ssh_config": _ssh_config,
}
