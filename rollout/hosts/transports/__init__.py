"""Transport registry: `targets.transport` names one of these."""

from __future__ import annotations

from rollout.hosts.transports.base import TransportKind
from rollout.util.registry import Registry

_KINDS: Registry[TransportKind] = Registry(
    {
        "local": "rollout.hosts.transports.local:KIND",
        "ssh": "rollout.hosts.transports.ssh:KIND",
        "pull": "rollout.hosts.transports.pull:KIND",
    }
)
names = _KINDS.names
get = _KINDS.get
