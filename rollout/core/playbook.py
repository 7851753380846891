"""Load and validate a playbook into a frozen Playbook; every error names the file and field."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from rollout import checks as check_kinds
from rollout import configkinds
from rollout.checks.base import CheckSpec
from rollout.core import deadlines, webhooks
from rollout.core.deadlines import Deadline
from rollout.core.webhooks import Webhook
from rollout.hosts import transports
from rollout.util import limits, yamlload
from rollout.util.durations import parse_duration
from rollout.util.errors import BadInput

T = TypeVar("T")
DEFAULT_STAGES: list[Any] = ["shadow", 25, 50, 100]
TOP_KEYS = {"name", "description", "config", "targets", "stages", "health", "notify"}
CONFIG_KEYS = {"source", "path", "kind", "shadow_path"}
HEALTH_KEYS = {
    "checks",
    "failure_limit",
    "consecutive_error_limit",
    "interval",
    "max_extend",
} | deadlines.KEYS
CHECK_COMMON_KEYS = {"name", "kind", "on", "stages", "timeout", "enforce"}
MAX_INT = 2**53  # no setting needs more; a float cannot hold more exactly


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
    max_extend: float | None = (
        None  # how long an inconclusive gate keeps sampling after its bake (None: the bake)
    )

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
    config_kind_why: str = "config.kind"  # how the kind was chosen, when it was inferred
    notify: tuple[Webhook, ...] = ()
    deadlines: tuple[Deadline | None, ...] = ()  # one per stage

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
        return BadInput(limits.shorten(f"{self.file}: {field}: {message}"))

    def unknown(self, data: dict[str, Any], allowed: set[str], field: str) -> None:
        extra = sorted(set(data) - allowed, key=str)
        if extra:
            prefix = f"{field}." if field else ""
            key = extra[0] if isinstance(extra[0], str) else limits.show(extra[0])
            raise self.fail(
                f"{prefix}{limits.shorten(key, 80)}",
                f"unknown key (expected one of: {', '.join(sorted(allowed))})",
            )

    def mapping(self, value: Any, field: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(field, f"must be a mapping, got {type(value).__name__}")
        return value

    def string(self, value: Any, field: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(field, f"must be a non-empty string, got {limits.show(value)}")
        return value

    def label(self, value: Any, field: str) -> str:
        """A name shown in every line about it (rollout, stage, check): short and printable."""
        text = self.string(value, field)
        if len(text) > limits.MAX_NAME or not text.isprintable():
            raise self.fail(
                field, f"must be at most {limits.MAX_NAME} printable characters, got {limits.show(text)}"
            )
        return text

    def path(self, value: Any, field: str) -> str:
        text = self.string(value, field)
        problem = limits.path_problem(text)
        if problem is not None:
            raise self.fail(field, f"{limits.show(text)} {problem}")
        return text

    def whole(self, value: Any, field: str, minimum: int = 0) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise self.fail(field, f"must be a whole number >= {minimum}, got {limits.show(value)}")
        return value

    def guard(self, field: str, parse: Callable[..., T], *args: Any) -> T:
        """Call a kind's own parser; a value of a shape it did not expect is bad input, not a crash."""
        try:
            return parse(*args)
        except (TypeError, ValueError, OverflowError, KeyError, AttributeError, RecursionError) as e:
            raise self.fail(
                field, f"cannot read it ({type(e).__name__}: {limits.shorten(str(e), 200)})"
            ) from None

    def duration(self, value: Any, field: str) -> float:
        seconds = parse_duration(value)
        if seconds is None:
            raise self.fail(
                field, f"must be a duration like 30s, 5m or 1h (at most 366d), got {limits.show(value)}"
            )
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
        raise BadInput(limits.shorten(f"{file}{line}: invalid YAML: {problem}")) from None
    try:
        return from_dict(data, file.resolve())
    except BadInput as e:  # a check elsewhere may quote a whole value: keep the line short
        raise BadInput(limits.shorten(str(e)), e.problems) from None


def from_dict(data: Any, file: Path, *, require_source: bool = True) -> Playbook:
    """Validate a parsed playbook document (a frozen copy need not find its source again)."""
    w = _Where(file)
    if not isinstance(data, dict):
        raise BadInput(f"{file}: a playbook must be a YAML mapping with name, config, targets")
    w.unknown(data, TOP_KEYS, "")
    _check_scalars(w, data)
    base_dir = file.parent
    for key in ("name", "config", "targets"):
        if key not in data:
            raise w.fail(key, "missing (required)")
    name = w.label(data["name"], "name")

    config = w.mapping(data["config"], "config")
    w.unknown(config, CONFIG_KEYS | configkinds.OPTION_KEYS, "config")
    for key in ("source", "path"):
        if key not in config:
            raise w.fail(f"config.{key}", "missing (required)")
    source = _source(w, config["source"], base_dir, require_source)
    config_path = w.path(config["path"], "config.path")
    shadow_path = w.path(config.get("shadow_path", "{path}.rollout-shadow"), "config.shadow_path")
    kind_why = "config.kind"
    if "kind" in config:
        kind = config["kind"]
    else:
        kind, kind_why = configkinds.infer_why(source.name, _head(source))
    if not isinstance(kind, str) or kind not in configkinds.names():
        raise w.fail(
            "config.kind", f"unknown kind {limits.show(kind)} (known: {', '.join(configkinds.names())})"
        )
    config_options = configkinds.parse_options(config, str(file), base_dir)

    targets = w.mapping(data["targets"], "targets")
    transport = targets.get("transport", "local")
    if not isinstance(transport, str) or transport not in transports.names():
        raise w.fail(
            "targets.transport",
            f"unknown transport {limits.show(transport)} (known: {', '.join(transports.names())})",
        )
    hosts = _hosts(w, targets.get("hosts"))
    transport_options = w.guard("targets", transports.get(transport).parse_options, targets, str(file))
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
    health_block = _health(w, data.get("health"), base_dir, stages)
    pb = Playbook(
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
        config_kind_why=kind_why,
        notify=webhooks.parse(data.get("notify"), w.fail),
        deadlines=deadlines.parse(
            data.get("stages", DEFAULT_STAGES), data.get("health"), [s.bake for s in stages], w.fail
        ),
    )
    # A frozen copy is read again by abort: what is on the hosts now must not stop it.
    _check_host_paths(w, pb, on_disk=require_source)
    return pb


def _check_scalars(w: _Where, data: dict[str, Any]) -> None:
    """Refuse what no setting can hold, wherever it is: a NUL, NaN, a number past 2**53, or a
    `path` that cannot name a file (each check kind need not guard against them itself)."""
    stack: list[tuple[str, Any, Any]] = [(str(k), k, v) for k, v in data.items()]
    while stack:
        field, key, value = stack.pop()
        if isinstance(value, dict):
            stack += [(f"{field}.{limits.shorten(str(k), 80)}", k, v) for k, v in value.items()]
        elif isinstance(value, list):
            stack += [(f"{field}[{i}]", key, v) for i, v in enumerate(value)]
        elif isinstance(value, str):
            problem = limits.path_problem(value) if key == "path" else None
            if "\0" in value or problem is not None:
                raise w.fail(field, f"{limits.show(value)} {problem or 'contains a NUL character'}")
        elif isinstance(value, float) and value != value:
            raise w.fail(field, "must be a number, got NaN")
        elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
            raise w.fail(field, f"{limits.show(value)} is too large a number for any setting")


def _source(w: _Where, value: Any, base_dir: Path, required: bool) -> Path:
    text = w.path(value, "config.source")
    try:
        source = base_dir / Path(text).expanduser()
    except RuntimeError as e:  # ~user with no such user
        raise w.fail("config.source", f"cannot expand {limits.show(text)} ({e})") from None
    if not required:
        return source
    try:
        if source.is_dir():
            raise w.fail("config.source", f"{source} is a folder, not a candidate file")
        found = source.is_file()
    except OSError as e:
        raise w.fail("config.source", f"cannot read {source} ({e.strerror})") from None
    if not found:
        raise w.fail("config.source", f"candidate file not found: {source}")
    return source


def _head(source: Path) -> bytes | None:
    """Return the start of the candidate (its `$schema` tells its kind), None if unreadable."""
    try:
        with source.open("rb") as f:
            return f.read(4096)
    except OSError:
        return None


def _check_host_paths(w: _Where, pb: Playbook, on_disk: bool) -> None:
    """Refuse at validate what `start` would fail on: a host's path that cannot name a file.
    With transport local, a path that is a folder on every host is the playbook's mistake; on
    only some hosts it is those hosts' state, which start reports as unreadable (exit 5)."""
    for field, path_on in (("config.path", pb.path_on), ("config.shadow_path", pb.shadow_on)):
        on_hosts: list[tuple[str, str, str]] = []
        for host in pb.hosts:
            path = path_on(host)
            problem = limits.path_problem(path)
            if problem is not None:
                raise w.fail(field, f"on host {limits.show(host)}: {limits.show(path)} {problem}")
            local = _local_path_problem(pb.base_dir, path) if on_disk and pb.transport == "local" else None
            if local is not None:
                on_hosts.append((host, path, local))
        if on_hosts and len(on_hosts) == len(pb.hosts):
            host, path, problem = on_hosts[0]
            raise w.fail(field, f"on host {limits.show(host)}: {limits.show(path)} {problem}")


def _local_path_problem(base_dir: Path, path: str) -> str | None:
    """Return why a local host path cannot hold the config file (a folder is in the way)."""
    try:
        target = Path(path).expanduser()
    except RuntimeError as e:
        return f"cannot be expanded ({e})"
    target = target if target.is_absolute() else base_dir / target
    try:
        if target.is_dir():
            return f"is a folder ({target})"
        for parent in target.parents:
            if parent.exists():
                return None if parent.is_dir() else f"is inside {parent}, which is a file"
    except OSError as e:
        return f"cannot be checked ({e.strerror})"
    return None


def _hosts(w: _Where, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise w.fail("targets.hosts", "must be a non-empty list of host names")
    seen: set[str] = set()
    for i, host in enumerate(value):
        if not isinstance(host, str) or not host.strip():
            raise w.fail(f"targets.hosts[{i}]", f"must be a host name, got {limits.show(host)}")
        if len(host) > limits.MAX_HOST:
            raise w.fail(
                f"targets.hosts[{i}]", f"is {len(host):,} characters long (the limit is {limits.MAX_HOST})"
            )
        if not host.isprintable():
            raise w.fail(f"targets.hosts[{i}]", f"{limits.show(host)} holds a control character")
        if host in seen:
            raise w.fail(f"targets.hosts[{i}]", f"duplicate host {limits.show(host)}")
        if "/" in host or host.startswith("."):
            raise w.fail(f"targets.hosts[{i}]", f"{limits.show(host)} is not a valid host name")
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
            w.unknown(item, {"name", "percent", "bake"} | deadlines.KEYS, field)
            if "percent" not in item:
                if item.get("name") != "shadow":
                    raise w.fail(f"{field}.percent", "missing (required unless name is shadow)")
                percent: Any = "shadow"
            else:
                percent = item["percent"]
            bake = w.duration(item.get("bake", 0), f"{field}.bake")
            name = item.get("name")
            if name is not None:
                w.label(name, f"{field}.name")
        else:
            percent, name = item, None
        if percent == "shadow" or percent == 0:
            if i != 0:
                raise w.fail(field, "shadow can only be the first stage")
            stages.append(Stage(name or "shadow", 0, bake))
            continue
        if not isinstance(percent, int) or isinstance(percent, bool) or not 0 < percent <= 100:
            raise w.fail(
                field, f"percent must be a whole number from 1 to 100 or 'shadow', got {limits.show(percent)}"
            )
        if stages and stages[-1].percent >= percent:
            raise w.fail(field, f"percents must increase: {percent} after {stages[-1].percent}")
        label = name if name is not None else f"{percent}%"
        stages.append(Stage(w.label(label, f"{field}.name"), percent, bake))
    if stages[-1].percent != 100:
        raise w.fail("stages", f"the last stage must be 100 (got {stages[-1].percent})")
    names = [s.name for s in stages]
    if len(set(names)) != len(names):
        raise w.fail("stages", "stage names must be unique")
    return tuple(stages)


def _health(w: _Where, value: Any, base_dir: Path, stages: tuple[Stage, ...]) -> Health:
    block = w.mapping({} if value is None else value, "health")
    w.unknown(block, HEALTH_KEYS, "health")
    checks_raw = block.get("checks", [])
    if not isinstance(checks_raw, list):
        raise w.fail("health.checks", "must be a list of checks")
    stage_keys = {s.name for s in stages} | {str(s.percent) for s in stages if not s.is_shadow}
    checks: list[CheckSpec] = []
    for i, raw in enumerate(checks_raw):
        field = f"health.checks[{i}]"
        spec = w.mapping(raw, field)
        kind_name = w.guard(field, check_kinds.infer, spec)
        if kind_name is None or kind_name not in check_kinds.names():
            raise w.fail(
                field, f"cannot tell the check's kind (give one of: {', '.join(check_kinds.names())})"
            )
        kind = check_kinds.get(kind_name)
        w.unknown(spec, CHECK_COMMON_KEYS | set(kind.keys), field)
        name = w.label(spec.get("name", f"check-{i + 1}"), f"{field}.name")
        if any(c.name == name for c in checks):
            raise w.fail(f"{field}.name", f"duplicate check name {limits.show(name)}")
        on = spec.get("on", "hosts")
        if on not in ("hosts", "local"):
            raise w.fail(f"{field}.on", f"must be 'hosts' or 'local', got {limits.show(on)}")
        only: tuple[str, ...] | None = None
        if "stages" in spec:
            listed = spec["stages"]
            if not isinstance(listed, list) or not listed:
                raise w.fail(f"{field}.stages", "must be a non-empty list of stage names")
            only = tuple(str(s) for s in listed)
            for s in only:
                if s not in stage_keys:
                    raise w.fail(f"{field}.stages", f"no stage named {limits.show(s)}")
            only = tuple(st.name for st in stages if st.name in only or str(st.percent) in only)
        timeout = w.duration(spec.get("timeout", 60), f"{field}.timeout")
        enforce = spec.get("enforce", True)
        if not isinstance(enforce, bool):
            raise w.fail(f"{field}.enforce", f"must be true or false, got {limits.show(enforce)}")
        options = w.guard(field, kind.parse, spec, f"{w.file}: {field}", base_dir)
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
