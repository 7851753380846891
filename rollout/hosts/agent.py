"""`rollout agent`: on a laptop, fetch this host's assignment, apply it, report what it holds.

Fail static: when the server cannot be reached or answers anything but a whole, well-formed
assignment whose bytes hash to what it says, nothing is written and the last file applied stays.
An assigned file is written with the local transport's compare-and-swap, only over the bytes the
server said to expect; anything else on the laptop is drift: reported, left as it is. Only the
standard library is used (urllib), so the agent stays light.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import random
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rollout.hosts.transports.base import NEW_FILE_MODE
from rollout.hosts.transports.local import read_file, swap_checked
from rollout.util.atomic import write_atomic

AGENT_VERSION = "1"
MAX_USAGE_LINES = 2000
MAX_USAGE_BYTES = 1 << 20
ACTIVATE_TIMEOUT = 60.0
TAIL = 200  # characters of a failing activate command's output in the report
# How the report says the candidate's activation failed (the files were put back): the server
# counts it as a failed switch (rollout/edges/pull.py keeps the same words).
ACTIVATION_FAILED = "activation failed on the laptop: "


class FetchError(Exception):
    """The assignment could not be had whole: unreachable, refused, truncated or wrong."""


@dataclass
class AgentConfig:
    server: str
    host: str
    token: str
    interval: float | None = None  # None: the server's poll_interval
    state_file: Path | None = None
    usage_log: Path | None = None
    timeout: float = 15.0
    opencode_db: Path | None = None
    # Reads the OpenCode store on from a cursor: (path, cursor kept, at most n) -> an object with
    # `records`, `cursor` (None: keep it) and `error`. Given by the command (hosts import no checks).
    read_opencode: Callable[[Path, Any, int], Any] | None = None

    def state_path(self) -> Path:
        if self.state_file is not None:
            return self.state_file
        base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
        return base / "rollout-agent" / f"{self.host}.json"


@dataclass
class PollResult:
    """One poll's outcome: ok, what was applied, what went wrong."""

    ok: bool
    lines: list[str] = field(default_factory=list)
    interval: float = 60.0


def expand(path: str, host: str) -> Path:
    """Return the laptop path of an assignment's path (`~/` and `{host}` allowed)."""
    return Path(path.replace("{host}", host)).expanduser()


def _request(cfg: AgentConfig, method: str, suffix: str, body: bytes | None = None) -> tuple[int, bytes]:
    url = f"{cfg.server.rstrip('/')}/v1/hosts/{cfg.host}/{suffix}"
    req = urllib.request.Request(url, data=body, method=method)
    req.add_header("Authorization", f"Bearer {cfg.token}")
    req.add_header("User-Agent", f"rollout-agent/{AGENT_VERSION}")
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=cfg.timeout) as resp:  # noqa: S310 - the operator's URL
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as e:
        return int(e.code), e.read() or b""
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise FetchError(f"server {cfg.server} unreachable: {reason}") from None
    except Exception as e:  # noqa: BLE001 - http.client's IncompleteRead and kin: a broken answer
        raise FetchError(f"server {cfg.server} answered a broken response: {type(e).__name__}: {e}") from None


def fetch(cfg: AgentConfig) -> dict[str, Any] | None:
    """Return the assignment, checked whole (None: the server assigns nothing to this host)."""
    status, body = _request(cfg, "GET", "assignment")
    if status == 404:
        return None
    if status != 200:
        raise FetchError(f"server answered {status}: {body[:200].decode(errors='replace').strip()}")
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise FetchError(f"the assignment is not JSON (truncated or garbage, {len(body)} bytes)") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("files"), list):
        raise FetchError("the assignment has no list of files")
    for f in doc["files"]:
        if not isinstance(f, dict) or not isinstance(f.get("path"), str):
            raise FetchError("an assigned file has no path")
        content = f.get("content_b64")
        try:
            data = None if content is None else base64.b64decode(content, validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise FetchError(f"{f['path']}: the assigned bytes are not base64") from None
        sha = None if data is None else hashlib.sha256(data).hexdigest()
        if sha != f.get("sha256"):
            raise FetchError(f"{f['path']}: the assigned bytes do not hash to the assigned sha256")
        f["_data"] = data
    return doc


Written = list[tuple[dict[str, Any], Path, Any]]  # (assigned file, laptop path, what it held before)


def apply(cfg: AgentConfig, doc: dict[str, Any]) -> tuple[list[str], dict[str, str], list[str]]:
    """Apply the assigned files, all of them or none: each is compare-and-swapped over the bytes
    it is expected to hold; a file holding anything else is drift, and then nothing is written;
    a swap that fails part way puts back the files already written. Return lines to say, drift
    (path -> why) and errors."""
    said: list[str] = []
    drift: dict[str, str] = {}
    errors: list[str] = []
    todo: list[tuple[dict[str, Any], Path, Any]] = []
    for f in doc["files"]:
        path = expand(f["path"], cfg.host)
        current = read_file(path)
        if current.sha256 == f["sha256"]:
            continue
        if current.sha256 != f.get("expect_sha256"):
            drift[f["path"]] = (
                f"{path} holds {str(current.sha256)[:12]}, neither the assigned nor the expected bytes; left as it is"
            )
            said.append(f"drift: {drift[f['path']]}")
            continue
        todo.append((f, path, current))
    if drift:
        if todo:
            said.append(f"nothing written: {len(todo)} other assigned file(s) left as they are")
        return said, drift, errors
    written: list[tuple[dict[str, Any], Path, Any]] = []
    for f, path, current in todo:
        mode = current.mode if current.mode is not None else NEW_FILE_MODE
        result = swap_checked(path, f["_data"], current.sha256, mode)
        if not result.swapped:
            drift[f["path"]] = f"{path} changed during the swap; left as it is"
            said.append(f"drift: {drift[f['path']]}")
            said.extend(_put_back(written))
            return said, drift, errors
        written.append((f, path, current))
        said.append(f"applied {path} ({str(f['sha256'])[:12]})")
    if written:
        failed = activate(cfg, doc, str(doc.get("action") or "switch"))
        if failed is not None and doc.get("action", "switch") == "switch":
            said.append(f"activation failed: {failed}")
            said.extend(_put_back(written))
            again = activate(cfg, doc, "restore")
            errors.append(
                ACTIVATION_FAILED
                + failed
                + (f"; files put back, but {again}" if again else "; files put back")
            )
        elif failed is not None:
            said.append(f"activation failed: {failed}")
            errors.append(f"activation after the rollback failed: {failed}")
    return said, drift, errors


def activate(cfg: AgentConfig, doc: dict[str, Any], action: str) -> str | None:
    """Run the assignment's activate commands in order (in the home folder); return why one
    failed (None: all ran, or there are none)."""
    commands = doc.get("activate")
    if not isinstance(commands, list) or not commands:
        return None
    timeout = doc.get("activate_timeout")
    limit = float(timeout) if isinstance(timeout, int | float) and timeout > 0 else ACTIVATE_TIMEOUT
    paths = [str(expand(f["path"], cfg.host)) for f in doc["files"]]
    env = {
        **os.environ,
        "ROLLOUT_HOST": cfg.host,
        "ROLLOUT_ROLLOUT_ID": str(doc.get("rollout") or ""),
        "ROLLOUT_ACTION": action,
        "ROLLOUT_FILES": "\n".join(paths),
    }
    for entry in commands:
        if not isinstance(entry, dict) or not isinstance(entry.get("run"), str):
            continue
        command = entry["run"]
        extra = dict(env)
        if isinstance(entry.get("file"), str):
            extra["ROLLOUT_FILE"] = str(expand(entry["file"], cfg.host))
        try:
            done = subprocess.run(  # noqa: S602 - the playbook's own activate command
                command, shell=True, timeout=limit, capture_output=True, env=extra, cwd=Path.home()
            )
        except subprocess.TimeoutExpired:
            return f"`{command}` ({action}) timed out after {limit:g}s"
        if done.returncode != 0:
            tail = (done.stdout + done.stderr).decode(errors="replace").strip()[-TAIL:]
            return f"`{command}` ({action}) exited {done.returncode}" + (f": {tail}" if tail else "")
    return None


def _put_back(written: list[tuple[dict[str, Any], Path, Any]]) -> list[str]:
    """Put back the bytes each written file held before (last first); return lines to say."""
    said = []
    for f, path, before in reversed(written):
        mode = before.mode if before.mode is not None else NEW_FILE_MODE
        back = swap_checked(path, before.data, f["sha256"], mode)
        said.append(f"put back {path}" if back.swapped else f"could not put back {path}: it changed")
    return said


def _load_state(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_bytes())
        return data if isinstance(data, dict) else {}
    except (FileNotFoundError, ValueError):
        return {}


def _usage(cfg: AgentConfig, state: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
    """Return usage records added to the usage log since the offset kept, and the new offset."""
    if cfg.usage_log is None:
        return [], 0
    offset = int(state.get("usage_offset", 0))
    try:
        with open(cfg.usage_log, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < offset:
                offset = 0  # the log was rotated or truncated: start over
            f.seek(offset)
            chunk = f.read(MAX_USAGE_BYTES)
    except FileNotFoundError:
        return [], 0
    end = chunk.rfind(b"\n") + 1  # whole lines only: a line being written waits for the next poll
    records: list[dict[str, Any]] = []
    consumed = 0
    for line in chunk[:end].splitlines(keepends=True):
        if len(records) >= MAX_USAGE_LINES:
            break
        consumed += len(line)
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            records.append(rec)
    return records, offset + consumed


def poll_once(cfg: AgentConfig) -> PollResult:
    """Fetch, apply, report; return whether all of it worked, and what to say."""
    state_path = cfg.state_path()
    state = _load_state(state_path)
    result = PollResult(ok=True)
    errors: list[str] = []
    drift: dict[str, str] = {}
    doc: dict[str, Any] | None = None
    try:
        doc = fetch(cfg)
    except FetchError as e:
        result.ok = False
        kept = state.get("applied") or "none yet"
        result.lines.append(f"{e}; nothing written, the last applied files are kept ({kept})")
        errors.append(str(e))
    if doc is not None:
        key = f"{doc.get('rollout')}:{doc.get('assigned_at')}"
        kept = state.get("failed")
        earlier: dict[str, Any] = kept if isinstance(kept, dict) else {}
        if earlier.get("key") == key:
            # This assignment's activation failed here already: not applied (nor run) again.
            said, drift, errs = [f"not applied again: {earlier.get('why')}"], {}, [str(earlier.get("why"))]
        else:
            said, drift, errs = apply(cfg, doc)
            why = next((e for e in errs if e.startswith(ACTIVATION_FAILED)), None)
            if why is not None:
                state["failed"] = {"key": key, "why": why}
        result.lines.extend(said)
        errors.extend(errs)
        if errs:
            result.ok = False
        if isinstance(doc.get("poll_interval"), int | float):
            result.interval = float(doc["poll_interval"])
    assigned = {f["path"] for f in doc["files"]} if doc else set()
    watch = list(dict.fromkeys([*(doc.get("watch") or [] if doc else state.get("watch", [])), *assigned]))
    uploaded: dict[str, str | None] = dict(state.get("uploaded", {}))
    files = []
    for p in watch:
        if not isinstance(p, str):
            continue
        held = read_file(expand(p, cfg.host))
        entry: dict[str, Any] = {"path": p, "sha256": held.sha256}
        # Before anything is assigned, the bytes held are the baseline: uploaded once per change.
        if p not in assigned and held.data is not None and uploaded.get(p) != held.sha256:
            entry["content_b64"] = base64.b64encode(held.data).decode()
        files.append(entry)
    usage, offset = _usage(cfg, state)
    opencode_cursor = state.get("opencode_cursor")
    if cfg.opencode_db is not None and cfg.read_opencode is not None:
        found = cfg.read_opencode(cfg.opencode_db, opencode_cursor, max(MAX_USAGE_LINES - len(usage), 0))
        if found.error:
            errors.append(found.error)
            result.ok = False
            result.lines.append(f"usage not forwarded: {found.error}")
        else:
            usage.extend(found.records)
            if found.cursor is not None:
                opencode_cursor = found.cursor
    applied = ", ".join(f"{f['path']}@{str(f['sha256'])[:12]}" for f in files) or None
    report = {
        "report_id": uuid.uuid4().hex,
        "agent_version": AGENT_VERSION,
        "files": files,
        "errors": errors,
        "drift": drift,
        "usage": usage,
        "applied": applied,
    }
    body = json.dumps(report).encode()
    sent = False
    for _ in range(2):  # once more with the same id: the server does it once
        try:
            status, answer = _request(cfg, "POST", "report", body)
        except FetchError as e:
            why = str(e)
            continue
        if status == 200:
            sent = True
            break
        why = f"server refused the report ({status}): {answer[:200].decode(errors='replace').strip()}"
        if status < 500:
            break
    if not sent:
        result.ok = False
        result.lines.append(f"report not sent: {why}")
        if doc is None and errors:
            result.lines.pop()  # the same server failure, said once
    else:
        for f in files:
            if "content_b64" in f:
                uploaded[f["path"]] = f["sha256"]
        state.update(usage_offset=offset, uploaded=uploaded, watch=watch)
        if opencode_cursor is not None:
            state["opencode_cursor"] = opencode_cursor
    if doc is not None or sent:
        state["applied"] = applied if doc is not None else state.get("applied")
    state_path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(state_path, json.dumps(state).encode(), 0o600)
    if drift:
        result.ok = False
    return result


def run_forever(cfg: AgentConfig, say: Any) -> None:
    """Poll until stopped, with jitter so a fleet woken together does not poll together."""
    while True:
        result = poll_once(cfg)
        for line in result.lines:
            say(line, not result.ok)
        interval = cfg.interval if cfg.interval is not None else result.interval
        time.sleep(interval * random.uniform(0.8, 1.2))  # noqa: S311 - jitter, not a secret
