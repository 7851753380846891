"""Checks shared by every kind with failover chains: self-reference, duplicates, length, cycles."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from rollout.configkinds.locate import JsonPath, LocatedProblems

MAX_CHAIN = 5  # longer chains mostly add latency: each step waits for the previous one to fail


@dataclass
class Chain:
    """One failover chain: `owner` ("agent CoderAgent") falls back from `primary` through entries."""

    owner: str
    path: JsonPath  # where the chain itself sits
    primary: str | None
    entries: list[tuple[JsonPath, str]] = field(default_factory=list)  # (path, model or group)


def check_chains(
    chains: list[Chain],
    report: LocatedProblems,
    provider_of: Callable[[str], set[str]],
    limit: int = MAX_CHAIN,
) -> None:
    """LocatedProblems self-references, duplicates, over-long chains, single-provider chains and cycles."""
    edges: dict[str, dict[str, Chain]] = {}
    for chain in chains:
        seen: dict[str, int] = {}
        previous = chain.primary
        for index, (path, target) in enumerate(chain.entries):
            if chain.primary is not None and target == chain.primary:
                report.error(path, f"{chain.owner} falls back to its own primary {target}")
                continue
            if target in seen:
                report.error(
                    path, f"{chain.owner} lists {target} twice (entries {seen[target] + 1} and {index + 1})"
                )
                continue
            seen[target] = index
            if previous is not None:
                edges.setdefault(previous, {}).setdefault(target, chain)
            previous = target
        if len(chain.entries) > limit:
            report.error(
                chain.path,
                f"{chain.owner} has {len(chain.entries)} fallbacks; at most {limit} are allowed",
            )
        members = ([chain.primary] if chain.primary else []) + [t for _, t in chain.entries]
        providers = set().union(*(provider_of(m) for m in members)) if members else set()
        if chain.entries and len(providers) == 1:
            (provider,) = providers
            report.warn(
                chain.path,
                f"{chain.owner}: the whole chain is on provider {provider!r} "
                "(one outage or rate limit stops every step)",
            )
    for cycle in _cycles(edges):
        owners = sorted({edges[a][b].owner for a, b in zip(cycle, cycle[1:], strict=False)})
        first = edges[cycle[0]][cycle[1]]
        report.error(first.path, f"fallback cycle {' -> '.join(cycle)} (through {', '.join(owners)})")


def _cycles(edges: dict[str, dict[str, Chain]]) -> list[list[str]]:
    """Return one closed walk per cycle found by depth-first search (a -> b -> a)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in edges.get(node, {}):
            if state.get(nxt) == 1:
                found.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    return found
