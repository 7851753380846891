"""The real CLI, in subprocesses, with `--state postgresql://...`: the folder's contract on a server
two operators share (one proceeds, the other gets exit 5), kill -9 mid-operation, and `status --json`
the same in shape as the folder's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rollout.edges.backends import open_store
from tests.conftest import LocalFleet, make_fleet

ROOT = Path(__file__).resolve().parent.parent


def rollout(
    state: str, *args: str, seam: list[str] | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *(seam or ["rollout"]), "--state", state, *args],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


def status(state: str) -> dict[str, Any]:
    done = rollout(state, "status", "--json")
    assert done.returncode == 0, done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def _other_spelling(url: str) -> str:
    """The same server and namespace through a URL of its own (another operator's)."""
    return url.replace("postgresql://", "postgres://", 1) + "&application_name=operator-b"


def test_start_advance_advance_complete(tmp_path: Path, pg_url: str) -> None:
    fleet = make_fleet(tmp_path, n=4, stages=["shadow", 100])
    done = rollout(pg_url, "start", str(fleet.playbook))
    assert done.returncode == 0, done.stderr
    assert not fleet.state.exists()  # nothing of the state is in a folder
    assert status(pg_url)["state"] == "shadow"
    for _ in range(2):
        done = rollout(pg_url, "advance")
        assert done.returncode == 0, done.stderr + done.stdout
    final = status(pg_url)
    assert final["state"] == "complete"
    assert all(b == fleet.candidate for b in fleet.bytes_on().values())
    verified = rollout(pg_url, "history", "--verify")
    assert verified.returncode == 0 and "hash chain whole" in verified.stdout
    diff = rollout(pg_url, "diff", "--json")
    assert diff.returncode == 0 and json.loads(diff.stdout)["groups"][0]["hosts"] == fleet.hosts


def test_abort_restores_from_the_server(tmp_path: Path, pg_url: str) -> None:
    fleet = make_fleet(tmp_path, n=4, stages=["shadow", 50, 100])
    for host in fleet.hosts:  # a non-UTF-8 baseline comes back byte for byte
        fleet.file(host).write_bytes(b'{"model": "x"}\n\xff\xfe')
    original = fleet.bytes_on()
    fleet.rewrite(
        **{"config": {"source": "candidate.json", "path": "fleet/{host}/opencode.json", "kind": "text"}}
    )
    assert rollout(pg_url, "start", str(fleet.playbook)).returncode == 0
    assert rollout(pg_url, "advance").returncode == 0
    assert sum(b == fleet.candidate for b in fleet.bytes_on().values()) == 2
    done = rollout(pg_url, "abort", "--reason", "latency")
    assert done.returncode == 0, done.stderr
    assert fleet.bytes_on() == original
    assert status(pg_url)["state"] == "aborted"


def _shape(value: Any) -> Any:
    """Keys and types, not values."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(v) for v in value[:1]]
    return type(value).__name__


def test_status_json_has_the_shape_of_the_folders(tmp_path: Path, pg_url: str) -> None:
    shapes = []
    for state, fleet in (
        (str(tmp_path / "a" / "state"), make_fleet(tmp_path / "a", n=3, stages=["shadow", 50, 100])),
        (pg_url, make_fleet(tmp_path / "b", n=3, stages=["shadow", 50, 100])),
    ):
        assert rollout(state, "start", str(fleet.playbook)).returncode == 0
        assert rollout(state, "advance").returncode == 0
        data = status(state)
        assert (data["state"], data["stage"], data["percent"]) == ("live", "50%", 50)
        shapes.append((_shape(data), [e["event"] for e in data["history"]]))
    assert shapes[0] == shapes[1]


def _let_go(url: str) -> bool:
    """Return True once nobody holds the lock: a killed holder's session ends when the server sees
    its connection closed, a moment after the kill."""
    store = open_store(url)
    deadline = time.monotonic() + 30
    while store.busy():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _wait_busy(url: str, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    store = open_store(url)
    deadline = time.monotonic() + timeout
    while not store.busy():
        assert proc.poll() is None, "the operation ended before it was seen holding the lock"
        assert time.monotonic() < deadline, "the operation never took the lock"
        time.sleep(0.05)


def _slow(url: str, seconds: float, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.slowswap", str(seconds), "--state", url, *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _serial(fleet: LocalFleet) -> None:
    fleet.rewrite(targets={"transport": "local", "hosts": fleet.hosts, "concurrency": 1})


def test_two_operators_one_proceeds_the_other_gets_exit_5(tmp_path: Path, pg_url: str) -> None:
    fleet = make_fleet(tmp_path, n=4, stages=["shadow", 100])
    _serial(fleet)
    operator_a, operator_b = pg_url, _other_spelling(pg_url)
    assert rollout(operator_a, "start", str(fleet.playbook)).returncode == 0
    assert status(operator_b)["id"] == status(operator_a)["id"]  # both see the same rollout
    slow = _slow(operator_a, 0.5, "advance")
    try:
        _wait_busy(operator_b, slow)
        refused = rollout(operator_b, "advance", env={"ROLLOUT_OPERATOR": "bob"})
        assert refused.returncode == 5, refused.stderr
        assert "another rollout operation holds the lock on" in refused.stderr
        assert "nothing changed, try again when it is done" in refused.stderr
        looked = rollout(operator_b, "status", "--json")  # a look never waits for the lock
        assert looked.returncode == 0 and json.loads(looked.stdout)["id"] == status(operator_a)["id"]
    finally:
        out, err = slow.communicate(timeout=120)
    assert slow.returncode == 0, err
    data = status(operator_b)
    assert (data["state"], data["percent"]) == ("live", 100)
    assert "bob" not in {e.get("operator") for e in data["history"]}  # the refused verb wrote nothing
    assert all(b == fleet.candidate for b in fleet.bytes_on().values())


def test_kill_9_mid_advance_then_status_tells_the_truth_and_abort_finishes(
    tmp_path: Path, pg_url: str
) -> None:
    fleet = make_fleet(tmp_path, n=6, stages=["shadow", 100])
    _serial(fleet)
    assert rollout(pg_url, "start", str(fleet.playbook)).returncode == 0
    proc = _slow(pg_url, 0.5, "advance")
    deadline = time.monotonic() + 60
    while sum(b == fleet.candidate for b in fleet.bytes_on().values()) < 2:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    switched = {h for h, b in fleet.bytes_on().items() if b == fleet.candidate}
    assert 2 <= len(switched) < len(fleet.hosts)
    assert _let_go(pg_url)  # the server let go of the dead process's lock

    data = status(pg_url)  # reconciles the unfinished intent by reading the hosts
    assert {h for h, rec in data["hosts"].items() if rec["state"] == "candidate"} == switched
    assert data["intent"] is None
    assert "reconciled" in [e["event"] for e in data["history"]]
    done = rollout(pg_url, "abort", "--reason", "crash")
    assert done.returncode == 0, done.stderr
    assert all(b == fleet.baseline for b in fleet.bytes_on().values())
    verified = rollout(pg_url, "history", "--verify")
    assert verified.returncode == 0, verified.stdout


def test_env_and_global_option_select_the_server(tmp_path: Path, pg_url: str) -> None:
    fleet = make_fleet(tmp_path, n=2, stages=["shadow", 100])
    assert rollout(pg_url, "start", str(fleet.playbook)).returncode == 0
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ROLLOUT_STATE": pg_url}
    by_env = subprocess.run(
        [sys.executable, "-m", "rollout", "status", "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert by_env.returncode == 0 and json.loads(by_env.stdout)["state"] == "shadow"
    # --state-dir, the folder form, still wins over the environment (and sees no rollout there).
    by_folder = subprocess.run(
        [sys.executable, "-m", "rollout", "status", "--state-dir", str(tmp_path / "empty")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert by_folder.returncode == 5 and "no active rollout" in by_folder.stderr


def test_an_unreachable_server_is_a_clear_error(tmp_path: Path, postgres: Any) -> None:
    url = f"postgresql://postgres@127.0.0.1:{postgres.port + 1}/postgres"
    done = rollout(url, "status")
    assert done.returncode == 1
    assert "cannot reach the state server" in done.stderr
    assert "Traceback" not in done.stderr


def test_status_on_a_folder_never_imports_psycopg(tmp_path: Path) -> None:
    fleet = make_fleet(tmp_path, n=2, stages=["shadow", 100])
    assert rollout(str(fleet.state), "start", str(fleet.playbook)).returncode == 0
    found = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "rollout", "--state-dir", str(fleet.state), "status"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert found.returncode == 0, found.stderr
    imported = {
        line.split("|")[-1].strip().split(".")[0] for line in found.stderr.splitlines() if "|" in line
    }
    assert "rollout" in imported
    assert not imported & {"psycopg", "psycopg_binary"}, imported


def test_run_auto_drives_it_and_lets_go_of_the_lock_while_it_bakes(tmp_path: Path, pg_url: str) -> None:
    fleet = make_fleet(tmp_path, n=2, stages=["shadow", {"percent": 100, "bake": "3s"}])
    fleet.rewrite(health={"interval": "0.5s", "checks": [{"name": "ok", "run": "true"}]})
    operator_b = _other_spelling(pg_url)
    auto = subprocess.Popen(
        [sys.executable, "-m", "rollout", "--state", pg_url, "run", str(fleet.playbook), "--auto"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        store = open_store(operator_b)
        seen_free_while_driven = False
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and auto.poll() is None and not seen_free_while_driven:
            active = store.active()
            if active is not None and active.state.percent == 100 and active.is_driven() and not store.busy():
                seen_free_while_driven = True  # baking at 100%: driven, and the lock is free
            time.sleep(0.05)
        assert seen_free_while_driven
        looked = rollout(operator_b, "status", "--json")
        assert looked.returncode == 0 and json.loads(looked.stdout)["driven"] is True
        waited = rollout(operator_b, "wait", "--json", "--timeout", "90s", "--interval", "0.2s")
        assert waited.returncode == 0, waited.stdout + waited.stderr
        assert json.loads(waited.stdout)["outcome"] == "complete"
    finally:
        out, err = auto.communicate(timeout=120)
    assert auto.returncode == 0, err
    assert status(operator_b)["driven"] is False  # the driver's lock went with its process


def test_kill_9_mid_start_then_status_and_abort(tmp_path: Path, pg_url: str) -> None:
    fleet = make_fleet(tmp_path, n=6)
    _serial(fleet)
    proc = _slow(pg_url, 0.5, "start", str(fleet.playbook))
    deadline = time.monotonic() + 60
    while sum(fleet.shadow(h).exists() for h in fleet.hosts) < 2:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    staged = {h for h in fleet.hosts if fleet.shadow(h).exists()}
    assert 2 <= len(staged) < len(fleet.hosts)
    data = status(pg_url)
    assert {h for h, rec in data["hosts"].items() if rec["state"] == "shadow"} == staged
    done = rollout(pg_url, "abort", "--reason", "crash")
    assert done.returncode == 0, done.stderr
    assert all(b == fleet.baseline for b in fleet.bytes_on().values())
    assert not any(fleet.shadow(h).exists() for h in fleet.hosts)


def test_kill_9_at_every_statement_of_start_then_status_tells_the_truth_and_abort_finishes(
    tmp_path: Path, pg_url: str
) -> None:
    from click.testing import CliRunner

    from rollout.cli import cli

    killed_at = 0
    for n in range(1, 400):
        url = f"{pg_url}-{n}"  # a namespace of its own for each point
        fleet = make_fleet(tmp_path / str(n), n=2, stages=["shadow", 100])
        proc = subprocess.run(
            [sys.executable, "-m", "tests.killpoint", str(n), "--state", url, "start", str(fleet.playbook)],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if proc.returncode == 99:
            break  # start finished before effect n: every earlier point was tried
        assert proc.returncode == -9, (n, proc.returncode, proc.stderr)
        killed_at = n
        looked = CliRunner().invoke(cli, ["--state", url, "status", "--json"])
        assert looked.exit_code in (0, 5), (n, looked.output)  # 5: killed before the rollout existed
        assert "Traceback" not in looked.output
        if looked.exit_code == 0:
            data = json.loads(looked.stdout)
            assert data["intent"] is None, n  # reconciled
            aborted = CliRunner().invoke(cli, ["--state", url, "abort", "--reason", "killed"])
            assert aborted.exit_code == 0, (n, aborted.output)
            verified = CliRunner().invoke(cli, ["--state", url, "history", "--verify"])
            assert verified.exit_code == 0, (n, verified.output)
        else:
            assert "no active rollout" in looked.output, (n, looked.output)
        assert _let_go(url), n
        assert fleet.bytes_on() == {h: fleet.baseline for h in fleet.hosts}, n
        assert not any(fleet.shadow(h).exists() for h in fleet.hosts), n
    print(f"start killed at {killed_at} points")
    assert killed_at > 20  # the seam really killed start at many points, statements included


def test_serve_shows_a_postgresql_state(tmp_path: Path, pg_url: str) -> None:
    import select
    import urllib.request

    fleet = make_fleet(tmp_path, n=3, stages=["shadow", 100])
    assert rollout(pg_url, "start", str(fleet.playbook)).returncode == 0
    rid = status(pg_url)["id"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "rollout", "--state", pg_url, "serve", "--listen", "127.0.0.1:0", "--json"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready, "rollout serve did not start listening"
        url = json.loads(proc.stdout.readline())["url"]
        listed = json.loads(urllib.request.urlopen(url + "api/rollouts", timeout=30).read())
        assert [r["id"] for r in listed["rollouts"]] == [rid]
        assert "127.0.0.1" in listed["state_dir"]
        one = json.loads(urllib.request.urlopen(url + f"api/rollouts/{rid}", timeout=30).read())
        assert one == status(pg_url)
        metrics = urllib.request.urlopen(url + "metrics", timeout=30).read().decode()
        assert rid in metrics
    finally:
        proc.terminate()
        proc.wait(timeout=30)
