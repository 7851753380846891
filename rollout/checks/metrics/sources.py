"""Where metric data comes from: usage logs and OpenCode stores on each host, or Prometheus."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

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
from rollout.hosts.fleet import Fleet, HostResult
from rollout.hosts.transports.base import HostSession
from rollout.models.calls import Calls
from rollout.models.usage import UsageBatch, read_usage_bytes

T = TypeVar("T")

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

    return _per_host(fleet.map(hosts, one, label=f"read {source.type}"), hosts, source.type)


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
            return _parsed(found.sha256, lambda: read_usage_bytes(found.data or b""))
        wal = session.read(path + "-wal")
        key = f"{found.sha256}+{wal.sha256}"
        return _parsed(key, lambda: read_opencode_bytes(found.data or b"", wal.data))

    return _per_host(fleet.map(hosts, one, label=f"read {source.type}"), hosts, source.type)


def _per_host(results: dict[str, HostResult[T]], hosts: tuple[str, ...], kind: str) -> dict[str, T | str]:
    """Return each host's value, or why the host could not be read."""
    return {
        h: v if (v := results[h].value) is not None else f"cannot read {kind} on {h}: {results[h].error}"
        for h in hosts
    }


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
