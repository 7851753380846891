"""Load and validate a playbook into a frozen Playbook.

The schema (rollout/data/playbook.schema.json, `playbook_schema`) says which keys and values a playbook
may hold; this module checks what a schema cannot say (stage order, names and paths on every host,
durations, each kind's own rules) and builds the Playbook. Every problem is reported at once, in file
order, as `file:line: field: message`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from rollout import checks as check_kinds
from rollout import configkinds
from rollout.checks.base import CheckSpec
from rollout.core import deadlines, playbook_schema
from rollout.core import webhooks as webhook_spec
from rollout.core.deadlines import Deadline
from rollout.core.playbook_schema import FieldPath, field_name
from rollout.core.webhooks import Webhook
from rollout.hosts import transports
from rollout.util import limits, yamlload
from rollout.util.durations import parse_duration
from rollout.util.errors import BadInput

T = TypeVar("T")
DEFAULT_STAGES: list[Any] = ["shadow", 25, 50, 100]
DEFAULT_SHADOW = "{path}.rollout-shadow"
MAX_INT = 2**53  # no setting needs more; a float cannot hold more exactly
MAX_SHOWN = 100  # problems listed at most; the count says how many there were


@dataclass(frozen=True)
class Stage:
    """One step of the rollout: shadow (percent 0) or live on `percent` of the hosts."""

    name: str
    percent: int
    bake: float
    min_exposed: int | str | None = None  # pull fleets: a count or "80%"; None: the whole cohort

    @property
    def is_shadow(self) -> bool:
        return self.percent == 0

    def exposure_needed(self, cohort: int) -> int:
        """Return how many of a `cohort`-host cohort must confirm the candidate (pull fleets)."""
        wanted = self.min_exposed
        if wanted is None:
            return cohort
        if isinstance(wanted, str):
            return min(cohort, max(1, math.ceil(float(wanted.rstrip("%")) * cohort / 100 - 1e-9)))
        return min(cohort, wanted)


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


_FIELD_PART = re.compile(r"\[(\d+)\]|([^.\[\]]+)")


def _path_of(field: str) -> FieldPath:
    """Read a field as messages write it (`health.checks[0].run`) back into a path."""
    return tuple(int(i) if i else key for i, key in _FIELD_PART.findall(field))


class FieldError(BadInput):
    """One problem at one field of a playbook."""

    def __init__(self, file: Path, field: str, message: str) -> None:
        super().__init__(f"{file}: {field}: {message}" if field else f"{file}: {message}")
        self.field, self.text = field, message


class _Found:
    """The problems found in one playbook, each at a field; raised all at once, with their lines."""

    def __init__(self, file: Path, text: str | None) -> None:
        self.file = file
        self.text = text
        self.issues: list[tuple[FieldPath, str]] = []

    def add(self, path: FieldPath, message: str, *, unless_near: bool = False) -> None:
        """Record a problem; with `unless_near`, not when one is already recorded at, above or below it."""
        if unless_near and any(p[: len(path)] == path or path[: len(p)] == p for p, _ in self.issues):
            return
        self.issues.append((path, message))

    def fail(self, field: str, message: str) -> FieldError:
        """Return the error for `field` (for parsers that raise the first problem they meet)."""
        return FieldError(self.file, field, message)

    def note(self, e: BadInput) -> None:
        """Record a problem a parser raised as `file: field: message`."""
        if isinstance(e, FieldError):
            self.add(_path_of(e.field), e.text)
            return
        text = str(e).removeprefix(f"{self.file}: ")
        field, sep, message = text.partition(": ")
        if not sep or " " in field:
            self.add((), text)
        else:
            self.add(_path_of(field), message)

    def clean(self, *path: Any) -> bool:
        """Return True when no problem is recorded at `path`, inside it or at a mapping or list
        holding it (a value of the wrong type there)."""
        return not any(p[: len(path)] == path or path[: len(p)] == p for p, _ in self.issues)

    def guard(self, field: str, parse: Callable[..., T], *args: Any) -> T | None:
        """Call a kind's own parser: its BadInput is recorded, and so is a value of a shape it did
        not expect (not a crash); return None when it refused."""
        try:
            return parse(*args)
        except BadInput as e:
            self.note(e)
        except (TypeError, ValueError, OverflowError, KeyError, AttributeError, RecursionError) as e:
            self.add(_path_of(field), f"cannot read it ({type(e).__name__}: {limits.shorten(str(e), 200)})")
        return None

    def label(self, value: Any, field: str) -> str:
        """A name shown in every line about it (rollout, stage, check): short and printable."""
        text = str(value)
        if len(text) > limits.MAX_NAME or not text.isprintable():
            self.add(
                _path_of(field),
                f"must be at most {limits.MAX_NAME} printable characters, got {limits.show(text)}",
            )
        return text

    def path(self, value: Any, field: str) -> str | None:
        problem = limits.path_problem(value)
        if problem is not None:
            self.add(_path_of(field), f"{limits.show(value)} {problem}")
            return None
        return str(value)

    def duration(self, value: Any, field: str) -> float:
        seconds = parse_duration(value)
        if seconds is None:
            message = f"must be a duration like 30s, 5m or 1h (at most 366d), got {limits.show(value)}"
            self.add(_path_of(field), message, unless_near=True)
            return 0.0
        return seconds

    def raise_any(self) -> None:
        """Raise BadInput listing every problem in file order (none: return)."""
        if not self.issues:
            return
        lines = yamlload_lines(self.text) if self.text is not None else {}
        located = sorted(((_line_of(lines, p), p, m) for p, m in self.issues), key=lambda x: x[0] or 0)
        shown = [self._render(line, path, message) for line, path, message in located[:MAX_SHOWN]]
        if len(located) > MAX_SHOWN:
            shown.append(f"{self.file}: ... and {len(located) - MAX_SHOWN} more")
        if len(located) == 1:
            raise BadInput(shown[0], shown)
        raise BadInput(f"{self.file}: the playbook is invalid: {len(located)} error(s)", shown)

    def _render(self, line: int | None, path: FieldPath, message: str) -> str:
        where = f"{self.file}:{line}" if line else str(self.file)
        field = field_name(path)
        return limits.shorten(f"{where}: {field}: {message}" if field else f"{where}: {message}")


def yamlload_lines(text: str) -> dict[FieldPath, int]:
    """Return the line of every field of a playbook's text (only when there is a problem to show)."""
    from rollout.configkinds.locate import yaml_lines

    return yaml_lines(text)


def _line_of(lines: dict[FieldPath, int], path: FieldPath) -> int | None:
    """Return the line of `path` or of its nearest parent below the document itself."""
    for end in range(len(path), 0, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return None


def load(path: str | Path) -> Playbook:
    """Read, parse and validate a playbook file; raise BadInput naming file, line and field."""
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
    return from_dict(data, file.resolve(), text=text)


def from_dict(data: Any, file: Path, *, require_source: bool = True, text: str | None = None) -> Playbook:
    """Validate a parsed playbook document (`text`, when given, locates problems by line). A frozen
    copy (require_source False) was validated when its rollout started: it is not checked against
    the schema again (status stays fast) and need not find its source again."""
    if not isinstance(data, dict):
        raise BadInput(f"{file}: a playbook must be a YAML mapping with name, config, targets")
    found = _Found(file, text)
    _check_scalars(found, data)
    if require_source:
        for issue in playbook_schema.check(data):
            found.add(issue.path, issue.message, unless_near=True)
    try:
        pb = _build(found, data, file, require_source)
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as e:
        if require_source:
            raise
        raise BadInput(
            f"{file}: the rollout's playbook copy cannot be read ({type(e).__name__}: {e})"
        ) from None
    found.raise_any()
    assert pb is not None
    return pb


def _build(found: _Found, data: dict[str, Any], file: Path, require_source: bool) -> Playbook | None:
    """Check what the schema cannot and return the Playbook (None when a problem was found)."""
    base_dir = file.parent
    name = found.label(data.get("name"), "name") if found.clean("name") else ""

    config = _mapping(data.get("config"))
    source = None
    if found.clean("config", "source") and "source" in config:
        source = _source(found, config["source"], base_dir, require_source)
    config_path = found.path(config.get("path"), "config.path") if found.clean("config", "path") else None
    shadow_path = (
        found.path(config.get("shadow_path", DEFAULT_SHADOW), "config.shadow_path")
        if found.clean("config", "shadow_path")
        else None
    )
    kind, kind_why = str(config.get("kind", "")), "config.kind"
    if "kind" not in config and source is not None:
        kind, kind_why = configkinds.infer_why(source.name, _head(source))
    config_options: dict[str, Any] | None = {}
    if found.clean("config") and source is not None:
        config_options = found.guard("config", configkinds.parse_options, config, str(file), base_dir)

    targets = _mapping(data.get("targets"))
    transport = str(targets.get("transport", "local"))
    hosts = _hosts(found, targets.get("hosts")) if found.clean("targets", "hosts") else ()
    transport_options = None
    if found.clean("targets"):
        parse_options = transports.get(transport).parse_options
        transport_options = found.guard("targets", parse_options, targets, str(file))
    if config_path is not None and found.clean("targets"):
        if transport == "local" and len(hosts) > 1 and "{host}" not in config_path:
            message = (
                f"{config_path!r} has no {{host}}: with transport 'local' every host would share one file"
            )
            found.add(("config", "path"), message)
        collide = shadow_path is not None and "{path}" not in shadow_path and "{host}" not in shadow_path
        if collide and transport == "local" and len(hosts) > 1:
            found.add(("config", "shadow_path"), "must contain {path} or {host} so hosts do not collide")

    stages_raw = data.get("stages", DEFAULT_STAGES)
    stages = _stages(found, stages_raw) if found.clean("stages") else None
    health_block = _health(found, _mapping(data.get("health")), base_dir, stages)
    webhooks: tuple[Webhook, ...] | None = ()
    if found.clean("notify"):
        webhooks = found.guard("notify", webhook_spec.parse, data.get("notify"), found.fail)
    stage_deadlines: tuple[Deadline | None, ...] | None = ()
    if stages is not None and found.clean("health", "deadline") and found.clean("health", "on_deadline"):
        bakes = [s.bake for s in stages]
        stage_deadlines = found.guard(
            "stages", deadlines.parse, stages_raw, data.get("health"), bakes, found.fail
        )
    if config_path is not None and shadow_path is not None and hosts and found.clean("targets"):
        _check_host_paths(found, base_dir, config_path, shadow_path, hosts, transport, require_source)
    if found.issues:
        return None
    assert source is not None and config_path is not None and shadow_path is not None
    assert stages is not None and health_block is not None and webhooks is not None
    assert config_options is not None and stage_deadlines is not None
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
        config_kind_why=kind_why,
        notify=webhooks,
        deadlines=stage_deadlines,
    )


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _check_scalars(found: _Found, data: dict[str, Any]) -> None:
    """Refuse what no setting can hold, wherever it is: a NUL, NaN, a number past 2**53, or a
    `path` that cannot name a file (each check kind need not guard against them itself)."""
    stack: list[tuple[FieldPath, Any, Any]] = [((k,), k, v) for k, v in reversed(data.items())]
    while stack:
        path, key, value = stack.pop()
        if isinstance(value, dict):
            stack += [((*path, k), k, v) for k, v in reversed(value.items())]
        elif isinstance(value, list):
            stack += [((*path, i), key, v) for i, v in reversed(list(enumerate(value)))]
        elif isinstance(value, str):
            problem = limits.path_problem(value) if key == "path" else None
            if "\0" in value or problem is not None:
                found.add(path, f"{limits.show(value)} {problem or 'contains a NUL character'}")
        elif isinstance(value, float) and value != value:
            found.add(path, "must be a number, got NaN")
        elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
            found.add(path, f"{limits.show(value)} is too large a number for any setting")


def _source(found: _Found, value: Any, base_dir: Path, required: bool) -> Path | None:
    text = found.path(value, "config.source")
    if text is None:
        return None
    try:
        source = base_dir / Path(text).expanduser()
    except RuntimeError as e:  # ~user with no such user
        found.add(("config", "source"), f"cannot expand {limits.show(text)} ({e})")
        return None
    if not required:
        return source
    try:
        if source.is_dir():
            found.add(("config", "source"), f"{source} is a folder, not a candidate file")
            return None
        present = source.is_file()
    except OSError as e:
        found.add(("config", "source"), f"cannot read {source} ({e.strerror})")
        return None
    if not present:
        found.add(("config", "source"), f"candidate file not found: {source}")
        return None
    return source


def _head(source: Path) -> bytes | None:
    """Return the start of the candidate (its `$schema` tells its kind), None if unreadable."""
    try:
        with source.open("rb") as f:
            return f.read(4096)
    except OSError:
        return None


def _check_host_paths(
    found: _Found,
    base_dir: Path,
    config_path: str,
    shadow_path: str,
    hosts: tuple[str, ...],
    transport: str,
    on_disk: bool,
) -> None:
    """Refuse at validate what `start` would fail on: a host's path that cannot name a file.
    With transport local, a path that is a folder on every host is the playbook's mistake; on
    only some hosts it is those hosts' state, which start reports as unreadable (exit 5)."""
    shadow = shadow_path.replace("{path}", config_path)
    for field, template in (("config.path", config_path), ("config.shadow_path", shadow)):
        if field == "config.shadow_path" and "{path}" in shadow_path and not found.clean("config", "path"):
            return  # the live path's problem, said once
        on_hosts: list[tuple[str, str, str]] = []
        for host in hosts:
            path = template.replace("{host}", host)
            problem = limits.path_problem(path)
            if problem is not None:
                found.add(_path_of(field), f"on host {limits.show(host)}: {limits.show(path)} {problem}")
                break
            local = _local_path_problem(base_dir, path) if on_disk and transport == "local" else None
            if local is not None:
                on_hosts.append((host, path, local))
        if on_hosts and len(on_hosts) == len(hosts):
            host, path, problem = on_hosts[0]
            found.add(_path_of(field), f"on host {limits.show(host)}: {limits.show(path)} {problem}")


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


def _hosts(found: _Found, value: Any) -> tuple[str, ...]:
    """Check each host name (the schema checked it is a non-empty list of strings)."""
    seen: set[str] = set()
    hosts = value if isinstance(value, list) else []
    for i, host in enumerate(hosts):
        at = ("targets", "hosts", i)
        if len(host) > limits.MAX_HOST:
            found.add(at, f"is {len(host):,} characters long (the limit is {limits.MAX_HOST})")
        elif not host.isprintable():
            found.add(at, f"{limits.show(host)} holds a control character")
        elif host in seen:
            found.add(at, f"duplicate host {limits.show(host)}")
        elif "/" in host or host.startswith("."):
            found.add(at, f"{limits.show(host)} is not a valid host name")
        seen.add(host)
    return tuple(hosts)


def _stages(found: _Found, value: list[Any]) -> tuple[Stage, ...] | None:
    """Check the stages' order and names (the schema checked each one's shape)."""
    before = len(found.issues)
    stages: list[Stage] = []
    for i, item in enumerate(value):
        field = f"stages[{i}]"
        bake = 0.0
        name: Any = None
        percent: Any = item
        if isinstance(item, dict):
            percent = item.get("percent", "shadow")
            bake = found.duration(item.get("bake", 0), f"{field}.bake")
            name = item.get("name")
            if name is not None:
                found.label(name, f"{field}.name")
        if percent == "shadow" or percent == 0:
            if i != 0:
                found.add(("stages", i), "shadow can only be the first stage")
            stages.append(Stage(name or "shadow", 0, bake))
            continue
        if stages and stages[-1].percent >= percent:
            found.add(("stages", i), f"percents must increase: {percent} after {stages[-1].percent}")
        label = name if name is not None else f"{percent}%"
        exposed = item.get("min_exposed") if isinstance(item, dict) else None
        stages.append(Stage(found.label(label, f"{field}.name"), percent, bake, exposed))
    if stages and stages[-1].percent != 100:
        found.add(("stages",), f"the last stage must be 100 (got {stages[-1].percent})")
    names = [s.name for s in stages]
    if len(set(names)) != len(names):
        found.add(("stages",), "stage names must be unique")
    return tuple(stages) if len(found.issues) == before else None


def _health(
    found: _Found, block: dict[str, Any], base_dir: Path, stages: tuple[Stage, ...] | None
) -> Health | None:
    """Check the checks' kinds, names and stages, and each kind's own rules."""
    checks: list[CheckSpec] = []
    raw_checks = block.get("checks", [])
    for i, raw in enumerate(raw_checks if isinstance(raw_checks, list) else []):
        if found.clean("health", "checks", i):
            spec = _check(found, raw, i, base_dir, stages, checks)
            if spec is not None:
                checks.append(spec)

    def seconds(key: str, default: Any) -> float:
        if not found.clean("health", key):
            return 0.0
        return found.duration(block.get(key, default), f"health.{key}")

    interval = seconds("interval", "5s")
    max_extend = seconds("max_extend", 0) if "max_extend" in block else None
    if not found.clean("health"):
        return None
    return Health(
        checks=tuple(checks),
        failure_limit=block.get("failure_limit", 0),
        consecutive_error_limit=block.get("consecutive_error_limit", 4),
        interval=interval,
        max_extend=max_extend,
    )


def _check(
    found: _Found,
    spec: dict[str, Any],
    i: int,
    base_dir: Path,
    stages: tuple[Stage, ...] | None,
    checks: list[CheckSpec],
) -> CheckSpec | None:
    """Check one entry of `health.checks` (the schema checked its keys and their shapes)."""
    field = f"health.checks[{i}]"
    kind_name = check_kinds.infer(spec)
    if kind_name is None or kind_name not in check_kinds.names():
        found.add(
            _path_of(field), f"cannot tell the check's kind (give one of: {', '.join(check_kinds.names())})"
        )
        return None
    name = found.label(spec.get("name", f"check-{i + 1}"), f"{field}.name")
    if any(c.name == name for c in checks):
        found.add(_path_of(f"{field}.name"), f"duplicate check name {limits.show(name)}")
    only: tuple[str, ...] | None = None
    if "stages" in spec and stages is not None:
        listed = tuple(str(s) for s in spec["stages"])
        known = {s.name for s in stages} | {str(s.percent) for s in stages if not s.is_shadow}
        for s in listed:
            if s not in known:
                found.add(_path_of(f"{field}.stages"), f"no stage named {limits.show(s)}")
                break
        only = tuple(st.name for st in stages if st.name in listed or str(st.percent) in listed)
    timeout = found.duration(spec.get("timeout", 60), f"{field}.timeout")
    options = found.guard(field, check_kinds.get(kind_name).parse, spec, f"{found.file}: {field}", base_dir)
    if not found.clean(*_path_of(field)):
        return None
    return CheckSpec(
        name, kind_name, spec.get("on", "hosts"), only, timeout, spec.get("enforce", True), options
    )
