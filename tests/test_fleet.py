"""The fan-out: bounded, prestarted threads, one session per host, failures as results."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from rollout.hosts.fleet import Fleet, started_pool


def _pool_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("rollout-host")}


def test_started_pool_has_every_thread_running_before_any_work() -> None:
    before = _pool_threads()
    pool = started_pool(6)
    try:
        assert len(_pool_threads() - before) == 6
        # Work given afterwards runs on those threads: no new one is started.
        names = set(pool.map(lambda _: threading.current_thread().name, range(30)))
        assert len(_pool_threads() - before) == 6 and len(names) <= 6
    finally:
        pool.shutdown()


@dataclass
class _Session:
    host: str


@dataclass
class _Transport:
    concurrency: int
    name: str = "fake"
    opened: list[str] = field(default_factory=list)

    def open(self, host: str) -> _Session:
        self.opened.append(host)
        if host.startswith("down"):
            raise OSError(f"{host}: connection refused")
        return _Session(host)

    def resolve_path(self, template: str, host: str) -> str:
        return template


def test_map_grows_its_pool_reuses_sessions_and_turns_failures_into_results() -> None:
    transport = _Transport(concurrency=4)
    with Fleet(transport) as fleet:  # type: ignore[arg-type]
        first = fleet.map(["a", "b"], lambda s: s.host.upper())
        hosts = ["a", "b", "c", "d", "e", "down-1"]
        second = fleet.map(hosts, lambda s: s.host.upper())
    assert {h: r.value for h, r in first.items()} == {"a": "A", "b": "B"}
    assert [second[h].value for h in hosts[:5]] == ["A", "B", "C", "D", "E"]
    assert second["down-1"].value is None and "connection refused" in (second["down-1"].error or "")
    assert sorted(transport.opened) == ["a", "b", "c", "d", "down-1", "e"]  # a and b opened once
