"""Config-kind registry: `config.kind` names one; inferred from the file name and `$schema` when omitted."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from rollout.configkinds.base import ConfigContext, ConfigKind, ConfigParseError, Problem, number_problem
from rollout.util.limits import shorten
from rollout.util.registry import Registry
from rollout.util.yamlload import MAX_DEPTH

_KINDS: Registry[ConfigKind] = Registry(
    {
        "json": "rollout.configkinds.generic:JSON",
        "yaml": "rollout.configkinds.generic:YAML",
        "text": "rollout.configkinds.generic:TEXT",
        "jsonc": "rollout.configkinds.jsonc:JSONC",
        "opencode": "rollout.configkinds.opencode:OPENCODE",
        "oh-my-opencode": "rollout.configkinds.ohmyopencode:OH_MY_OPENCODE",
        "litellm": "rollout.configkinds.litellm:LITELLM",
        "toml": "rollout.configkinds.tomlkind:TOML",
    }
)
names = _KINDS.names
get = _KINDS.get

# Keys of the playbook's `config:` block that belong to config kinds (beyond source/path/kind).
OPTION_KEYS: frozenset[str] = frozenset({"schema", "validate", "catalog"})


def infer(filename: str, data: bytes | None = None) -> str:
    """Return the kind a file's name (and, given its bytes, its `$schema`) suggests."""
    return infer_why(filename, data)[0]


_OH_MY_NAMES = (
    "oh-my-opencode.json",
    "oh-my-opencode.jsonc",
    "oh-my-openagent.json",
    "oh-my-openagent.jsonc",
)


# `"$schema": "..."` near the start of a JSON(C) file says which program reads it.
_SCHEMA = re.compile(
    rb'\A(?:\xef\xbb\xbf)?\s*(?:(?://[^\n]*\n|/\*.*?\*/)\s*)*\{\s*"\$schema"\s*:\s*"([^"\\]{0,500})"', re.S
)
_SCHEMA_HEAD = 4096


def infer_why(filename: str, data: bytes | None = None) -> tuple[str, str]:
    """Return (kind, why) for a candidate: its exact name, its `$schema`, a name containing
    `opencode`, then its suffix (LiteLLM's config.yaml is never guessed: say so)."""
    name = Path(filename).name.lower()
    suffix = Path(filename).suffix.lower()
    if name in ("opencode.json", "opencode.jsonc"):
        return "opencode", "from the file name"
    if name in _OH_MY_NAMES:
        return "oh-my-opencode", "from the file name"
    found = _SCHEMA.match(data[:_SCHEMA_HEAD]) if data is not None else None
    if found is not None:
        schema = found.group(1).decode("utf-8", "replace")
        if re.search(r"oh-my-open(code|agent)", schema):
            return "oh-my-opencode", 'from "$schema"'
        if re.fullmatch(r"https?://opencode\.ai/config\.json", schema):
            return "opencode", 'from "$schema"'
    if suffix in (".json", ".jsonc"):
        if "oh-my-opencode" in name or "oh-my-openagent" in name:
            return "oh-my-opencode", "from 'oh-my-opencode' in the file name"
        if "opencode" in name:
            return "opencode", "from 'opencode' in the file name"
        return suffix[1:], f"from the {suffix} suffix"
    if suffix in (".yml", ".yaml"):
        return "yaml", f"from the {suffix} suffix"
    if suffix == ".toml":
        return "toml", "from the .toml suffix"
    return "text", "no JSON, YAML or TOML suffix"


def parse_options(config: dict[str, Any], where: str, base_dir: Path) -> dict[str, Any]:
    """Validate the kind-specific keys of the `config:` block; return them as options."""
    from rollout.configkinds import schema

    options: dict[str, Any] = {}
    if "schema" in config:
        options["schema"] = schema.load_schema(config["schema"], where, base_dir)
    if "validate" in config:
        options["validate"] = schema.parse_validate(config["validate"], where)
    if "catalog" in config:
        from rollout.models import catalog
        from rollout.util.errors import BadInput

        value = config["catalog"]
        if not isinstance(value, str) or not value.strip():
            raise BadInput(f"{where}: config.catalog: must be a path to a models.dev catalog, got {value!r}")
        path = (base_dir / Path(value).expanduser()).resolve()
        try:
            catalog.load(path)
        except BadInput as e:
            raise BadInput(f"{where}: config.catalog: {e}") from None
        options["catalog"] = str(path)
    return options


def check_candidate(data: bytes, kind_name: str, ctx: ConfigContext) -> list[Problem]:
    """Parse and check a candidate file; return every problem found (errors and warnings)."""
    kind = get(kind_name)
    try:
        doc = parse_bounded(kind, data)
    except ConfigParseError as e:
        return [Problem("", str(e), e.line)]
    problems = kind.check(doc, data, ctx)
    from rollout.configkinds import schema

    if "schema" in ctx.options:
        problems += schema.check_schema(doc, data, ctx.options["schema"], kind_name)
    if "validate" in ctx.options:
        suffix = Path(ctx.source).suffix if ctx.source else ""
        problems += schema.run_validate(ctx.options["validate"], data, ctx, suffix)
    # A problem quotes the document's values: keep a 5 MB string out of one line of output.
    return [replace(p, path=shorten(p.path, 200), message=shorten(p.message, 500)) for p in problems]


def parse_bounded(kind: ConfigKind, data: bytes) -> Any:
    """Parse with `kind`, refusing a document nested deeper than MAX_DEPTH (ConfigParseError)."""
    try:
        doc = kind.parse(data)
    except RecursionError:
        raise ConfigParseError(f"nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as e:  # e.g. Python's limit on digits in an integer
        raise ConfigParseError(number_problem(e)) from None
    if depth_over(doc, MAX_DEPTH):
        raise ConfigParseError(f"nested deeper than {MAX_DEPTH} levels")
    return doc


def depth_over(doc: Any, limit: int) -> bool:
    """Return True when lists and mappings in `doc` nest deeper than `limit` (no recursion)."""
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False


def parse_lenient(data: bytes | None, kind_name: str) -> Any:
    """Parse for diffing: a file that does not parse (or nests too deep) is diffed as text lines."""
    if data is None:
        return None
    try:
        return parse_bounded(get(kind_name), data)
    except ConfigParseError:
        return data.decode("utf-8", errors="replace").splitlines()
