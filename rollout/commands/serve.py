"""`rollout serve`: the read-only dashboard, JSON API and Prometheus metrics of a state folder."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rollout.commands.common import Report
from rollout.util.errors import BadInput

if TYPE_CHECKING:
    from rollout.edges.backends import StateAt

DEFAULT_LISTEN = "127.0.0.1:8470"
MIN_TOKEN_CHARS = 16


def parse_listen(text: str) -> tuple[str, int]:
    """Return (host, port) of `HOST:PORT` (`[::1]:8470` for IPv6); raise BadInput otherwise."""
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise BadInput(f"--listen: must be HOST:PORT (e.g. {DEFAULT_LISTEN}, [::1]:8470), got {text!r}")
    return host, int(port)


def is_loopback(host: str) -> bool:
    """Return True for an address only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to any interface


def read_token(path: str) -> str:
    """Return the token in `path` (its first line, stripped); raise BadInput naming what is wrong."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput(f"--token-file: {path}: not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise BadInput(f"--token-file: {path}: cannot read it ({e})") from None
    token = text.strip().splitlines()[0].strip() if text.strip() else ""
    if len(token) < MIN_TOKEN_CHARS or any(c.isspace() for c in token):
        raise BadInput(
            f"--token-file: {path}: the token must be one line of at least {MIN_TOKEN_CHARS} characters "
            "without spaces (e.g. `openssl rand -hex 32 > F`)"
        )
    return token


def token_file_warning(path: str) -> str | None:
    """Say when the token file can be read by other users."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        return f"warning: {path} can be read by other users (chmod 600 it)"
    return None


def bind(host: str, port: int) -> socket.socket:
    """Return a listening socket on host:port; raise BadInput when it cannot be had."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise BadInput(f"--listen: cannot resolve {host!r} ({e.strerror})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as e:
        sock.close()
        raise BadInput(f"--listen: cannot listen on {host}:{port}: {e.strerror}") from None
    sock.set_inheritable(True)
    return sock


def serve(
    state_dir: StateAt,
    listen: str = DEFAULT_LISTEN,
    token_file: str | None = None,
    on_listening: Callable[[str, str | None], None] | None = None,
) -> Report:
    """Serve the state folder until interrupted: the page at /, the status --json object at
    /api/rollouts/<id>, /metrics. Reads only: never the lock, never a write."""
    host, port = parse_listen(listen)
    token = read_token(token_file) if token_file else None
    if token is None and not is_loopback(host):
        raise BadInput(
            f"--listen {listen}: {host} is not a loopback address; serving beyond this machine needs "
            "--token-file F (a token every request must carry)"
        )
    warning = token_file_warning(token_file) if token_file else None
    # Imported here only: `rollout status` and every other verb never load the web stack.
    import uvicorn

    from rollout.dashboard.app import build_app

    sock = bind(host, port)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{bound}/"
    config = uvicorn.Config(
        build_app(state_dir, token),
        log_level="warning",
        access_log=False,
        lifespan="off",
        server_header=False,
        proxy_headers=False,
    )
    if on_listening is not None:
        on_listening(url, warning)
    try:
        _server(uvicorn, config).run(sockets=[sock])
    finally:
        sock.close()
    report = Report(data={"url": url, "stopped": True})
    report.say(f"stopped serving {url}")
    return report


def _server(uvicorn: Any, config: Any) -> Any:
    """Return a uvicorn server that ends with exit 0 on Ctrl-C or SIGTERM: uvicorn shuts down
    gracefully, then raises the signal again for process managers (exit -15, or KeyboardInterrupt
    with a traceback); for a verb of this CLI, a stop asked for is a normal end."""

    class Server(uvicorn.Server):  # type: ignore[misc]
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            with super().capture_signals():
                try:
                    yield
                finally:
                    captured = getattr(self, "_captured_signals", None)
                    if isinstance(captured, list):
                        captured.clear()

    return Server(config)
