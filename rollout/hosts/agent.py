"""`rollout agent`: on a laptop, fetch this host's assignment, apply it, report what it holds.

Fail static: when the server cannot be reached or answers anything but a whole, well-formed
assignment whose bytes hash to what it says, nothing is written and the last file applied stays.
An assigned file is written with the local transport's compare-and-swap, only over the bytes the
server said to expect; anything else on the laptop is drift: reported, left as it is. Only the
standard library is used (urllib), so the agent stays light.

The state file (0600, written atomically) keeps what a poll must not forget: the usage-log offset
and OpenCode cursor, what was uploaded, the bytes to put back while a switch is under way, and a
report the server did not confirm (sent again, unchanged, first thing next poll: its usage records
count once, and the offset and cursor move only when the server confirmed it).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import random
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rollout.hosts import agentrun
from rollout.hosts.agentrun import expand
from rollout.hosts.pullwire import NOT_READY, assignment_key, switch_failed
from rollout.hosts.transports.base import NEW_FILE_MODE
from rollout.hosts.transports.local import read_file, swap_checked
from rollout.util.atomic import write_atomic

AGENT_VERSION = "2"  # 2: runs `ready`, finishes a switch a dead poll left, resends an unconfirmed report
MAX_USAGE_LINES = 2000
MAX_USAGE_BYTES = 1 << 20
# Bytes the state file may keep of an unconfirmed report (the server takes none larger) and of the
# files a switch would put back: the state file stays bounded.
MAX_KEPT = 4 << 20


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
    drift: bool = False  # a file held bytes the server did not expect: nothing written
    switch_failed: bool = False  # the assignment's switch failed here (activate, ready): files put back
    lost: bool = False  # a file could not be put back (it changed meanwhile)


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


@dataclass
class Applied:
    """What applying one assignment did: lines to say, drift (path -> why), report errors, why the
    switch failed (the files were put back), and whether a file could not be put back."""

    said: list[str] = field(default_factory=list)
    drift: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    failed: str | None = None
    lost: bool = False


Switched = list[tuple[dict[str, Any], Path]]  # (assigned file, laptop path) holding the assigned bytes


def apply(cfg: AgentConfig, doc: dict[str, Any], state: dict[str, Any], save: Callable[[], None]) -> Applied:
    """Apply the assigned files, all of them or none, then activate them and (a switch) wait until
    the laptop is ready. Each file is compare-and-swapped over the bytes it is expected to hold; a
    file holding anything else is drift, and then nothing is written; a swap that fails part way,
    a failed activation or a laptop not ready in time puts back the files already written.

    Before the first write the bytes to put back are kept in the state file (`switching`, saved
    with `save`): a poll that dies part way (killed, the laptop asleep) is finished by the next one,
    which runs activate and ready again before anything is reported as held."""
    out = Applied()
    key = assignment_key(doc)
    action = str(doc.get("action") or "switch")
    kept = state.get("switching")
    intent = kept if isinstance(kept, dict) and kept.get("key") == key else None
    before: dict[str, Any] = dict(intent["before"]) if intent and isinstance(intent.get("before"), dict) else {}
    switched: Switched = []
    todo: list[tuple[dict[str, Any], Path, Any]] = []
    for f in doc["files"]:
        path = expand(f["path"], cfg.host)
        current = read_file(path)
        if current.sha256 == f["sha256"]:
            if f["path"] in before:
                switched.append((f, path))  # written by a poll that did not finish
            continue
        if current.sha256 != f.get("expect_sha256"):
            out.drift[f["path"]] = (
                f"{path} holds {str(current.sha256)[:12]}, neither the assigned nor the expected bytes; left as it is"
            )
            out.said.append(f"drift: {out.drift[f['path']]}")
            continue
        todo.append((f, path, current))
    if out.drift:
        if todo:
            out.said.append(f"nothing written: {len(todo)} other assigned file(s) left as they are")
        _undo(out, switched, before)
        state.pop("switching", None)
        return out
    if not todo and not switched:
        state.pop("switching", None)  # in step (a kept intent of another assignment is moot)
        if action == "switch" and doc.get("ready") and state.get("ready") != key:
            _ready_in_place(cfg, doc, state, key, out)
        return out
    if todo:
        for f, _, current in todo:
            data = current.data
            before.setdefault(
                f["path"], {"b64": None if data is None else base64.b64encode(data).decode(), "mode": current.mode}
            )
        if sum(len(v.get("b64") or "") for v in before.values()) > MAX_KEPT:
            out.errors.append(f"nothing written: the files to replace are over {MAX_KEPT} bytes, too large to keep a copy")
            out.said.append(out.errors[-1])
            return out
        state["switching"] = {"key": key, "before": before}
        save()  # the bytes to put back are on disk before the first write
    for f, path, current in todo:
        mode = current.mode if current.mode is not None else NEW_FILE_MODE
        result = swap_checked(path, f["_data"], current.sha256, mode)
        if not result.swapped:
            out.drift[f["path"]] = f"{path} changed during the swap; left as it is"
            out.said.append(f"drift: {out.drift[f['path']]}")
            _undo(out, switched, before)
            state.pop("switching", None)
            return out
        switched.append((f, path))
        out.said.append(f"applied {path} ({str(f['sha256'])[:12]})")
    if action == "switch":
        failed = agentrun.activate(cfg.host, doc, "switch")
        if failed is None:
            failed, tries = agentrun.wait_ready(cfg.host, doc)
            if failed is None and tries:
                out.said.append(f"ready after {tries} tr{'y' if tries == 1 else 'ies'}")
                state["ready"] = key  # said in every report: the server confirms the host only then
        if failed is not None:
            out.said.append(f"switch failed: {failed}")
            lost = _put_back_into(out, switched, before)
            again = None if lost else agentrun.activate(cfg.host, doc, "restore")
            tail = f"; and {'; '.join(lost)}" if lost else f"; files put back, but {again}" if again else "; files put back"
            out.errors.append(switch_failed(failed) + tail)
            out.failed = out.errors[-1]
    else:
        failed = agentrun.activate(cfg.host, doc, action)
        if failed is not None:
            out.said.append(f"activation failed: {failed}")
            out.errors.append(f"activation after the rollback failed: {failed}")
    state.pop("switching", None)
    return out


def _ready_in_place(cfg: AgentConfig, doc: dict[str, Any], state: dict[str, Any], key: str, out: Applied) -> None:
    """Wait for ready on files found in place that no poll of this agent saw ready (an agent that
    did not run ready applied them, or this state file is new). There are no bytes to put them back
    with: not ready is reported (the host stays pending; the stage deadline decides) and tried
    again next poll."""
    why, tries = agentrun.wait_ready(cfg.host, doc)
    if why is None:
        state["ready"] = key
        out.said.append(f"ready after {tries} tr{'y' if tries == 1 else 'ies'} (files found in place)")
    else:
        out.errors.append(NOT_READY + why)
        out.said.append(f"not ready (files found in place): {why}")


def _put_back_into(out: Applied, switched: Switched, before: dict[str, Any]) -> list[str]:
    """Put back the bytes each switched file held before (last first), saying so in `out`; return
    the files that could not be (they changed since: left as they are)."""
    lost = []
    for f, path in reversed(switched):
        kept = before.get(f["path"]) or {}
        data = None if kept.get("b64") is None else base64.b64decode(kept["b64"])
        mode: int = kept["mode"] if isinstance(kept.get("mode"), int) else NEW_FILE_MODE
        back = swap_checked(path, data, f["sha256"], mode)
        if back.swapped or back.actual_sha256 == (None if data is None else hashlib.sha256(data).hexdigest()):
            out.said.append(f"put back {path}")
        else:
            lost.append(f"{path} changed since it was applied; left as it is")
            out.said.append(f"could not put back {lost[-1]}")
    out.lost = out.lost or bool(lost)
    return lost


def _undo(out: Applied, switched: Switched, before: dict[str, Any]) -> None:
    """Put back what was switched before drift was found; a file that cannot be is an error."""
    lost = _put_back_into(out, switched, before)
    if lost:
        out.errors.append(f"could not put back: {'; '.join(lost)}")


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


def _save_state(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomic(path, json.dumps(state).encode(), 0o600)


def _send(cfg: AgentConfig, body: bytes) -> tuple[bool, str, bool]:
    """POST a report (twice at most, with the same id: the server keeps it once); return whether
    the server confirmed it, why not, and whether it refused it (4xx: it kept nothing)."""
    why = ""
    for _ in range(2):
        try:
            status, answer = _request(cfg, "POST", "report", body)
        except FetchError as e:
            why = str(e)
            continue
        if status == 200:  # {"ok": true, "duplicate": ...}: a duplicate is a confirmation too
            return True, "", False
        why = f"server refused the report ({status}): {answer[:200].decode(errors='replace').strip()}"
        if status < 500:
            return False, why, True
    return False, why, False


def _confirmed(state: dict[str, Any], sent: dict[str, Any]) -> None:
    """Move the state on to what a report the server confirmed covered."""
    uploaded = dict(state.get("uploaded", {}))
    uploaded.update(sent.get("uploaded") or {})
    state.update(usage_offset=int(sent.get("usage_offset") or 0), uploaded=uploaded, watch=sent.get("watch") or [])
    if sent.get("opencode_cursor") is not None:
        state["opencode_cursor"] = sent["opencode_cursor"]
    state.pop("unconfirmed", None)


def _resend(cfg: AgentConfig, state: dict[str, Any], result: PollResult) -> str | None:
    """Send the report the server did not confirm last time, unchanged; return why it is still
    not confirmed (None: confirmed, refused, or there was none)."""
    kept = state.get("unconfirmed")
    if not isinstance(kept, dict) or not isinstance(kept.get("body"), str):
        state.pop("unconfirmed", None)
        return None
    rid = kept.get("report_id")
    sent, why, refused = _send(cfg, kept["body"].encode())
    if sent:
        _confirmed(state, kept)
        result.lines.append(f"report {rid} (not confirmed last time) sent again: confirmed")
        return None
    if refused:  # the server kept nothing of it: its usage records go with the next report
        state.pop("unconfirmed", None)
        result.lines.append(f"report {rid} (not confirmed last time) refused, dropped: {why}")
        return None
    return why


def poll_once(cfg: AgentConfig) -> PollResult:
    """Send again a report not confirmed, fetch, apply, report; return whether all of it worked,
    and what to say."""
    state_path = cfg.state_path()
    state = _load_state(state_path)
    result = PollResult(ok=True)

    def save() -> None:
        _save_state(state_path, state)

    held = _resend(cfg, state, result)
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
        key = assignment_key(doc)
        kept = state.get("failed")
        earlier: dict[str, Any] = kept if isinstance(kept, dict) else {}
        if earlier.get("key") == key:
            # This assignment's switch failed here already: not applied (nor run) again.
            said, errs = [f"not applied again: {earlier.get('why')}"], [str(earlier.get("why"))]
            result.switch_failed = True
        else:
            applied = apply(cfg, doc, state, save)
            said, drift, errs = applied.said, applied.drift, applied.errors
            if applied.failed is not None:
                state["failed"] = {"key": key, "why": applied.failed}
                result.switch_failed = True
            result.lost = applied.lost
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
        held_now = read_file(expand(p, cfg.host))
        entry: dict[str, Any] = {"path": p, "sha256": held_now.sha256}
        # Before anything is assigned, the bytes held are the baseline: uploaded once per change.
        if p not in assigned and held_now.data is not None and uploaded.get(p) != held_now.sha256:
            entry["content_b64"] = base64.b64encode(held_now.data).decode()
        files.append(entry)
    applied_files = ", ".join(f"{f['path']}@{str(f['sha256'])[:12]}" for f in files) or None
    sent = False
    if held is not None:
        result.ok = False
        rid = state["unconfirmed"].get("report_id")
        result.lines.append(f"report {rid} still not confirmed ({held}): sent again first next poll; no new report")
    else:
        unreachable = doc is None and bool(errors)
        sent = _report(cfg, state, result, files, errors, drift, applied_files, watch, unreachable)
    if doc is not None or sent:
        state["applied"] = applied_files if doc is not None else state.get("applied")
    save()
    if drift:
        result.ok, result.drift = False, True
    return result


def _report(
    cfg: AgentConfig,
    state: dict[str, Any],
    result: PollResult,
    files: list[dict[str, Any]],
    errors: list[str],
    drift: dict[str, str],
    applied: str | None,
    watch: list[str],
    unreachable: bool,
) -> bool:
    """Send this poll's report with the usage records new since the last confirmed one; keep it to
    send again when the server did not confirm it; return whether it did."""
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
    report = {
        "report_id": uuid.uuid4().hex,
        "agent_version": AGENT_VERSION,
        "files": files,
        "errors": errors,
        "drift": drift,
        "usage": usage,
        "applied": applied,
        "ready": state.get("ready"),  # the last assignment it saw ready after a switch
    }
    body = json.dumps(report).encode()
    covers = {
        "report_id": report["report_id"],
        "usage_offset": offset,
        "opencode_cursor": opencode_cursor,
        "uploaded": {f["path"]: f["sha256"] for f in files if "content_b64" in f},
        "watch": watch,
    }
    sent, why, refused = _send(cfg, body)
    if sent:
        _confirmed(state, covers)
        return True
    result.ok = False
    if refused or len(body) > MAX_KEPT:
        result.lines.append(f"report not sent: {why}")
    else:  # the server may have kept it (its answer lost): sent again, unchanged, next poll
        state["unconfirmed"] = {**covers, "body": body.decode()}
        result.lines.append(f"report not sent: {why}; kept to send again")
    if unreachable:
        result.lines.pop()  # the same server failure as the fetch's, said once
    return False


def run_forever(cfg: AgentConfig, say: Any) -> None:
    """Poll until stopped, with jitter so a fleet woken together does not poll together."""
    while True:
        result = poll_once(cfg)
        for line in result.lines:
            say(line, not result.ok)
        interval = cfg.interval if cfg.interval is not None else result.interval
        time.sleep(interval * random.uniform(0.8, 1.2))  # noqa: S311 - jitter, not a secret
