"""Pull fleets (issue 15) on a PostgreSQL state (`--state postgresql://...`): the real CLI, real
`rollout serve` processes and real `rollout agent --once` processes on loopback, against the real
server of tests/pgserver.py. Two servers on one namespace share the fleet."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.test_pull import CANDIDATE, ERROR_RATE_GATE, PullFleet, _request, baseline_of, make
from tests.test_serve import Served, start_serve, stop


@dataclass
class PgPullFleet(PullFleet):
    url: str = ""
    servers: tuple[Served, ...] = ()

    @property
    def state(self) -> Any:  # the --state URL: every verb, serve and hosts use it
        return self.url

    def rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        namespace = self.url.rsplit("namespace=", 1)[1]
        with psycopg.connect(self.url.split("?")[0], autocommit=True) as conn:
            return conn.execute(sql, (namespace, *args)).fetchall()

    def usage(self, host: str) -> list[dict[str, Any]]:
        found = self.rows("SELECT line FROM pull_usage WHERE namespace = %s AND host = %s ORDER BY seq", host)
        return [json.loads(bytes(r[0])) for r in found]


def pg_fleet(tmp_path: Path, url: str, **kw: Any) -> PgPullFleet:
    hosts = kw.pop("hosts", ("lap-a", "lap-b", "lap-c", "lap-d"))
    fleet = make(tmp_path, hosts=hosts, fleet=PgPullFleet(tmp_path, hosts, url=url), **kw)
    assert isinstance(fleet, PgPullFleet)
    return fleet


@pytest.fixture
def pgpull(tmp_path: Path, pg_url: str) -> Iterator[PgPullFleet]:
    fleet = pg_fleet(tmp_path, pg_url)
    fleet.server = start_serve(fleet.state)
    yield fleet
    if fleet.server.proc.poll() is None:
        assert stop(fleet.server) == 0


def _record(outcome: str) -> dict[str, Any]:
    return {"ts": datetime.now(UTC).isoformat(), "outcome": outcome, "duration_s": 1.0, "model": "x/y"}


def test_hosts_add_list_revoke_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    fleet = pg_fleet(tmp_path, pg_url, hosts=("lap-a", "lap-b"))
    listed = fleet.rollout("hosts", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [h["host"] for h in json.loads(listed.stdout)["hosts"]] == ["lap-a", "lap-b"]
    assert "token" not in listed.stdout
    # Kept hashed on the server, nothing in a state folder here.
    (salt, sha), *_ = fleet.rows("SELECT salt, token_sha256 FROM pull_hosts WHERE namespace = %s AND host = 'lap-a'")
    assert len(sha) == 64 and fleet.tokens["lap-a"].read_text().strip() not in sha
    assert not (tmp_path / "state").exists()
    again = fleet.rollout("hosts", "add", "lap-a")
    assert again.returncode == 2 and "already added" in again.stderr, again.stderr
    revoked = fleet.rollout("hosts", "revoke", "lap-a")
    assert revoked.returncode == 0, revoked.stderr
    listed = fleet.rollout("hosts", "list", "--json")
    assert [h["host"] for h in json.loads(listed.stdout)["hosts"]] == ["lap-b"]
    gone = fleet.rollout("hosts", "revoke", "lap-a")
    assert gone.returncode == 2 and "not added" in gone.stderr, gone.stderr
    # A playbook naming a host not added on the server is refused before anything is touched.
    started = fleet.rollout("start", str(fleet.playbook))
    assert started.returncode == 2 and "lap-a" in started.stderr, started.stderr


def test_pull_on_postgresql_shadow_to_100(pgpull: PgPullFleet) -> None:
    started = pgpull.rollout("start", str(pgpull.playbook))
    assert started.returncode == 0, started.stdout + started.stderr
    assert set(pgpull.states().values()) == {"unknown"}
    pgpull.poll()  # each agent uploads its baseline with its first report
    advanced = pgpull.rollout("advance")
    assert advanced.returncode == 0, advanced.stdout + advanced.stderr
    (first,) = [h for h, s in pgpull.states().items() if s == "pending"]
    held = pgpull.rollout("advance")
    assert held.returncode == 5 and first in held.stdout, held.stdout
    for _ in range(8):
        if pgpull.status()["state"] == "complete":
            break
        pgpull.poll()
        step = pgpull.rollout("advance")
        assert step.returncode in (0, 5), step.stdout + step.stderr
    assert pgpull.status()["state"] == "complete"
    for host in pgpull.hosts:
        assert pgpull.file(host).read_bytes() == CANDIDATE
    assert set(pgpull.states().values()) == {"candidate"}
    # The reports and the assignments live on the server.
    assert {r[0] for r in pgpull.rows("SELECT host FROM pull_reports WHERE namespace = %s")} == set(pgpull.hosts)
    (current,) = pgpull.rows("SELECT rollout FROM pull_current WHERE namespace = %s")
    assert current[0] == pgpull.status()["id"]


def test_pull_usage_gate_on_postgresql_rolls_back(tmp_path: Path, pg_url: str) -> None:
    fleet = pg_fleet(tmp_path, pg_url, stages="[shadow, 50, 100]", hosts=("lap-a", "lap-b"))
    with fleet.playbook.open("a") as f:
        f.write(ERROR_RATE_GATE)
    fleet.server = start_serve(fleet.state)
    try:
        assert fleet.rollout("start", str(fleet.playbook)).returncode == 0
        fleet.poll()
        went = fleet.rollout("advance")  # shadow -> 50%
        assert went.returncode == 0, went.stdout + went.stderr
        (canary,) = [h for h, s in fleet.states().items() if s == "pending"]
        fleet.poll(canary)
        assert fleet.file(canary).read_bytes() == CANDIDATE
        assert fleet.states()[canary] == "candidate"  # folded: its exposure starts before the calls
        log = tmp_path / "usage.jsonl"
        log.write_text("".join(json.dumps(_record("error" if i % 4 else "success")) + "\n" for i in range(20)))
        done = fleet.agent(canary, "--usage-log", str(log))
        assert done.returncode == 0, done.stdout + done.stderr
        assert [r["outcome"] for r in fleet.usage(canary)].count("error") == 15
        advanced = fleet.rollout("advance")
        assert advanced.returncode == 4, advanced.stdout + advanced.stderr  # until it confirms its baseline
        assert "error_rate 75.0% on canary (15/20 calls" in advanced.stdout, advanced.stdout
        fleet.poll(canary)
        assert fleet.file(canary).read_bytes() == baseline_of(canary)
        done_abort = fleet.rollout("abort", "--reason", "errors")
        assert done_abort.returncode == 0, done_abort.stdout + done_abort.stderr
        assert fleet.status()["state"] == "rolled-back"
    finally:
        assert stop(fleet.server) == 0


def test_rollback_on_postgresql_finishes_when_the_agents_confirm(pgpull: PgPullFleet) -> None:
    assert pgpull.rollout("start", str(pgpull.playbook)).returncode == 0
    pgpull.poll()
    assert pgpull.rollout("advance").returncode == 0
    (first,) = [h for h, s in pgpull.states().items() if s == "pending"]
    pgpull.poll(first)
    assert pgpull.file(first).read_bytes() == CANDIDATE
    aborted = pgpull.rollout("abort", "--reason", "cost")
    assert aborted.returncode == 4 and first in aborted.stdout, aborted.stdout + aborted.stderr
    assert pgpull.states()[first] == "pending"
    pgpull.poll(first)
    assert pgpull.file(first).read_bytes() == baseline_of(first)
    done = pgpull.rollout("abort", "--reason", "cost")
    assert done.returncode == 0, done.stdout + done.stderr
    assert pgpull.status()["state"] == "aborted"


def test_two_servers_on_one_namespace_share_the_fleet(tmp_path: Path, pg_url: str) -> None:
    fleet = pg_fleet(tmp_path, pg_url)
    one, two = start_serve(fleet.state), start_serve(fleet.state)
    try:
        assert fleet.rollout("start", str(fleet.playbook)).returncode == 0
        turn = [0]

        def poll_alternating(*hosts: str) -> None:
            for host in hosts or fleet.hosts:
                served = (one, two)[turn[0] % 2]
                turn[0] += 1
                done = fleet.agent(host, server=served.url)
                assert done.returncode == 0, (host, done.stdout, done.stderr)

        poll_alternating()
        for _ in range(10):
            if fleet.status()["state"] == "complete":
                break
            poll_alternating()
            step = fleet.rollout("advance")
            assert step.returncode in (0, 5), step.stdout + step.stderr
        assert fleet.status()["state"] == "complete"
        for host in fleet.hosts:
            assert fleet.file(host).read_bytes() == CANDIDATE
        # Each host was confirmed on the candidate once (journal: one switch each).
        lines = fleet.rows(
            "SELECT line FROM rollout_events WHERE namespace = %s AND id = %s ORDER BY seq", fleet.status()["id"]
        )
        events = [json.loads(bytes(r[0])) for r in lines]
        switched: dict[str, int] = {}
        for e in events:
            for host, state in (e.get("hosts") or {}).items() if isinstance(e.get("hosts"), dict) else []:
                if state == "candidate":
                    switched[host] = switched.get(host, 0) + 1
        assert switched == {h: 1 for h in fleet.hosts}, events
        # The same report sent to both servers at once is kept once, its usage counted once.
        a = fleet.hosts[0]
        token = fleet.tokens[a].read_text().strip()
        before = len(fleet.usage(a))
        records = [_record("success"), _record("error")]
        body = json.dumps({"report_id": "same-id-1", "files": [], "usage": records}).encode()
        codes: list[int] = []

        def send(served: Served) -> None:
            for _ in range(3):
                codes.append(_request(served.url, f"/v1/hosts/{a}/report", token, "POST", body))

        senders = [threading.Thread(target=send, args=(s,)) for s in (one, two, one, two)]
        for t in senders:
            t.start()
        for t in senders:
            t.join()
        assert codes == [200] * 12
        after = fleet.usage(a)
        assert len(after) == before + 2 and after[before:] == records
    finally:
        assert stop(one) == 0
        assert stop(two) == 0


def test_a_wrong_token_and_a_forged_report_are_refused_on_postgresql(pgpull: PgPullFleet) -> None:
    assert pgpull.rollout("start", str(pgpull.playbook)).returncode == 0
    pgpull.poll()
    assert pgpull.server is not None
    url = pgpull.server.url
    a, b = pgpull.hosts[0], pgpull.hosts[1]
    token_a = pgpull.tokens[a].read_text().strip()
    assert _request(url, f"/v1/hosts/{a}/assignment", token_a) == 200
    assert _request(url, f"/v1/hosts/{a}/assignment", "x" * 43) == 401
    assert _request(url, f"/v1/hosts/{b}/assignment", token_a) == 403
    assert _request(url, "/v1/hosts/nobody/assignment", token_a) == 403
    kept = "SELECT report, version FROM pull_reports WHERE namespace = %s AND host = %s"
    before = pgpull.rows(kept, b)
    forged = json.dumps({"report_id": "forged-1", "files": [], "usage": [_record("error")]}).encode()
    assert _request(url, f"/v1/hosts/{b}/report", token_a, "POST", forged) == 403
    assert _request(url, f"/v1/hosts/{b}/report", "x" * 43, "POST", forged) == 401
    assert pgpull.rows(kept, b) == before  # the forgery changed nothing
    assert pgpull.usage(b) == []
    # A revoked host is refused from its next request on, by every server of the namespace.
    assert pgpull.rollout("hosts", "revoke", a).returncode == 0
    assert _request(url, f"/v1/hosts/{a}/assignment", token_a) == 401
    done = pgpull.agent(a)
    assert done.returncode != 0 and "401" in done.stderr, done.stderr


def test_run_auto_drives_a_pull_fleet_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    import subprocess
    import sys

    # The shadow stage bakes while the agents report their baselines; a deadline keeps an
    # unconfirmed cohort's gate measured (every second) until its agents confirm.
    stages = "[{name: shadow, bake: 3s}, {percent: 50, deadline: 10m}, {percent: 100, deadline: 10m}]"
    fleet = pg_fleet(tmp_path, pg_url, stages=stages, hosts=("lap-a", "lap-b"))
    fleet.playbook.write_text(fleet.playbook.read_text().replace("health:\n", "health:\n  interval: 1s\n"))
    fleet.server = start_serve(fleet.state)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rollout", "--state", fleet.url, "run", str(fleet.playbook), "--auto"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
        )

        def agents() -> None:
            for _ in range(100):  # bounded: a run that never ends fails below
                if proc.poll() is not None:
                    return
                for host in fleet.hosts:
                    fleet.agent(host)  # before the start has published anything it exits 1

        polling = threading.Thread(target=agents)
        polling.start()
        out, err = proc.communicate(timeout=240)
        polling.join()
        assert proc.returncode == 0, out + err
        assert fleet.status()["state"] == "complete"
        for host in fleet.hosts:
            assert fleet.file(host).read_bytes() == CANDIDATE
    finally:
        assert stop(fleet.server) == 0
