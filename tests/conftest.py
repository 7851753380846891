"""Shared fixtures: an isolated home, and local fleets built in tmp_path."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from rollout.cli import cli


@pytest.fixture(autouse=True)
def isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """Keep tests away from the real home directory, ~/.ssh/config and ./state."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("ROLLOUT_STATE_DIR", raising=False)
    monkeypatch.delenv("ROLLOUT_STATE", raising=False)
    yield home


@pytest.fixture(autouse=True)
def cache_home(isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point `$XDG_CACHE_HOME` at an empty folder in the isolated home: no test reads the real
    OpenCode models.dev cache (the model catalog would then depend on this machine)."""
    cache = isolated_home / ".cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return cache


BASELINE = {
    "$schema": "https://opencode.ai/config.json",
    "model": "anthropic/claude-sonnet-4-5",
    "provider": {"openai": {"options": {"apiKey": "sk-baseline-SECRET-1"}}},
    "agent": {"build": {"model": "anthropic/claude-sonnet-4-5", "temperature": 0.1}},
}
CANDIDATE = {
    "$schema": "https://opencode.ai/config.json",
    "model": "openai/gpt-5.2",
    "provider": {"openai": {"options": {"apiKey": "sk-candidate-SECRET-2"}}},
    "agent": {"build": {"model": "opencode/big-pickle", "temperature": 0.0}},
}


def dump(doc: Any) -> bytes:
    return (json.dumps(doc, indent=2) + "\n").encode()


@dataclass
class LocalFleet:
    """A playbook folder with N simulated hosts, a candidate, and a state folder."""

    root: Path
    hosts: list[str]
    playbook: Path
    state: Path
    baseline: bytes = field(default_factory=lambda: dump(BASELINE))
    candidate: bytes = field(default_factory=lambda: dump(CANDIDATE))

    def file(self, host: str) -> Path:
        return self.root / "fleet" / host / "opencode.json"

    def shadow(self, host: str) -> Path:
        return self.root / "fleet" / host / "opencode.json.rollout-shadow"

    def bytes_on(self) -> dict[str, bytes | None]:
        return {h: (self.file(h).read_bytes() if self.file(h).exists() else None) for h in self.hosts}

    def cli(self, *args: str) -> Result:
        return CliRunner().invoke(cli, ["--state-dir", str(self.state), *args])

    def status(self) -> dict[str, Any]:
        result = self.cli("status", "--json")
        assert result.exit_code == 0, result.output
        data: dict[str, Any] = json.loads(result.stdout)
        return data

    def rollout_dir(self) -> Path:
        (folder,) = [p for p in self.state.iterdir() if p.is_dir()]
        return folder

    def rewrite(self, **changes: Any) -> None:
        doc = yaml.safe_load(self.playbook.read_text())
        doc.update(changes)
        self.playbook.write_text(yaml.safe_dump(doc, sort_keys=False))


def make_fleet(
    tmp_path: Path,
    n: int = 8,
    stages: list[Any] | None = None,
    checks: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> LocalFleet:
    root = tmp_path / "pb"
    hosts = [f"dev-{i:02d}" for i in range(1, n + 1)]
    fleet = LocalFleet(root=root, hosts=hosts, playbook=root / "playbook.yml", state=tmp_path / "state")
    for h in hosts:
        fleet.file(h).parent.mkdir(parents=True, exist_ok=True)
        fleet.file(h).write_bytes(fleet.baseline)
    (root / "candidate.json").write_bytes(fleet.candidate)
    doc: dict[str, Any] = {
        "name": "test-rollout",
        "config": {"source": "candidate.json", "path": "fleet/{host}/opencode.json"},
        "targets": {"transport": "local", "hosts": hosts},
        "stages": stages if stages is not None else ["shadow", 25, 50, 100],
        "health": {
            "checks": checks
            if checks is not None
            else [
                {
                    "name": "has-model",
                    "run": 'grep -q \'"model"\' "$ROLLOUT_CONFIG_PATH"',
                }
            ]
        },
    }
    doc.update(extra)
    fleet.playbook.write_text(yaml.safe_dump(doc, sort_keys=False))
    return fleet


@pytest.fixture
def fleet(tmp_path: Path) -> LocalFleet:
    return make_fleet(tmp_path)


@pytest.fixture
def child_env() -> dict[str, str]:
    """The environment for a rollout run in a subprocess (the isolated home's, set above)."""
    return dict(os.environ)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """A real PostgreSQL server for the session (tests/pgserver.py); a machine without one fails
    the PostgreSQL tests with the command that installs it, never skips them."""
    from tests import pgserver

    why = pgserver.missing()
    if why is not None:
        pytest.fail(why, pytrace=False)
    server = pgserver.start_postgres()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(postgres: Any) -> str:
    """A `--state` URL of a namespace of its own on the session's server (tests never share one)."""
    import uuid

    return postgres.url("postgres", namespace=f"t-{uuid.uuid4().hex[:12]}")
