"""The hash-chained journal (invariant 11): append events, verify the chain, refuse a broken one.

Each line of `events.jsonl` is one JSON event carrying `seq` (its number, from 1) and `prev` (the
sha256 of the previous line's bytes, null on the first). `state.json` keeps the head: the `seq` and
sha256 of the last line written by a verb holding the lock. An edit, a removal or an insertion
breaks the chain at the first line touched. The chain has no key: it shows a line was changed, not
who could have recomputed every hash (whoever can rewrite events.jsonl and state.json together).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rollout.util.errors import Refused

JOURNAL = "events.jsonl"
_TAIL_CHUNK = 8192
# One process's threads (a fleet's workers, a webhook's sender) append one at a time; other
# processes are kept out by the flock on the file itself.
_THREADS = threading.Lock()


def now_iso(t: float | None = None) -> str:
    """Return an ISO 8601 UTC timestamp, as every event carries it."""
    return datetime.fromtimestamp(time.time() if t is None else t, UTC).isoformat(timespec="milliseconds")


def line_hash(line: bytes) -> str:
    """Return the chain hash of one journal line (its bytes without the newline)."""
    return hashlib.sha256(line.rstrip(b"\n")).hexdigest()


def new_head() -> dict[str, Any]:
    """Return the head of an empty chained journal, as state.json records it."""
    return {"seq": 0, "sha256": None}


def _last_line(fd: int, size: int) -> tuple[int, bytes]:
    """Return where the file's last line starts and its bytes (with its newline, if any)."""
    end, data = size, b""
    while end > 0:
        start = max(0, end - _TAIL_CHUNK)
        data = os.pread(fd, end - start, start) + data
        end = start
        # A newline before the last byte ends the line before the last one.
        cut = data.rfind(b"\n", 0, len(data) - 1)
        if cut >= 0:
            return end + cut + 1, data[cut + 1 :]
    return 0, data


def append(folder: Path, record: dict[str, Any], *, chained: bool) -> dict[str, Any] | None:
    """Append `record` as one fsynced line; with `chained`, give it `seq` and `prev` and return
    the new head. A torn last line (a crash mid-write) is cut first: it was never an event, and
    left in place it would swallow the next one."""
    fd = os.open(folder / JOURNAL, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        with _THREADS:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            start, last = _last_line(fd, size) if size else (0, b"")
            if last and not last.endswith(b"\n"):
                if _parses(last):  # whole but for its newline: keep it, end it
                    os.write(fd, b"\n")
                else:
                    os.ftruncate(fd, start)
                    record = {**record, "torn_line_cut": len(last)}
                    start, last = _last_line(fd, start) if start else (0, b"")
            head = None
            if chained:
                previous = _parsed(last)
                seq = int(previous.get("seq", 0)) + 1 if isinstance(previous, dict) else 1
                if last and not isinstance(previous, dict):
                    seq = _count_lines(fd) + 1
                record = {**record, "seq": seq, "prev": line_hash(last) if last else None}
            line = json.dumps(record, default=str).encode()
            os.write(fd, line + b"\n")
            os.fsync(fd)
            if chained:
                head = {"seq": record["seq"], "sha256": line_hash(line)}
            return head
    finally:
        os.close(fd)  # releases the flock


def _count_lines(fd: int) -> int:
    return os.pread(fd, os.fstat(fd).st_size, 0).count(b"\n")


def _parses(line: bytes) -> bool:
    return _parsed(line) is not None


def _parsed(line: bytes) -> Any:
    try:
        return json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


@dataclass(frozen=True)
class Verification:
    """What `history --verify` found: whole, legacy (no hashes), or broken at `line`."""

    status: str  # whole | legacy | broken
    message: str
    lines: int = 0
    line: int | None = None  # first line edited, removed (the line where it was) or inserted
    problem: str | None = None  # edited | removed | inserted

    @property
    def ok(self) -> bool:
        return self.status != "broken"

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "message": self.message,
            "lines": self.lines,
            "line": self.line,
            "problem": self.problem,
        }


def verify(folder: Path, head: dict[str, Any] | None) -> Verification:
    """Check the journal's chain in `folder` against `head`, the one state.json records (None: it
    records none); name the first line touched."""
    path = folder / JOURNAL
    return verify_bytes(path.read_bytes() if path.exists() else b"", head)


def verify_bytes(data: bytes, head: dict[str, Any] | None) -> Verification:
    """Check a journal's chain (its lines' bytes, as `Rollout.journal_bytes` returns them)
    against `head`; name the first line touched."""
    raw = data.split(b"\n")
    torn = raw.pop()  # after the last newline: empty, or a line a crash left unfinished
    if torn and _parses(torn):
        raw.append(torn)
        torn = b""
    records = [_parsed(line) for line in raw]
    chained = [r for r in records if isinstance(r, dict) and "prev" in r]
    if head is None:
        if not chained:
            return Verification(
                "legacy",
                f"{len(raw)} line(s), written before the journal was hash-chained: not verifiable",
                len(raw),
            )
        return Verification(
            "broken",
            "state.json records no journal head, but the journal is hash-chained",
            len(raw),
            None,
            "edited",
        )
    found = _first_break(raw, records, head.get("sha256"))
    if found is not None:
        line, problem, why = found
        return Verification("broken", f"{JOURNAL} line {line} was {problem}: {why}", len(raw), line, problem)
    seq, sha = int(head.get("seq") or 0), head.get("sha256")
    if seq > len(raw):
        line = len(raw) + 1
        why = f"state.json records {seq} event(s), the journal holds {len(raw)}"
        return Verification("broken", f"{JOURNAL} line {line} was removed: {why}", len(raw), line, "removed")
    if seq and line_hash(raw[seq - 1]) != sha:
        why = "its hash is not the one state.json recorded"
        return Verification("broken", f"{JOURNAL} line {seq} was edited: {why}", len(raw), seq, "edited")
    note = f"{len(raw)} line(s), hash chain whole"
    if len(raw) > seq:
        note += f" ({len(raw) - seq} appended after the head in state.json, chained)"
    if torn:
        note += "; a torn last line (a crash mid-write) is not an event"
    return Verification("whole", note, len(raw))


def _first_break(raw: list[bytes], records: list[Any], head: str | None) -> tuple[int, str, str] | None:
    """Return (line, edited|removed|inserted, why) for the first break in the chain, if any;
    `head` is the hash of the last line state.json recorded."""
    prev: str | None = None
    for i, rec in enumerate(records):
        n = i + 1
        after = records[i + 1] if i + 1 < len(records) else None
        skipped_over = isinstance(after, dict) and after.get("prev") == prev
        if not isinstance(rec, dict) or "prev" not in rec:
            if skipped_over:
                return n, "inserted", "it is not part of the chain; the next line follows the one before it"
            return n, "edited", "it is not a chained journal record"
        if rec["prev"] != prev:
            if skipped_over:
                return n, "inserted", "the next line's hash names the line before it"
            if after is None and prev is not None and prev == head:
                return n, "inserted", "it follows the last line state.json recorded, but does not chain to it"
            seq = rec.get("seq")
            if isinstance(seq, int) and seq > n:
                return n, "removed", f"line(s) {n}..{seq - 1} of the chain are missing before it"
            if n == 1:
                return n, "edited", "the first line must start the chain"
            return n - 1, "edited", f"its hash is not the one line {n} recorded"
        if rec.get("seq") != n:
            return n, "edited", f"its sequence number is {rec.get('seq')!r}, not {n}"
        prev = line_hash(raw[i])
    return None


def require_intact(rollout: Any, verb: str, force: bool) -> None:
    """Refuse (exit 5) to change a rollout whose journal fails verification, unless forced;
    a forced verb records what it overrode."""
    found = verify_bytes(rollout.journal_bytes(), rollout.state.journal)
    if found.ok:
        return
    if not force:
        raise Refused(
            f"cannot {verb}: the journal of rollout {rollout.id} fails verification: {found.message}. "
            "`rollout history --verify` shows it; --force acts anyway (and records that it did)"
        )
    known = {"line": found.line, "problem": found.problem}
    if rollout.state.journal_forced != known:  # the same break, forced again, is not news
        rollout.state.journal_forced = known
        rollout.log("journal-forced", verb=verb, verification=found.to_json())
