"""The demo fleet: eight simulated hosts whose files live under demo/fleet/ beside the demo playbook.

The demo's source is the repository's playbooks/demo*.yml and playbooks/demo/ (its files only);
a wheel carries a copy of them in rollout/data/demo/, made by the build (setup.py), never edited.
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

from rollout.core import playbook
from rollout.core.playbook import Playbook
from rollout.util.errors import BadInput

DEMO_PLAYBOOKS = ("demo.yml", "demo-bad.yml")
DEMO_FILES = "demo"  # the folder of the candidates, baseline, check and traffic catalog


def demo_source() -> Path:
    """Return the folder holding the demo playbooks: the installed package's copy, else the checkout's."""
    packaged = Path(str(resources.files("rollout") / "data" / "demo"))
    checkout = Path(__file__).resolve().parents[2] / "playbooks"
    for folder in (packaged, checkout):
        if all((folder / name).is_file() for name in DEMO_PLAYBOOKS) and (folder / DEMO_FILES).is_dir():
            return folder
    raise BadInput(f"the demo's files are missing: neither {packaged} nor {checkout} holds them")


def copy_demo(folder: Path) -> Path:
    """Copy the demo playbooks and their files into `folder`; return the path of demo.yml there."""
    source = demo_source()
    try:
        (folder / DEMO_FILES).mkdir(parents=True, exist_ok=True)
        for name in DEMO_PLAYBOOKS:
            shutil.copyfile(source / name, folder / name)
        for item in (source / DEMO_FILES).iterdir():
            if item.is_file():  # not fleet/: a fleet is made fresh by prepare_fleet
                shutil.copyfile(item, folder / DEMO_FILES / item.name)
    except OSError as e:
        raise BadInput(f"{folder}: cannot create the demo there ({e.strerror or e})") from None
    return folder / DEMO_PLAYBOOKS[0]


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
