"""Pull fleets (issue 15), through the real CLI: a real `rollout serve` on loopback and real
`rollout agent --once` processes, each host a folder standing for its laptop's home."""

from __future__ import annotations

import hashlib
import http.server
import json
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.test_serve import Served, start_serve, stop

CANDIDATE = b'{"model": "anthropic/claude-sonnet-4"}\n'
HOSTS = ("lap-a", "lap-b", "lap-c", "lap-d")


def baseline_of(host: str) -> bytes:
    return json.dumps({"model": f"openai/gpt-4o-{host}"}).encode() + b"\n"


@dataclass
class PullFleet:
    root: Path
    hosts: tuple[str, ...] = HOSTS
    server: Served | None = None
    tokens: dict[str, Path] = field(default_factory=dict)

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def playbook(self) -> Path:
        return self.root / "pb.yml"

    def home(self, host: str) -> Path:
        return self.root / "homes" / host

    def file(self, host: str) -> Path:
        return self.home(host) / ".config" / "opencode" / "opencode.json"

    def rollout(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "rollout", "--state-dir", str(self.state), *args],
            capture_output=True,
            text=True,
            cwd=self.root,
            timeout=120,
        )

    def agent(self, host: str, *extra: str, server: str | None = None, token: Path | None = None) -> Any:
        url = server or (self.server.url if self.server else "http://127.0.0.1:9")
        env = {**_env(), "HOME": str(self.home(host))}
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "rollout",
                "agent",
                "--server",
                url,
                "--host",
                host,
                "--token-file",
                str(token or self.tokens[host]),
                "--once",
                *extra,
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )

    def poll(self, *hosts: str) -> None:
        for host in hosts or self.hosts:
            done = self.agent(host)
            assert done.returncode == 0, (host, done.stdout, done.stderr)

    def status(self) -> dict[str, Any]:
        done = self.rollout("status", "--json")
        assert done.returncode == 0, done.stderr
        data: dict[str, Any] = json.loads(done.stdout)
        return data

    def states(self) -> dict[str, str]:
        return {h: v["state"] for h, v in self.status()["hosts"].items()}


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


def make(
    tmp_path: Path,
    stages: str = "[shadow, 25, 50, 100]",
    hosts: tuple[str, ...] = HOSTS,
    fleet: PullFleet | None = None,
) -> PullFleet:
    """Write the pull playbook and add its hosts (in `fleet`'s state: a folder by default)."""
    fleet = fleet or PullFleet(tmp_path, hosts)
    (tmp_path / "candidate.json").write_bytes(CANDIDATE)
    fleet.playbook.write_text(
        "name: laptops\n"
        "config:\n  source: candidate.json\n  path: ~/.config/opencode/opencode.json\n"
        f"targets:\n  transport: pull\n  hosts: [{', '.join(hosts)}]\n"
        f"stages: {stages}\n"
        "health:\n  checks:\n    - name: control\n      on: local\n      run: 'true'\n"
    )
    for host in hosts:
        fleet.file(host).parent.mkdir(parents=True)
        fleet.file(host).write_bytes(baseline_of(host))
        added = fleet.rollout("hosts", "add", host)
        assert added.returncode == 0, added.stderr
        token = added.stdout.strip()
        assert len(token) >= 32 and "\n" not in token
        fleet.tokens[host] = write_token(tmp_path / f"{host}.token", token)
    return fleet


def write_token(path: Path, token: str) -> Path:
    """Write a host's token where its agent reads it, 0600 (the agent refuses one others can read)."""
    path.write_text(token.strip() + "\n")
    path.chmod(0o600)
    return path


# A metric gate on the usage the agents forward, appended to a pull playbook's health checks.
ERROR_RATE_GATE = (
    "    - name: errors\n      metric: error_rate\n"
    "      source: {type: usage-log, path: 'pull:usage'}\n"
    "      window: 1h\n      max: 0.2\n      min_samples: 3\n"
)


@pytest.fixture
def pull(tmp_path: Path) -> Iterator[PullFleet]:
    fleet = make(tmp_path)
    fleet.server = start_serve(fleet.state)
    yield fleet
    if fleet.server.proc.poll() is None:
        assert stop(fleet.server) == 0


def test_pull_shadow_to_100_counts_a_host_only_when_its_agent_confirms(pull: PullFleet) -> None:
    started = pull.rollout("start", str(pull.playbook))
    assert started.returncode == 0, started.stdout + started.stderr
    # Nobody reported yet: every host is unknown and was given nothing.
    assert set(pull.states().values()) == {"unknown"}
    pull.poll()  # each agent uploads its baseline with its first report
    for host in pull.hosts:
        assert pull.file(host).read_bytes() == baseline_of(host)
    advanced = pull.rollout("advance")  # shadow -> 25%: one host assigned
    assert advanced.returncode == 0, advanced.stdout + advanced.stderr
    states = pull.states()
    (first,) = [h for h, s in states.items() if s == "pending"]
    assert pull.file(first).read_bytes() == baseline_of(first)  # offered, not yet taken
    # Not confirmed: the gate cannot pass (exit 5, naming it), nothing changes.
    held = pull.rollout("advance")
    assert held.returncode == 5 and first in held.stdout and "0/1" in held.stdout, held.stdout
    for _ in range(8):
        if pull.status()["state"] == "complete":
            break
        pull.poll()
        step = pull.rollout("advance")
        assert step.returncode in (0, 5), step.stdout + step.stderr
    for host in pull.hosts:
        assert pull.file(host).read_bytes() == CANDIDATE
    assert set(pull.states().values()) == {"candidate"}
    # Only a confirmation switches a host: each was pending first.
    rollout_dir = Path(pull.status()["folder"])
    events = [json.loads(line) for line in (rollout_dir / "events.jsonl").read_text().splitlines()]
    assert any(e["event"] == "reports-folded" for e in events)
    state = json.loads((rollout_dir / "state.json").read_text())
    for host in pull.hosts:
        rec = state["hosts"][host]
        assert rec["confirmed_at"] >= rec["assigned_at"]


def test_exposure_starts_at_the_report_that_confirmed_not_at_the_fold(pull: PullFleet) -> None:
    """Several reports may arrive between two verbs: a host's exposure (switched_at, confirmed_at)
    starts at the first report that held the candidate, so its calls after that count as the
    canary's, not as calls made before its switch."""
    assert pull.rollout("start", str(pull.playbook)).returncode == 0
    pull.poll()
    assert pull.rollout("advance").returncode == 0  # shadow -> 25%: one host assigned
    (first,) = [h for h, s in pull.states().items() if s == "pending"]
    inbox = pull.state / ".pull" / "hosts" / first / "report.json"
    pull.poll(first)  # applies the candidate and reports holding it
    confirming = json.loads(inbox.read_text())["time"]
    pull.poll(first)
    pull.poll(first)  # two more reports of the same bytes before any verb folds them
    latest = json.loads(inbox.read_text())["time"]
    assert latest > confirming
    assert pull.states()[first] == "candidate"  # status folds all three now
    state = json.loads((Path(pull.status()["folder"]) / "state.json").read_text())
    rec = state["hosts"][first]
    assert rec["switched_at"] == confirming and rec["confirmed_at"] == confirming, (rec, confirming, latest)


def test_a_report_sent_before_anything_was_assigned_is_not_a_missing_file(pull: PullFleet) -> None:
    host = pull.hosts[0]
    early = pull.agent(host)  # nothing assigned yet: it reports that it watches nothing
    assert early.returncode == 0, early.stdout + early.stderr
    assert json.loads((pull.state / ".pull" / "hosts" / host / "report.json").read_text())["files"] == []
    assert pull.rollout("start", str(pull.playbook)).returncode == 0
    assert pull.states()[host] == "unknown"  # not recorded as a laptop without the file
    pull.poll()
    assert set(pull.states().values()) == {"baseline"}
    state = json.loads((Path(pull.status()["folder"]) / "state.json").read_text())
    assert state["hosts"][host]["baseline_sha256"] == hashlib.sha256(baseline_of(host)).hexdigest()


def _to_25(pull: PullFleet) -> str:
    assert pull.rollout("start", str(pull.playbook)).returncode == 0
    pull.poll()
    assert pull.rollout("advance").returncode == 0
    (first,) = [h for h, s in pull.states().items() if s == "pending"]
    return first


def test_rollback_over_pull_finishes_when_the_agents_confirm_the_baseline(pull: PullFleet) -> None:
    first = _to_25(pull)
    pull.poll(first)
    assert pull.file(first).read_bytes() == CANDIDATE
    aborted = pull.rollout("abort", "--reason", "cost")
    assert aborted.returncode == 4, aborted.stdout + aborted.stderr
    assert first in aborted.stdout and "not yet confirmed the rollback" in aborted.stdout
    assert pull.states()[first] == "pending"  # status names who has not confirmed
    assert pull.file(first).read_bytes() == CANDIDATE
    pull.poll(first)
    assert pull.file(first).read_bytes() == baseline_of(first)
    done = pull.rollout("abort", "--reason", "cost")
    assert done.returncode == 0, done.stdout + done.stderr
    assert pull.status()["state"] == "aborted"
    for host in pull.hosts:
        assert pull.file(host).read_bytes() == baseline_of(host)


def test_an_agent_offline_during_its_stage_confirms_later_and_is_rolled_back_with_the_rest(
    pull: PullFleet,
) -> None:
    late = pull.hosts[-1]
    assert pull.rollout("start", str(pull.playbook)).returncode == 0
    pull.poll(*pull.hosts[:-1])  # the last laptop is asleep: it never reported
    assert pull.rollout("advance").returncode == 0
    assert pull.states()[late] == "unknown"
    for _ in range(8):  # bounded: a stage the sleeping laptop blocks must fail here, not hang
        if pull.status()["percent"] >= 100:
            break
        pull.poll(*pull.hosts[:-1])
        step = pull.rollout("advance")
        assert step.returncode in (0, 5), step.stdout + step.stderr
    held = pull.rollout("advance")  # 100%: the sleeping laptop is not exposed
    assert held.returncode == 5 and late in held.stdout, held.stdout
    assert pull.file(late).read_bytes() == baseline_of(late)
    pull.poll(late)  # wakes: reports its baseline, then is assigned the candidate
    assert pull.rollout("advance").returncode == 5
    assert pull.states()[late] == "pending"
    pull.poll(late)
    assert pull.file(late).read_bytes() == CANDIDATE
    pull.rollout("status")
    assert pull.states()[late] == "candidate"
    # A late confirmer is tracked: the rollback takes it back too.
    assert pull.rollout("abort").returncode == 4
    pull.poll()
    assert pull.rollout("abort").returncode == 0
    for host in pull.hosts:
        assert pull.file(host).read_bytes() == baseline_of(host)


def test_a_stopped_server_leaves_every_laptop_with_its_last_file(pull: PullFleet) -> None:
    first = _to_25(pull)
    pull.poll(first)
    assert pull.server is not None
    assert stop(pull.server) == 0
    for host in pull.hosts:
        done = pull.agent(host)
        assert done.returncode != 0
        assert "unreachable" in done.stderr and "nothing written" in done.stderr, done.stderr
    assert pull.file(first).read_bytes() == CANDIDATE
    for host in pull.hosts:
        if host != first:
            assert pull.file(host).read_bytes() == baseline_of(host)


def _request(url: str, path: str, token: str, method: str = "GET", body: bytes | None = None) -> int:
    import http.client

    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers={"Authorization": f"Bearer {token}"})
        return conn.getresponse().status
    finally:
        conn.close()


def test_a_wrong_token_is_refused_and_a_host_cannot_act_for_another(pull: PullFleet) -> None:
    _to_25(pull)
    assert pull.server is not None
    url = pull.server.url
    a, b = pull.hosts[0], pull.hosts[1]
    token_a = pull.tokens[a].read_text().strip()
    assert _request(url, f"/v1/hosts/{a}/assignment", token_a) == 200
    assert _request(url, f"/v1/hosts/{a}/assignment", "x" * 43) == 401
    assert _request(url, f"/v1/hosts/{b}/assignment", token_a) == 403
    report_state = pull.state / ".pull" / "hosts" / b / "report.json"
    before = report_state.read_bytes()
    forged = json.dumps({"report_id": "forged-1", "files": []}).encode()
    assert _request(url, f"/v1/hosts/{b}/report", token_a, "POST", forged) == 403
    assert report_state.read_bytes() == before  # the forgery changed nothing
    big = json.dumps({"report_id": "big", "usage": [{"x": "y" * 1000}] * 5000}).encode()
    assert _request(url, f"/v1/hosts/{a}/report", token_a, "POST", big) == 413
    wrong = tmp = pull.root / "wrong.token"
    tmp.write_text("not-the-token-of-anyone-here\n")
    tmp.chmod(0o600)
    done = pull.agent(a, token=wrong)
    assert done.returncode != 0 and "401" in done.stderr, done.stderr


def test_a_retried_report_is_kept_once(pull: PullFleet) -> None:
    _to_25(pull)
    assert pull.server is not None
    a = pull.hosts[0]
    token = pull.tokens[a].read_text().strip()
    record = {"time": "2026-01-01T00:00:00Z", "agent": "build", "model": "x/y", "cost_usd": 0.01}
    body = json.dumps({"report_id": "r-1", "files": [], "usage": [record]}).encode()
    for _ in range(3):
        assert _request(pull.server.url, f"/v1/hosts/{a}/report", token, "POST", body) == 200
    usage = (pull.state / ".pull" / "hosts" / a / "usage.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in usage] == [record]


class _Bad(http.server.BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body) + 100))  # promises more than it sends
        self.end_headers()
        self.wfile.write(self.body)

    def do_POST(self) -> None:  # noqa: N802
        self.send_response(500)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.parametrize(
    "body",
    [
        b'{"files": [{"path": "~/.config/opencode/opencode.json", "sha256": "ab',  # truncated
        b"<html>garbage</html>",
        json.dumps(
            {
                "files": [
                    {
                        "path": "~/.config/opencode/opencode.json",
                        "sha256": hashlib.sha256(b"other").hexdigest(),
                        "expect_sha256": None,
                        "content_b64": "aGFja2Vk",  # "hacked": not the bytes of that hash
                    }
                ]
            }
        ).encode(),
    ],
    ids=["truncated", "garbage", "hash-mismatch"],
)
def test_a_broken_assignment_is_never_written(tmp_path: Path, body: bytes) -> None:
    fleet = make(tmp_path, hosts=("lap-a",))
    handler = type("Bad", (_Bad,), {"body": body})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        done = fleet.agent("lap-a", server=url)
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode != 0
    assert "nothing written" in done.stderr, done.stderr
    assert fleet.file("lap-a").read_bytes() == baseline_of("lap-a")
    leftovers = [p.name for p in fleet.file("lap-a").parent.iterdir()]
    assert leftovers == ["opencode.json"]


def test_drift_on_a_laptop_is_reported_and_left_alone(pull: PullFleet) -> None:
    first = _to_25(pull)
    mine = b'{"model": "my/own"}\n'
    pull.file(first).write_bytes(mine)  # the developer edited it before the agent ran
    done = pull.agent(first)
    assert done.returncode != 0 and "drift" in done.stderr, done.stderr
    assert pull.file(first).read_bytes() == mine
    pull.rollout("status")
    status = pull.status()["hosts"][first]
    assert status["state"] == "drifted" and "neither" in status["reason"]


def test_hosts_add_list_revoke(tmp_path: Path) -> None:
    fleet = make(tmp_path, hosts=("lap-a", "lap-b"))
    token = fleet.tokens["lap-a"].read_text().strip()
    listed = fleet.rollout("hosts", "list")
    assert listed.returncode == 0 and "lap-a" in listed.stdout and "lap-b" in listed.stdout
    assert token not in listed.stdout
    stored = (fleet.state / ".pull" / "hosts.json").read_text()
    assert token not in stored
    assert (fleet.state / ".pull" / "hosts.json").stat().st_mode & 0o777 == 0o600
    again = fleet.rollout("hosts", "add", "lap-a")
    assert again.returncode == 2 and "already" in again.stderr
    assert fleet.rollout("hosts", "revoke", "lap-b").returncode == 0
    assert "lap-b" not in fleet.rollout("hosts", "list").stdout
    # A pull playbook naming a host that is not added: validate and start refuse (2), naming it.
    for verb in ("validate", "start"):
        refused = fleet.rollout(verb, str(fleet.playbook))
        assert refused.returncode == 2 and "lap-b" in refused.stderr, refused.stderr
    assert fleet.rollout("status").returncode == 5  # start created nothing
    served = start_serve(fleet.state)
    try:
        revoked = fleet.tokens["lap-b"].read_text().strip()
        assert _request(served.url, "/v1/hosts/lap-b/assignment", revoked) == 401
    finally:
        assert stop(served) == 0


def test_a_pull_playbook_refuses_a_command_check_on_the_laptops(tmp_path: Path) -> None:
    """Nothing runs on a laptop but its agent: a `run` check on the hosts could never pass, so
    validate and start refuse it (exit 2, file:line and field), and `on: local` is accepted."""
    fleet = make(tmp_path, hosts=("lap-a",))
    text = fleet.playbook.read_text()
    fleet.playbook.write_text(text.replace("      on: local\n", ""))
    line = fleet.playbook.read_text().splitlines().index("      run: 'true'") + 1
    for verb in ("validate", "start"):
        done = fleet.rollout(verb, str(fleet.playbook))
        assert done.returncode == 2, (verb, done.stdout, done.stderr)
        out = done.stdout + done.stderr
        assert "Traceback" not in out
        assert f"{fleet.playbook}:{line}" in out and "health.checks[0].run" in out, out
        assert "commands do not run on laptops" in out, out
    assert not list(fleet.state.glob("*/state.json"))
    fleet.playbook.write_text(text)
    assert fleet.rollout("validate", str(fleet.playbook)).returncode == 0


# -- bundles over pull: every file of a laptop's bundle, applied all or none -------------------
CANDIDATE_B = b'{"agent": {"review": {"model": "anthropic/claude-haiku-4"}}}\n'


def baseline_b(host: str) -> bytes:
    return json.dumps({"agent": {"review": {"model": f"openai/gpt-4o-mini-{host}"}}}).encode() + b"\n"


def second(fleet: PullFleet, host: str) -> Path:
    return fleet.home(host) / ".config" / "opencode" / "agents.json"


def make_bundle(tmp_path: Path, extra: str = "") -> PullFleet:
    """A pull fleet moving two files per laptop (config.files), each with a plain source."""
    fleet = make(tmp_path)
    (tmp_path / "agents.json").write_bytes(CANDIDATE_B)
    text = fleet.playbook.read_text()
    head, rest = text.split("config:\n", 1)
    fleet.playbook.write_text(
        head
        + "config:\n  files:\n"
        + "    - {name: main, source: candidate.json, path: ~/.config/opencode/opencode.json}\n"
        + "    - {name: agents, source: agents.json, path: ~/.config/opencode/agents.json}\n"
        + extra
        + rest[rest.index("targets:") :]
    )
    for host in fleet.hosts:
        second(fleet, host).write_bytes(baseline_b(host))
    return fleet


@pytest.fixture
def bundle(tmp_path: Path) -> Iterator[PullFleet]:
    fleet = make_bundle(tmp_path)
    fleet.server = start_serve(fleet.state)
    yield fleet
    if fleet.server.proc.poll() is None:
        assert stop(fleet.server) == 0


def _run_to_100(fleet: PullFleet) -> None:
    for _ in range(10):
        if fleet.status()["state"] == "complete":
            return
        fleet.poll()
        step = fleet.rollout("advance")
        assert step.returncode in (0, 5), step.stdout + step.stderr
    raise AssertionError(f"not complete: {fleet.status()}")


def test_a_bundle_of_two_files_moves_over_pull_to_100(bundle: PullFleet) -> None:
    started = bundle.rollout("start", str(bundle.playbook))
    assert started.returncode == 0, started.stdout + started.stderr
    assert set(bundle.states().values()) == {"unknown"}
    bundle.poll()  # each agent uploads the baseline of both files
    assert set(bundle.states().values()) == {"baseline"}
    rollout_dir = Path(bundle.status()["folder"])
    state = json.loads((rollout_dir / "state.json").read_text())
    for host in bundle.hosts:
        files = state["hosts"][host]["files"]
        assert files["main"]["baseline_sha256"] == hashlib.sha256(baseline_of(host)).hexdigest()
        assert files["agents"]["baseline_sha256"] == hashlib.sha256(baseline_b(host)).hexdigest()
    assert bundle.rollout("advance").returncode == 0
    (first,) = [h for h, s in bundle.states().items() if s == "pending"]
    token = bundle.tokens[first].read_text().strip()
    assert bundle.server is not None
    with _open(bundle.server.url, f"/v1/hosts/{first}/assignment", token) as resp:
        doc = json.loads(resp.read())
    paths = {f["path"]: f for f in doc["files"]}
    assert set(paths) == {"~/.config/opencode/opencode.json", "~/.config/opencode/agents.json"}
    assert paths["~/.config/opencode/agents.json"]["sha256"] == hashlib.sha256(CANDIDATE_B).hexdigest()
    assert paths["~/.config/opencode/agents.json"]["expect_sha256"] == hashlib.sha256(baseline_b(first)).hexdigest()
    _run_to_100(bundle)
    for host in bundle.hosts:
        assert bundle.file(host).read_bytes() == CANDIDATE
        assert second(bundle, host).read_bytes() == CANDIDATE_B
    assert set(bundle.states().values()) == {"candidate"}


def _open(url: str, path: str, token: str) -> Any:
    import urllib.request

    req = urllib.request.Request(url.rstrip("/") + path, headers={"Authorization": f"Bearer {token}"})
    return urllib.request.urlopen(req, timeout=10)  # noqa: S310 - loopback test server


def test_a_rollback_over_pull_restores_both_files(bundle: PullFleet) -> None:
    first = _to_25(bundle)
    bundle.poll(first)
    assert bundle.file(first).read_bytes() == CANDIDATE
    assert second(bundle, first).read_bytes() == CANDIDATE_B
    assert bundle.states()[first] == "candidate"
    aborted = bundle.rollout("abort", "--reason", "cost")
    assert aborted.returncode == 4 and first in aborted.stdout, aborted.stdout + aborted.stderr
    bundle.poll(first)
    done = bundle.rollout("abort", "--reason", "cost")
    assert done.returncode == 0, done.stdout + done.stderr
    for host in bundle.hosts:
        assert bundle.file(host).read_bytes() == baseline_of(host)
        assert second(bundle, host).read_bytes() == baseline_b(host)


def test_drift_of_the_second_file_leaves_both_files_of_that_laptop_untouched(bundle: PullFleet) -> None:
    first = _to_25(bundle)
    mine = b'{"agent": "my own"}\n'
    second(bundle, first).write_bytes(mine)
    done = bundle.agent(first)
    assert done.returncode != 0 and "drift" in done.stderr and "agents.json" in done.stderr, done.stderr
    assert bundle.file(first).read_bytes() == baseline_of(first)  # all or none: the first is not written
    assert second(bundle, first).read_bytes() == mine
    bundle.rollout("status")
    status = bundle.status()["hosts"][first]
    assert status["state"] == "drifted" and "agents.json" in status["reason"], status
    held = bundle.rollout("advance")
    assert held.returncode != 0, held.stdout
    assert bundle.file(first).read_bytes() == baseline_of(first)


# -- activate over pull: the agent runs it after it applied the files -------------------------
ACTIVATE = (
    "  activate: 'echo \"$ROLLOUT_ACTION $ROLLOUT_HOST $(printf \"%s\\\\n\" \"$ROLLOUT_FILES\" | wc -l)\""
    " >> activate.log; [ \"$ROLLOUT_ACTION\" = restore ] || [ ! -e fail-activate ]'\n"
    "  activate_timeout: 30s\n"
)


def _log(fleet: PullFleet, host: str) -> list[str]:
    path = fleet.home(host) / "activate.log"
    return path.read_text().split("\n")[:-1] if path.exists() else []


@pytest.fixture
def activated(tmp_path: Path) -> Iterator[PullFleet]:
    fleet = make_bundle(tmp_path, ACTIVATE)
    fleet.server = start_serve(fleet.state)
    yield fleet
    if fleet.server.proc.poll() is None:
        assert stop(fleet.server) == 0


def test_the_agent_activates_after_it_applied_the_files_and_after_a_rollback(activated: PullFleet) -> None:
    fleet = activated
    first = _to_25(fleet)
    assert all(_log(fleet, h) == [] for h in fleet.hosts)  # a baseline upload applies nothing
    fleet.poll(first)
    assert fleet.file(first).read_bytes() == CANDIDATE
    assert second(fleet, first).read_bytes() == CANDIDATE_B
    assert _log(fleet, first) == [f"switch {first} 2"]
    fleet.poll(first)  # nothing new to apply: not activated again
    assert _log(fleet, first) == [f"switch {first} 2"]
    assert fleet.states()[first] == "candidate"
    assert fleet.rollout("abort").returncode == 4
    fleet.poll()
    assert fleet.rollout("abort").returncode == 0
    assert _log(fleet, first) == [f"switch {first} 2", f"restore {first} 2"]
    assert all(_log(fleet, h) == [] for h in fleet.hosts if h != first)
    for host in fleet.hosts:
        assert fleet.file(host).read_bytes() == baseline_of(host)
        assert second(fleet, host).read_bytes() == baseline_b(host)


def test_a_failed_activation_puts_the_files_back_and_fails_the_gate(activated: PullFleet) -> None:
    fleet = activated
    first = _to_25(fleet)
    (fleet.home(first) / "fail-activate").write_text("")
    done = fleet.agent(first)
    assert done.returncode == 3 and "switch failed: activation (switch)" in done.stderr, done.stdout + done.stderr
    assert fleet.file(first).read_bytes() == baseline_of(first)  # put back, both files
    assert second(fleet, first).read_bytes() == baseline_b(first)
    assert _log(fleet, first) == [f"switch {first} 2", f"restore {first} 2"]
    again = fleet.agent(first)  # the same assignment is not tried again
    assert again.returncode == 3 and "not applied again" in again.stderr, again.stderr
    assert len(_log(fleet, first)) == 2
    host = fleet.status()["hosts"][first]
    assert host["state"] == "baseline", host
    assert "switch failed on the laptop: activation (switch)" in host["reason"], host
    assert "switch failed on the laptop: activation (switch)" in host["switch_failed"], host
    gated = fleet.rollout("advance")
    assert gated.returncode != 0, gated.stdout
    assert "switch failed" in gated.stdout, gated.stdout
    assert fleet.status()["state"] == "rolled-back"
    for h in fleet.hosts:
        assert fleet.file(h).read_bytes() == baseline_of(h)
        assert second(fleet, h).read_bytes() == baseline_b(h)


def test_a_stage_deadline_decides_on_a_pull_cohort_whose_agent_never_confirms(tmp_path: Path) -> None:
    import time

    fleet = make(tmp_path, stages="[shadow, {percent: 25, deadline: 1s, on_deadline: rollback}, 50, 100]")
    fleet.server = start_serve(fleet.state)
    try:
        first = _to_25(fleet)  # assigned; its laptop sleeps from now on
        held = fleet.rollout("advance")
        assert held.returncode == 5 and first in held.stdout, held.stdout
        time.sleep(1.2)  # the stage's deadline passes with its cohort unconfirmed
        decided = fleet.rollout("advance")
        assert decided.returncode == 3, decided.stdout + decided.stderr
        assert "deadline: stage 25% not promoted within its deadline of 1s" in decided.stdout, decided.stdout
        status = fleet.status()
        assert status["state"] == "rolled-back", status
        assert status["reason"].startswith("stage 25% not promoted within its deadline of 1s")
        events = [json.loads(x) for x in (Path(status["folder"]) / "events.jsonl").read_text().splitlines()]
        assert [e["action"] for e in events if e["event"] == "deadline"] == ["rollback"]
        fleet.poll()  # the sleeper wakes after the rollback: it is assigned its baseline, nothing to do
        for host in fleet.hosts:
            assert fleet.file(host).read_bytes() == baseline_of(host)
    finally:
        assert stop(fleet.server) == 0


# OpenCode's store on the laptop, forwarded by the agent (--opencode-db) as usage records.

STORE = "~/.local/share/opencode/opencode.db"


def store_of(fleet: PullFleet, host: str) -> Path:
    path = fleet.home(host) / ".local" / "share" / "opencode" / "opencode.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def forwarded(fleet: PullFleet, host: str) -> list[dict[str, Any]]:
    path = fleet.state / ".pull" / "hosts" / host / "usage.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _insert(conn: Any, msg_id: str, data: dict[str, Any]) -> None:
    created = data["time"]["created"]
    conn.execute("INSERT INTO message VALUES (?, 'ses_1', ?, ?, ?)", (msg_id, created, created, json.dumps(data)))
    conn.commit()


def test_a_metric_gate_passes_on_the_opencode_calls_the_agent_forwards_once(tmp_path: Path) -> None:
    import time

    from tests import opencode_db

    fleet = make(tmp_path, stages="[shadow, 50, 100]", hosts=("lap-a", "lap-b"))
    with fleet.playbook.open("a") as f:
        f.write(
            "    - name: errors\n      metric: error_rate\n"
            "      source: {type: usage-log, path: 'pull:usage'}\n"
            "      window: 1h\n      max: 0.5\n      min_samples: 3\n"
        )
    fleet.server = start_serve(fleet.state)
    try:
        assert fleet.rollout("start", str(fleet.playbook)).returncode == 0
        for host in fleet.hosts:  # a laptop whose store is still empty forwards nothing
            opencode_db.create(store_of(fleet, host), []).close()
            done = fleet.agent(host, "--opencode-db", STORE)
            assert done.returncode == 0, done.stdout + done.stderr
        went = fleet.rollout("advance")  # shadow -> 50%
        assert went.returncode == 0, went.stdout + went.stderr
        (canary,) = [h for h, s in fleet.states().items() if s == "pending"]
        done = fleet.agent(canary, "--opencode-db", STORE)
        assert done.returncode == 0, done.stdout + done.stderr
        assert fleet.states()[canary] == "candidate"
        assert forwarded(fleet, canary) == []
        # The canary's OpenCode makes four good calls after it switched, and one more is streaming.
        now = int(time.time() * 1000) + 1000
        store_of(fleet, canary).unlink()
        live = opencode_db.create(store_of(fleet, canary), [], wal=True)  # OpenCode holds it open
        try:
            _insert(live, "msg_u", opencode_db.user(now))
            for i in range(12):
                _insert(live, f"msg_{i:02d}", opencode_db.assistant(now + i * 10, agent="build"))
            _insert(live, "msg_s", opencode_db.assistant(now + 1, duration_ms=None))
            assert (store_of(fleet, canary).parent / "opencode.db-wal").exists()
            before = store_of(fleet, canary).read_bytes()
            for _ in range(2):  # polled twice: the records arrive once
                done = fleet.agent(canary, "--opencode-db", STORE)
                assert done.returncode == 0, done.stdout + done.stderr
            assert store_of(fleet, canary).read_bytes() == before  # read-only
            got = forwarded(fleet, canary)
            assert len(got) == 12, got
            assert {r["outcome"] for r in got} == {"success"}
            assert got[0]["gen_ai.request.model"] == "anthropic/claude-sonnet-4"
            assert got[0]["gen_ai.agent.name"] == "build" and got[0]["duration_s"] == 2.0
            assert sorted(r["ts"] for r in got) == [(now + i * 10) / 1000 for i in range(12)]
            # The streaming call finishes: forwarded once, at the next poll.
            finished = opencode_db.assistant(now + 1, duration_ms=5000, model="claude-opus-4")
            live.execute("UPDATE message SET data = ? WHERE id = 'msg_s'", (json.dumps(finished),))
            live.commit()
            for _ in range(2):
                done = fleet.agent(canary, "--opencode-db", STORE)
                assert done.returncode == 0, done.stdout + done.stderr
            got = forwarded(fleet, canary)
            assert len(got) == 13, got
            assert [r["duration_s"] for r in got].count(5.0) == 1
            # A later call past the held cursor comes once too.
            _insert(live, "msg_late", opencode_db.assistant(now + 100))
            for _ in range(2):
                assert fleet.agent(canary, "--opencode-db", STORE).returncode == 0
            assert len(forwarded(fleet, canary)) == 14
        finally:
            live.close()
        # error_rate 0/14 against max 0.5 (min_samples 3): the gate passes.
        advanced = fleet.rollout("advance")
        assert advanced.returncode == 0, advanced.stdout + advanced.stderr
        assert "errors" in advanced.stdout, advanced.stdout
    finally:
        assert stop(fleet.server) == 0


def test_a_metric_gate_fails_on_the_failing_opencode_calls_forwarded(tmp_path: Path) -> None:
    import time

    from tests import opencode_db

    fleet = make(tmp_path, stages="[shadow, 50, 100]", hosts=("lap-a", "lap-b"))
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
        now = int(time.time() * 1000) + 1000
        bad = {"name": "APIError", "data": {"message": "overloaded", "statusCode": 529}}
        calls = [opencode_db.assistant(now + i, error=bad if i % 4 else None) for i in range(20)]
        opencode_db.create(store_of(fleet, canary), list(calls)).close()
        assert fleet.agent(canary, "--opencode-db", STORE).returncode == 0
        assert [r["outcome"] for r in forwarded(fleet, canary)].count("error") == 15
        advanced = fleet.rollout("advance")
        # Rolled back (exit 4 until the canary's agent confirms its baseline).
        assert advanced.returncode == 4, advanced.stdout + advanced.stderr
        assert "error_rate 75.0% on canary (15/20 calls" in advanced.stdout, advanced.stdout
        fleet.poll(canary)
        assert fleet.file(canary).read_bytes() == baseline_of(canary)
    finally:
        assert stop(fleet.server) == 0


def test_an_opencode_store_that_cannot_be_opened_is_reported_not_fatal(pull: PullFleet) -> None:
    assert pull.rollout("start", str(pull.playbook)).returncode == 0
    host = pull.hosts[0]
    missing = pull.agent(host, "--opencode-db", STORE)  # no store there
    assert missing.returncode == 1, missing.stdout + missing.stderr
    assert "Traceback" not in missing.stderr
    assert "opencode store" in missing.stderr and "cannot open it" in missing.stderr, missing.stderr
    report = json.loads((pull.state / ".pull" / "hosts" / host / "report.json").read_text())
    assert any("cannot open it" in e for e in report["errors"]), report
    store_of(pull, host).write_bytes(b"not a database at all" * 100)
    garbage = pull.agent(host, "--opencode-db", STORE)
    assert garbage.returncode == 1 and "Traceback" not in garbage.stderr, garbage.stderr
    assert "opencode store" in garbage.stderr, garbage.stderr
    assert pull.file(host).read_bytes() == baseline_of(host)  # the rest of the poll went on
    assert pull.states()[host] != "unknown"  # its baseline was uploaded with the report all the same
    config = pull.root / "agent.yml"
    config.write_text("opencode_db: ~/elsewhere/opencode.db\n")  # the setting in the agent's config file
    configured = pull.agent(host, "--config", str(config))
    assert configured.returncode == 1 and "elsewhere/opencode.db: cannot open it" in configured.stderr
