"""Patches over pull (issue 15), through the real CLI: the shipped `model-assignment-pull.yml` (a
merge patch of the plan's models onto each developer's own opencode.json), a real `rollout serve`
on loopback and real `rollout agent --once` processes, each laptop a folder with its own file
(comments, its own providers and keys) and its own OpenCode store, whose calls its agent forwards."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rollout.configkinds.jsonc import load_jsonc
from rollout.core import cohorts
from rollout.core.patching import apply_patch
from tests import opencode_db
from tests.test_pull import PullFleet, write_token
from tests.test_serve import start_serve, stop

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "playbooks" / "model-assignment-pull.yml"
PATCH = REPO / "playbooks" / "model-assignment" / "opencode.json"
HOSTS = ("lap-a", "lap-b", "lap-c", "lap-d")
NAME = "model-assignment-pull"
STORE = "~/.local/share/opencode/opencode.db"
THEMES = {"lap-a": "tokyonight", "lap-b": "gruvbox", "lap-c": "nord", "lap-d": "dracula", "lap-e": "one-dark"}


def own_file(host: str) -> bytes:
    """Return a developer's own opencode.json (JSONC): a comment, a provider with a key, MCP."""
    return (
        "{\n"
        '  "$schema": "https://opencode.ai/config.json",\n'
        f"  // {host}'s own proxy: the plan must not touch it\n"
        '  "provider": {\n'
        f'    "corp": {{"options": {{"baseURL": "https://llm.corp.example/v1", "apiKey": "sk-live-{host}-secret99"}}}}\n'
        "  },\n"
        f'  "theme": "{THEMES[host]}",\n'
        '  "mcp": {"jira": {"type": "remote", "url": "https://jira.example/mcp"}}, // work tracker\n'
        '  "agent": {"build": {"model": "anthropic/claude-sonnet-4-5", "temperature": 0.3}}\n'
        "}\n"
    ).encode()


# OpenCode refuses a file with an unknown top-level key: the patched file would be refused too.
BROKEN = b'{\n  "$schema": "https://opencode.ai/config.json",\n  "modle": "openai/gpt-5" // a typo\n}\n'


def patched(own: bytes) -> bytes:
    return apply_patch(own, PATCH.read_bytes(), "merge", "opencode", where="test")


class Laptops(PullFleet):
    """The fleet of tests.test_pull, with the shipped pull playbook and an OpenCode store each."""

    def store(self, host: str) -> Path:
        path = self.home(host) / ".local" / "share" / "opencode" / "opencode.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            opencode_db.create(path, []).close()
        return path

    def calls(self, host: str, n: int, error: dict[str, Any] | None = None) -> None:
        """Record `n` finished OpenCode calls on the laptop, one a millisecond from now: after what
        its agent reported before, and all in the past once this returns (a gate reads up to now)."""
        now = int(time.time() * 1000) + 1
        time.sleep((n + 2) / 1000)
        conn = sqlite3.connect(self.store(host))
        try:
            for i in range(n):
                data = opencode_db.assistant(
                    now + i, error=error, cost=0.0, tokens=(10, 2, 0)
                )  # a free model
                conn.execute(
                    "INSERT INTO message VALUES (?, 'ses_1', ?, ?, ?)",
                    (f"msg_{now}_{i}", now + i, now + i, json.dumps(data)),
                )
            conn.commit()
        finally:
            conn.close()

    def report(self, *hosts: str) -> None:
        """Each laptop's agent polls once, forwarding its OpenCode calls."""
        for host in hosts or self.hosts:
            self.store(host)
            done = self.agent(host, "--opencode-db", STORE)
            assert done.returncode == 0, (host, done.stdout, done.stderr)

    def state_json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((Path(self.status()["folder"]) / "state.json").read_text())
        return data

    def events(self) -> list[dict[str, Any]]:
        folder = Path(self.status()["folder"])
        return [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]


def laptops(tmp_path: Path, hosts: tuple[str, ...] = HOSTS, files: dict[str, bytes] | None = None) -> Laptops:
    """The shipped pull playbook (bakes cut, hosts renamed) over `hosts`, each with its own file."""
    fleet = Laptops(tmp_path, hosts)
    shutil.copytree(PATCH.parent, tmp_path / "model-assignment")
    text = SHIPPED.read_text()
    text = text.replace("[dev-01, dev-02, dev-03, dev-04]", f"[{', '.join(hosts)}]")
    for bake in (", bake: 2h", ", bake: 4h", ", bake: 24h"):
        assert bake in text
        text = text.replace(bake, "")
    fleet.playbook.write_text(text)
    for host in hosts:
        fleet.file(host).parent.mkdir(parents=True)
        fleet.file(host).write_bytes((files or {}).get(host, own_file(host)))
        added = fleet.rollout("hosts", "add", host)
        assert added.returncode == 0, added.stderr
        fleet.tokens[host] = write_token(tmp_path / f"{host}.token", added.stdout)
    return fleet


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Laptops]:
    fleet = laptops(tmp_path)
    fleet.server = start_serve(fleet.state)
    yield fleet
    if fleet.server.proc.poll() is None:
        assert stop(fleet.server) == 0


def drive(fleet: Laptops, rounds: int = 10, n: int = 60) -> None:
    """Advance to the end: each round the agents apply and confirm, OpenCode makes `n` calls on
    every laptop, the agents forward them, and `advance` gates the stage."""
    for _ in range(rounds):
        if fleet.status()["state"] in ("complete", "rolled-back", "aborted"):
            return
        fleet.report()
        fleet.status()  # folds the confirmations now: exposure counts from the report that confirmed
        for host in fleet.hosts:
            fleet.calls(host, n)
        fleet.report()
        step = fleet.rollout("advance")
        assert step.returncode in (0, 5), step.stdout + step.stderr
    raise AssertionError(f"not complete after {rounds} rounds: {fleet.status()['state']}")


def first_rollout_learns_the_fleet(fleet: Laptops, *hosts: str) -> None:
    """A rollout started and aborted before anything was assigned: the agents of `hosts` have
    reported their files (with their bytes) when the next one starts."""
    started = fleet.rollout("start", str(fleet.playbook))
    assert started.returncode == 0, started.stdout + started.stderr
    fleet.report(*hosts)
    aborted = fleet.rollout("abort", "--reason", "learn the fleet")
    assert aborted.returncode == 0, aborted.stdout + aborted.stderr


def test_the_shipped_pull_playbook_validates_from_a_fresh_clone(tmp_path: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "rollout", "validate", str(SHIPPED)],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # no state folder here: no pull host added yet
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 host(s) over pull" in done.stdout
    assert "no pull hosts are added" in done.stdout


def test_the_shipped_pull_playbook_moves_each_laptops_own_patched_file_to_100(served: Laptops) -> None:
    fleet = served
    late = fleet.hosts[-1]
    first_rollout_learns_the_fleet(fleet, *fleet.hosts[:-1])
    started = fleet.rollout("start", str(fleet.playbook))
    assert started.returncode == 0, started.stdout + started.stderr
    # The others' OpenCode layers were reported (the first rollout asked for them): only the late
    # laptop's are not checked yet.
    assert f"the other OpenCode layers of 1 pull host(s) were not checked: {late} " in started.stdout
    # The laptops that had reported have their own candidate, diffed at start; the late one has
    # none yet (null in state.json), and every reader copes with it.
    state = fleet.state_json()
    rec = state["hosts"][late]
    assert rec["state"] == "unknown" and rec["baseline_unread"] is True
    assert rec["files"]["opencode.json"]["candidate_sha256"] is None
    for host in fleet.hosts[:-1]:
        want = patched(own_file(host))
        got = state["hosts"][host]["files"]["opencode.json"]["candidate_sha256"]
        assert got == hashlib.sha256(want).hexdigest()
    assert fleet.status()["hosts"][late]["files"]["opencode.json"]["candidate_sha256"] is None
    shown = fleet.rollout("diff", "--json")
    assert shown.returncode == 0, shown.stderr
    groups = json.loads(shown.stdout)["groups"]
    assert sorted(h for g in groups for h in g["hosts"]) == sorted(fleet.hosts[:-1])
    assert all("secret99" not in g["text"] for g in groups)
    # The late laptop reports: its candidate is computed from its own bytes, diffed and journaled.
    fleet.report(late)
    state = fleet.state_json()
    assert state["hosts"][late]["state"] == "baseline"
    sha = state["hosts"][late]["files"]["opencode.json"]["candidate_sha256"]
    assert sha == hashlib.sha256(patched(own_file(late))).hexdigest()
    assert (Path(fleet.status()["folder"]) / "candidate" / sha).read_bytes() == patched(own_file(late))
    groups = json.loads(fleet.rollout("diff", "--json").stdout)["groups"]
    (mine,) = [g for g in groups if late in g["hosts"]]
    assert mine["hosts"] == [late] and "OpenAgent" in mine["text"] and "secret99" not in mine["text"]
    (event,) = [e for e in fleet.events() if e["event"] == "late-candidates"]
    assert event["hosts"] == {late: [mine["group"]]} and event["held_back"] == {}
    # shadow -> 25 -> 50 -> 100, the gates reading the calls the agents forward.
    drive(fleet)
    assert fleet.status()["state"] == "complete"
    assert set(fleet.states().values()) == {"candidate"}
    plan = json.loads(PATCH.read_bytes())
    for host in fleet.hosts:
        held = fleet.file(host).read_bytes()
        assert held == patched(own_file(host))
        doc, own = load_jsonc(held)[0], load_jsonc(own_file(host))[0]
        assert f"// {host}'s own proxy".encode() in held and b"// work tracker" in held
        for key in ("provider", "theme", "mcp", "$schema"):
            assert doc[key] == own[key]  # its own settings, secrets included, as they were
        assert doc["agent"]["build"] == own["agent"]["build"]  # an agent the plan does not name
        for key in ("model", "small_model", "default_agent"):
            assert doc[key] == plan[key]
        for name, agent in plan["agent"].items():
            assert doc["agent"][name] == agent
        assert set(doc) == set(own) | set(plan)
    # Every live stage passed on the usage the agents forwarded (error-rate read pull:usage).
    passed = [e for e in fleet.events() if e["event"] == "gate" and e["decision"] == "pass"]
    assert {e["stage"] for e in passed} >= {"25%", "50%", "100%"}
    for e in passed:
        if e["stage"] != "shadow":
            (errors,) = [m for m in e["verdict"]["measurements"] if m["check"] == "error-rate"]
            assert errors["details"]["source"] == "usage-log" and errors["details"]["samples"] >= 50


def test_a_laptop_whose_file_the_patch_breaks_is_held_back_and_never_written(tmp_path: Path) -> None:
    order = cohorts.host_order(HOSTS, NAME)
    broken = order[-1]  # only in the 100% cohort, where 3/4 (min_exposed 75%) may pass the gate
    fleet = laptops(tmp_path, files={broken: BROKEN})
    fleet.server = start_serve(fleet.state)
    try:
        started = fleet.rollout("start", str(fleet.playbook))
        assert started.returncode == 0, started.stdout + started.stderr
        fleet.report()  # every laptop reports only after start
        status = fleet.status()["hosts"][broken]
        assert status["state"] == "baseline"
        assert status["reason"].startswith(
            "held back: the patch breaks its file: ~/.config/opencode/opencode.json"
        )
        assert "unknown top-level key 'modle'" in status["reason"], status
        assert "unknown top-level key 'modle'" in status["held_back"]
        rec = fleet.state_json()["hosts"][broken]
        assert rec["held_back"] and rec["files"]["opencode.json"]["candidate_sha256"] is None
        (event,) = [e for e in fleet.events() if e["event"] == "late-candidates"]
        assert list(event["held_back"]) == [broken] and sorted(event["hosts"]) == sorted(
            set(HOSTS) - {broken}
        )
        drive(fleet)
        assert fleet.status()["state"] == "complete"
        states = fleet.states()
        assert states[broken] == "baseline" and fleet.file(broken).read_bytes() == BROKEN
        assert fleet.status()["hosts"][broken]["reason"].startswith("held back: ")
        for host in set(HOSTS) - {broken}:
            assert states[host] == "candidate" and fleet.file(host).read_bytes() == patched(own_file(host))
        assign = json.loads(
            (Path(fleet.status()["folder"]) / "pull" / "assign" / f"{broken}.json").read_text()
        )
        assert assign["files"] == [] and assign["assigned_at"] is None  # never assigned anything
        skipped = [
            e for e in fleet.events() if e["event"] == "stage-entered" and broken in e.get("skipped", {})
        ]
        assert skipped and skipped[0]["skipped"][broken].startswith("held back: ")
    finally:
        assert stop(fleet.server) == 0


def test_a_gate_failing_on_forwarded_usage_rolls_every_laptop_back_to_its_own_bytes(served: Laptops) -> None:
    fleet = served
    assert fleet.rollout("start", str(fleet.playbook)).returncode == 0
    fleet.report()
    went = fleet.rollout("advance")  # shadow -> 25%
    assert went.returncode == 0, went.stdout + went.stderr
    (canary,) = [h for h, s in fleet.states().items() if s == "pending"]
    fleet.report(canary)
    assert fleet.file(canary).read_bytes() == patched(own_file(canary))
    assert fleet.states()[canary] == "candidate"  # folded (status): its exposure starts here
    # The new model fails: the canary's OpenCode errors on most calls; the others are fine.
    bad = {"name": "APIError", "data": {"message": "model not found", "statusCode": 404}}
    fleet.calls(canary, 60, error=bad)
    for host in set(fleet.hosts) - {canary}:
        fleet.calls(host, 60)
    fleet.report()
    advanced = fleet.rollout("advance")
    assert advanced.returncode == 4, advanced.stdout + advanced.stderr  # until the canary confirms
    assert "error-rate" in advanced.stdout, advanced.stdout
    assert fleet.status()["state"] == "rollback-failed" and fleet.states()[canary] == "pending"
    fleet.report(canary)  # its agent puts its own bytes back and confirms: the rollback finishes
    done = fleet.rollout("abort", "--reason", "model not found")
    assert done.returncode == 0, done.stdout + done.stderr
    assert set(fleet.states().values()) == {"baseline"}
    for host in fleet.hosts:
        assert fleet.file(host).read_bytes() == own_file(host)


def test_plan_reads_pull_hosts_from_their_reports_and_names_who_has_not_reported(served: Laptops) -> None:
    fleet = served
    fresh = fleet.rollout("plan", str(fleet.playbook), "--json")
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    assert json.loads(fresh.stdout)["not_reported"] == list(fleet.hosts)
    first_rollout_learns_the_fleet(fleet, *fleet.hosts[:2])
    planned = fleet.rollout("plan", str(fleet.playbook))
    assert planned.returncode == 0, planned.stdout + planned.stderr
    out = planned.stdout
    assert "2 of 4 host(s) have not reported yet: lap-c, lap-d" in out or "lap-c..lap-d" in out, out
    assert "their candidate is computed when their agent first reports" in out
    assert "the other OpenCode layers of 2 pull host(s) were not checked: lap-c, lap-d " in out, out
    data = json.loads(fleet.rollout("plan", str(fleet.playbook), "--json").stdout)
    assert data["not_reported"] == list(fleet.hosts[2:])
    assert sorted(h for d in data["diffs"] for h in d["hosts"]) == list(fleet.hosts[:2])
    assert all("OpenAgent" in d["text"] and "secret99" not in d["text"] for d in data["diffs"])
    assert data["unreachable"] == {}
    for host in fleet.hosts:
        assert fleet.file(host).read_bytes() == own_file(host)  # plan touches nothing


def test_plan_of_a_pull_playbook_whose_patch_breaks_a_reported_laptop_exits_2(tmp_path: Path) -> None:
    fleet = laptops(tmp_path, files={"lap-b": BROKEN})
    fleet.server = start_serve(fleet.state)
    try:
        first_rollout_learns_the_fleet(fleet, "lap-b")
        planned = fleet.rollout("plan", str(fleet.playbook))
        assert planned.returncode == 2, planned.stdout + planned.stderr
        assert "lap-b" in planned.stdout + planned.stderr and "Traceback" not in planned.stderr
    finally:
        assert stop(fleet.server) == 0


def test_start_checks_the_opencode_layers_pull_agents_reported(tmp_path: Path) -> None:
    fleet = laptops(tmp_path)
    layered = "  kind: opencode\n  layers: ['~/work/app/opencode.json']\n"
    fleet.playbook.write_text(fleet.playbook.read_text().replace("  kind: opencode\n", layered))
    project = fleet.home("lap-b") / "work" / "app" / "opencode.json"
    project.parent.mkdir(parents=True)
    project.write_text('{"model": "openai/gpt-4o"}\n')  # a project layer: it overrides the global file
    fleet.server = start_serve(fleet.state)
    try:
        first_rollout_learns_the_fleet(fleet, "lap-a", "lap-b", "lap-c")
        served = json.loads((Path(fleet.status()["folder"]) / "pull" / "assign" / "lap-b.json").read_text())
        assert served["watch"] == ["~/.config/opencode/opencode.json", "~/work/app/opencode.json"]
        refused = fleet.rollout("start", str(fleet.playbook))
        out = refused.stdout + refused.stderr
        assert refused.returncode == 2, out
        assert "lap-b: model is set by ~/work/app/opencode.json, which overrides this file" in out, out
        assert "lap-a" not in out.split("would not take effect on", 1)[1].split("(")[0]
        started = fleet.rollout("start", str(fleet.playbook), "--allow-overridden")
        assert started.returncode == 0, started.stdout + started.stderr
        assert "warning: lap-b: model is set by ~/work/app/opencode.json" in started.stdout
        assert "the other OpenCode layers of 1 pull host(s) were not checked: lap-d " in started.stdout
    finally:
        assert stop(fleet.server) == 0


def test_a_bundle_with_a_patched_file_and_a_source_moves_over_pull_when_the_laptops_report_late(
    tmp_path: Path,
) -> None:
    from tests.test_pull import _run_to_100, make_bundle, second

    fleet = make_bundle(tmp_path)
    (tmp_path / "patch.json").write_text('{"agent": {"review": {"model": "anthropic/claude-haiku-4"}}}\n')
    text = fleet.playbook.read_text().replace(
        "{name: agents, source: agents.json, path: ~/.config/opencode/agents.json}",
        "{name: agents, patch: patch.json, patch_format: merge, path: ~/.config/opencode/agents.json}",
    )
    fleet.playbook.write_text(text)
    own = {h: second(fleet, h).read_bytes() for h in fleet.hosts}
    fleet.server = start_serve(fleet.state)
    try:
        started = fleet.rollout("start", str(fleet.playbook))
        assert started.returncode == 0, started.stdout + started.stderr
        rec = fleet.status()["hosts"][fleet.hosts[0]]["files"]
        assert rec["agents"]["candidate_sha256"] is None and rec["main"]["candidate_sha256"] is not None
        _run_to_100(fleet)
        for host in fleet.hosts:
            want = apply_patch(own[host], (tmp_path / "patch.json").read_bytes(), "merge", "json", where="t")
            assert second(fleet, host).read_bytes() == want
            assert json.loads(want)["agent"]["review"]["model"] == "anthropic/claude-haiku-4"
        groups = json.loads(fleet.rollout("diff", "--json").stdout)["groups"]
        assert sorted(h for g in groups if g["file"] == "agents" for h in g["hosts"]) == sorted(fleet.hosts)
    finally:
        assert stop(fleet.server) == 0


def test_a_candidate_not_known_yet_and_a_held_back_host_survive_state_json() -> None:
    from rollout.core.state import FileRecord, HostRecord, HostState

    f = FileRecord(path="~/x.json", shadow_path="~/x.json.s", baseline_sha256=None, baseline_mode=None,
                   candidate_sha256=None)  # fmt: skip
    rec = HostRecord(HostState.BASELINE, None, None, None, None, files={"x": f}, held_back="x.json: bad")
    back = HostRecord.from_json(json.loads(json.dumps(rec.to_json())))
    assert back.files["x"].candidate_sha256 is None and back.held_back == "x.json: bad"
    assert HostRecord.from_json({"state": "baseline"}).held_back is None
    old = FileRecord.from_json({"path": "~/x.json", "candidate_sha256": "ab"})
    assert old.candidate_sha256 == "ab"
