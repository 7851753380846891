"""The shadow copy is what goes live: renamed into place when its host's cohort goes live."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import LocalFleet, make_fleet


def order_of(fleet: LocalFleet) -> list[str]:
    order: list[str] = json.loads((fleet.rollout_dir() / "state.json").read_text())["order"]
    return order


def events(fleet: LocalFleet) -> list[dict[str, object]]:
    lines = (fleet.rollout_dir() / "events.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_hosts_keep_their_shadow_copy_until_their_cohort_goes_live(fleet: LocalFleet) -> None:
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    assert fleet.cli("advance").exit_code == 0  # 25%: 2 of 8 hosts
    order = order_of(fleet)
    cohort, rest = order[:2], order[2:]
    for host in cohort:
        assert fleet.file(host).read_bytes() == fleet.candidate and not fleet.shadow(host).exists()
    for host in rest:
        assert fleet.file(host).read_bytes() == fleet.baseline
        assert fleet.shadow(host).read_bytes() == fleet.candidate
    states = {h: rec["state"] for h, rec in fleet.status()["hosts"].items()}
    assert {states[h] for h in cohort} == {"candidate"} and {states[h] for h in rest} == {"shadow"}
    for _ in range(3):
        assert fleet.cli("advance").exit_code == 0
    assert fleet.status()["state"] == "complete"
    assert all(b == fleet.candidate for b in fleet.bytes_on().values())
    assert not any(fleet.shadow(h).exists() for h in fleet.hosts)


def test_a_changed_shadow_copy_is_left_alone_and_the_candidate_uploaded(fleet: LocalFleet) -> None:
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    assert fleet.cli("advance").exit_code == 0
    late = order_of(fleet)[-1]
    fleet.shadow(late).write_bytes(b"someone else's file\n")
    for _ in range(3):
        assert fleet.cli("advance").exit_code == 0
    assert fleet.file(late).read_bytes() == fleet.candidate
    assert fleet.shadow(late).read_bytes() == b"someone else's file\n"  # not ours any more: kept
    assert any(e["event"] == "shadow-changed" and e["host"] == late for e in events(fleet))


def test_a_shadow_kept_in_another_folder_is_not_renamed_across_it(tmp_path: Path) -> None:
    fleet = make_fleet(tmp_path, n=4, stages=["shadow", 50, 100])
    doc_config = {
        "source": "candidate.json",
        "path": "fleet/{host}/opencode.json",
        "shadow_path": "staged/{host}.json",
    }
    fleet.rewrite(config=doc_config)
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    staged = [fleet.root / "staged" / f"{h}.json" for h in fleet.hosts]
    assert all(p.read_bytes() == fleet.candidate for p in staged)
    assert fleet.cli("advance").exit_code == 0
    assert all(p.exists() for p in staged)  # the cohort got an upload; copies stay until the end
    assert fleet.cli("advance").exit_code == 0
    assert fleet.cli("advance").exit_code == 0
    assert fleet.status()["state"] == "complete"
    assert all(b == fleet.candidate for b in fleet.bytes_on().values())
    assert not any(p.exists() for p in staged)


def test_abort_midway_removes_the_shadow_copies_still_waiting(fleet: LocalFleet) -> None:
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    assert fleet.cli("advance").exit_code == 0
    assert fleet.cli("advance").exit_code == 0  # 50%
    assert sum(fleet.shadow(h).exists() for h in fleet.hosts) == 4
    assert fleet.cli("abort", "--reason", "test").exit_code == 0
    assert all(b == fleet.baseline for b in fleet.bytes_on().values())
    assert not any(fleet.shadow(h).exists() for h in fleet.hosts)
