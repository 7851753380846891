"""Usage logs read as they grow: each host's calls are kept as columns with a cursor into its file.

A gate sampled every few seconds during a bake reads only the lines added since its last look. The
cursor remembers the file (device and inode where the transport tells them), the offset of the
last whole line read, a hash of the file's first bytes and of the bytes just before the offset:
a file that was rotated (renamed away, a new one begun), truncated (smaller than the offset) or
rewritten (other first or preceding bytes) is read again from its start. Calls older than the
oldest moment a gate can still look at (the horizon: the earliest switch, or now, minus the
longest window of the checks on that source) are let go; when each host's logging began is kept
apart, since the gates watch a host from its first call.

Within a process (`run --auto`) the cursors and calls stay in memory. Across processes (`rollout
advance` run again) they are kept per rollout through the blob seam (`metrics/<source>/<host>.bin`)
and used only when everything they were made from still holds: the same source type, path and
host, the same folder, a horizon no earlier than what was kept, and a file that passes the cursor's
checks; anything else, or a blob that does not decode, is dropped and the file read from its start.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from rollout.checks.base import BlobStore
from rollout.hosts.transports.base import FileTail, HostSession
from rollout.models.calls import Calls, CallsBuilder

GUARD = 4096  # bytes hashed at the file's start and before the offset
FORMAT = 1
_KEEP = 4096  # host cursors kept in memory (LRU)


@dataclass(frozen=True)
class HostUsage:
    """One host's calls from one usage log, and where reading stopped."""

    calls: Calls  # calls at or after `kept_since`, sorted by time
    first_ts: float | None  # the host's first call ever seen (None: none yet)
    bad: int  # lines that were not valid records
    offset: int = 0  # bytes of whole lines read
    lines: int = 0  # lines read (for line numbers)
    identity: str | None = None
    head_len: int = 0
    head_sha: str = ""
    before_sha: str = ""
    kept_since: float = -math.inf  # calls before this were let go
    lines_read: int = 0  # lines parsed by the read that made this (0: nothing new)
    from_start: bool = True  # that read began at the file's start


def _empty() -> HostUsage:
    return HostUsage(Calls.empty(), None, 0)

_memory: OrderedDict[tuple[str, ...], HostUsage] = OrderedDict()
_memory_lock = threading.Lock()
_written: dict[tuple[str, ...], float] = {}  # when this process last wrote each cursor's blob
BLOB_EVERY_S = 30.0


def forget_all() -> None:
    """Drop every cursor kept in memory (a test's fresh process)."""
    with _memory_lock:
        _memory.clear()
        _written.clear()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _same_file(seen: HostUsage, tail: FileTail) -> bool:
    """Return True when `tail` is the file `seen` read, grown or not (never rotated or cut)."""
    if seen.identity is not None and tail.identity is not None and seen.identity != tail.identity:
        return False
    if tail.size < seen.offset or len(tail.head) < seen.head_len:
        return False
    if _sha(tail.head[: seen.head_len]) != seen.head_sha:
        return False
    return _sha(tail.before) == seen.before_sha


def _whole_file_tail(session: HostSession, path: str, offset: int) -> FileTail | None:
    """Emulate `read_from` with `read` for a transport without it (the whole file travels)."""
    found = session.read(path)
    if found.sha256 is None or found.data is None:
        return None
    data = found.data
    start = max(0, min(offset, len(data)) - GUARD)
    return FileTail(None, len(data), data[:GUARD], data[start : min(offset, len(data))], iter([data[offset:]]))


def _open(session: HostSession, path: str, offset: int) -> FileTail | None:
    reader = getattr(session, "read_from", None)
    if callable(reader):
        found: FileTail | None = reader(path, offset, GUARD)
        return found
    return _whole_file_tail(session, path, offset)


@dataclass(frozen=True)
class Look:
    """What one look at a host's log uses: its calls and when its first call was."""

    calls: Calls
    first_ts: float | None
    bad: int


def read_usage(session: HostSession, path: str, seen: HostUsage | None, horizon: float) -> tuple[HostUsage, Look]:
    """Return the host's usage after reading what was added to `path` since `seen`, and what a
    look uses (those calls plus a last line still without its newline, when it is a whole record)."""
    nothing = Look(Calls.empty(), None, 0)
    tail = _open(session, path, seen.offset if seen is not None else 0)
    if tail is None:
        return _empty(), nothing
    if seen is not None and (seen.kept_since > horizon or not _same_file(seen, tail)):
        seen = None  # rotated, truncated, rewritten, or older calls are wanted again: from the start
        tail = _open(session, path, 0)
        if tail is None:
            return _empty(), nothing
    base = seen if seen is not None else _empty()
    start = base.offset
    builder = CallsBuilder()
    rest = b""
    lines = base.lines
    before = tail.before
    read = 0
    for piece in tail.chunks:
        buf = rest + piece if rest else piece
        cut = buf.rfind(b"\n")
        if cut < 0:
            rest = buf
            continue
        whole, rest = buf[:cut], buf[cut + 1 :]
        builder.add_lines(whole, lines + 1)
        count = whole.count(b"\n") + 1
        lines += count
        read += count
        start += cut + 1
        before = (before + buf[: cut + 1])[-GUARD:]
    added = builder.build()
    first = base.first_ts
    if len(added):
        low = float(added.ts.min())
        first = low if first is None else min(first, low)
    calls = base.calls.merged(added)
    kept_since = base.kept_since
    if horizon > kept_since:
        calls, kept_since = calls.since(horizon), horizon
    usage = HostUsage(
        calls,
        first,
        base.bad + builder.bad,
        start,
        lines,
        tail.identity,
        min(len(tail.head), GUARD),
        _sha(tail.head[:GUARD]),
        _sha(before),
        kept_since,
        read,
        seen is None,
    )
    look = Look(calls, first, usage.bad)
    if rest.strip():  # a last line being written: used while whole, never counted as a bad line
        partial = CallsBuilder()
        partial.add_lines(rest, lines + 1)
        extra = partial.build()
        if not partial.bad and len(extra):
            low = float(extra.ts.min())
            look = Look(calls.merged(extra), low if first is None else min(first, low), usage.bad)
    return usage, look


def memory_key(kind: str, session: HostSession, path: str) -> tuple[str, ...]:
    """Return what identifies one host's log in memory and in a blob: the source, the host, the
    path and the folder relative paths start from."""
    where = str(getattr(session, "cwd", ""))
    return (kind, session.host, path, where)


def blob_name(key: tuple[str, ...]) -> str:
    kind, host, path, where = key
    source = hashlib.sha256(f"{kind}\0{path}\0{where}".encode()).hexdigest()[:16]
    return f"metrics/{source}/{hashlib.sha256(host.encode()).hexdigest()[:16]}.bin"


def encode(key: tuple[str, ...], usage: HostUsage) -> bytes:
    """Return a blob of the host's cursor and calls (a JSON header line, then the columns)."""
    header = {
        "format": FORMAT,
        "key": list(key),
        "n": len(usage.calls),
        "first_ts": usage.first_ts,
        "bad": usage.bad,
        "offset": usage.offset,
        "lines": usage.lines,
        "identity": usage.identity,
        "head_len": usage.head_len,
        "head_sha": usage.head_sha,
        "before_sha": usage.before_sha,
        "kept_since": None if usage.kept_since == -math.inf else usage.kept_since,
        "read": {"lines": usage.lines_read, "from_start": usage.from_start},  # what the last look read
    }
    body = usage.calls.to_bytes()
    return b"".join((json.dumps(header, sort_keys=True).encode(), b"\n", body, _sha(body).encode()))


def decode(key: tuple[str, ...], data: bytes) -> HostUsage | None:
    """Return the usage a blob holds for `key`, or None when it is not exactly that (dropped)."""
    try:
        cut = data.index(b"\n")
        header: dict[str, Any] = json.loads(data[:cut])
        if header.get("format") != FORMAT or header.get("key") != list(key):
            return None
        body, digest = memoryview(data)[cut + 1 : -64], data[-64:].decode()
        if hashlib.sha256(body).hexdigest() != digest:
            return None
        calls = Calls.from_bytes(body, int(header["n"]))  # views of `data`, which they keep
        kept = header["kept_since"]
        return HostUsage(
            calls,
            None if header["first_ts"] is None else float(header["first_ts"]),
            int(header["bad"]),
            int(header["offset"]),
            int(header["lines"]),
            header["identity"],
            int(header["head_len"]),
            str(header["head_sha"]),
            str(header["before_sha"]),
            -math.inf if kept is None else float(kept),
            0,
            False,
        )
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None


def host_usage(
    session: HostSession, kind: str, path: str, horizon: float, blobs: BlobStore | None
) -> tuple[HostUsage, Look]:
    """Return one host's usage of one log, read on from where the last look (in this process,
    else the rollout's blob) stopped, and the calls a look uses; keep the cursor for the next."""
    key = memory_key(kind, session, path)
    with _memory_lock:
        seen = _memory.get(key)
    name = blob_name(key)
    if seen is None and blobs is not None:
        data = blobs.read_blob(name)
        seen = decode(key, data) if data else None
    usage, look = read_usage(session, path, seen, horizon)
    with _memory_lock:
        _memory[key] = usage
        _memory.move_to_end(key)
        while len(_memory) > _KEEP:
            gone, _ = _memory.popitem(last=False)
            _written.pop(gone, None)
    if blobs is not None and (usage.lines_read or usage.from_start or seen is None):
        # The first look of a process always leaves its cursor; later ones (run --auto looking
        # every few seconds) at most every BLOB_EVERY_S: an older blob is still right, it only
        # leaves more lines for the next process to read.
        now = time.monotonic()
        with _memory_lock:
            last = _written.get(key)
            due = last is None or now - last >= BLOB_EVERY_S or usage.from_start
            if due:
                _written[key] = now
        if due:
            blobs.write_blob(name, encode(key, usage))
    return usage, look
