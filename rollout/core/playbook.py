"""Load and validate a playbook into a frozen Playbook.

The schema (rollout/data/playbook.schema.json, `playbook_schema`) says which keys and values a playbook
may hold; this module checks what a schema cannot say (stage order, names and paths on every host,
durations, each kind's own rules) and builds the Playbook. Every problem is reported at once, in file
order, as `file:line: field: message`.
"""

from __future__ import annotations

import math
import posixpath
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
class ConfigFile:
    """One file of the bundle a rollout moves: its candidate (the same `source` for every host, or
    a `patch` applied to each host's own file), where it lives, and how it is checked."""

    name: str
    path: str
    shadow_path: str
    kind: str
    options: dict[str, Any]
    source: Path | None = None
    patch: Path | None = None
    patch_format: str = "merge"
    kind_why: str = "config.kind"
    activate: str | None = None
    field: str = "config"  # where it is in the playbook, for messages: config or config.files[N]

    @property
    def input(self) -> Path:
        """Return the file the playbook names for it (its source, else its patch)."""
        found = self.source if self.source is not None else self.patch
        assert found is not None
        return found

    def path_on(self, host: str) -> str:
        """Return the live path template of this file for `host`."""
        return self.path.replace("{host}", host)

    def shadow_on(self, host: str) -> str:
        """Return the shadow path template of this file for `host`."""
        return self.shadow_path.replace("{path}", self.path).replace("{host}", host)


@dataclass(frozen=True)
class Ready:
    """A readiness command tried after activation until it exits 0 or the deadline passes."""

    run: str
    timeout: float = 10.0
    interval: float = 1.0
    deadline: float = 60.0


DEFAULT_ACTIVATE_TIMEOUT = 60.0


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
    # config.patch: config_source is then the patch file, applied to each host's own file
    config_patch_format: str | None = None
    config_layers: tuple[Any, ...] | None = None  # config.layers (opencode_layers.LayerSpec); None: default
    files: tuple[ConfigFile, ...] = ()  # the bundle; the one-file form is a bundle of one
    activate: str | None = None
    activate_timeout: float = DEFAULT_ACTIVATE_TIMEOUT
    ready: Ready | None = None

    @property
    def is_patch(self) -> bool:
        """True when the (first) file's candidate is `config_source` (a patch) applied to each host's own file."""
        return self.config_patch_format is not None

    @property
    def is_bundle(self) -> bool:
        """Return True when the playbook gives `config.files` (not the one-file form)."""
        return "files" in _mapping(self.raw.get("config"))

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
    targets = _mapping(data.get("targets"))
    transport = str(targets.get("transport", "local"))
    hosts = _hosts(found, targets.get("hosts")) if found.clean("targets", "hosts") else ()
    transport_options = None
    if found.clean("targets"):
        parse_options = transports.get(transport).parse_options
        transport_options = found.guard("targets", parse_options, targets, str(file))
    files = _files(found, config, file, require_source, transport, hosts)
    activate, activate_timeout, ready = _activation(found, config)
    if transport == "pull":
        _pull_limits(found, data)
    layers: tuple[Any, ...] | None = None
    if "layers" in config and found.clean("config", "layers"):
        from rollout.configkinds import opencode_layers

        layers = found.guard("config.layers", _layers, opencode_layers, config["layers"], str(file))

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
    if found.issues:
        return None
    assert files
    first = files[0]
    assert stages is not None and health_block is not None and webhooks is not None
    assert stage_deadlines is not None
    return Playbook(
        file=file,
        base_dir=base_dir,
        name=name,
        config_source=first.input,
        config_path=first.path,
        shadow_path=first.shadow_path,
        config_kind=first.kind,
        config_options=first.options,
        transport=transport,
        transport_options=transport_options,
        hosts=hosts,
        stages=stages,
        health=health_block,
        raw=data,
        config_kind_why=first.kind_why,
        notify=webhooks,
        deadlines=stage_deadlines,
        config_patch_format=first.patch_format if first.patch is not None else None,
        config_layers=layers,
        files=tuple(files),
        activate=activate,
        activate_timeout=activate_timeout,
        ready=ready,
    )


# Keys of a file in the one-file form that, beside `files`, belong in each entry instead.
_FILE_KEYS = (
    "source",
    "patch",
    "patch_format",
    "path",
    "kind",
    "shadow_path",
    "schema",
    "validate",
    "catalog",
)


def _files(
    found: _Found,
    config: dict[str, Any],
    file: Path,
    require_source: bool,
    transport: str,
    hosts: tuple[str, ...],
) -> list[ConfigFile]:
    """Check the bundle (`config.files`, or the one-file form as a bundle of one) and return it."""
    if "files" not in config:
        one = _file(found, config, ("config",), file, require_source, transport, hosts)
        return [one] if one is not None else []
    for key in _FILE_KEYS:
        if key in config:
            found.add(("config", key), "goes in each entry of config.files, not beside it")
    entries = config.get("files")
    out: list[ConfigFile] = []
    for i, entry in enumerate(entries if isinstance(entries, list) else []):
        if isinstance(entry, dict) and found.clean("config", "files", i):
            one = _file(found, entry, ("config", "files", i), file, require_source, transport, hosts)
            if one is not None:
                out.append(one)
    names: dict[str, int] = {}
    paths: dict[str, int] = {}
    for i, one in enumerate(out):
        if one.name in names:
            found.add(
                (*_path_of(one.field), "name"),
                f"another file of the bundle is named {one.name!r}; give each a name",
            )
        if one.path in paths:
            found.add(
                (*_path_of(one.field), "path"), f"{one.path!r} is the path of another file of the bundle"
            )
        names.setdefault(one.name, i)
        paths.setdefault(one.path, i)
    return out


def _file(
    found: _Found,
    block: dict[str, Any],
    at: FieldPath,
    file: Path,
    require_source: bool,
    transport: str,
    hosts: tuple[str, ...],
) -> ConfigFile | None:
    """Check one file of the bundle (`at`: where its keys are) and return it."""
    base_dir = file.parent
    prefix = field_name(at)
    if "source" in block and "patch" in block:
        found.add((*at, "patch"), "give either source (one file for every host) or patch, not both")
        return None
    if "source" not in block and "patch" not in block:
        found.add(at, "needs source (the candidate file) or patch (applied to each host's file)")
        return None
    if "patch" not in block and "patch_format" in block:
        found.add((*at, "patch_format"), f"only goes with {prefix}.patch")
    if "patch" in block and "patch_format" not in block:
        found.add((*at, "patch"), "needs patch_format: merge (RFC 7386) or json-patch (RFC 6902)")
    source = patch = None
    if "source" in block and found.clean(*at, "source"):
        source = _source(found, block["source"], base_dir, require_source, f"{prefix}.source")
    if "patch" in block and found.clean(*at, "patch"):
        patch = _source(found, block["patch"], base_dir, require_source, f"{prefix}.patch", what="patch")
        if patch is not None and require_source and found.clean(*at, "patch_format"):
            fmt = str(block.get("patch_format"))
            found.guard(f"{prefix}.patch", _check_patch, patch, fmt, f"{prefix}.patch")
    path = found.path(block.get("path"), f"{prefix}.path") if found.clean(*at, "path") else None
    shadow = (
        found.path(block.get("shadow_path", DEFAULT_SHADOW), f"{prefix}.shadow_path")
        if found.clean(*at, "shadow_path")
        else None
    )
    kind, kind_why = str(block.get("kind", "")), f"{prefix}.kind"
    if at == ("config",):
        kind_why = "config.kind"
    if "kind" not in block:
        if source is not None:
            kind, kind_why = configkinds.infer_why(source.name, _head(source))
        elif path is not None:
            kind, kind_why = configkinds.infer_why(posixpath.basename(path))
            kind_why = f"{kind_why} of {prefix}.path"
    options: dict[str, Any] | None = {}
    if found.clean(*at) and (source is not None or patch is not None):
        options = found.guard(prefix, configkinds.parse_options, block, str(file), base_dir)
    if path is not None and found.clean("targets"):
        if transport == "local" and len(hosts) > 1 and "{host}" not in path:
            message = f"{path!r} has no {{host}}: with transport 'local' every host would share one file"
            found.add((*at, "path"), message)
        collide = shadow is not None and "{path}" not in shadow and "{host}" not in shadow
        if collide and transport == "local" and len(hosts) > 1:
            found.add((*at, "shadow_path"), "must contain {path} or {host} so hosts do not collide")
        if shadow is not None and hosts:
            _check_host_paths(found, base_dir, path, shadow, hosts, transport, require_source, prefix)
    if (source is None and patch is None) or path is None or shadow is None or options is None:
        return None
    default_name = posixpath.basename(path.replace("{host}", "host")) or "config"
    name = found.label(block.get("name", default_name), f"{prefix}.name")
    activate = block.get("activate")
    return ConfigFile(
        name=name,
        path=path,
        shadow_path=shadow,
        kind=kind,
        options=options,
        source=source,
        patch=patch,
        patch_format=str(block.get("patch_format", "merge")),
        kind_why=kind_why,
        activate=str(activate) if activate is not None else None,
        field=prefix,
    )


def _check_patch(source: Path, patch_format: str, field: str) -> None:
    from rollout.core import patching

    try:
        data = source.read_bytes()
    except OSError as e:
        raise BadInput(f"{field}: cannot read {source} ({e.strerror})") from None
    try:
        patching.load_patch(data, patch_format, str(source))
    except BadInput as e:
        raise BadInput(f"{field}: {str(e).removeprefix(f'{source}: ')}") from None


def _layers(module: Any, value: Any, where: str) -> tuple[Any, ...]:
    try:
        specs: tuple[Any, ...] = module.parse_specs(value, where)
    except ValueError as e:
        raise BadInput(str(e).removeprefix(f"{where}: ")) from None
    return specs


def _activation(found: _Found, config: dict[str, Any]) -> tuple[str | None, float, Ready | None]:
    """Check `config.activate`, `activate_timeout` and `ready`."""
    activate = config.get("activate")
    timeout = DEFAULT_ACTIVATE_TIMEOUT
    if "activate_timeout" in config and found.clean("config", "activate_timeout"):
        timeout = found.duration(config["activate_timeout"], "config.activate_timeout")
    ready: Ready | None = None
    raw = config.get("ready")
    if raw is not None and found.clean("config", "ready"):
        if isinstance(raw, str):
            ready = Ready(raw)
        elif isinstance(raw, dict):
            secs = {
                key: found.duration(raw[key], f"config.ready.{key}")
                for key in ("timeout", "interval", "deadline")
                if key in raw
            }
            ready = Ready(str(raw.get("run")), **secs)
    return (str(activate) if activate is not None else None), timeout, ready


def _pull_limits(found: _Found, data: dict[str, Any]) -> None:
    """Refuse what transport `pull` cannot do: a command check run on the hosts (nothing runs on a
    laptop but its agent; a check there could never pass). Sources and patches move (a laptop's
    patched file is computed from the bytes its agent reports), and `activate` and `ready` run on
    the laptop (its agent)."""
    checks = _mapping(data.get("health")).get("checks")
    for i, spec in enumerate(checks if isinstance(checks, list) else []):
        if isinstance(spec, dict) and check_kinds.infer(spec) == "run" and spec.get("on", "hosts") != "local":
            found.add(
                ("health", "checks", i, "run"),
                "transport 'pull': commands do not run on laptops; give `on: local` (once, on this "
                "machine) or a metric check over the usage agents forward (`path: pull:usage`)",
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


def _source(
    found: _Found,
    value: Any,
    base_dir: Path,
    required: bool,
    field: str = "config.source",
    what: str = "candidate",
) -> Path | None:
    text = found.path(value, field)
    at = _path_of(field)
    if text is None:
        return None
    try:
        source = base_dir / Path(text).expanduser()
    except RuntimeError as e:  # ~user with no such user
        found.add(at, f"cannot expand {limits.show(text)} ({e})")
        return None
    if not required:
        return source
    try:
        if source.is_dir():
            found.add(at, f"{source} is a folder, not a {what} file")
            return None
        present = source.is_file()
    except OSError as e:
        found.add(at, f"cannot read {source} ({e.strerror})")
        return None
    if not present:
        found.add(at, f"{what} file not found: {source}")
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
    prefix: str = "config",
) -> None:
    """Refuse at validate what `start` would fail on: a host's path that cannot name a file.
    With transport local, a path that is a folder on every host is the playbook's mistake; on
    only some hosts it is those hosts' state, which start reports as unreadable (exit 5)."""
    shadow = shadow_path.replace("{path}", config_path)
    fields = ((f"{prefix}.path", config_path), (f"{prefix}.shadow_path", shadow))
    for field, template in fields:
        if (
            field.endswith(".shadow_path")
            and "{path}" in shadow_path
            and not found.clean(*_path_of(prefix), "path")
        ):
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
