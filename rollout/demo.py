"""The demo fleet: eight simulated hosts whose files live under playbooks/demo/fleet/."""

from __future__ import annotations

import shutil
from pathlib import Path

from rollout import playbook
from rollout.playbook import Playbook

DEMO_PLAYBOOK = Path("playbooks/demo.yml")


def prepare_fleet(playbook_path: Path, baseline_name: str = "opencode.baseline.json") -> Playbook:
    """(Re)create every demo host's live file from the shipped baseline; remove shadow copies."""
    pb = playbook.load(playbook_path)
    baseline = pb.base_dir / pb.config_source.parent / baseline_name
    for host in pb.hosts:
        live = pb.base_dir / pb.path_on(host)
        live.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(baseline, live)
        (pb.base_dir / pb.shadow_on(host)).unlink(missing_ok=True)
    return pb
