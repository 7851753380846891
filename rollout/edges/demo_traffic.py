"""Simulated agent traffic for the demo fleet: usage records from the models live on each host."""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rollout.checks.metrics.sources import HostFileSource
from rollout.core.playbook import Playbook
from rollout.models.usage import UsageRecord, dump_usage_lines

PROFILES_NAME = "traffic.json"
DEFAULT_USAGE_PATH = "demo/fleet/{host}/usage.jsonl"
AGENT_WEIGHTS = {"build": 6, "plan": 3}  # other agents weigh 1


@dataclass(frozen=True)
class ModelProfile:
    """How a model behaves in the simulation."""

    error_rate: float
    latency_s: float
    input_per_mtok: float
    output_per_mtok: float


@dataclass(frozen=True)
class TrafficProfiles:
    """How the demo's hosts call models: calls per second per host, and each model's behaviour."""

    calls_per_second: float
    models: dict[str, ModelProfile]
    default: ModelProfile

    def profile(self, model: str) -> ModelProfile:
        return self.models.get(model, self.default)


def load_profiles(path: Path) -> TrafficProfiles:
    """Read the demo traffic profiles (calls per second per host, per-model behaviour)."""
    raw = json.loads(path.read_text())

    def profile(d: dict[str, Any]) -> ModelProfile:
        return ModelProfile(
            float(d["error_rate"]),
            float(d["latency_s"]),
            float(d["input_per_mtok"]),
            float(d["output_per_mtok"]),
        )

    return TrafficProfiles(
        float(raw.get("calls_per_second_per_host", 50)),
        {name: profile(d) for name, d in raw["models"].items()},
        profile(raw["default"]),
    )


def live_models(config: dict[str, Any]) -> dict[str, str]:
    """Return agent -> model id as OpenCode would use them (an agent without a model uses `model`)."""
    default = str(config.get("model", ""))
    agents = config.get("agent") or {}
    found = {
        name: str(spec.get("model") or default)
        for name, spec in agents.items()
        if isinstance(spec, dict) and not spec.get("disable")
    }
    return found or {"build": default}


def usage_path(pb: Playbook) -> str:
    """Return the usage-log path template the playbook's metric checks read (or the demo default)."""
    for check in pb.health.checks:
        source = getattr(check.options, "source", None)
        if isinstance(source, HostFileSource) and source.type == "usage-log":
            return source.path
    return DEFAULT_USAGE_PATH


class TrafficSim:
    """Appends simulated calls to each host's usage log, using the config live on that host."""

    def __init__(self, pb: Playbook, profiles: TrafficProfiles, seed: int = 0) -> None:
        self.pb = pb
        self.profiles = profiles
        self.rng = random.Random(seed)
        self.path = usage_path(pb)
        self.last = {h: time.time() for h in pb.hosts}

    def reset(self) -> None:
        """Remove every host's usage log and start counting from now."""
        for host in self.pb.hosts:
            self._log(host).unlink(missing_ok=True)
        self.last = {h: time.time() for h in self.pb.hosts}

    def history(self, seconds: float) -> int:
        """Write the calls every host made over the last `seconds` on the config it has now."""
        now = time.time()
        self.last = {h: now - seconds for h in self.pb.hosts}
        return self.tick(now, since_change=False)

    def tick(self, now: float | None = None, since_change: bool = True) -> int:
        """Write the calls each host made since the last tick (or since its config changed)."""
        now = time.time() if now is None else now
        written = 0
        for host in self.pb.hosts:
            live = self.pb.base_dir / self.pb.path_on(host)
            try:
                models = live_models(json.loads(live.read_text()))
                changed = live.stat().st_mtime
            except (OSError, ValueError):
                continue  # no readable config: this host's agents are not working at all
            start = max(self.last[host], min(changed, now)) if since_change else self.last[host]
            records = self.calls(models, start, now)
            self.last[host] = now
            if records:
                log = self._log(host)
                log.parent.mkdir(parents=True, exist_ok=True)
                with log.open("a", encoding="utf-8") as f:
                    f.write(dump_usage_lines(records))
                written += len(records)
        return written

    def calls(self, models: dict[str, str], start: float, end: float) -> list[UsageRecord]:
        """Return the calls made between `start` and `end` by agents using `models`."""
        n = int((end - start) * self.profiles.calls_per_second)
        agents = sorted(models)
        weights = [AGENT_WEIGHTS.get(a, 1) for a in agents]
        out = []
        for i in range(n):
            agent = self.rng.choices(agents, weights)[0]
            model = models[agent]
            p = self.profiles.profile(model)
            tokens_in, tokens_out = self.rng.randint(2_000, 20_000), self.rng.randint(200, 2_000)
            failed = self.rng.random() < p.error_rate
            out.append(
                UsageRecord(
                    ts=round(start + (end - start) * (i + 0.5) / n, 3),
                    agent=agent,
                    model=model,
                    input_tokens=tokens_in,
                    output_tokens=0 if failed else tokens_out,
                    cost_usd=round(
                        (tokens_in * p.input_per_mtok + (0 if failed else tokens_out) * p.output_per_mtok)
                        / 1e6,
                        6,
                    ),
                    duration_s=round(self.rng.lognormvariate(0, 0.4) * p.latency_s, 3),
                    outcome=("rate_limited" if self.rng.random() < 0.3 else "error") if failed else "success",
                    failover=False,
                )
            )
        return out

    def _log(self, host: str) -> Path:
        return self.pb.base_dir / self.path.replace("{host}", host)


def for_demo(pb: Playbook) -> TrafficSim | None:
    """Return a simulator for a demo playbook that ships traffic profiles beside its candidate."""
    profiles = pb.config_source.parent / PROFILES_NAME
    return TrafficSim(pb, load_profiles(profiles)) if profiles.is_file() else None
