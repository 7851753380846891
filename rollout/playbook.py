"""Load and validate a playbook into a frozen Playbook; every error names the file and field."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rollout import configkinds, health, transports, yamlload
from rollout.durations import parse_duration
from rollout.errors import BadInput
from rollout.health.base import CheckSpec

DEFAULT_STAGES: list[Any] = ["shadow", 25, 50, 100]
TOP_KEYS = {"name", "description", "config", "targets", "stages", "health"}
CONFIG_KEYS = {"source", "path", "kind", "shadow_path"}
HEALTH_KEYS = {"checks", "failure_limit", "consecutive_error_limit", "interval", "max_extend"}
CHECK_COMMON_KEYS = {"name", "kind", "on", "stages", "timeout", "enforce"}


@dataclass(frozen=True)
class Stage:
    """One step of the rollout: shadow (percent 0) or live on `percent` of the hosts."""

    name: str
    percent: int
    bake: float

    @property
    def is_shadow(self) -> bool:
        return self.percent == 0


@dataclass(frozen=True)
class Health:
    checks: tuple[CheckSpec, ...]
    failure_limit: int = 0
    consecutive_error_limit: int = 4
    interval: float = 5.0
    max_extend: float | None = None  # how long an inconclusive gate keeps sampling after its bake (None: the bake)

    def extension(self, stage: Stage) -> float:
        """Return how long `stage`'s gate may keep sampling past its bake while inconclusive."""
        return stage.bake if self.max_extend is None else self.max_extend


@dataclass(frozen=True)
class Playbook:
    """A validated playbook; paths are absolute, resolved from the playbook's folder."""

    file: Path
    base_dir: Path
    name: str
    config_source: Path
    config_path: str
    shadow_path: str
    config_kind: str
    config_options: dict[str, Any]
    transport: str
    transport_options: Any
    hosts: tuple[str, ...]
    stages: tuple[Stage, ...]
    health: Health
    raw: dict[str, Any]

    def path_on(self, host: str) -> str:
        """Return the live config path template for `host`."""
        return self.config_path.replace("{host}", host)

    def shadow_on(self, host: str) -> str:
        """Return the shadow path template for `host`."""
        return self.shadow_path.replace("{path}", self.config_path).replace("{host}", host)


class _Where:
    """Builds error messages that name the playbook file and the field."""

    def __init__(self, file: Path) -> None:
        self.file = file

    def fail(self, field: str, message: str) -> BadInput:
        return BadInput(f"{self.file}: {field}: {message}")

    def unknown(self, data: dict[str, Any], allowed: set[str], field: str) -> None:
        extra = sorted(set(data) - allowed, key=str)
        if extra:
            prefix = f"{field}." if field else ""
            raise self.fail(
                f"{prefix}{extra[0]}",
                f"unknown key (expected one of: {', '.join(sorted(allowed))})",
            )

    def mapping(self, value: Any, field: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(field, f"must be a mapping, got {type(value).__name__}")
        return value

    def string(self, value: Any, field: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(field, f"must be a non-empty string, got {value!r}")
        return value

    def whole(self, value: Any, field: str, minimum: int = 0) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise self.fail(field, f"must be a whole number >= {minimum}, got {value!r}")
        return value

    def duration(self, value: Any, field: str) -> float:
        seconds = parse_duration(value)
        if seconds is None:
            raise self.fail(field, f"must be a duration like 30s, 5m or 1h, got {value!r}")
        return seconds


def load(path: str | Path) -> Playbook:
    """Read, parse and validate a playbook file; raise BadInput naming file and field."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput(f"{file}: playbook not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise BadInput(f"{file}: cannot read playbook ({e})") from None
    try:
        data = yamlload.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e)
        raise BadInput(f"{file}{line}: invalid YAML: {problem}") from None
    return from_dict(data, file.resolve())


def from_dict(data: Any, file: Path, *, require_source: bool = True) -> Playbook:
    """Validate a parsed playbook document (a frozen copy need not find its source again)."""
    w = _Where(file)
    if not isinstance(data, dict):
        raise BadInput(f"{file}: a playbook must be a YAML mapping with name, config, targets")
    w.unknown(data, TOP_KEYS, "")
    base_dir = file.parent
    for key in ("name", "config", "targets"):
        if key not in data:
            raise w.fail(key, "missing (required)")
    name = w.string(data["name"], "name")

    config = w.mapping(data["config"], "config")
    w.unknown(config, CONFIG_KEYS | configkinds.OPTION_KEYS, "config")
    for key in ("source", "path"):
        if key not in config:
            raise w.fail(f"config.{key}", "missing (required)")
    source = base_dir / Path(w.string(config["source"], "config.source")).expanduser()
    if require_source and not source.is_file():
        raise w.fail("config.source", f"candidate file not found: {source}")
    config_path = w.string(config["path"], "config.path")
    shadow_path = w.string(config.get("shadow_path", "{path}.rollout-shadow"), "config.shadow_path")
    kind = config.get("kind", configkinds.infer(source.name))
    if kind not in configkinds.names():
        raise w.fail("config.kind", f"unknown kind {kind!r} (known: {', '.join(configkinds.names())})")
    config_options = configkinds.parse_options(config, str(file), base_dir)

    targets = w.mapping(data["targets"], "targets")
    transport = targets.get("transport", "local")
    if transport not in transports.names():
        raise w.fail(
            "targets.transport",
            f"unknown transport {transport!r} (known: {', '.join(transports.names())})",
        )
    hosts = _hosts(w, targets.get("hosts"))
    transport_options = transports.kind(transport).parse_options(targets, str(file))
    if transport == "local" and len(hosts) > 1 and "{host}" not in config_path:
        raise w.fail(
            "config.path",
            f"{config_path!r} has no {{host}}: with transport 'local' every host would share one file",
        )
    if (
        "{path}" not in shadow_path
        and "{host}" not in shadow_path
        and len(hosts) > 1
        and (transport == "local")
    ):
        raise w.fail("config.shadow_path", "must contain {path} or {host} so hosts do not collide")

    stages = _stages(w, data.get("stages", DEFAULT_STAGES))
    health_block = _health(w, data.get("health", {}), base_dir, stages)
    return Playbook(
        file=file,
        base_dir=base_dir,
        name=name,
        config_source=source,
        config_path=config_path,
        shadow_path=shadow_path,
        config_kind=kind,
        config_options=config_options,
        transport=transport,
        transport_options=transport_options,
        hosts=hosts,
        stages=stages,
        health=health_block,
        raw=data,
    )


def _hosts(w: _Where, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise w.fail("targets.hosts", "must be a non-empty list of host names")
    seen: set[str] = set()
    for i, host in enumerate(value):
        if not isinstance(host, str) or not host.strip():
            raise w.fail(f"targets.hosts[{i}]", f"must be a host name, got {host!r}")
        if host in seen:
            raise w.fail(f"targets.hosts[{i}]", f"duplicate host {host!r}")
        if "/" in host or host.startswith("."):
            raise w.fail(f"targets.hosts[{i}]", f"{host!r} is not a valid host name")
        seen.add(host)
    return tuple(value)


def _stages(w: _Where, value: Any) -> tuple[Stage, ...]:
    if not isinstance(value, list) or not value:
        raise w.fail("stages", "must be a non-empty list like [shadow, 25, 50, 100]")
    stages: list[Stage] = []
    for i, item in enumerate(value):
        field = f"stages[{i}]"
        bake = 0.0
        if isinstance(item, dict):
            w.unknown(item, {"name", "percent", "bake"}, field)
            if "percent" not in item:
                if item.get("name") != "shadow":
                    raise w.fail(f"{field}.percent", "missing (required unless name is shadow)")
                percent: Any = "shadow"
            else:
                percent = item["percent"]
            bake = w.duration(item.get("bake", 0), f"{field}.bake")
            name = item.get("name")
        else:
            percent, name = item, None
        if percent == "shadow" or percent == 0:
            if i != 0:
                raise w.fail(field, "shadow can only be the first stage")
            stages.append(Stage(name or "shadow", 0, bake))
            continue
        if not isinstance(percent, int) or isinstance(percent, bool) or not 0 < percent <= 100:
            raise w.fail(field, f"percent must be a whole number from 1 to 100 or 'shadow', got {percent!r}")
        if stages and stages[-1].percent >= percent:
            raise w.fail(field, f"percents must increase: {percent} after {stages[-1].percent}")
        label = name if name is not None else f"{percent}%"
        stages.append(Stage(w.string(label, f"{field}.name"), percent, bake))
    if stages[-1].percent != 100:
        raise w.fail("stages", f"the last stage must be 100 (got {stages[-1].percent})")
    names = [s.name for s in stages]
    if len(set(names)) != len(names):
        raise w.fail("stages", "stage names must be unique")
    return tuple(stages)


def _health(w: _Where, value: Any, base_dir: Path, stages: tuple[Stage, ...]) -> Health:
    block = w.mapping(value or {}, "health")
    w.unknown(block, HEALTH_KEYS, "health")
    checks_raw = block.get("checks", [])
    if not isinstance(checks_raw, list):
        raise w.fail("health.checks", "must be a list of checks")
    stage_keys = {s.name for s in stages} | {str(s.percent) for s in stages if not s.is_shadow}
    checks: list[CheckSpec] = []
    for i, raw in enumerate(checks_raw):
        field = f"health.checks[{i}]"
        spec = w.mapping(raw, field)
        kind_name = health.infer(spec)
        if kind_name is None or kind_name not in health.names():
            raise w.fail(field, f"cannot tell the check's kind (give one of: {', '.join(health.names())})")
        kind = health.kind(kind_name)
        w.unknown(spec, CHECK_COMMON_KEYS | set(kind.keys), field)
        name = w.string(spec.get("name", f"check-{i + 1}"), f"{field}.name")
        if any(c.name == name for c in checks):
            raise w.fail(f"{field}.name", f"duplicate check name {name!r}")
        on = spec.get("on", "hosts")
        if on not in ("hosts", "local"):
            raise w.fail(f"{field}.on", f"must be 'hosts' or 'local', got {on!r}")
        only: tuple[str, ...] | None = None
        if "stages" in spec:
            listed = spec["stages"]
            if not isinstance(listed, list) or not listed:
                raise w.fail(f"{field}.stages", "must be a non-empty list of stage names")
            only = tuple(str(s) for s in listed)
            for s in only:
                if s not in stage_keys:
                    raise w.fail(f"{field}.stages", f"no stage named {s!r}")
            only = tuple(st.name for st in stages if st.name in only or str(st.percent) in only)
        timeout = w.duration(spec.get("timeout", 60), f"{field}.timeout")
        enforce = spec.get("enforce", True)
        if not isinstance(enforce, bool):
            raise w.fail(f"{field}.enforce", f"must be true or false, got {enforce!r}")
        options = kind.parse(spec, f"{w.file}: {field}", base_dir)
        checks.append(CheckSpec(name, kind_name, on, only, timeout, enforce, options))
    return Health(
        checks=tuple(checks),
        failure_limit=w.whole(block.get("failure_limit", 0), "health.failure_limit"),
        consecutive_error_limit=w.whole(
            block.get("consecutive_error_limit", 4), "health.consecutive_error_limit", 1
        ),
        interval=w.duration(block.get("interval", "5s"), "health.interval"),
        max_extend=w.duration(block["max_extend"], "health.max_extend") if "max_extend" in block else None,
    )
