"""What a metric check's `source:` names (parsed with the playbook; nothing here reads a host)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rollout.util.errors import BadInput

DEFAULT_OPENCODE_PATH = "~/.local/share/opencode/opencode.db"

SOURCE_TYPES = ("usage-log", "prometheus", "opencode")


@dataclass(frozen=True)
class HostFileSource:
    """A file on each host ({host} substituted), read through the transport."""

    type: str  # "usage-log" | "opencode"
    path: str


@dataclass(frozen=True)
class PrometheusSource:
    """A PromQL query for the metric's value (and optionally one for the sample count)."""

    url: str
    query: str
    samples_query: str | None = None
    type: str = "prometheus"


Source = HostFileSource | PrometheusSource


def parse_source(value: Any, where: str) -> Source:
    """Validate a check's `source:` mapping; raise BadInput naming the field."""
    if not isinstance(value, dict):
        raise BadInput(f"{where}.source: must be a mapping with a type ({', '.join(SOURCE_TYPES)})")
    kind = value.get("type")
    if kind not in SOURCE_TYPES:
        raise BadInput(
            f"{where}.source.type: unknown source type {kind!r} (known: {', '.join(SOURCE_TYPES)})"
        )
    allowed = {"usage-log": {"type", "path"}, "opencode": {"type", "path"}}.get(
        kind, {"type", "url", "query", "samples_query"}
    )
    extra = sorted(set(value) - allowed, key=str)
    if extra:
        raise BadInput(
            f"{where}.source.{extra[0]}: unknown key for source {kind!r} "
            f"(expected: {', '.join(sorted(allowed))})"
        )

    def text(key: str, default: str | None = None) -> str:
        found = value.get(key, default)
        if not isinstance(found, str) or not found.strip():
            raise BadInput(f"{where}.source.{key}: must be a non-empty string, got {found!r}")
        return found

    if kind == "usage-log":
        return HostFileSource("usage-log", text("path"))
    if kind == "opencode":
        return HostFileSource("opencode", text("path", DEFAULT_OPENCODE_PATH))
    url = text("url")
    if not url.startswith(("http://", "https://")):
        raise BadInput(f"{where}.source.url: must start with http:// or https://, got {url!r}")
    samples = text("samples_query") if "samples_query" in value else None
    return PrometheusSource(url, text("query"), samples)
