"""`rollout retry`: a new rollout from a rolled-back or aborted one's frozen playbook and candidate."""

from __future__ import annotations

import json

from tests.conftest import LocalFleet


def test_retry_starts_a_new_rollout_from_the_frozen_candidate(fleet: LocalFleet) -> None:
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    first = fleet.status()["id"]
    assert fleet.cli("abort", "--reason", "wrong hour").exit_code == 0
    # The playbook's candidate changes afterwards: retry still rolls what was frozen.
    (fleet.root / "candidate.json").write_text('{"model": "openai/gpt-5.2", "changed": "later"}\n')
    result = fleet.cli("retry", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["retry_of"] == first and data["id"] != first
    result = fleet.cli("status", "--json")
    status = json.loads(result.stdout)
    assert (status["id"], status["state"]) == (data["id"], "shadow")
    state = json.loads((fleet.state / data["id"] / "state.json").read_text())
    assert state["retry_of"] == first
    for _ in range(4):
        assert fleet.cli("advance").exit_code == 0
    assert fleet.status()["state"] == "complete"
    assert set(fleet.bytes_on().values()) == {fleet.candidate}
    old = [
        json.loads(line)["event"] for line in (fleet.state / first / "events.jsonl").read_text().splitlines()
    ]
    assert old[-1] == "retry-requested"
    assert fleet.cli("history", first, "--verify").exit_code == 0


def test_retry_says_it_reapplies_and_is_refused_otherwise(fleet: LocalFleet) -> None:
    assert fleet.cli("retry").exit_code == 5  # nothing to retry
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    result = fleet.cli("retry")
    assert result.exit_code == 5
    assert "cannot retry: the rollout is shadow" in result.stderr
    assert fleet.cli("abort").exit_code == 0
    result = fleet.cli("retry")
    assert result.exit_code == 0, result.output
    assert "`retry` is the only verb that applies it again" in result.stdout
    assert fleet.cli("retry").exit_code == 5  # the new one is active
