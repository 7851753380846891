"""The check-kind seam: what a check is, what it measures, and the context it measures in."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from rollout.hosts.fleet import Fleet

Outcome = Literal["pass", "fail", "error", "inconclusive"]


@dataclass(frozen=True)
class CheckSpec:
    """One entry of `health.checks`, with the options its kind parsed."""

    name: str
    kind: str
    on: str  # "hosts": every host of the cohort; "local": once on the control machine
    stages: tuple[str, ...] | None  # stage names it applies to; None = every stage
    timeout: float
    enforce: bool
    options: Any

    def applies_to(self, stage_name: str) -> bool:
        """Return True when this check gates `stage_name`."""
        return self.stages is None or stage_name in self.stages


@dataclass(frozen=True)
class Measurement:
    """One check's result on one host (or on the control machine, host None), with why."""

    check: str
    host: str | None
    outcome: Outcome
    why: str
    enforce: bool = True
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "host": self.host,
            "outcome": self.outcome,
            "why": self.why,
            "enforce": self.enforce,
            **({"details": self.details} if self.details else {}),
        }


class BlobStore(Protocol):
    """Named bytes kept with a rollout (`edges.store.Rollout` is one)."""

    def read_blob(self, name: str) -> bytes | None: ...
    def write_blob(self, name: str, data: bytes) -> None: ...


class StageView(Protocol):
    """What a check reads of the stage it gates (core.playbook.Stage is one)."""

    @property
    def name(self) -> str: ...
    @property
    def percent(self) -> int: ...
    @property
    def is_shadow(self) -> bool: ...


class PlaybookView(Protocol):
    """What a check reads of the playbook (core.playbook.Playbook is one); checks sit below the playbook."""

    @property
    def stages(self) -> Sequence[StageView]: ...
    @property
    def hosts(self) -> Sequence[str]: ...
    @property
    def base_dir(self) -> Path: ...


# One environment variable holds at most 128 KiB on Linux (MAX_ARG_STRLEN) and all of them share
# the exec's argument space: a longer host list travels only as ROLLOUT_HOSTS_FILE.
HOSTS_ENV_MAX_BYTES = 32 * 1024
HOSTS_ENV_MAX_COUNT = 1000


def hosts_fit_in_env(hosts: Sequence[str]) -> bool:
    """Return True when the host list is short enough for ROLLOUT_HOSTS (at most 1000 hosts and
    32 KiB); longer lists are given only as ROLLOUT_HOSTS_FILE."""
    if len(hosts) > HOSTS_ENV_MAX_COUNT:
        return False
    return sum(len(h.encode()) + 1 for h in hosts) <= HOSTS_ENV_MAX_BYTES


@dataclass
class GateContext:
    """Everything a check needs to measure a stage."""

    playbook: PlaybookView
    stage: StageView
    canary: tuple[str, ...]  # hosts carrying the candidate (shadow copy in shadow)
    baseline_hosts: tuple[str, ...]  # hosts still on the old config
    config_paths: dict[str, str]  # host -> the file being checked (shadow or live)
    switched_at: dict[str, float]  # host -> epoch seconds it went live on the candidate
    fleet: Fleet
    state_dir: Path
    look: int = 1  # this measurement's number among the stage's looks (metric gates spend alpha per look)
    planned_looks: int = 1  # looks the stage plans: its bake and extension at the sampling interval
    at_s: float | None = None  # seconds since the stage was entered (None: its one look, at the plan's end)
    since_s: float | None = None  # seconds into the stage of its previous look (None: the first)
    bake_s: float = 0.0  # the stage's bake
    extension_s: float = 0.0  # how long past its bake an inconclusive gate may keep sampling
    blobs: BlobStore | None = None  # the rollout's named bytes (metric cursors across processes)
    file_paths: dict[str, tuple[str, ...]] = field(default_factory=dict)  # host -> every file of its bundle

    def env_for(self, host: str | None, hosts_file: str | None = None) -> dict[str, str]:
        """Return the ROLLOUT_* variables for a check on `host` (None: the control machine);
        `hosts_file` is the path of the cohort's host list (one per line) where the check runs."""
        env = {
            "ROLLOUT_STAGE": self.stage.name,
            "ROLLOUT_PERCENT": str(self.stage.percent),
        }
        if hosts_fit_in_env(self.canary):
            env["ROLLOUT_HOSTS"] = " ".join(self.canary)
        if hosts_file is not None:
            env["ROLLOUT_HOSTS_FILE"] = hosts_file
        if host is not None:
            env["ROLLOUT_HOST"] = host
            env["ROLLOUT_CONFIG_PATH"] = self.config_paths[host]
            if host in self.file_paths:
                env["ROLLOUT_FILES"] = "\n".join(self.file_paths[host])
        return env


class CheckKind(Protocol):
    """Registry entry for one kind of check (`run`, `metric`, `http`, ...)."""

    name: str
    keys: frozenset[str]  # kind-specific keys a check of this kind may carry

    def parse(self, spec: dict[str, Any], where: str, base_dir: Path) -> Any:
        """Validate the kind-specific keys; raise BadInput naming file and field."""

    def evaluate(self, check: CheckSpec, ctx: GateContext) -> list[Measurement]:
        """Measure the check; failures and unreachable hosts are Measurements, not exceptions."""
