"""The one shape of the three registries (config kinds, check kinds, transports).

Each maps a name a playbook writes to `"module:ATTRIBUTE"`; the module is imported only when its
entry is first asked for, so `rollout status` never loads fabric, jsonschema or an HTTP client.
"""

from __future__ import annotations

import importlib
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Names -> lazily imported entries of one kind."""

    def __init__(self, entries: dict[str, str]) -> None:
        self._entries = entries

    def names(self) -> list[str]:
        """Return the registered names, sorted."""
        return sorted(self._entries)

    def in_order(self) -> list[str]:
        """Return the registered names in the order they were registered."""
        return list(self._entries)

    def get(self, name: str) -> T:
        """Return the entry registered under `name` (KeyError for an unknown name)."""
        module, attr = self._entries[name].split(":")
        found: T = getattr(importlib.import_module(module), attr)
        return found
