"""Metric gates through the CLI: each new reason, the bake's extension, the new keys, looks in status."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from rollout.models.usage import dump_usage_lines
from tests.conftest import LocalFleet, make_fleet
from tests.test_metrics_cli import USAGE, calls, error_gate, to_25_percent


def write(fleet: LocalFleet, host: str, records: list[Any], append: bool = False) -> None:
    path = fleet.root / USAGE.replace("{host}", host)
    with path.open("a" if append else "w") as f:
        f.write(dump_usage_lines(records))


def canary_hosts(fleet: LocalFleet) -> list[str]:
    return [h for h, s in fleet.status()["hosts"].items() if s["state"] == "candidate"]


def test_a_rate_the_data_cannot_place_against_the_bound_is_inconclusive(tmp_path: Path) -> None:
    gate = error_gate(min_samples=20)
    del gate["max_regression"]
    fleet = make_fleet(tmp_path, checks=[gate])
    to_25_percent(fleet)
    now = time.time()
    for i, host in enumerate(fleet.hosts):
        write(fleet, host, calls(60, 0.06, i, now, now + 1))  # about 4/60 errors: cannot tell
    before = fleet.bytes_on()
    result = fleet.cli("advance")
    assert result.exit_code == 5, result.output
    assert "gate 25%: INCONCLUSIVE: inconclusive: error-rate: error_rate " in result.stdout
    assert "cannot be told from max 5.0% yet (interval " in result.stdout
    assert "more calls needed (about " in result.stdout and " calls/s)" in result.stdout
    assert fleet.bytes_on() == before


def test_a_fleet_wide_breach_holds_the_rollout_and_says_so(tmp_path: Path) -> None:
    fleet = make_fleet(tmp_path, checks=[error_gate()])
    to_25_percent(fleet)
    now = time.time()
    for i, host in enumerate(fleet.hosts):
        write(fleet, host, calls(300, 0.20, i, now, now + 1))  # every host errs: the provider
    result = fleet.cli("advance")
    assert result.exit_code == 5, result.output
    assert "is above max 5.0% (its " in result.stdout
    assert "but fleet-wide: baseline at " in result.stdout
    assert "too: holding, not blaming the candidate" in result.stdout
    assert fleet.status()["state"] == "live"


def test_on_fleetwide_fail_rolls_back_anyway(tmp_path: Path) -> None:
    fleet = make_fleet(tmp_path, checks=[error_gate(on_fleetwide="fail")])
    to_25_percent(fleet)
    now = time.time()
    for i, host in enumerate(fleet.hosts):
        write(fleet, host, calls(300, 0.20, i, now, now + 1))
    result = fleet.cli("advance")
    assert result.exit_code == 3, result.output
    assert "fleet-wide: baseline at " in result.stdout and "; on_fleetwide: fail)" in result.stdout
    assert all(b == fleet.baseline for b in fleet.bytes_on().values())


def test_the_regression_compares_each_canary_host_with_its_own_past(tmp_path: Path) -> None:
    gate = error_gate()
    del gate["max"]
    fleet = make_fleet(tmp_path, checks=[gate])
    start = time.time()
    for i, host in enumerate(fleet.hosts):  # a minute of history before the rollout
        write(fleet, host, calls(600, 0.01, i, start - 60, start - 1))
    to_25_percent(fleet)
    canary = canary_hosts(fleet)
    now = time.time()
    for i, host in enumerate(fleet.hosts):
        rate = 0.20 if host in canary else 0.01
        write(fleet, host, calls(300, rate, 100 + i, now, now + 1), append=True)
    result = fleet.cli("advance")
    assert result.exit_code == 3, result.output
    assert "expected from each host's own calls before its switch and the baseline's change" in result.stdout
    assert "(difference-in-differences, 2 hosts): " in result.stdout
    assert "worse, significantly over the 10% allowed (p=" in result.stdout
    (m,) = fleet.status()["last_verdict"]["measurements"]
    assert m["details"]["method"] == "difference-in-differences"


def test_an_inconclusive_gate_extends_its_bake_then_stops_for_a_human(tmp_path: Path) -> None:
    fleet = make_fleet(tmp_path, checks=[], stages=["shadow", {"percent": 25, "bake": "1s"}, 100])
    fleet.rewrite(health={"interval": "0.3s", "max_extend": "1s", "checks": [error_gate(stages=[25])]})
    now = time.time()
    for i, host in enumerate(fleet.hosts):  # 5 calls a host, stamped ahead: never 50 on the canary
        write(fleet, host, calls(5, 0.0, i, now + 30, now + 31))
    started = time.monotonic()
    result = fleet.cli("run", str(fleet.playbook), "--auto")
    assert result.exit_code == 5, result.output
    assert time.monotonic() - started >= 2.0  # the 1s bake, then 1s of extension
    assert "gate 25%: inconclusive when its bake ended, sampling up to 1s more: " in result.stdout
    assert "too few samples (canary has 10, baseline has 30, need 50 each): 40 more needed" in result.stdout
    assert "stopped for a human: gate 25% is still inconclusive after sampling 1s past its bake" in (
        result.stdout
    )
    assert result.stdout.count("inconclusive when its bake ended") == 1  # once, not every sample
    assert "waiting" not in result.stdout
    status = fleet.status()
    assert (status["state"], status["stage"]) == ("live", "25%")
    assert status["last_verdict"]["look"] >= 3


def test_status_shows_the_gate_looks_so_far(tmp_path: Path) -> None:
    fleet = make_fleet(tmp_path, checks=[error_gate()])
    to_25_percent(fleet)
    now = time.time()
    for i, host in enumerate(fleet.hosts):
        write(fleet, host, calls(10, 0.0, i, now, now + 1))
    assert fleet.cli("advance").exit_code == 5
    assert fleet.cli("advance").exit_code == 5
    shown = fleet.cli("status")
    assert "last gate (25%) (look 2 of 1 planned): inconclusive: " in shown.stdout
    assert fleet.status()["last_verdict"]["look"] == 2


def test_new_keys_are_checked_with_file_and_field(tmp_path: Path) -> None:
    fleet = make_fleet(tmp_path, checks=[error_gate(on_fleetwide="maybe")])
    result = fleet.cli("validate", str(fleet.playbook))
    assert result.exit_code == 2
    at = re.escape(str(fleet.playbook)) + r":\d+: "  # file:line: field: message
    message = "health.checks[0].on_fleetwide: must be 'hold' or 'fail', got 'maybe'"
    assert re.search(at + re.escape(message), result.output), result.output
    fleet.rewrite(health={"max_extend": "soon", "checks": [error_gate()]})
    result = fleet.cli("validate", str(fleet.playbook))
    assert result.exit_code == 2
    message = "health.max_extend: must be a duration like 30s, 5m or 1h (at most 366d), got 'soon'"
    assert re.search(at + re.escape(message), result.output), result.output
