"""The laptop side of a pull fleet (issue 15), through the real CLI with a real `rollout serve` and
real `rollout agent --once` processes on loopback: `ready` run by the agent, a report whose answer
was lost sent again with the same id, a write racing the agent's swap, the token file's mode."""

from __future__ import annotations

import json
import os
import socket
import socketserver
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_pull import (
    ACTIVATE,
    CANDIDATE,
    CANDIDATE_B,
    PullFleet,
    _log,
    _to_25,
    baseline_b,
    baseline_of,
    forwarded,
    make,
    make_bundle,
    second,
)
from tests.test_serve import start_serve, stop

SECRET = "abcdef0123456789xyz"
# Counts its tries in the home folder; ready from the third, unless `never-ready` is there (then it
# says a secret, which must reach nobody); with `kill-me` it kills the agent running it, once.
READY_SCRIPT = (
    "      n=$(cat tries 2>/dev/null || echo 0); n=$((n+1)); echo $n > tries\n"
    '      echo "$ROLLOUT_ACTION $ROLLOUT_HOST $ROLLOUT_STAGE $ROLLOUT_PERCENT" >> ready.log\n'
    "      if [ -e kill-me ]; then rm kill-me; kill -9 $PPID; exit 1; fi\n"
    '      if [ -e never-ready ]; then echo "still starting, token: $(cat secret)"; exit 7; fi\n'
    "      [ $n -ge 3 ]\n"
)


def ready_block(run: str = READY_SCRIPT, timeout: str = "5s", interval: str = "0.1", deadline: str = "3s") -> str:
    return f"  ready:\n    run: |\n{run}    timeout: {timeout}\n    interval: {interval}\n    deadline: {deadline}\n"


def serving(fleet: PullFleet) -> PullFleet:
    fleet.server = start_serve(fleet.state)
    return fleet


@pytest.fixture
def ready(tmp_path: Path) -> Iterator[PullFleet]:
    fleet = serving(make_bundle(tmp_path, ACTIVATE + ready_block()))
    yield fleet
    assert fleet.server is not None
    if fleet.server.proc.poll() is None:
        assert stop(fleet.server) == 0


def tries(fleet: PullFleet, host: str) -> list[str]:
    path = fleet.home(host) / "ready.log"
    return path.read_text().splitlines() if path.exists() else []


def test_ready_is_tried_on_the_laptop_until_it_passes_and_not_after_a_restore(ready: PullFleet) -> None:
    fleet = ready
    assert fleet.rollout("validate", str(fleet.playbook)).returncode == 0  # ready is no longer refused
    first = _to_25(fleet)
    assert tries(fleet, first) == []  # uploading a baseline runs nothing
    done = fleet.agent(first)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ready after 3 tries" in done.stdout, done.stdout
    assert tries(fleet, first) == [f"switch {first} 25% 25"] * 3  # the pushed host's variables
    assert _log(fleet, first) == [f"switch {first} 2"]  # activate first, then ready
    assert fleet.states()[first] == "candidate"
    fleet.poll(first)  # in step: nothing runs again
    assert len(tries(fleet, first)) == 3
    assert fleet.rollout("abort").returncode == 4
    fleet.poll()
    assert fleet.rollout("abort").returncode == 0
    assert len(tries(fleet, first)) == 3  # as for a pushed host, ready does not run after a restore
    assert _log(fleet, first) == [f"switch {first} 2", f"restore {first} 2"]
    for host in fleet.hosts:
        assert fleet.file(host).read_bytes() == baseline_of(host)
        assert second(fleet, host).read_bytes() == baseline_b(host)


def test_a_laptop_not_ready_in_time_is_a_failed_switch_and_the_rollout_rolls_back(ready: PullFleet) -> None:
    fleet = ready
    first = _to_25(fleet)
    (fleet.home(first) / "never-ready").write_text("")
    (fleet.home(first) / "secret").write_text(SECRET)
    done = fleet.agent(first)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "switch failed: not ready after" in done.stderr, done.stderr
    assert SECRET not in done.stdout + done.stderr
    assert len(tries(fleet, first)) > 1  # tried again until the deadline
    assert fleet.file(first).read_bytes() == baseline_of(first)  # both files put back
    assert second(fleet, first).read_bytes() == baseline_b(first)
    assert _log(fleet, first) == [f"switch {first} 2", f"restore {first} 2"]
    host = fleet.status()["hosts"][first]
    assert host["state"] == "baseline", host
    assert host["reason"].startswith("switch failed on the laptop: not ready after"), host
    assert "still starting, token: ***REDACTED***" in host["reason"], host
    assert SECRET not in json.dumps(fleet.status())
    gated = fleet.rollout("advance")
    assert gated.returncode == 3 and "switch failed" in gated.stdout, gated.stdout + gated.stderr
    assert fleet.status()["state"] == "rolled-back"
    fleet.poll()
    for h in fleet.hosts:
        assert fleet.file(h).read_bytes() == baseline_of(h)
        assert second(fleet, h).read_bytes() == baseline_b(h)


@pytest.mark.parametrize("then", ["ready", "never-ready"])
def test_an_agent_killed_while_ready_runs_is_not_confirmed_until_the_next_poll_finishes(
    ready: PullFleet, then: str
) -> None:
    fleet = ready
    first = _to_25(fleet)
    (fleet.home(first) / "kill-me").write_text("")
    killed = fleet.agent(first)
    assert killed.returncode == -9, killed.stdout + killed.stderr
    assert fleet.file(first).read_bytes() == CANDIDATE  # written, not yet ready: no report was sent
    assert fleet.states()[first] == "pending"
    if then == "never-ready":
        (fleet.home(first) / "never-ready").write_text("")
    done = fleet.agent(first)  # finishes the switch the dead poll left: activate and ready again
    assert _log(fleet, first)[:2] == [f"switch {first} 2", f"switch {first} 2"]
    if then == "ready":
        assert done.returncode == 0, done.stdout + done.stderr
        assert fleet.states()[first] == "candidate"
        assert second(fleet, first).read_bytes() == CANDIDATE_B
    else:
        assert done.returncode == 3, done.stdout + done.stderr
        # The bytes the dead poll kept before writing are put back.
        assert fleet.file(first).read_bytes() == baseline_of(first)
        assert second(fleet, first).read_bytes() == baseline_b(first)
        host = fleet.status()["hosts"][first]
        assert host["state"] == "baseline" and "not ready" in host["switch_failed"], host
    state = json.loads(agent_state(fleet, first).read_text())
    assert "switching" not in state


def agent_state(fleet: PullFleet, host: str) -> Path:
    return fleet.home(host) / ".local" / "state" / "rollout-agent" / f"{host}.json"


def test_a_ready_command_that_hangs_is_killed_with_its_children_at_its_timeout(tmp_path: Path) -> None:
    hang = "      echo $$ > shell.pid; sleep 300 & echo $! > child.pid; wait\n"
    fleet = serving(make(tmp_path, hosts=("lap-a",), stages="[shadow, 100]"))
    text = fleet.playbook.read_text().replace("targets:", ready_block(hang, "1s", "0.1", "1s") + "targets:", 1)
    fleet.playbook.write_text(text)
    try:
        assert fleet.rollout("start", str(fleet.playbook)).returncode == 0
        fleet.poll()
        assert fleet.rollout("advance").returncode == 0
        done = fleet.agent("lap-a")
        assert done.returncode == 3, done.stdout + done.stderr
        assert "timed out after 1s" in done.stderr, done.stderr
        for name in ("shell.pid", "child.pid"):
            pid = int((fleet.home("lap-a") / name).read_text())
            assert not alive(pid), name
        assert fleet.file("lap-a").read_bytes() == baseline_of("lap-a")
    finally:
        assert stop(fleet.server) == 0  # type: ignore[arg-type]


def alive(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return False
    return fields[0] != "Z"  # a zombie waiting for its reaper runs nothing


# -- a report whose answer was lost is sent again, unchanged ------------------------------------
class _Proxy(socketserver.ThreadingTCPServer):
    """Loopback TCP proxy to the real server; with `drop` set, a POST is forwarded (or, with
    `before`, not) and the connection closed without relaying the answer."""

    daemon_threads = True
    allow_reuse_address = True
    drop = False
    before = False
    upstream: tuple[str, int] = ("127.0.0.1", 0)
    dropped = 0


class _Relay(socketserver.BaseRequestHandler):
    server: _Proxy

    def handle(self) -> None:
        request = _read_request(self.request)
        is_post = request.startswith(b"POST ")
        if is_post and self.server.drop and self.server.before:
            self.server.dropped += 1
            return  # never reaches the server
        with socket.create_connection(self.server.upstream, timeout=30) as up:
            up.sendall(request)
            answer = b""
            while chunk := up.recv(65536):
                answer += chunk
        if is_post and self.server.drop:
            self.server.dropped += 1
            return  # the server kept it; its answer is lost
        self.request.sendall(answer)


def _read_request(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")),
        0,
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[tuple[PullFleet, _Proxy]]:
    fleet = serving(make(tmp_path, hosts=("lap-a",)))
    assert fleet.server is not None
    parts = fleet.server.url.split("//", 1)[1].split("/", 1)[0].split(":")
    proxy = _Proxy(("127.0.0.1", 0), _Relay)
    proxy.upstream = (parts[0], int(parts[1]))
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    yield fleet, proxy
    proxy.shutdown()
    proxy.server_close()
    assert stop(fleet.server) == 0


def _records(n: int, start: int = 0) -> bytes:
    return b"".join(
        json.dumps({"time": f"2026-01-01T00:00:{i:02d}Z", "agent": "build", "model": "x/y", "cost_usd": 0.01 * i}).encode()
        + b"\n"
        for i in range(start, start + n)
    )


@pytest.mark.parametrize("lost", ["answer", "request"])
def test_a_report_not_confirmed_is_sent_again_with_its_id_and_counted_once(
    proxied: tuple[PullFleet, _Proxy], lost: str
) -> None:
    fleet, proxy = proxied
    log = fleet.home("lap-a") / "usage.jsonl"
    log.write_bytes(_records(3))
    url = f"http://127.0.0.1:{proxy.server_address[1]}"
    proxy.drop, proxy.before = True, lost == "request"
    failed = fleet.agent("lap-a", "--usage-log", str(log), server=url)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "kept to send again" in failed.stderr, failed.stderr
    assert proxy.dropped == 2  # tried twice, with the same id
    state_file = agent_state(fleet, "lap-a")
    assert state_file.stat().st_mode & 0o777 == 0o600
    state = json.loads(state_file.read_text())
    kept = state["unconfirmed"]
    assert state.get("usage_offset", 0) == 0 and kept["usage_offset"] == log.stat().st_size
    # The server kept it (its answer was lost), or never saw it.
    assert len(forwarded(fleet, "lap-a")) == (3 if lost == "answer" else 0)
    with log.open("ab") as f:
        f.write(_records(2, start=3))
    proxy.drop = False
    done = fleet.agent("lap-a", "--usage-log", str(log), server=url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"report {kept['report_id']} (not confirmed last time) sent again: confirmed" in done.stdout
    assert forwarded(fleet, "lap-a") == [json.loads(line) for line in _records(5).splitlines()]  # each once
    state = json.loads(state_file.read_text())
    assert "unconfirmed" not in state and state["usage_offset"] == log.stat().st_size
    seen = json.loads((fleet.state / ".pull" / "hosts" / "lap-a" / "report.json").read_text())["seen"]
    assert seen.count(kept["report_id"]) == 1 and len(seen) == 2
    fleet.poll("lap-a")  # nothing new: nothing forwarded again
    assert len(forwarded(fleet, "lap-a")) == 5


def test_an_unconfirmed_report_holds_back_the_next_until_it_is_confirmed(proxied: tuple[PullFleet, _Proxy]) -> None:
    fleet, proxy = proxied
    log = fleet.home("lap-a") / "usage.jsonl"
    log.write_bytes(_records(2))
    url = f"http://127.0.0.1:{proxy.server_address[1]}"
    proxy.drop = True
    assert fleet.agent("lap-a", "--usage-log", str(log), server=url).returncode == 1
    first = json.loads(agent_state(fleet, "lap-a").read_text())["unconfirmed"]["report_id"]
    with log.open("ab") as f:
        f.write(_records(1, start=2))
    again = fleet.agent("lap-a", "--usage-log", str(log), server=url)  # still lost: no new report
    assert again.returncode == 1 and "still not confirmed" in again.stderr, again.stderr
    assert json.loads(agent_state(fleet, "lap-a").read_text())["unconfirmed"]["report_id"] == first
    proxy.drop = False
    assert fleet.agent("lap-a", "--usage-log", str(log), server=url).returncode == 0
    assert forwarded(fleet, "lap-a") == [json.loads(line) for line in _records(3).splitlines()]


# -- a write racing the agent's swap ------------------------------------------------------------
MINE = b'{"agent": {"review": {"model": "my/own-edit"}}}\n'


def racing_agent(fleet: PullFleet, host: str, calls: str) -> subprocess.CompletedProcess[str]:
    """Run `rollout agent --once` for `host` with the swaps numbered in `calls` raced (tests/racyswap.py)."""
    assert fleet.server is not None
    env = {**os.environ, "HOME": str(fleet.home(host))}
    cmd = [sys.executable, "-m", "tests.racyswap", calls, MINE.decode(), "agent", "--server", fleet.server.url]
    return subprocess.run(
        [*cmd, "--host", host, "--token-file", str(fleet.tokens[host]), "--once"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip


def test_a_file_changed_during_the_swap_puts_back_the_files_already_written(tmp_path: Path) -> None:
    fleet = serving(make_bundle(tmp_path))
    try:
        first = _to_25(fleet)
        done = racing_agent(fleet, first, "2")  # the second file is saved over just before its swap
        assert done.returncode == 5, done.stdout + done.stderr
        assert "changed during the swap" in done.stderr and "put back" in done.stderr, done.stderr
        # Nothing partial: the first file holds its own bytes again, the second the developer's edit.
        assert fleet.file(first).read_bytes() == baseline_of(first)
        assert second(fleet, first).read_bytes() == MINE
        leftovers = sorted(p.name for p in fleet.file(first).parent.iterdir())
        assert leftovers == ["agents.json", "opencode.json"]
        report = json.loads((fleet.state / ".pull" / "hosts" / first / "report.json").read_text())
        assert any("changed during the swap" in why for why in report["drift"].values()), report
        host = fleet.status()["hosts"][first]
        assert host["state"] == "drifted" and "changed during the swap" in host["reason"], host
        assert host["files"]["main"]["state"] == "pending", host  # its own bytes: never switched
        assert "switching" not in json.loads(agent_state(fleet, first).read_text())
    finally:
        assert stop(fleet.server) == 0  # type: ignore[arg-type]


def test_a_file_changed_again_before_its_put_back_is_left_as_it_is_and_named(tmp_path: Path) -> None:
    fleet = serving(make_bundle(tmp_path))
    try:
        first = _to_25(fleet)
        done = racing_agent(fleet, first, "2,3")  # and the first file is saved over before its put-back
        assert done.returncode == 4, done.stdout + done.stderr
        assert "could not put back" in done.stderr, done.stderr
        assert fleet.file(first).read_bytes() == MINE  # the later write is never clobbered
        assert second(fleet, first).read_bytes() == MINE
        report = json.loads((fleet.state / ".pull" / "hosts" / first / "report.json").read_text())
        assert any("could not put back" in e for e in report["errors"]), report
        assert fleet.status()["hosts"][first]["state"] == "drifted"
    finally:
        assert stop(fleet.server) == 0  # type: ignore[arg-type]


# -- the token file -----------------------------------------------------------------------------
def test_a_token_file_other_users_can_read_is_refused_and_nothing_is_done(tmp_path: Path) -> None:
    fleet = make(tmp_path, hosts=("lap-a",))
    fleet.tokens["lap-a"].chmod(0o644)
    done = fleet.agent("lap-a")
    assert done.returncode == 2, done.stdout + done.stderr
    token = fleet.tokens["lap-a"]
    assert f"--token-file {token} can be read or written by other users (mode 0644)" in done.stderr, done.stderr
    assert f"chmod 600 {token}" in done.stderr and "Traceback" not in done.stderr
    assert not agent_state(fleet, "lap-a").exists()


def test_once_exit_codes(tmp_path: Path) -> None:
    fleet = make(tmp_path, hosts=("lap-a",))
    unreachable = fleet.agent("lap-a")  # nothing listens on port 9
    assert unreachable.returncode == 1 and "nothing written" in unreachable.stderr, unreachable.stderr
    served = serving(fleet)
    try:
        assert fleet.agent("lap-a").returncode == 0  # nothing assigned yet: in step
        assert fleet.rollout("start", str(fleet.playbook)).returncode == 0
        fleet.poll()
        assert fleet.rollout("advance").returncode == 0  # shadow -> 25%: lap-a is the cohort
        # Its poll before the rollout named its file did not count as "no file": its baseline is the
        # bytes it uploaded once the rollout named the file, so it is assigned, not drifted.
        assert fleet.states() == {"lap-a": "pending"}
        fleet.file("lap-a").write_bytes(b'{"model": "mine"}\n')
        drift = fleet.agent("lap-a")
        assert drift.returncode == 5 and "drift" in drift.stderr, drift.stderr
    finally:
        assert stop(served.server) == 0  # type: ignore[arg-type]


@pytest.mark.parametrize("then", ["ready", "never-ready"])
def test_a_host_is_confirmed_only_when_its_agent_says_ready_passed(ready: PullFleet, then: str) -> None:
    import hashlib

    from tests.test_pull import _request

    fleet = ready
    first = _to_25(fleet)
    assert fleet.server is not None
    # An agent of version 1 applies the files and reports them, but never runs ready.
    fleet.file(first).write_bytes(CANDIDATE)
    second(fleet, first).write_bytes(CANDIDATE_B)
    files = [
        {"path": "~/.config/opencode/opencode.json", "sha256": hashlib.sha256(CANDIDATE).hexdigest()},
        {"path": "~/.config/opencode/agents.json", "sha256": hashlib.sha256(CANDIDATE_B).hexdigest()},
    ]
    body = json.dumps({"report_id": "old-1", "agent_version": "1", "files": files}).encode()
    token = fleet.tokens[first].read_text().strip()
    assert _request(fleet.server.url, f"/v1/hosts/{first}/report", token, "POST", body) == 200
    host = fleet.status()["hosts"][first]
    assert host["state"] == "pending" and "(version 1) does not run ready" in host["reason"], host
    held = fleet.rollout("advance")
    assert held.returncode == 5 and first in held.stdout, held.stdout
    # Upgraded, its agent finds the files in place and waits for ready before it says so.
    if then == "never-ready":
        (fleet.home(first) / "never-ready").write_text("")
    done = fleet.agent(first)
    assert tries(fleet, first), "ready was not run"
    assert _log(fleet, first) == []  # the files were in place: nothing applied, nothing activated
    host = fleet.status()["hosts"][first]
    if then == "ready":
        assert done.returncode == 0, done.stdout + done.stderr
        assert host["state"] == "candidate", host
    else:
        assert done.returncode == 1 and "not ready (files found in place)" in done.stderr, done.stderr
        assert host["state"] == "pending", host
        assert host["reason"].startswith("not ready on the laptop: not ready after"), host
        assert fleet.file(first).read_bytes() == CANDIDATE  # nothing to put back with: left, pending
        assert fleet.rollout("advance").returncode == 5


def test_the_opencode_cursor_moves_only_when_the_report_is_confirmed(proxied: tuple[PullFleet, _Proxy]) -> None:
    import time

    from tests import opencode_db
    from tests.test_pull import STORE, store_of

    fleet, proxy = proxied
    now = int(time.time() * 1000) - 600_000  # finished calls, well behind the cursor's minute
    calls = [opencode_db.assistant(now + i * 1000) for i in range(5)]
    opencode_db.create(store_of(fleet, "lap-a"), list(calls)).close()
    url = f"http://127.0.0.1:{proxy.server_address[1]}"
    proxy.drop = True
    assert fleet.agent("lap-a", "--opencode-db", STORE, server=url).returncode == 1
    state = json.loads(agent_state(fleet, "lap-a").read_text())
    assert "opencode_cursor" not in state and state["unconfirmed"]["opencode_cursor"] is not None
    assert len(forwarded(fleet, "lap-a")) == 5  # kept by the server, its answer lost
    more = [opencode_db.assistant(now + 10_000 + i * 1000) for i in range(2)]
    store_of(fleet, "lap-a").unlink()
    opencode_db.create(store_of(fleet, "lap-a"), [*calls, *more]).close()
    proxy.drop = False
    done = fleet.agent("lap-a", "--opencode-db", STORE, server=url)
    assert done.returncode == 0, done.stdout + done.stderr
    got = forwarded(fleet, "lap-a")
    assert sorted(r["ts"] for r in got) == [(now + i * 1000) / 1000 for i in (0, 1, 2, 3, 4, 10, 11)]  # each once
    assert "unconfirmed" not in json.loads(agent_state(fleet, "lap-a").read_text())
