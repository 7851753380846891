"""notify: webhooks against real HTTP receivers on loopback (one that answers, one that returns 500,
one that hangs); delivery never blocks, slows or fails the rollout; secrets are redacted."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import LocalFleet, make_fleet

ROOT = Path(__file__).resolve().parent.parent
SECRET = "xoxb-very-secret-token-123"


class Receiver:
    """A loopback HTTP server that records what it was sent and answers as told."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.requests: list[dict[str, Any]] = []
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "body": json.loads(body)}
                )
                if receiver.mode == "hang":
                    receiver.release.wait(60)
                    return
                self.send_response(500 if receiver.mode == "500" else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def bodies(self, path: str = "/hook") -> list[dict[str, Any]]:
        return [r["body"] for r in self.requests if r["path"] == path]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers() -> Iterator[dict[str, Receiver]]:
    made = {mode: Receiver(mode) for mode in ("ok", "500", "hang")}
    yield made
    for r in made.values():
        r.close()


def _fleet(
    tmp_path: Path, notify: list[dict[str, Any]], checks: list[dict[str, Any]] | None = None
) -> LocalFleet:
    fleet = make_fleet(tmp_path, n=4, stages=["shadow", 50, 100], checks=checks)
    fleet.rewrite(notify=notify)
    return fleet


def _journal(fleet: LocalFleet) -> list[dict[str, Any]]:
    lines = (fleet.rollout_dir() / "events.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_json_and_slack_webhooks_get_every_event_with_its_numbers(
    tmp_path: Path, receivers: dict[str, Receiver], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_TOKEN", SECRET)
    ok = receivers["ok"]
    fleet = _fleet(
        tmp_path,
        [
            {
                "url": ok.url("/json"),
                "headers": {"Authorization": "Bearer ${SLACK_TOKEN}", "X-Team": "infra"},
            },
            {"url": ok.url("/slack"), "format": "slack", "events": ["complete"], "timeout": "2s"},
        ],
    )
    result = fleet.cli("--operator", "alice", "run", str(fleet.playbook), "--auto")
    assert result.exit_code == 0, result.output
    bodies = ok.bodies("/json")
    events = [b["event"] for b in bodies]
    assert events == [
        "started",
        "gate-passed",
        "stage-live",
        "gate-passed",
        "stage-live",
        "gate-passed",
        "complete",
    ]
    rollout_id = fleet.status()["id"]
    for body in bodies:
        assert body["rollout"] == rollout_id and body["name"] == "test-rollout"
        assert body["operator"] == "alice" and body["time"]
        assert set(body) >= {"stage", "percent", "hosts", "reason"}
    live = [b for b in bodies if b["event"] == "stage-live"]
    assert [(b["stage"], b["percent"], len(b["hosts"])) for b in live] == [("50%", 50, 2), ("100%", 100, 4)]
    assert live[0]["reason"] == "candidate live on 2/4 host(s)"
    assert bodies[1]["reason"]  # the gate's why, as the journal has it
    headers = [r["headers"] for r in ok.requests if r["path"] == "/json"]
    assert {h["Authorization"] for h in headers} == {f"Bearer {SECRET}"}
    (slack,) = ok.bodies("/slack")
    assert set(slack) == {"text"}
    assert slack["text"].startswith(f"rollout test-rollout ({rollout_id}): complete at 100% (100%, 4/4 hosts")
    assert "By alice" in slack["text"]
    # The token lives in the environment only: never in the state folder or the output.
    for path in fleet.rollout_dir().rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in result.output


def test_a_rollback_notifies_gate_failed_and_rolled_back_with_the_reason(
    tmp_path: Path, receivers: dict[str, Receiver]
) -> None:
    ok = receivers["ok"]
    fleet = _fleet(
        tmp_path,
        [{"url": ok.url(), "events": ["gate-failed", "rolled-back"]}],
        checks=[{"name": "shadow-only", "run": 'test "$ROLLOUT_PERCENT" = 0'}],
    )
    assert fleet.cli("run", str(fleet.playbook), "--auto").exit_code == 3
    failed, rolled = ok.bodies()
    assert (failed["event"], failed["stage"]) == ("gate-failed", "50%")
    assert "shadow-only on dev-" in failed["reason"] and "exit 1" in failed["reason"]
    assert rolled["event"] == "rolled-back"
    assert rolled["reason"].startswith("gate 50% failed:")
    assert len(rolled["hosts"]) == 2  # the 50% cohort, restored
    assert rolled["hosts_live"] == 0


def test_a_webhook_that_returns_500_is_retried_then_recorded_undelivered(
    tmp_path: Path, receivers: dict[str, Receiver]
) -> None:
    bad = receivers["500"]
    fleet = _fleet(
        tmp_path, [{"url": bad.url("/services/T0/B0/SECRETPATH"), "events": ["started"], "retry_for": "1s"}]
    )
    result = fleet.cli("start", str(fleet.playbook))
    assert result.exit_code == 0, result.output  # the rollout is not failed by its webhook
    assert len(bad.requests) >= 2  # retried with backoff
    (undelivered,) = [e for e in _journal(fleet) if e["event"] == "notify-undelivered"]
    assert undelivered["notify_event"] == "started"
    assert "HTTP 500" in undelivered["error"]
    assert undelivered["attempts"] == len(bad.requests)
    assert "SECRETPATH" not in json.dumps(undelivered)  # a webhook URL's path is its secret
    assert fleet.cli("history", "--verify").exit_code == 0  # appended outside a verb's save: still chained
    assert fleet.cli("advance").exit_code == 0


def test_a_webhook_that_hangs_neither_blocks_nor_slows_the_rollout(
    tmp_path: Path, receivers: dict[str, Receiver], child_env: dict[str, str]
) -> None:
    hang = receivers["hang"]
    fleet = _fleet(tmp_path, [{"url": hang.url(), "timeout": "30s", "retry_for": "5m"}])
    began = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "rollout",
            "--state-dir",
            str(fleet.state),
            "run",
            str(fleet.playbook),
            "--auto",
        ],
        cwd=ROOT,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    took = time.monotonic() - began
    assert proc.returncode == 0, proc.stderr
    assert took < 15, took  # the rollout itself, plus at most the 2 s exit grace
    assert hang.requests  # the first notification reached the receiver, which never answered
    undelivered = [e for e in _journal(fleet) if e["event"] == "notify-undelivered"]
    assert undelivered
    assert any("not confirmed within 2s" in e["error"] for e in undelivered)
    assert fleet.status()["state"] == "complete"


@pytest.mark.parametrize(
    ("notify", "message"),
    [
        ({"url": "ftp://x"}, "notify[0].url: must be an http:// or https:// URL"),
        ({"url": "http://x", "events": ["exploded"]}, "notify[0].events: unknown event 'exploded'"),
        ({"url": "http://x", "format": "xml"}, "notify[0].format: must be json or slack"),
        ({"url": "http://x", "colour": "red"}, "notify[0].colour: unknown key"),
        ({"url": "http://x", "timeout": "soon"}, "notify[0].timeout: must be a duration"),
    ],
)
def test_a_bad_notify_block_is_bad_input(tmp_path: Path, notify: dict[str, Any], message: str) -> None:
    fleet = _fleet(tmp_path, [notify])
    result = fleet.cli("validate", str(fleet.playbook))
    assert result.exit_code == 2
    assert message in result.stderr


def test_operator_events_reach_the_webhook(tmp_path: Path, receivers: dict[str, Receiver]) -> None:
    ok = receivers["ok"]
    fleet = _fleet(
        tmp_path, [{"url": ok.url(), "events": ["paused", "resumed", "deadline", "aborted", "reverted"]}]
    )
    fleet.rewrite(health={"deadline": "1s", "checks": [{"name": "ok", "run": "true"}]})
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    assert fleet.cli("--operator", "carol", "pause", "--reason", "vendor incident").exit_code == 0
    assert fleet.cli("resume").exit_code == 0
    time.sleep(1.1)
    assert fleet.cli("advance").exit_code == 0  # notices the deadline (alert), then promotes
    assert fleet.cli("abort", "--reason", "enough for today").exit_code == 0
    events = [(b["event"], b["reason"]) for b in ok.bodies()]
    assert [e for e, _ in events] == ["paused", "resumed", "deadline", "aborted"]
    assert events[0][1] == "vendor incident" and ok.bodies()[0]["operator"] == "carol"
    assert events[2][1].startswith("stage shadow not promoted within its deadline of 1s")
    assert events[3][1] == "enough for today"
