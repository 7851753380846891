"""Open one fabric Connection with known_hosts enforced, bounded timeouts and deterministic auth,
on every hop: a ProxyJump host from ssh_config is checked and timed like the host itself (fabric's
own gateway Connection would accept any key, read no known_hosts and wait forever)."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paramiko
from fabric import Config, Connection

from rollout.hosts.transports import ssh_config
from rollout.hosts.transports.ssh_options import HostSpec, SshOptions, parse_host
from rollout.util.errors import TransportError

if TYPE_CHECKING:
    from paramiko.pkey import PKey

KEEPALIVE_S = 15
# paramiko's transport thread wakes every 0.1 s on an idle connection to look for work; with a
# fleet of open sessions that is hundreds of wake-ups a second, each taking the GIL from the
# threads doing the rollout. Once authenticated nothing needs that: data wakes the thread at once,
# close() closes the socket itself, and keepalives are due every KEEPALIVE_S.
IDLE_WAKE_S = 2.0
_KNOWN_HOSTS_LOCK = threading.Lock()  # appends by accept-new
_PARSED_KNOWN_HOSTS: dict[str, tuple[tuple[int, int, int], paramiko.HostKeys]] = {}
_PARSED_KNOWN_HOSTS_LOCK = threading.Lock()
MAX_HOPS = 8  # ProxyJump hops, counting a jump host's own ProxyJump


def quiet_paramiko() -> None:
    """Keep paramiko's transport-thread tracebacks (e.g. banner errors) off the terminal."""
    log = logging.getLogger("paramiko")
    if not any(isinstance(h, logging.NullHandler) for h in log.handlers):
        log.addHandler(logging.NullHandler())
    log.propagate = False


class AcceptNewPolicy(paramiko.MissingHostKeyPolicy):  # type: ignore[misc]
    """Accept a host seen for the first time and append its key to known_hosts (like OpenSSH)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: PKey) -> None:
        line = f"{hostname} {key.get_name()} {key.get_base64()}\n"
        with _KNOWN_HOSTS_LOCK:
            Path(self.path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a") as f:
                f.write(line)
        client.get_host_keys().add(hostname, key.get_name(), key)


def _ssh_config(options: SshOptions) -> paramiko.SSHConfig:
    """Return the parsed ssh_config the options ask for (empty when ssh_config is false)."""
    if options.ssh_config is False:
        return paramiko.SSHConfig()
    if isinstance(options.ssh_config, str):
        return ssh_config.load([options.ssh_config], must_exist=True)
    return ssh_config.load([os.path.expanduser("~/.ssh/config"), ssh_config.SYSTEM_CONFIG], must_exist=False)


def _known_hosts(path: str) -> paramiko.HostKeys | None:
    """Return the known_hosts file parsed, once per version of it (None when there is none).
    Loading it into each connection would parse every line per host: N x N keys for a fleet."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    version = (st.st_mtime_ns, st.st_size, st.st_ino)
    with _PARSED_KNOWN_HOSTS_LOCK:
        cached = _PARSED_KNOWN_HOSTS.get(path)
        if cached is None or cached[0] != version:
            keys = paramiko.HostKeys()
            keys.load(path)
            cached = _PARSED_KNOWN_HOSTS[path] = (version, keys)
    return cached[1]


def open_connection(options: SshOptions, host: str) -> Connection:
    """Connect and authenticate to `host` (through its jump hosts); raise TransportError with a
    reason on any failure."""
    quiet_paramiko()
    spec = parse_host(host)
    config = _ssh_config(options)
    user, port = spec.user or options.user, spec.port or options.port
    conn = _connection(options, config, HostSpec(user, spec.hostname, port), ())
    _open(conn, options)
    return conn


def close_connection(conn: Connection) -> None:
    """Close `conn` and the jump hosts it was reached through (fabric closes only the first)."""
    while isinstance(conn, Connection):
        conn.close()
        conn = conn.gateway


def _where(conn: Connection) -> str:
    return f"{conn.user}@{conn.host}:{conn.port}"


def _connection(
    options: SshOptions,
    config: paramiko.SSHConfig,
    spec: HostSpec,
    seen: tuple[str, ...],
    through: Connection | str | bool | None = None,
) -> Connection:
    """Build (not open) the Connection to `spec` with rollout's host-key policy, timeouts and
    keys; its gateway (`through`, else ssh_config's ProxyJump) is built the same way."""
    timeout = options.connect_timeout
    connect_kwargs: dict[str, Any] = {
        "banner_timeout": timeout,
        "auth_timeout": timeout,
        "channel_timeout": timeout,  # also bounds opening the forwarded channel through a jump host
    }
    if options.key_file:
        connect_kwargs.update(key_filename=[options.key_file], look_for_keys=False, allow_agent=False)
    conn = Connection(
        spec.hostname,
        user=spec.user,
        port=spec.port,
        connect_kwargs=connect_kwargs,
        config=Config(ssh_config=config, lazy=True),
        gateway=through if through is not None else _gateway(options, config, spec.hostname, seen),
    )
    if options.key_file:
        # "Only this key": fabric appends ssh_config's IdentityFile entries to key_filename.
        conn.connect_kwargs["key_filename"] = [options.key_file]
    # fabric rounds connect_timeout down to whole seconds (0.5 -> no timeout): set it as given.
    conn.connect_timeout = timeout
    _enforce_host_keys(conn, options)
    return conn


def _gateway(
    options: SshOptions, config: paramiko.SSHConfig, hostname: str, seen: tuple[str, ...]
) -> Connection | str | bool:
    """Return what `hostname` is reached through: a jump host Connection (ProxyJump), a
    ProxyCommand string, or False for a direct connection."""
    found = config.lookup(hostname)
    jumps = str(found.get("proxyjump") or "").strip()
    if not jumps or jumps.lower() == "none":
        command = found.get("proxycommand")
        return str(command) if command else False
    seen = (*seen, hostname)
    gateway: Connection | str | bool = False
    for i, hop in enumerate(jumps.split(",")):
        try:
            spec = parse_host(hop.strip().removeprefix("ssh://"))
        except ValueError as e:
            raise TransportError(f"ssh_config: ProxyJump {jumps!r} of {hostname}: {e}") from None
        if spec.hostname in seen:  # `Host *` with a ProxyJump also matches the jump host itself
            return gateway if i else False
        if len(seen) > MAX_HOPS:
            raise TransportError(f"ssh_config: more than {MAX_HOPS} ProxyJump hops to {hostname}")
        # The first hop is reached as ssh_config says (its own ProxyJump too); each next one of a
        # `ProxyJump a,b` list through the hop before it, as OpenSSH does.
        gateway = _connection(options, config, spec, seen, None if i == 0 else gateway)
        seen = (*seen, spec.hostname)
    return gateway


def _enforce_host_keys(conn: Connection, options: SshOptions) -> None:
    """Give `conn` this host's keys from known_hosts and the playbook's missing-key policy."""
    client = conn.client
    known = options.known_hosts
    try:
        known_keys = _known_hosts(known)
    except (OSError, paramiko.SSHException) as e:
        raise TransportError(f"cannot read known_hosts {known}: {e}") from None
    if known_keys is not None:
        # Only this host's keys: paramiko then asks the server for the key type on file.
        name = conn.host if conn.port == 22 else f"[{conn.host}]:{conn.port}"
        for key_type, key in (known_keys.lookup(name) or {}).items():
            client.get_host_keys().add(name, key_type, key)
    if options.host_key_policy == "accept-new":
        client.set_missing_host_key_policy(AcceptNewPolicy(known))
    else:
        client.set_missing_host_key_policy(paramiko.RejectPolicy())


def _open(conn: Connection, options: SshOptions) -> None:
    """Open the jump hosts first, then `conn` through them; a failure names the hop that failed."""
    where = _where(conn)
    gateway = conn.gateway
    if isinstance(gateway, Connection):
        try:
            _open(gateway, options)
        except TransportError as e:
            close_connection(gateway)
            raise TransportError(f"ssh {where}: via jump host {str(e).removeprefix('ssh ')}") from None
    started = time.monotonic()
    try:
        conn.open()
        conn.transport.set_keepalive(KEEPALIVE_S)
        conn.transport.sock.settimeout(IDLE_WAKE_S)
    except Exception as e:  # noqa: BLE001 - every failure becomes one reason
        try:
            close_connection(conn)
        except Exception:  # noqa: BLE001
            pass
        reason = connect_failure(e, options, time.monotonic() - started)
        raise TransportError(f"ssh {where}: {reason}") from None


def connect_failure(e: BaseException, options: SshOptions, elapsed: float) -> str:
    """Return a one-line reason for a failed connect that took `elapsed` seconds."""
    t = f"{options.connect_timeout:g}s"
    if isinstance(e, paramiko.BadHostKeyException):
        return (
            f"host key does not match the one in {options.known_hosts} "
            "(refused: the host was reinstalled or someone is in the middle)"
        )
    if isinstance(e, paramiko.AuthenticationException):
        return f"authentication failed ({e})"
    if isinstance(e, paramiko.ssh_exception.NoValidConnectionsError):
        return f"connection refused ({_first_line(e)})"
    if isinstance(e, socket.timeout | TimeoutError):
        return f"connection timed out after {t}"
    text = _first_line(e)
    if "not found in known_hosts" in text:
        missing = "" if os.path.isfile(options.known_hosts) else ", a file that does not exist"
        return (
            f"host key not found in {options.known_hosts}{missing} (host_key_policy strict refuses "
            "unknown hosts; add its key or set targets.ssh.host_key_policy: accept-new)"
        )
    if "banner" in text.lower():
        return f"no SSH banner within {t} ({text})"
    if text in ("No existing session", "Negotiation failed."):
        # paramiko's start_client gives up silently at the timeout; auth then finds no session.
        if elapsed >= options.connect_timeout * 0.9:
            return f"no SSH handshake within {t} (the port accepts TCP but does not speak SSH)"
        return "the server closed the connection during the SSH handshake"
    if isinstance(e, EOFError | ConnectionResetError):
        # sshd hung up mid-handshake: overloaded (MaxStartups), or refusing this client.
        return "the server closed the connection during the SSH handshake"
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, socket.gaierror):
        return f"cannot resolve host name ({text})"
    return text


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
