"""Each invariant of DESIGN.md that applies to a local fleet, through the real CLI."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

from rollout.edges.store import Store
from tests.conftest import LocalFleet, dump, make_fleet


def test_invariant_1_nothing_written_before_inputs_validate(tmp_path: Path) -> None:
    fleet = make_fleet(tmp_path)
    (fleet.root / "candidate.json").write_text('{"model": "openai/gpt-5.2",,}')
    before = fleet.bytes_on()
    result = fleet.cli("start", str(fleet.playbook))
    assert result.exit_code == 2
    assert "candidate.json:1: invalid JSON" in result.stderr
    assert fleet.bytes_on() == before
    assert not fleet.state.exists() or not any(p.is_dir() for p in fleet.state.iterdir())
    assert not any(fleet.shadow(h).exists() for h in fleet.hosts)


def test_invariant_1_nothing_written_when_a_host_cannot_be_read(tmp_path: Path) -> None:
    fleet = make_fleet(tmp_path)
    broken = fleet.file("dev-05")
    broken.unlink()
    # A symlink loop cannot be read (a folder there is now refused at validate, exit 2).
    broken.symlink_to(broken.name)
    result = fleet.cli("start", str(fleet.playbook))
    assert result.exit_code == 5
    assert "dev-05" in result.stderr and "nothing written" in result.stderr
    assert all(fleet.file(h).read_bytes() == fleet.baseline for h in fleet.hosts if h != "dev-05")
    assert not any(fleet.shadow(h).exists() for h in fleet.hosts)


def test_invariant_1_every_host_backed_up_before_shadow(fleet: LocalFleet) -> None:
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    folder = fleet.rollout_dir()
    events = [e["event"] for e in map(json.loads, (folder / "events.jsonl").read_text().splitlines())]
    assert events.index("started") < events.index("intent")
    for host in fleet.hosts:
        backup = folder / "baseline" / host
        assert backup.read_bytes() == fleet.baseline
        assert stat.S_IMODE(backup.stat().st_mode) == 0o600
        assert fleet.shadow(host).read_bytes() == fleet.candidate
        assert fleet.file(host).read_bytes() == fleet.baseline


def test_invariant_2_cohorts_deterministic_sticky_nested(tmp_path: Path) -> None:
    fleet = make_fleet(tmp_path, n=7)
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    order = json.loads((fleet.rollout_dir() / "state.json").read_text())["order"]
    live: list[str] = []
    for expected in (2, 4, 7):  # ceil(0.25*7), ceil(0.5*7), 7
        result = fleet.cli("advance")
        assert result.exit_code == 0, result.output
        on = [h for h, rec in fleet.status()["hosts"].items() if rec["state"] == "candidate"]
        assert len(on) == expected
        assert set(live) <= set(on)  # the earlier cohort stays inside the later one
        assert set(on) == set(order[:expected])
        live = on
    # Same playbook, new rollout: the same order, so the same hosts go first.
    assert fleet.cli("advance").exit_code == 0  # the final gate: complete
    assert fleet.cli("undo").exit_code == 0
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    newest = Store(fleet.state).active()
    assert newest is not None and newest.state.order == order


def test_invariant_2_at_least_one_host(tmp_path: Path) -> None:
    fleet = make_fleet(tmp_path, n=3, stages=[1, 100])
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    assert [rec["state"] for rec in fleet.status()["hosts"].values()].count("candidate") == 1


def test_invariant_3_atomic_replace_keeps_mode(tmp_path: Path) -> None:
    fleet = make_fleet(tmp_path, n=2, stages=[100])
    for h in fleet.hosts:
        fleet.file(h).chmod(0o640)
    inode = fleet.file("dev-01").stat().st_ino
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    for h in fleet.hosts:
        assert fleet.file(h).read_bytes() == fleet.candidate
        assert stat.S_IMODE(fleet.file(h).stat().st_mode) == 0o640
        assert sorted(p.name for p in fleet.file(h).parent.iterdir()) == ["opencode.json"]
    assert fleet.file("dev-01").stat().st_ino != inode  # a new file renamed over the old one


def test_invariant_4_drifted_host_is_not_switched(fleet: LocalFleet) -> None:
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    order = json.loads((fleet.rollout_dir() / "state.json").read_text())["order"]
    first = order[0]
    fleet.file(first).write_bytes(b'{"model": "edited/by-hand"}\n')
    result = fleet.cli("advance")
    assert result.exit_code == 5  # live on part of its cohort only: says so (issue 18), was 0
    assert f"{first} not switched: drifted" in result.stdout
    assert "is live on 1 of its 2 host(s)" in result.stdout
    assert fleet.file(first).read_bytes() == b'{"model": "edited/by-hand"}\n'
    assert fleet.status()["hosts"][first]["state"] == "drifted"
    assert fleet.file(order[1]).read_bytes() == fleet.candidate


def test_invariant_4_drift_after_switch_is_never_clobbered_by_rollback(fleet: LocalFleet) -> None:
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    assert fleet.cli("advance").exit_code == 0
    on = [h for h, rec in fleet.status()["hosts"].items() if rec["state"] == "candidate"]
    fleet.file(on[0]).write_bytes(b"hand edit\n")
    result = fleet.cli("abort", "--reason", "test")
    assert result.exit_code == 4
    assert f"NOT restored: {on[0]}" in result.stdout
    assert fleet.file(on[0]).read_bytes() == b"hand edit\n"
    assert all(fleet.file(h).read_bytes() == fleet.baseline for h in fleet.hosts if h != on[0])
    assert fleet.status()["state"] == "rollback-failed"


def test_invariant_5_gate_failure_restores_every_host_exactly(tmp_path: Path) -> None:
    check = {"name": "not-on-dev-03", "run": 'test "$ROLLOUT_HOST" != dev-03 || { echo boom; exit 7; }'}
    fleet = make_fleet(tmp_path, checks=[check])
    fleet.file("dev-08").unlink()  # a host with no file at all: restored means removed again
    baseline = fleet.bytes_on()
    codes = [fleet.cli("start", str(fleet.playbook)).exit_code]
    result = None
    for _ in range(4):
        result = fleet.cli("advance")
        codes.append(result.exit_code)
        if result.exit_code != 0:
            break
    # The shadow gate runs on every host, so dev-03 fails it at start already.
    assert codes[0] == 3 or (result is not None and result.exit_code == 3)
    assert fleet.bytes_on() == baseline
    assert not any(fleet.shadow(h).exists() for h in fleet.hosts)
    status = fleet.status()
    assert status["state"] == "rolled-back"
    assert "not-on-dev-03 on dev-03: exit 7: boom" in status["reason"]


def test_invariant_5_abort_at_50_restores_baseline_bytes(fleet: LocalFleet) -> None:
    for h in fleet.hosts[:3]:
        fleet.file(h).write_bytes(dump({"model": f"custom/{h}"}))
    baseline = fleet.bytes_on()
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    assert fleet.cli("advance").exit_code == 0
    assert fleet.cli("advance").exit_code == 0
    assert sum(b == fleet.candidate for b in fleet.bytes_on().values()) == 4
    result = fleet.cli("abort", "--reason", "latency")
    assert result.exit_code == 0, result.output
    assert fleet.bytes_on() == baseline
    assert fleet.status()["state"] == "aborted"


def test_invariant_6_kill_9_mid_activation_then_abort_restores(tmp_path: Path) -> None:
    fleet = make_fleet(tmp_path, stages=["shadow", 100])
    fleet.rewrite(targets={"transport": "local", "hosts": fleet.hosts, "concurrency": 1})
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    env = {**os.environ, "ROLLOUT_STATE_DIR": str(fleet.state)}
    proc = subprocess.Popen([sys.executable, "-m", "tests.slowswap", "0.5", "advance"], env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        switched = sum(b == fleet.candidate for b in fleet.bytes_on().values())
        if switched >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    on_disk = fleet.bytes_on()
    switched_hosts = {h for h, b in on_disk.items() if b == fleet.candidate}
    assert 2 <= len(switched_hosts) < len(fleet.hosts)

    status = fleet.status()  # reconciles the unfinished intent by reading the hosts
    assert {h for h, rec in status["hosts"].items() if rec["state"] == "candidate"} == switched_hosts
    assert status["intent"] is None
    assert "reconciled" in [e["event"] for e in status["history"]]

    result = subprocess.run(
        [sys.executable, "-m", "rollout", "--state-dir", str(fleet.state), "abort", "--reason", "crash"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert all(b == fleet.baseline for b in fleet.bytes_on().values())


def test_invariant_7_one_operation_at_a_time(fleet: LocalFleet) -> None:
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    before = fleet.bytes_on()
    with open(fleet.state / ".lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        result = fleet.cli("advance")
    assert result.exit_code == 5
    assert "another rollout operation holds the lock" in result.stderr
    assert fleet.bytes_on() == before


def test_invariant_7_journal_append_only_and_state_atomic(fleet: LocalFleet) -> None:
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    journal = fleet.rollout_dir() / "events.jsonl"
    first = journal.read_bytes()
    assert fleet.cli("advance").exit_code == 0
    after = journal.read_bytes()
    assert after.startswith(first) and len(after) > len(first)
    leftovers = [p.name for p in fleet.rollout_dir().iterdir() if p.name.startswith(".")]
    assert leftovers == []
    json.loads((fleet.rollout_dir() / "state.json").read_text())


def test_invariant_8_secrets_never_in_diffs_logs_or_output(tmp_path: Path) -> None:
    check = {"name": "leaky", "run": 'echo "token=sk-leaked-SECRET-3"; exit 1'}
    fleet = make_fleet(tmp_path, checks=[check])
    outputs = [fleet.cli("start", str(fleet.playbook))]
    outputs += [fleet.cli(*verb) for verb in (["diff"], ["history"], ["status"], ["status", "--json"])]
    secrets = ["sk-baseline-SECRET-1", "sk-candidate-SECRET-2", "sk-leaked-SECRET-3"]
    folder = fleet.rollout_dir()
    for path in folder.rglob("*"):
        # The frozen inputs (baseline backups, candidate, playbook) are the user's own files, kept 0600.
        if (
            path.is_file()
            and path.parent.name not in ("baseline", "candidate")
            and path.name != "playbook.yml"
        ):
            text = path.read_text(errors="replace")
            assert not any(s in text for s in secrets), path
    for result in outputs:
        assert not any(s in result.output for s in secrets)
    assert "***REDACTED (changed)***" in outputs[1].output
    assert b"sk-baseline-SECRET-1" in (folder / "baseline" / "dev-01").read_bytes()


def test_invariant_6_kill_9_mid_shadow_staging_then_abort_cleans_up(tmp_path: Path) -> None:
    fleet = make_fleet(tmp_path)
    fleet.rewrite(targets={"transport": "local", "hosts": fleet.hosts, "concurrency": 1})
    env = {**os.environ, "ROLLOUT_STATE_DIR": str(fleet.state)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.slowswap", "0.5", "start", str(fleet.playbook)], env=env
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and sum(fleet.shadow(h).exists() for h in fleet.hosts) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    staged = {h for h in fleet.hosts if fleet.shadow(h).exists()}
    assert 2 <= len(staged) < len(fleet.hosts)

    status = fleet.status()
    assert {h for h, rec in status["hosts"].items() if rec["state"] == "shadow"} == staged
    result = fleet.cli("advance")  # finishes the staging on the hosts that lack it, then gates
    assert result.exit_code == 0, result.output
    assert (
        f"staged the shadow copy on {len(fleet.hosts) - len(staged)} host(s) that lacked it" in result.stdout
    )
    result = fleet.cli("abort", "--reason", "crash")
    assert result.exit_code == 0, result.output
    assert all(b == fleet.baseline for b in fleet.bytes_on().values())
    assert not any(fleet.shadow(h).exists() for h in fleet.hosts)
