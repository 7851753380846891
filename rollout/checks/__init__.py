"""Check-kind registry: a check's kind is named by `kind:` or by the key that defines it."""

from __future__ import annotations

from rollout.checks.base import CheckKind
from rollout.util.registry import Registry

_KINDS: Registry[CheckKind] = Registry(
    {
        "run": "rollout.checks.command:KIND",
        "metric": "rollout.checks.metric:KIND",
        "http": "rollout.checks.http:KIND",
    }
)
names = _KINDS.names
get = _KINDS.get


def infer(spec: dict[str, object]) -> str | None:
    """Return the kind of a check entry: its `kind:`, else the first registered key it carries."""
    explicit = spec.get("kind")
    if isinstance(explicit, str):
        return explicit
    for name in _KINDS.in_order():
        if name in spec:
            return name
    return None
