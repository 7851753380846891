"""Check-kind registry: a check's kind is named by `kind:` or by the key that defines it."""

from __future__ import annotations

import importlib

from rollout.checks.base import CheckKind

# kind name -> module with a module-level KIND; imported only when a check of that kind is used.
_REGISTRY: dict[str, str] = {
    "run": "rollout.checks.command",
    "metric": "rollout.checks.metric",
    "http": "rollout.checks.http",
}


def names() -> list[str]:
    """Return the registered check kinds."""
    return sorted(_REGISTRY)


def kind(name: str) -> CheckKind:
    """Return the check kind registered under `name`."""
    module = importlib.import_module(_REGISTRY[name])
    found: CheckKind = module.KIND
    return found


def infer(spec: dict[str, object]) -> str | None:
    """Return the kind of a check entry: its `kind:`, else the first registered key it carries."""
    explicit = spec.get("kind")
    if isinstance(explicit, str):
        return explicit
    for name in _REGISTRY:
        if name in spec:
            return name
    return None
