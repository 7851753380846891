"""What a pull fleet keeps in the state folder beside the rollouts, under `.pull/`: the hosts that
may pull (their tokens, hashed), what each host's agent last reported, the usage records it
forwarded, and which rollout's assignments the server hands out.

It is independent of any one rollout (a host reports its baseline before a rollout starts).
The server writes only the per-host inbox (`hosts/<host>/report.json`, `usage.jsonl`), never a
rollout's state; the verbs read it under the lock. Files sit three folders down so the state
folder's sweep (which runs with the lock while the server may be writing) never removes a temp
file of the server's.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rollout.util.atomic import write_atomic
from rollout.util.errors import BadInput

FOLDER = ".pull"
TOKEN_BYTES = 32
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")


def _hash(token: str, salt: str) -> str:
    # Tokens are 256 random bits: one salted sha256 is as strong as a slow KDF here, and keeps
    # the poll path (10,000 hosts a minute) cheap.
    return hashlib.sha256(f"{salt}:{token}".encode()).hexdigest()


def check_name(name: str) -> str:
    """Return `name` if it can name a pull host (a folder name too); raise BadInput otherwise."""
    if not _SAFE.match(name):
        raise BadInput(
            f"host name {name!r}: a pull host's name is letters, digits and . _ @ - (up to 128, "
            "not starting with punctuation)"
        )
    return name


@dataclass(frozen=True)
class Report:
    """What a host's agent last said: per path its hash, and the bytes it uploaded (if any)."""

    host: str
    time: float
    files: dict[str, str | None]  # path -> sha256 it holds (None: no file)
    uploaded: dict[str, bytes]  # path -> the bytes it uploaded for the hash it holds
    errors: list[str]
    agent_version: str
    drift: dict[str, str]  # path -> why the agent left it
    ready: str | None = None  # the assignment (hosts.pullwire.assignment_key) its agent saw ready


class PullStore:
    """The `.pull/` folder of one state folder."""

    def __init__(self, state_dir: Path) -> None:
        self.root = state_dir / FOLDER
        self._hosts_cache: tuple[tuple[int, int, int], dict[str, Any]] | None = None

    # -- hosts and tokens ---------------------------------------------------------------
    @property
    def hosts_file(self) -> Path:
        return self.root / "hosts.json"

    def hosts(self) -> dict[str, Any]:
        """Return every registered host: name -> {created, salt, token_sha256}."""
        try:
            st = self.hosts_file.stat()
        except FileNotFoundError:
            return {}
        key = (st.st_mtime_ns, st.st_ino, st.st_size)
        if self._hosts_cache is not None and self._hosts_cache[0] == key:
            return dict(self._hosts_cache[1])
        data = json.loads(self.hosts_file.read_bytes() or b"{}").get("hosts", {})
        self._hosts_cache = (key, data)
        return dict(data)

    def _write_hosts(self, hosts: dict[str, Any]) -> None:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(self.hosts_file, (json.dumps({"hosts": hosts}, indent=1) + "\n").encode(), 0o600)

    def add(self, name: str) -> str:
        """Register `name` with a new random token and return the token (kept only hashed)."""
        return self.add_many([name])[name]

    def add_many(self, names: list[str]) -> dict[str, str]:
        """Register every name of `names` with its own new token in one write (a fleet of 10,000
        added one by one would rewrite the hosts file 10,000 times); return name -> token."""
        hosts = self.hosts()
        tokens: dict[str, str] = {}
        for name in names:
            check_name(name)
            if name in hosts or name in tokens:
                raise BadInput(f"host {name!r} is already added (`rollout hosts revoke {name}` first)")
            tokens[name] = secrets.token_urlsafe(TOKEN_BYTES)
            salt = secrets.token_hex(8)
            hosts[name] = {"created": time.time(), "salt": salt, "token_sha256": _hash(tokens[name], salt)}
        self._write_hosts(hosts)
        return tokens

    def revoke(self, name: str) -> None:
        """Forget `name`'s token: its agent is refused from now on."""
        hosts = self.hosts()
        if name not in hosts:
            raise BadInput(f"host {name!r} is not added (known: {', '.join(sorted(hosts)) or 'none'})")
        del hosts[name]
        self._write_hosts(hosts)

    def authenticate(self, name: str, token: str) -> bool:
        """Return True if `token` is `name`'s (constant-time compare of the salted hashes)."""
        entry = self.hosts().get(name)
        if entry is None:
            _hash(token, "x" * 16)  # the same work for an unknown name
            return False
        return hmac.compare_digest(_hash(token, entry["salt"]), entry["token_sha256"])

    def missing(self, names: tuple[str, ...] | list[str]) -> list[str]:
        """Return the names of `names` not added as pull hosts."""
        known = self.hosts()
        return [n for n in names if n not in known]

    # -- each host's inbox --------------------------------------------------------------
    def inbox(self, host: str) -> Path:
        return self.root / "hosts" / check_name(host)

    def report_file(self, host: str) -> Path:
        return self.inbox(host) / "report.json"

    def usage_file(self, host: str) -> Path:
        return self.inbox(host) / "usage.jsonl"

    def read_report(self, host: str) -> Report | None:
        """Return the host's latest report, or None when its agent has not reported yet."""
        try:
            d = json.loads(self.report_file(host).read_bytes())
        except FileNotFoundError:
            return None
        return Report(
            host=host,
            time=float(d.get("time", 0.0)),
            files={f["path"]: f.get("sha256") for f in d.get("files", [])},
            uploaded={p: bytes.fromhex(h) for p, h in d.get("uploaded", {}).items()},
            errors=list(d.get("errors", [])),
            agent_version=str(d.get("agent_version", "")),
            drift=dict(d.get("drift", {})),
            ready=d.get("ready") if isinstance(d.get("ready"), str) else None,
        )

    def write_report(self, host: str, raw: dict[str, Any]) -> None:
        """Keep `raw` (already checked by the server) as the host's latest report, atomically."""
        folder = self.inbox(host)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(self.report_file(host), json.dumps(raw).encode(), 0o600)

    def append_usage(self, host: str, lines: list[bytes]) -> None:
        """Append usage records (one JSON line each) to the host's forwarded usage log."""
        if not lines:
            return
        folder = self.inbox(host)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.usage_file(host), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, b"".join(line.rstrip(b"\n") + b"\n" for line in lines))
            os.fsync(fd)
        finally:
            os.close(fd)

    # -- which rollout the server hands out ------------------------------------------------
    @property
    def current_file(self) -> Path:
        return self.root / "current.json"

    def set_current(self, rollout_id: str) -> None:
        """Record that the hosts' assignments are those of `rollout_id` (the verbs' call)."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        body = json.dumps({"rollout": rollout_id}).encode()
        try:
            if self.current_file.read_bytes() == body:
                return
        except FileNotFoundError:
            pass
        write_atomic(self.current_file, body, 0o600)

    def current(self) -> str | None:
        """Return the rollout whose assignments are handed out, if any."""
        try:
            return str(json.loads(self.current_file.read_bytes())["rollout"])
        except (FileNotFoundError, ValueError, KeyError):
            return None
