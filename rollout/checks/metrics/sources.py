"""Where metric data comes from: usage logs and OpenCode stores on each host, or Prometheus."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable

from rollout.checks.base import BlobStore
from rollout.checks.metrics.opencode_cursor import store_usage
from rollout.checks.metrics.opencode_store import read_opencode_bytes
from rollout.checks.metrics.source_spec import (
    SOURCE_TYPES,
    HostFileSource,
    PrometheusSource,
    Source,
    parse_source,
)
from rollout.checks.metrics.stream import Look, host_usage, memory_key
from rollout.hosts.fleet import Fleet
from rollout.hosts.transports.base import HostSession
from rollout.models.calls import Calls
from rollout.models.usage import UsageBatch, read_usage_bytes

__all__ = ["SOURCE_TYPES", "HostFileSource", "PrometheusSource", "Source", "parse_source"]

_CACHE_SIZE = 64
# Several checks of one gate read the same files: parse each distinct content once.
_parsed_cache: dict[str, UsageBatch] = {}
_cache_lock = threading.Lock()


def fetch_looks(
    fleet: Fleet, source: HostFileSource, hosts: tuple[str, ...], horizon: float, blobs: BlobStore | None
) -> dict[str, Look | str]:
    """Read the source on every host as columns: a usage log from where the last look stopped
    (`stream`), an OpenCode store whole; or why the host could not be read."""

    def one(session: HostSession) -> Look:
        path = source.path.replace("{host}", session.host)
        if source.type == "usage-log":
            return host_usage(session, source.type, path, horizon, blobs)[1]
        found = session.read(path)
        if found.sha256 is None or found.data is None:
            return Look(Calls.empty(), None, 0)
        wal = session.read(path + "-wal")
        # Decoded from where the last look in this process stopped (time.created), not whole.
        try:
            usage = store_usage(memory_key(source.type, session, path), found.data, wal.data, horizon)
        except ValueError:  # not a database (as before: one unreadable entry, no calls)
            return Look(Calls.empty(), None, 1)
        return Look(usage.calls, usage.first_ts, usage.bad)

    results = fleet.map(hosts, one, label=f"read {source.type}")
    out: dict[str, Look | str] = {}
    for host in hosts:
        r = results[host]
        out[host] = r.value if r.value is not None else f"cannot read {source.type} on {host}: {r.error}"
    return out


def fetch_batches(
    fleet: Fleet, source: HostFileSource, hosts: tuple[str, ...]
) -> dict[str, UsageBatch | str]:
    """Read the source on every host: a batch of records, or why the host could not be read."""

    def one(session: HostSession) -> UsageBatch:
        path = source.path.replace("{host}", session.host)
        found = session.read(path)
        if found.sha256 is None or found.data is None:
            return UsageBatch()  # no traffic recorded yet on this host
        if source.type == "usage-log":
            return _parsed(found.sha256, lambda: _grown(session.host, path, found.data or b""))
        wal = session.read(path + "-wal")
        key = f"{found.sha256}+{wal.sha256}"
        return _parsed(key, lambda: read_opencode_bytes(found.data or b"", wal.data))

    results = fleet.map(hosts, one, label=f"read {source.type}")
    out: dict[str, UsageBatch | str] = {}
    for host in hosts:
        r = results[host]
        out[host] = r.value if r.value is not None else f"cannot read {source.type} on {host}: {r.error}"
    return out


# A usage log grows by appending: keep each host's parsed prefix (up to its last whole line) and
# parse only what was added since, so a gate sampled every second does not re-read the whole log.
_prefixes: dict[tuple[str, str], tuple[int, bytes, UsageBatch]] = {}


def _grown(host: str, path: str, data: bytes) -> UsageBatch:
    """Parse a usage log's bytes, reusing the parse of a prefix seen before on this host."""
    key = (host, path)
    with _cache_lock:
        seen = _prefixes.get(key)
    end = data.rfind(b"\n") + 1
    if seen is not None and seen[0] <= end and hashlib.sha256(data[: seen[0]]).digest() == seen[1]:
        size, _, before = seen
        added = read_usage_bytes(data[size:end])
        lines = data[:size].count(b"\n")
        batch = UsageBatch(
            before.records + added.records,
            before.bad_lines + [(n + lines, why) for n, why in added.bad_lines],
        )
    else:
        batch = read_usage_bytes(data[:end])
    with _cache_lock:
        if len(_prefixes) >= 4 * _CACHE_SIZE:
            _prefixes.pop(next(iter(_prefixes)))
        _prefixes[key] = (end, hashlib.sha256(data[:end]).digest(), batch)
    tail = read_usage_bytes(data[end:]) if end < len(data) else UsageBatch()
    return UsageBatch(batch.records + tail.records, batch.bad_lines + tail.bad_lines)


def _parsed(key: str, parse: Callable[[], UsageBatch]) -> UsageBatch:
    """Return the parsed batch for content `key` (a sha256), parsing it on first sight."""
    with _cache_lock:
        found = _parsed_cache.get(key)
    if found is None:
        found = parse()
        with _cache_lock:
            if len(_parsed_cache) >= _CACHE_SIZE:
                _parsed_cache.pop(next(iter(_parsed_cache)))
            _parsed_cache[key] = found
    return UsageBatch(list(found.records), list(found.bad_lines))
