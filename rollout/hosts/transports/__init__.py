"""Transport registry: `targets.transport` names one of these."""

from __future__ import annotations

import importlib

from rollout.hosts.transports.base import TransportKind

# name -> module holding a module-level KIND; imported lazily so `status` never loads fabric.
_REGISTRY = {
    "local": "rollout.hosts.transports.local",
    "ssh": "rollout.hosts.transports.ssh",
}


def names() -> list[str]:
    """Return the transport names a playbook may use."""
    return sorted(_REGISTRY)


def kind(name: str) -> TransportKind:
    """Return the transport kind registered under `name`."""
    module = importlib.import_module(_REGISTRY[name])
    found: TransportKind = module.KIND
    return found
