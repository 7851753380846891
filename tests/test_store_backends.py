"""The store's contract, run against both backends: the folder and a real PostgreSQL server."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rollout.core.machine import Phase
from rollout.core.state import HostRecord, HostState, RolloutState
from rollout.edges import journal
from rollout.edges.backends import StateAt, open_store
from rollout.edges.store import Store, backup_names
from rollout.util.errors import BadInput, Refused

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["folder", "postgresql"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> StateAt:
    """Where a store is: a folder, or a namespace of its own on the session's PostgreSQL server."""
    if request.param == "folder":
        return tmp_path / "state"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def backend(where: StateAt) -> Iterator[Store]:
    yield open_store(where)


def _state(
    name: str = "r", hosts: tuple[str, ...] = ("a", "b;c", "d"), created: str = "2026-01-01"
) -> RolloutState:
    names = backup_names(list(hosts))
    return RolloutState(
        name=name,
        phase=Phase.SHADOW,
        stage="shadow",
        created=created,
        candidate_name="candidate.json",
        candidate_sha256=hashlib.sha256(b"cand").hexdigest(),
        hosts={h: HostRecord(HostState.SHADOW, "x", "y", 0o644, None, backup=names[h]) for h in hosts},
    )


def test_create_save_and_load(backend: Store) -> None:
    made = backend.create(
        "web rollout", _state(), {"playbook.yml": b"name: r\n", "candidate/candidate.json": b"cand"}
    )
    assert made.id.startswith("web_rollout-")
    assert made.state.journal == journal.new_head()
    made.state.stage = "25%"
    made.state.percent = 25
    made.save()
    again = backend.pick(made.id, "look")
    assert (again.state.stage, again.state.percent, again.state.hosts.keys()) == (
        "25%",
        25,
        made.state.hosts.keys(),
    )
    assert again.candidate() == b"cand"
    assert again.playbook_copy.read_bytes() == b"name: r\n"  # a real path, for the verbs that load it
    assert again.reloaded().state.percent == 25


def test_two_rollouts_of_one_name_in_one_second_get_two_ids(backend: Store) -> None:
    first = backend.create("r", _state())
    first.state.phase = Phase.COMPLETE
    first.save()
    second = backend.create("r", _state(created="2026-01-02"))
    assert first.id != second.id
    assert [r.id for r in backend.rollouts()] == [first.id, second.id]


def test_pick_and_active(backend: Store) -> None:
    with pytest.raises(Refused, match="no active rollout"):
        backend.pick(None, "advance")
    done = backend.create("old", _state(created="2026-01-01"))
    done.state.phase = Phase.ROLLED_BACK
    done.save()
    assert backend.active() is None
    assert backend.pick(None, "status", fallback_latest=True).id == done.id
    live = backend.create("new", _state(created="2026-01-02"))
    active = backend.active()
    assert active is not None and active.id == live.id
    assert backend.pick(None, "advance").id == live.id
    with pytest.raises(BadInput, match="no rollout with id 'nope'"):
        backend.pick("nope", "status")


def test_journal_appends_and_chains(backend: Store) -> None:
    r = backend.create("r", _state())
    r.log("started", hosts=["a"])
    r.state.stage = "25%"
    r.commit("stage-entered")
    r.log("note", text="ünïcode ✓")
    events = r.events()
    assert [e["event"] for e in events] == ["started", "stage-entered", "note"]
    assert [e["seq"] for e in events] == [1, 2, 3]
    assert events[1]["prev"] == journal.line_hash(r.journal_bytes().split(b"\n")[0])
    fresh = backend.pick(r.id, "look")
    assert fresh.state.journal == {
        "seq": 3,
        "sha256": journal.line_hash(fresh.journal_bytes().split(b"\n")[2]),
    }
    assert fresh.state.stage == "25%"  # commit saved the state with its line
    found = journal.verify_bytes(fresh.journal_bytes(), fresh.state.journal)
    assert (found.status, found.lines) == ("whole", 3)
    # A line appended past the head (an undelivered webhook's record) keeps the chain whole.
    r.append_event({"event": "notify-undelivered"})
    assert journal.verify_bytes(r.journal_bytes(), backend.pick(r.id, "look").state.journal).status == "whole"
    # A head that names a line the journal does not hold is caught.
    broken = journal.verify_bytes(r.journal_bytes(), {"seq": 9, "sha256": "0" * 64})
    assert broken.status == "broken"


def test_require_intact_refuses_a_head_that_does_not_match(backend: Store) -> None:
    r = backend.create("r", _state())
    r.log("started")
    r.state.journal = {"seq": 1, "sha256": "f" * 64}
    with pytest.raises(Refused, match="fails verification"):
        journal.require_intact(r, "advance", force=False)


@pytest.mark.parametrize(
    "data",
    [b"", b"\xff\xfe\x00binary\x80", b"plain text\n", bytes(range(256)) * 40],
    ids=["empty", "non-utf8", "text", "big"],
)
def test_backups_are_bytes(backend: Store, data: bytes) -> None:
    r = backend.create("r", _state())
    r.write_backups({"a": data, "b;c": data, "d": b"other"})
    fresh = backend.pick(r.id, "look")
    assert fresh.read_backup("a") == data
    assert fresh.read_backup("b;c") == data
    assert fresh.read_backup("d") == b"other"
    r.write_backups({"d": b"again"})  # written again (a retry): the new bytes win
    assert backend.pick(r.id, "look").read_backup("d") == b"again"


def test_a_host_with_no_file_has_no_backup(backend: Store) -> None:
    state = _state()
    state.hosts["a"].baseline_sha256 = None
    r = backend.create("r", state)
    assert r.read_backup("a") is None


def test_blobs(backend: Store) -> None:
    r = backend.create("r", _state())
    assert r.read_blob("metrics/cursor.json") is None
    r.write_blob("metrics/cursor.json", b'{"a": 1}')
    r.write_blob("metrics/cursor.json", b'{"a": 2}')
    r.write_blob("diffs/0.txt", b"\xff\x00")
    r.write_blob("empty", b"")
    fresh = backend.pick(r.id, "look")
    assert fresh.read_blob("metrics/cursor.json") == b'{"a": 2}'
    assert fresh.read_blob("diffs/0.txt") == b"\xff\x00"
    assert fresh.read_blob("empty") == b""
    other = backend.create("r2", _state(created="2026-01-02"))
    assert other.read_blob("metrics/cursor.json") is None  # blobs belong to their rollout


HOLDER = """
import sys
from rollout.edges.backends import open_store
with open_store(sys.argv[1]).lock():
    print("held", flush=True)
    sys.stdin.read()
"""


def _hold(where: StateAt) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(where)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_lock_is_exclusive_across_processes_and_let_go_by_a_kill_9(backend: Store, where: StateAt) -> None:
    with backend.lock():
        assert backend.busy()
    assert not backend.busy()
    holder = _hold(where)
    try:
        assert backend.busy()
        with (
            pytest.raises(Refused, match=r"another rollout operation holds the lock on .* \(pid \d+"),
            backend.lock(),
        ):
            pytest.fail("the lock was taken twice")
        second = open_store(where)  # another operator's store, to the same place
        with pytest.raises(Refused, match="nothing changed, try again when it is done"), second.lock():
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with backend.lock():  # the dead holder's lock is gone with it
        pass


def test_the_lock_is_let_go_when_the_operation_ends(backend: Store) -> None:
    with backend.lock():
        pass
    with backend.lock():
        pass
    with pytest.raises(RuntimeError), backend.lock():
        raise RuntimeError("an operation that failed")
    with backend.lock():
        pass


def test_namespaces_are_separate(postgres: Any) -> None:
    team_a = open_store(postgres.url("postgres", namespace="team-a"))
    team_b = open_store(postgres.url("postgres", namespace="team-b"))
    made = team_a.create("r", _state())
    assert [r.id for r in team_a.rollouts()] == [made.id]
    assert team_b.rollouts() == []
    with team_a.lock(), team_b.lock():  # one operation at a time per namespace, not per server
        assert team_a.busy() and team_b.busy()


def test_the_journal_table_is_append_only(pg_url: str) -> None:
    import psycopg

    store = open_store(pg_url)
    r = store.create("r", _state())
    r.log("started")
    conninfo = pg_url.split("?")[0]
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for sql in ("UPDATE rollout_events SET line = 'x'", "DELETE FROM rollout_events"):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute(sql)
    assert [e["event"] for e in r.events()] == ["started"]


def test_a_password_never_shows_in_messages(postgres: Any) -> None:
    from rollout.edges.pgstore import shown_url, split_url

    url = f"postgresql://postgres:s3cret@127.0.0.1:{postgres.port}/postgres?namespace=x&sslmode=disable"
    conninfo, namespace, shown = split_url(url)
    assert namespace == "x" and "namespace" not in conninfo and "sslmode=disable" in conninfo
    assert "s3cret" not in shown and "s3cret" not in shown_url(url)
    assert "s3cret" not in open_store(url).where


def test_a_lock_held_by_a_process_killed_here_is_taken_once_the_server_sees_it_gone(pg_url: str) -> None:
    store = open_store(pg_url)
    for _ in range(3):  # the server may need a moment after the kill: the lock waits for it, never refuses
        holder = _hold(pg_url)
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        with store.lock():
            pass
