"""`rollout serve`: the real CLI serving on a free loopback port, its JSON API, /metrics scraped
by a real Prometheus, the token, read-only access, and the page in a real headless Chromium."""

from __future__ import annotations

import fcntl
import hashlib
import http.client
import json
import os
import re
import select
import shutil
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from rollout.cli import cli
from tests.conftest import LocalFleet, make_fleet
from tests.prometheus import PROMETHEUS, free_port
from tests.prometheus import missing as prometheus_missing
from tests.test_metrics_cli import USAGE, error_gate, traffic

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
TOKEN = "s3cret-token-0123456789abcdef"
LOOKS = 3


def latency_observe() -> dict[str, Any]:
    return {
        "name": "latency",
        "metric": "latency_mean_s",
        "source": {"type": "usage-log", "path": USAGE},
        "max": 10,
        "max_regression": 0.5,
        "enforce": False,
    }


def build_fleet(root: Path) -> LocalFleet:
    """A rollout live at 25% whose gate has measured LOOKS times (inconclusive: too few samples)."""
    has_model = {"name": "has-model", "run": 'grep -q \'"model"\' "$ROLLOUT_CONFIG_PATH"'}
    fleet = make_fleet(root, checks=[has_model, error_gate(min_samples=1000), latency_observe()])
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    assert fleet.cli("advance").exit_code == 0  # shadow passes: 25% goes live
    for look in range(LOOKS):
        traffic(fleet, per_host=100, canary_error_rate=0.02 + 0.03 * look)
        result = fleet.cli("advance")
        assert result.exit_code == 5, result.output  # inconclusive: 200 canary calls, 1000 needed
    return fleet


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> LocalFleet:
    return build_fleet(tmp_path_factory.mktemp("served"))


@dataclass
class Served:
    url: str
    proc: subprocess.Popen[str]

    def get(self, path: str, headers: dict[str, str] | None = None, method: str = "GET") -> Response:
        parts = urllib.parse.urlsplit(self.url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        try:
            conn.request(method, path, headers=headers or {})
            r = conn.getresponse()
            return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        finally:
            conn.close()


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def start_serve(state: Path | str, *extra: str) -> Served:
    """Start `rollout serve` on a free loopback port (port 0) and wait for the line naming its URL."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rollout",
            "--state-dir",
            str(state),
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--json",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    if not ready:
        proc.kill()
        pytest.fail("rollout serve did not start listening within 30 s")
    line = proc.stdout.readline()
    if not line:
        proc.wait()
        pytest.fail(f"rollout serve exited {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
    return Served(json.loads(line)["url"], proc)


def stop(served: Served) -> int:
    served.proc.terminate()  # uvicorn shuts down gracefully on SIGTERM
    return served.proc.wait(timeout=15)


@pytest.fixture(scope="module")
def served(fleet: LocalFleet) -> Iterator[Served]:
    s = start_serve(fleet.state)
    yield s
    assert stop(s) == 0


def rollout_id(fleet: LocalFleet) -> str:
    return fleet.rollout_dir().name


def tree(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file below `folder`: its bytes and mtime (to prove nothing was written)."""
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# -- the JSON API ------------------------------------------------------------------------------


def test_api_rollout_is_exactly_the_status_json_object(fleet: LocalFleet, served: Served) -> None:
    r = served.get(f"/api/rollouts/{rollout_id(fleet)}")
    assert r.status == 200 and r.headers["content-type"] == "application/json"
    assert r.json() == fleet.status()


def test_api_lists_every_rollout_with_hosts_by_state(fleet: LocalFleet, served: Served) -> None:
    r = served.get("/api/rollouts")
    assert r.status == 200
    (listed,) = r.json()["rollouts"]
    assert listed["id"] == rollout_id(fleet)
    assert (listed["state"], listed["stage"], listed["percent"], listed["active"]) == (
        "live",
        "25%",
        25,
        True,
    )
    assert listed["hosts_by_state"] == {
        "baseline": 0,
        "shadow": 6,
        "candidate": 2,
        "drifted": 0,
        "unknown": 0,
        "pending": 0,  # pull fleets' hosts not yet confirmed
    }
    assert listed["last_decision"] == "inconclusive"


def test_series_has_a_point_per_look_with_both_cohorts_and_the_bounds(
    fleet: LocalFleet, served: Served
) -> None:
    r = served.get(f"/api/rollouts/{rollout_id(fleet)}/series")
    assert r.status == 200
    checks = {c["check"]: c for c in r.json()["checks"]}
    assert set(checks) == {"error-rate", "latency"}
    errors = checks["error-rate"]
    assert (errors["metric"], errors["unit"], errors["enforce"]) == ("error_rate", "ratio", True)
    assert len(errors["points"]) == LOOKS  # the shadow look measured no traffic: not a point
    last_verdict = fleet.status()["last_verdict"]
    (measured,) = [m for m in last_verdict["measurements"] if m["check"] == "error-rate"]
    point = errors["points"][-1]
    assert (
        point["canary"] == measured["details"]["value"]
        and point["baseline"] == measured["details"]["baseline"]
    )
    assert (point["max"], point["min"], point["stage"], point["outcome"]) == (
        0.05,
        None,
        "25%",
        "inconclusive",
    )
    assert point["regression_bound"] == pytest.approx(
        (measured["details"].get("expected") or measured["details"]["baseline"]) * 1.10
    )
    assert all(a["t"] <= b["t"] for a, b in zip(errors["points"], errors["points"][1:], strict=False))
    assert checks["latency"]["enforce"] is False and checks["latency"]["points"][-1]["max"] == 10


def test_an_unknown_rollout_is_404_and_writes_are_405(served: Served) -> None:
    r = served.get("/api/rollouts/no-such-rollout")
    assert r.status == 404 and "no rollout with id 'no-such-rollout'" in r.json()["error"]["message"]
    assert served.get("/api/rollouts/..%2F..%2Fetc").status == 404
    assert served.get("/api/rollouts", method="POST").status == 405
    assert served.get("/metrics", method="DELETE").status == 405


def test_a_half_written_or_missing_state_is_reported_not_a_crash(fleet: LocalFleet, tmp_path: Path) -> None:
    state = tmp_path / "state"
    shutil.copytree(fleet.state, state, symlinks=True)
    (state / "torn-20261201-000000").mkdir()
    (state / "torn-20261201-000000" / "state.json").write_text('{"id": "torn", "state": "li')
    (state / "gone-20261201-000000").mkdir()
    (state / "gone-20261201-000000" / "events.jsonl").write_text("")
    (state / ".new-building-20261201").mkdir()  # a start still building it: not a rollout yet
    s = start_serve(state)
    try:
        listed = {r["id"]: r for r in s.get("/api/rollouts").json()["rollouts"]}
        assert set(listed) == {rollout_id(fleet), "torn-20261201-000000", "gone-20261201-000000"}
        assert listed["torn-20261201-000000"]["error"].startswith("state.json is not whole JSON")
        assert listed["gone-20261201-000000"]["error"] == "state.json is missing"
        r = s.get("/api/rollouts/torn-20261201-000000")
        assert r.status == 503 and "state.json is not whole JSON" in r.json()["error"]["message"]
        metrics = s.get("/metrics")
        assert metrics.status == 200
        assert 'rollout_unreadable{rollout="torn-20261201-000000"} 1.0' in metrics.body.decode()
        assert s.get(f"/api/rollouts/{rollout_id(fleet)}").status == 200
        assert s.get("/").status == 200
    finally:
        assert stop(s) == 0
    missing = start_serve(tmp_path / "no-state-yet")
    try:
        r = missing.get("/api/rollouts")
        assert r.status == 200 and r.json()["rollouts"] == []
        assert "does not exist" in r.json()["note"]
        assert missing.get("/metrics").status == 200
    finally:
        assert stop(missing) == 0
    assert not (tmp_path / "no-state-yet").exists()


def test_serve_reads_only_and_never_waits_for_the_lock(fleet: LocalFleet, served: Served) -> None:
    before = tree(fleet.state)
    fd = os.open(fleet.state / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another operation holds the state folder
        for path in ("/", "/api/rollouts", f"/api/rollouts/{rollout_id(fleet)}", "/metrics"):
            started = time.monotonic()
            assert served.get(path).status == 200, path
            assert time.monotonic() - started < 5
    finally:
        os.close(fd)
    assert tree(fleet.state) == before


# -- /metrics ----------------------------------------------------------------------------------


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, frozenset(s.labels.items()))] = s.value
    return found


def test_metrics_parse_as_prometheus_exposition(fleet: LocalFleet, served: Served) -> None:
    r = served.get("/metrics")
    assert r.status == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
    got = samples(r.body.decode())
    rid = rollout_id(fleet)

    def value(name: str, **labels: str) -> float:
        return got[(name, frozenset({"rollout": rid, **labels}.items()))]

    assert value("rollout_state", state="live") == 1 and value("rollout_state", state="complete") == 0
    assert value("rollout_stage_percent") == 25
    assert value("rollout_hosts", state="candidate") == 2 and value("rollout_hosts", state="shadow") == 6
    assert value("rollout_gate_decisions_total", stage="25%", decision="inconclusive") == LOOKS
    assert value("rollout_gate_decisions_total", stage="shadow", decision="pass") == 1
    (m,) = [m for m in fleet.status()["last_verdict"]["measurements"] if m["check"] == "error-rate"]
    canary = value("rollout_check_value", check="error-rate", metric="error_rate", cohort="canary")
    assert canary == pytest.approx(m["details"]["value"])
    assert value("rollout_check_bound", check="error-rate", metric="error_rate", bound="max") == 0.05
    assert value("rollout_check_samples", check="error-rate", cohort="canary") == 200
    assert value("rollout_check_results", check="error-rate", outcome="inconclusive") == 1
    assert value("rollout_check_results", check="has-model", outcome="pass") == 2  # one per canary host
    assert value("rollout_check_results", check="has-model", outcome="fail") == 0


def test_a_real_prometheus_scrapes_metrics_with_the_token(fleet: LocalFleet, tmp_path: Path) -> None:
    why = prometheus_missing()
    if why is not None:
        pytest.fail(why, pytrace=False)
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    s = start_serve(fleet.state, "--token-file", str(token))
    port = free_port()
    target = urllib.parse.urlsplit(s.url).netloc
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n"
        "scrape_configs:\n  - job_name: rollout\n"
        f"    authorization:\n      credentials_file: {token}\n"
        f"    static_configs:\n      - targets: ['{target}']\n"
    )
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        query = urllib.parse.urlencode({"query": f'rollout_stage_percent{{rollout="{rollout_id(fleet)}"}}'})
        deadline, result = time.monotonic() + 60, []
        while time.monotonic() < deadline and not result:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", f"/api/v1/query?{query}")
                result = json.loads(conn.getresponse().read())["data"]["result"]
                conn.close()
            except (OSError, KeyError, ValueError):
                pass
            time.sleep(0.3)
        assert result, "Prometheus never scraped rollout_stage_percent"
        assert result[0]["value"][1] == "25"
    finally:
        proc.kill()
        proc.wait()
        assert stop(s) == 0


# -- the token ---------------------------------------------------------------------------------


def test_with_a_token_every_request_must_carry_it(fleet: LocalFleet, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    s = start_serve(fleet.state, "--token-file", str(token))
    try:
        for path in (
            "/",
            "/api/rollouts",
            f"/api/rollouts/{rollout_id(fleet)}",
            "/metrics",
            "/static/dashboard.js",
        ):
            refused = s.get(path)
            assert refused.status == 401, path
            assert refused.headers["www-authenticate"].startswith("Bearer")
            assert s.get(path, {"Authorization": "Bearer wrong-token-0123456789"}).status == 401
            assert s.get(path, {"Authorization": f"Bearer {TOKEN}"}).status == 200, path
        assert s.get("/?token=wrong-token-0123456789").status == 401
        opened = s.get(f"/?token={TOKEN}&x=1")
        assert opened.status == 303 and opened.headers["location"] == "/?x=1"
        cookie = opened.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and TOKEN not in cookie
        jar = cookie.split(";")[0]
        assert s.get("/api/rollouts", {"Cookie": jar}).status == 200
        assert s.get("/api/rollouts", {"Cookie": "rollout_dashboard=forged"}).status == 401
        assert s.get(f"//evil.example/?token={TOKEN}").headers.get("location", "").startswith("/evil")
    finally:
        assert stop(s) == 0


def test_a_non_loopback_address_needs_a_token_file(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["--state-dir", str(tmp_path / "s"), "serve", "--listen", "0.0.0.0:8470"])
    assert result.exit_code == 2
    assert (
        "0.0.0.0 is not a loopback address; serving beyond this machine needs --token-file F" in result.output
    )
    as_json = runner.invoke(cli, ["serve", "--listen", "192.168.1.10:8470", "--json"])
    assert as_json.exit_code == 2 and json.loads(as_json.stdout)["error"]["exit_code"] == 2
    for listen in ("8470", "host:port", "127.0.0.1:70000", ":8470"):
        bad = runner.invoke(cli, ["serve", "--listen", listen])
        assert bad.exit_code == 2 and "--listen: must be HOST:PORT" in bad.output, listen
    short = tmp_path / "short"
    short.write_text("abc\n")
    bad = runner.invoke(cli, ["serve", "--token-file", str(short)])
    assert bad.exit_code == 2 and "at least 16 characters" in bad.output
    bad = runner.invoke(cli, ["serve", "--token-file", str(tmp_path / "none")])
    assert bad.exit_code == 2 and "not found" in bad.output


def test_a_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    s = start_serve(tmp_path / "state")
    try:
        taken = urllib.parse.urlsplit(s.url).netloc
        result = CliRunner().invoke(cli, ["serve", "--listen", taken])
        assert result.exit_code == 2 and f"--listen: cannot listen on {taken}" in result.output
    finally:
        assert stop(s) == 0


def test_serve_help_shows_an_example() -> None:
    result = CliRunner().invoke(cli, ["serve", "--help"])
    assert result.exit_code == 0
    assert "Example:" in result.output and "rollout serve --listen 0.0.0.0:8470 --token-file" in result.output


def test_status_does_not_import_the_web_stack(fleet: LocalFleet) -> None:
    found = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "rollout", "--state-dir", str(fleet.state), "status"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert found.returncode == 0, found.stderr
    imported = {
        line.split("|")[-1].strip().split(".")[0] for line in found.stderr.splitlines() if "|" in line
    }
    assert "rollout" in imported
    assert not imported & {"starlette", "uvicorn", "prometheus_client", "anyio", "h11"}, imported


# -- the page in a real browser ----------------------------------------------------------------


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",  # tests may run as root, where Chromium's sandbox refuses to start
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
            f"--user-data-dir={Path(os.environ['HOME']) / 'chromium'}",
            "--virtual-time-budget=10000",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_page_shows_the_rollout_its_hosts_checks_and_plots_in_chromium(
    fleet: LocalFleet, served: Served, tmp_path: Path
) -> None:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"Chromium is not installed ({CHROMIUM}): apt-get install -y chromium")
    found = chromium("--dump-dom", served.url)
    assert found.returncode == 0, found.stderr[-2000:]
    dom = found.stdout
    rid = rollout_id(fleet)
    assert 'id="connection" class="badge ok">live<' in dom, dom[:3000]
    assert (
        f'data-id="{rid}"' in dom
        and f'<h2 id="rollout-id">test-rollout <span class="muted id">{rid}</span></h2>' in dom
    )
    assert 'id="rollout-stage" class="stage">stage 25% (25% live)<' in dom
    counts = dict(re.findall(r'data-state="(\w+)"><b>(\d+)</b>', dom))
    # Hosts not yet live keep the shadow copy staged beside the baseline: "shadow".
    assert (counts["candidate"], counts["shadow"], counts["baseline"], counts["drifted"]) == (
        "2",
        "6",
        "0",
        "0",
    )
    # A check's numbers: the cohort's and the baseline's values as status shows them.
    (m,) = [m for m in fleet.status()["last_verdict"]["measurements"] if m["check"] == "error-rate"]
    row = re.search(r'<tr data-check="error-rate">(.*?)</tr>', dom)
    assert row is not None
    assert m["details"]["shown"]["value"] in row.group(1) and m["details"]["shown"]["baseline"] in row.group(
        1
    )
    assert "max 5.0%, regression &lt;= 10%" in row.group(1) and "200 / 600" in row.group(1)
    # A host check is one row: its worst outcome and the hosts counted.
    hosts_row = re.search(r'<tr data-check="has-model">(.*?)</tr>', dom)
    assert hosts_row is not None and "2/2 hosts" in hosts_row.group(1) and ">pass<" in hosts_row.group(1)
    # The plot drew every look of both cohorts, and the bound.
    plot = re.search(r'<div class="plot" data-check="error-rate">(.*?)</svg>', dom, re.S)
    assert plot is not None
    assert len(re.findall(r'<circle class="pt canary', plot.group(1))) == LOOKS
    assert len(re.findall(r'<circle class="pt baseline', plot.group(1))) == LOOKS
    assert '<path class="bound max"' in plot.group(1) and '<path class="bound regression"' in plot.group(1)
    assert "max 5.0%" in plot.group(1)
    shot = tmp_path / "dash.png"
    taken = chromium(f"--screenshot={shot}", "--window-size=1280,900", served.url)
    assert taken.returncode == 0 and shot.stat().st_size > 10_000, taken.stderr[-2000:]
    if os.environ.get("ROLLOUT_SCREENSHOT"):
        shutil.copy(shot, os.environ["ROLLOUT_SCREENSHOT"])


def test_the_page_follows_a_new_look_without_a_reload(fleet: LocalFleet, tmp_path: Path) -> None:
    """The page polls the API: a look journaled while it is open appears in the plot."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"Chromium is not installed ({CHROMIUM}): apt-get install -y chromium")
    fresh = build_fleet(tmp_path / "fresh")
    s = start_serve(fresh.state)
    try:
        before = chromium("--dump-dom", s.url).stdout
        assert len(re.findall(r'<circle class="pt canary', before)) == 2 * LOOKS  # two metric checks
        traffic(fresh, per_host=100, canary_error_rate=0.02)
        assert fresh.cli("advance").exit_code == 5
        after = chromium("--dump-dom", s.url).stdout
        assert len(re.findall(r'<circle class="pt canary', after)) == 2 * (LOOKS + 1)
    finally:
        assert stop(s) == 0


def test_digest_of_the_shipped_page_is_what_serve_sends(served: Served) -> None:
    """The page is served from the package (no CDN): every script and stylesheet is local."""
    page = served.get("/")
    assert page.status == 200 and "default-src 'none'" in page.headers["content-security-policy"]
    html = page.body.decode()
    assert re.findall(r'(?:src|href)="([^"]+)"', html) == ["static/dashboard.css", "static/dashboard.js"]
    shipped = Path(__file__).resolve().parent.parent / "rollout" / "dashboard" / "static" / "dashboard.js"
    js = served.get("/static/dashboard.js")
    assert hashlib.sha256(js.body).digest() == hashlib.sha256(shipped.read_bytes()).digest()
    assert "http://" not in js.body.decode().replace("http://www.w3.org/2000/svg", "")
