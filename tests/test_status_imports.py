"""`rollout status` stays light: it loads none of the heavy libraries nor the engine (what it does
load is measured by bench/status_startup.py; here only what it must never load)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import make_fleet

ROOT = Path(__file__).resolve().parent.parent
NEVER = {
    "rich", "numpy", "msgspec", "deepdiff", "jsonschema", "fabric", "paramiko", "invoke", "psycopg",
    "starlette", "uvicorn", "ruamel", "tomlkit", "jsonpatch",
    "rollout.edges.notify", "rollout.edges.engine", "rollout.core.playbook", "rollout.hosts.fleet",
}  # fmt: skip


def test_status_loads_no_heavy_library_nor_the_engine(tmp_path: Path) -> None:
    fleet = make_fleet(tmp_path, n=3, stages=["shadow", 100])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "rollout", "--state-dir", str(fleet.state)]
    assert subprocess.run([*cmd, "start", str(fleet.playbook)], env=env, capture_output=True, timeout=60).returncode == 0
    assert subprocess.run([*cmd, "status"], env=env, capture_output=True, timeout=60).returncode == 0  # keeps its clock
    found = subprocess.run(
        [sys.executable, "-X", "importtime", *cmd[1:], "status"], env=env, capture_output=True, text=True, timeout=60
    )
    assert found.returncode == 0, found.stderr
    names = {line.split("|")[-1].strip() for line in found.stderr.splitlines() if "|" in line}
    assert "rollout.commands.show" in names
    loaded = {n for n in names if n in NEVER or n.split(".")[0] in NEVER}
    assert not loaded, loaded
