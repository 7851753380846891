"""Cohort selection: deterministic, sticky, nested (the 25% cohort inside the 50% one)."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence


def host_order(hosts: Sequence[str], seed: str) -> list[str]:
    """Return the hosts in the order they go live: by sha256 of seed and host, stable across runs."""
    return sorted(hosts, key=lambda h: (hashlib.sha256(f"{seed}\0{h}".encode()).hexdigest(), h))


def cohort_size(percent: int, total: int) -> int:
    """Return ceil(percent/100 * total), at least 1 (0 for shadow)."""
    if percent <= 0:
        return 0
    return max(1, min(total, math.ceil(percent * total / 100)))


def cohort_for(percent: int, order: Sequence[str]) -> list[str]:
    """Return the hosts live at `percent`: a prefix of the recorded order, so cohorts nest."""
    return list(order[: cohort_size(percent, len(order))])
