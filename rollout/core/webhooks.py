"""The playbook's `notify:` list: which webhooks, for which events, in which format (edges/notify sends them)."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rollout.util.durations import parse_duration
from rollout.util.errors import BadInput

EVENTS = (
    "started",
    "stage-live",
    "gate-passed",
    "gate-failed",
    "rolled-back",
    "rollback-failed",
    "aborted",
    "paused",
    "resumed",
    "deadline",
    "complete",
    "reverted",
    "inconclusive",
)
FORMATS = ("json", "slack")
WEBHOOK_KEYS = {"url", "events", "format", "headers", "timeout", "retry_for"}


@dataclass(frozen=True)
class Webhook:
    """One `notify:` entry; header values may name environment variables as ${NAME}."""

    url: str
    events: tuple[str, ...] = EVENTS
    format: str = "json"
    headers: tuple[tuple[str, str], ...] = ()
    timeout: float = 5.0
    retry_for: float = 30.0

    @property
    def shown(self) -> str:
        """The URL as it may be shown: scheme and host only (a Slack URL's path is its secret)."""
        parts = urllib.parse.urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/…"


Fail = Callable[[str, str], BadInput]


def parse(value: Any, fail: Fail) -> tuple[Webhook, ...]:
    """Validate the playbook's `notify:` list; `fail(field, message)` makes the BadInput to raise."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise fail("notify", "must be a list of webhooks ({url, events, format, headers, timeout})")
    return tuple(_webhook(item, f"notify[{i}]", fail) for i, item in enumerate(value))


def _webhook(item: Any, at: str, fail: Fail) -> Webhook:
    if not isinstance(item, dict):
        raise fail(at, f"must be a mapping with a url, got {type(item).__name__}")
    extra = sorted(set(item) - WEBHOOK_KEYS, key=str)
    if extra:
        raise fail(f"{at}.{extra[0]}", f"unknown key (expected one of: {', '.join(sorted(WEBHOOK_KEYS))})")
    url = item.get("url")
    parts = urllib.parse.urlsplit(url) if isinstance(url, str) else None
    if not isinstance(url, str) or parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise fail(f"{at}.url", f"must be an http:// or https:// URL, got {url!r}")
    events = item.get("events", list(EVENTS))
    if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
        raise fail(f"{at}.events", f"must be a non-empty list of events ({', '.join(EVENTS)})")
    for name in events:
        if name not in EVENTS:
            raise fail(f"{at}.events", f"unknown event {name!r} (known: {', '.join(EVENTS)})")
    form = item.get("format", "json")
    if form not in FORMATS:
        raise fail(f"{at}.format", f"must be json or slack, got {form!r}")
    headers = item.get("headers", {}) or {}
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str | int) for k, v in headers.items()
    ):
        raise fail(f"{at}.headers", "must map header names to strings (${NAME} reads the environment)")
    seconds = {}
    for key, default in (("timeout", 5.0), ("retry_for", 30.0)):
        got = parse_duration(item.get(key, default))
        if got is None or (key == "timeout" and got <= 0):
            raise fail(f"{at}.{key}", f"must be a duration like 5s, got {item.get(key)!r}")
        seconds[key] = got
    return Webhook(
        url=url,
        events=tuple(events),
        format=form,
        headers=tuple((k, str(v)) for k, v in headers.items()),
        timeout=seconds["timeout"],
        retry_for=seconds["retry_for"],
    )
