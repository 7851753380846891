"""What a pull fleet keeps in the state folder beside the rollouts, under `.pull/`: the hosts that
may pull (their tokens, hashed), what each host's agent last reported, the usage records it
forwarded, and which rollout's assignments the server hands out.

`PullBackend` is the seam: this folder store is one backend, a PostgreSQL state keeps the same in
tables (edges/pgpull.py); `edges.backends.open_pull_store` chooses from `--state`.

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
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from rollout.util.atomic import write_atomic
from rollout.util.errors import BadInput

FOLDER = ".pull"
TOKEN_BYTES = 32
SEEN_IDS = 64  # report ids remembered per host: a retried report does nothing twice
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
    # When the agent first reported each path at the hash it reports now, and `ready` as it is now
    # (the server keeps them across reports): a host's exposure starts then, not when a verb folds.
    since: dict[str, float] = field(default_factory=dict)
    ready_since: float | None = None

    def held_since(self, paths: list[str]) -> float:
        """Return when the agent first reported `paths` as they are now (and its ready as it is)."""
        at = max((self.since.get(p, self.time) for p in paths), default=self.time)
        return max(at, self.ready_since) if self.ready is not None and self.ready_since is not None else at


def new_host(token: str) -> dict[str, Any]:
    """Return what is kept of a new host with `token`: when added, a salt, the salted hash."""
    salt = secrets.token_hex(8)
    return {"created": time.time(), "salt": salt, "token_sha256": _hash(token, salt)}


def token_matches(entry: dict[str, Any] | None, token: str) -> bool:
    """Return True if `token` is the one `entry` keeps the hash of (constant time; the same work
    for an unknown host, entry None)."""
    if entry is None:
        _hash(token, "x" * 16)
        return False
    return hmac.compare_digest(_hash(token, str(entry["salt"])), str(entry["token_sha256"]))


def report_of(host: str, d: dict[str, Any]) -> Report:
    """Return the Report a kept report document (what `merge_report` made) says."""
    return Report(
        host=host,
        time=float(d.get("time", 0.0)),
        files={f["path"]: f.get("sha256") for f in d.get("files", [])},
        uploaded={p: bytes.fromhex(h) for p, h in d.get("uploaded", {}).items()},
        errors=list(d.get("errors", [])),
        agent_version=str(d.get("agent_version", "")),
        drift=dict(d.get("drift", {})),
        ready=d.get("ready") if isinstance(d.get("ready"), str) else None,
        since={str(p): float(t) for p, t in d.get("since", {}).items()},
        ready_since=float(d["ready_since"]) if isinstance(d.get("ready_since"), int | float) else None,
    )


def merge_report(before: dict[str, Any], checked: dict[str, Any], now: float) -> dict[str, Any] | None:
    """Return the report to keep from the one kept `before` and a new one (checked by the server),
    or None when its id was seen already (a retried report: nothing is done twice). The bytes an
    agent uploaded are kept while it holds that path; the last SEEN_IDS ids are remembered."""
    seen = list(before.get("seen", []))
    if checked["report_id"] in seen:
        return None
    uploaded = dict(before.get("uploaded", {}))
    uploaded.update(checked["uploads"])
    held = {f["path"] for f in checked["files"]}
    before_sha = {f["path"]: f.get("sha256") for f in before.get("files", [])}
    before_since = before.get("since", {})
    since = {
        f["path"]: before_since.get(f["path"], before.get("time", now))
        if f["path"] in before_sha and before_sha[f["path"]] == f["sha256"]
        else now
        for f in checked["files"]
    }
    ready = checked.get("ready")
    same_ready = "ready" in before and before.get("ready") == ready
    return {
        "time": now,
        "since": since,
        "ready_since": before.get("ready_since", before.get("time", now)) if same_ready else now,
        "report_id": checked["report_id"],
        "files": checked["files"],
        "uploaded": {p: h for p, h in uploaded.items() if p in held},
        "errors": checked["errors"],
        "drift": checked["drift"],
        "agent_version": checked["agent_version"],
        "applied": checked["applied"],
        "ready": ready,
        "seen": (seen + [checked["report_id"]])[-SEEN_IDS:],
    }


def usage_lines(checked: dict[str, Any]) -> list[bytes]:
    """Return a checked report's usage records as the JSON lines the usage log keeps."""
    return [json.dumps(u).encode() for u in checked.get("usage", [])]


class PullBackend(Protocol):
    """Where a pull fleet's hosts, reports, forwarded usage and current rollout are kept: the
    state folder's `.pull/` (PullStore) or a PostgreSQL state's tables (edges/pgpull.py)."""

    where: str

    def hosts(self) -> dict[str, Any]: ...
    def add(self, name: str) -> str: ...
    def add_many(self, names: list[str]) -> dict[str, str]: ...
    def revoke(self, name: str) -> None: ...
    def authenticate(self, name: str, token: str) -> bool: ...
    def missing(self, names: tuple[str, ...] | list[str]) -> list[str]: ...
    def read_report(self, host: str) -> Report | None: ...
    def read_reports(self, hosts: list[str]) -> dict[str, Report]: ...
    def report_marks(self, hosts: list[str]) -> dict[str, Any]: ...
    def write_report(self, host: str, raw: dict[str, Any]) -> None: ...
    def keep_report(self, host: str, checked: dict[str, Any]) -> bool: ...
    def append_usage(self, host: str, lines: list[bytes]) -> None: ...
    def read_usage(self, host: str) -> bytes | None: ...
    def set_current(self, rollout_id: str) -> None: ...
    def current(self) -> str | None: ...
    def assignment(self, host: str) -> bytes | None: ...
    def authorized_assignment(self, host: str, token: str) -> tuple[bool, bytes | None]: ...


class PullStore:
    """The `.pull/` folder of one state folder (the folder backend of PullBackend)."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.root = state_dir / FOLDER
        self.where = str(state_dir)
        self._hosts_cache: tuple[tuple[int, int, int], dict[str, Any]] | None = None
        self._found: dict[Path, tuple[tuple[int, int, int], bytes]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

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
            hosts[name] = new_host(tokens[name])
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
        return token_matches(self.hosts().get(name), token)

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
        return report_of(host, d)

    def read_reports(self, hosts: list[str]) -> dict[str, Report]:
        """Return the latest report of each host of `hosts` that has one."""
        found = {h: self.read_report(h) for h in hosts}
        return {h: r for h, r in found.items() if r is not None}

    def report_marks(self, hosts: list[str]) -> dict[str, Any]:
        """Return, per host of `hosts` that has reported, a mark that changes whenever its report
        does (the report file's stat: it is replaced by a rename, so a new write is a new inode)."""
        marks: dict[str, Any] = {}
        base = os.path.join(self.root, "hosts")
        for host in hosts:
            try:
                st = os.stat(os.path.join(base, check_name(host), "report.json"))
            except FileNotFoundError:
                continue
            marks[host] = [st.st_mtime_ns, st.st_ino, st.st_size]
        return marks

    def write_report(self, host: str, raw: dict[str, Any]) -> None:
        """Keep `raw` (already checked by the server) as the host's latest report, atomically."""
        folder = self.inbox(host)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(self.report_file(host), json.dumps(raw).encode(), 0o600)

    def keep_report(self, host: str, checked: dict[str, Any]) -> bool:
        """Keep a report the server checked (and append its usage records), unless its id was
        seen already; return True for such a duplicate. One server per folder: its threads take
        turns per host."""
        with self._guard:
            lock = self._locks.setdefault(host, threading.Lock())
        with lock:
            try:
                before = json.loads(self.report_file(host).read_bytes())
            except (FileNotFoundError, ValueError):
                before = {}
            kept = merge_report(before, checked, time.time())
            if kept is None:
                return True
            # Usage first: a report lost after it is retried whole, and its id not yet kept.
            self.append_usage(host, usage_lines(checked))
            self.write_report(host, kept)
        return False

    def read_usage(self, host: str) -> bytes | None:
        """Return the host's forwarded usage log (JSON lines), or None when there is none."""
        try:
            return self.usage_file(host).read_bytes()
        except FileNotFoundError:
            return None

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

    # -- what the server hands out -------------------------------------------------------
    def assignment(self, host: str) -> bytes | None:
        """Return the current rollout's assignment for `host` (the blob the verbs published),
        read again only when its file changed (a poll is one stat)."""
        rid = self.current()
        if rid is None:
            return None
        return self._cached(self.state_dir / rid / "pull" / "assign" / f"{check_name(host)}.json")

    def authorized_assignment(self, host: str, token: str) -> tuple[bool, bytes | None]:
        """Return (whether `token` is `host`'s, its assignment if it is)."""
        if not self.authenticate(host, token):
            return False, None
        return True, self.assignment(host)

    def _cached(self, path: Path) -> bytes | None:
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        with self._guard:
            seen = self._found.get(path)
        if seen is not None and seen[0] == key:
            return seen[1]
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        with self._guard:
            self._found[path] = (key, data)
        return data
