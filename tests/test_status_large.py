"""Text `status` on a large fleet: counts per state and the hosts that need a person; `--hosts` lists all."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import make_fleet


def test_a_large_fleet_is_summarised_and_a_drifted_host_still_named(tmp_path: Path) -> None:
    fleet = make_fleet(tmp_path, n=60, stages=["shadow", 25, 100])
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    assert fleet.cli("advance").exit_code == 0  # 25% live: 15 hosts on the candidate
    live = [h for h, rec in fleet.status()["hosts"].items() if rec["state"] == "candidate"]
    fleet.file(live[0]).write_text(json.dumps({"model": "someone/else"}))  # someone edits a live host
    fleet.cli("abort", "--reason", "test")  # the edited host is drifted: left as it is, named

    text = fleet.cli("status").stdout
    assert "hosts: 60 (" in text
    assert "1 drifted" in text and "59 baseline" in text
    assert "`status --hosts` lists every host" in text
    assert live[0] in text
    quiet = [h for h in fleet.hosts if h != live[0]]
    assert not any(h in text for h in quiet)

    every = fleet.cli("status", "--hosts").stdout
    assert all(h in every for h in fleet.hosts)
    assert "hosts: 60 (" not in every


def test_a_small_fleet_lists_every_host(fleet) -> None:  # type: ignore[no-untyped-def]
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    text = fleet.cli("status").stdout
    assert all(h in text for h in fleet.hosts)
    assert "hosts: " not in text
