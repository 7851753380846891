"""`pip install rollout` (a wheel, not editable) runs `rollout demo` from any folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from rollout.edges.demo import DEMO_FILES, DEMO_PLAYBOOKS, copy_demo, demo_source

REPO = Path(__file__).resolve().parent.parent
SHIPPED = [
    *DEMO_PLAYBOOKS,
    *(f"demo/{p.name}" for p in (REPO / "playbooks" / "demo").iterdir() if p.is_file()),
]


def test_the_checkouts_playbooks_are_the_demo_source() -> None:
    assert demo_source() == REPO / "playbooks"


def test_copy_demo_copies_the_demo_files_and_no_fleet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "source"
    shutil.copytree(REPO / "playbooks", source)
    (source / DEMO_FILES / "fleet" / "dev-01").mkdir(parents=True, exist_ok=True)  # an earlier run's
    monkeypatch.setattr("rollout.edges.demo.demo_source", lambda: source)
    playbook = copy_demo(tmp_path / "here")
    assert playbook == tmp_path / "here" / "demo.yml"
    copied = sorted(str(p.relative_to(tmp_path / "here")) for p in (tmp_path / "here").rglob("*"))
    assert copied == sorted([DEMO_FILES, *SHIPPED])
    for name in SHIPPED:
        assert (tmp_path / "here" / name).read_bytes() == (REPO / "playbooks" / name).read_bytes()


def _source_tree(dest: Path) -> Path:
    """Copy what a build reads (not build/ or egg-info debris, not a demo fleet) into `dest`."""
    junk = shutil.ignore_patterns("__pycache__", "*.egg-info", "fleet")
    shutil.copytree(REPO / "rollout", dest / "rollout", ignore=junk)
    shutil.copytree(REPO / "playbooks", dest / "playbooks", ignore=junk)
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        shutil.copyfile(REPO / name, dest / name)
    return dest


def test_wheel_ships_the_demo_and_runs_it_from_any_folder(tmp_path: Path) -> None:
    src = _source_tree(tmp_path / "src")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ROLLOUT_STATE_DIR")}
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", ".", "-w", str(tmp_path / "dist")],
        cwd=src,
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = (tmp_path / "dist").glob("rollout-*.whl")
    listing = set(zipfile.ZipFile(wheel).namelist())
    assert {f"rollout/data/demo/{name}" for name in SHIPPED} <= listing
    assert not any("/fleet/" in name for name in listing)

    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=300
    )
    # --ignore-installed: the outer environment may hold an editable rollout; the venv gets the wheel.
    subprocess.run(
        [
            str(venv / "bin" / "pip"),
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            "--ignore-installed",
            str(wheel),
        ],
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import rollout; print(rollout.__file__)"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.startswith(str(venv)), where.stdout

    result = subprocess.run(
        [str(venv / "bin" / "rollout"), "demo", "--dir", "my-demo"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"demo playbooks copied to {elsewhere / 'my-demo'}" in result.stdout
    assert "complete" in result.stdout
    candidate = (venv_data(venv) / "demo" / "opencode.candidate.json").read_bytes()
    fleet = elsewhere / "my-demo" / "demo" / "fleet"
    assert sorted(p.name for p in fleet.iterdir()) == [f"dev-0{i}" for i in range(1, 9)]
    assert all((fleet / h / "opencode.json").read_bytes() == candidate for h in os.listdir(fleet))
    assert (elsewhere / "state").is_dir()  # the contract's default state folder, in the cwd


def venv_data(venv: Path) -> Path:
    (folder,) = venv.glob("lib/python*/site-packages/rollout/data/demo")
    return folder
