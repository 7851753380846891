"""Check kind `http`: status and JSON field bounds against a loopback server."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rollout import checks
from rollout.checks.base import Measurement
from rollout.util.errors import BadInput
from tests.prometheus import free_port
from tests.test_gates_metric import context, make_playbook

BODY = {"status": "ok", "queue": {"depth": 12}, "models": [{"latency_ms": 850}]}


@pytest.fixture(name="server")
def server_fixture() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            code = 503 if self.path.startswith("/down") else 200
            body = b"<html>" if self.path.startswith("/html") else json.dumps(BODY).encode()
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return None

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def probe(tmp_path: Path, spec: dict[str, Any], canary: tuple[str, ...] = ("dev-01",)) -> list[Measurement]:
    pb = make_playbook(tmp_path, [{"name": "probe", **spec}])
    check = pb.health.checks[0]
    return checks.get(check.kind).evaluate(check, context(pb, canary=canary))


def test_status_and_fields_within_bounds_pass(tmp_path: Path, server: str) -> None:
    spec = {
        "http": server + "/health?host={host}",
        "json": {"status": "ok", "queue.depth": {"max": 50}, "models.0.latency_ms": {"min": 1, "max": 1000}},
    }
    ms = probe(tmp_path, spec, canary=("dev-01", "dev-02"))
    assert [(m.host, m.outcome) for m in ms] == [("dev-01", "pass"), ("dev-02", "pass")]
    assert ms[0].why == "HTTP 200, status='ok', queue.depth=12, models.0.latency_ms=850"
    assert ms[1].details["url"] == server + "/health?host=dev-02"


def test_field_out_of_bounds_fails(tmp_path: Path, server: str) -> None:
    (m,) = probe(tmp_path, {"http": server + "/", "on": "local", "json": {"queue.depth": {"max": 10}}})
    assert (m.host, m.outcome, m.why) == (None, "fail", "HTTP 200, queue.depth 12 is above max 10")


def test_missing_field_and_wrong_value_fail(tmp_path: Path, server: str) -> None:
    (m,) = probe(tmp_path, {"http": server + "/", "json": {"nope.x": 1}})
    assert m.why == "HTTP 200, field nope.x is missing"
    (m,) = probe(tmp_path, {"http": server + "/", "json": {"status": "degraded"}})
    assert m.why == "HTTP 200, status is 'ok', expected 'degraded'"


def test_unexpected_status_and_non_json_fail(tmp_path: Path, server: str) -> None:
    (m,) = probe(tmp_path, {"http": server + "/down"})
    assert (m.outcome, m.why) == ("fail", "HTTP 503 (expected 200)")
    (m,) = probe(tmp_path, {"http": server + "/down", "status": [200, 503]})
    assert (m.outcome, m.why) == ("pass", "HTTP 503")
    (m,) = probe(tmp_path, {"http": server + "/html", "json": {"status": "ok"}})
    assert (m.outcome, m.why) == ("fail", "HTTP 200 but the body is not JSON")


def test_unreachable_is_an_error(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/health"
    (m,) = probe(tmp_path, {"http": url})
    assert m.outcome == "error"
    assert m.why.startswith(f"cannot reach {url}: ")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"http": "localhost/health"},
            "http: must be a URL starting with http:// or https://, got 'localhost/health'",
        ),
        ({"http": "http://x/", "status": 99}, "status: must be an HTTP status or a list of them, got 99"),
        ({"http": "http://x/", "json": {"a": {"max": "high"}}}, "json.a.max: must be a number, got 'high'"),
        (
            {"http": "http://x/", "json": {"a": {"below": 1}}},
            "json.a.below: unknown key (expected: equals, max, min)",
        ),
    ],
)
def test_bad_http_check_is_rejected_naming_the_field(
    tmp_path: Path, spec: dict[str, Any], message: str
) -> None:
    with pytest.raises(BadInput) as e:
        make_playbook(tmp_path, [{"name": "probe", **spec}])
    assert str(e.value) == f"{tmp_path / 'playbook.yml'}: health.checks[0].{message}"
