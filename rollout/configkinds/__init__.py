"""Config-kind registry: `config.kind` names one; inferred from the file name when omitted."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from rollout.configkinds.base import ConfigContext, ConfigKind, ConfigParseError, Problem

# kind name -> "module:attribute"; imported lazily.
_REGISTRY: dict[str, str] = {
    "json": "rollout.configkinds.generic:JSON",
    "yaml": "rollout.configkinds.generic:YAML",
    "text": "rollout.configkinds.generic:TEXT",
    "jsonc": "rollout.configkinds.jsonc:JSONC",
    "opencode": "rollout.configkinds.opencode:OPENCODE",
    "oh-my-opencode": "rollout.configkinds.ohmyopencode:OH_MY_OPENCODE",
    "litellm": "rollout.configkinds.litellm:LITELLM",
    "toml": "rollout.configkinds.tomlkind:TOML",
}

# Keys of the playbook's `config:` block that belong to config kinds (beyond source/path/kind).
OPTION_KEYS: frozenset[str] = frozenset({"schema", "validate", "catalog"})


def names() -> list[str]:
    """Return the registered config kinds."""
    return sorted(_REGISTRY)


def get(name: str) -> ConfigKind:
    """Return the config kind registered under `name`."""
    module, attr = _REGISTRY[name].split(":")
    found: ConfigKind = getattr(importlib.import_module(module), attr)
    return found


def infer(filename: str) -> str:
    """Return the kind a file name suggests (LiteLLM's config.yaml is never guessed: say so)."""
    name = Path(filename).name.lower()
    if name in ("opencode.json", "opencode.jsonc"):
        return "opencode"
    if name in (
        "oh-my-opencode.json",
        "oh-my-opencode.jsonc",
        "oh-my-openagent.json",
        "oh-my-openagent.jsonc",
    ):
        return "oh-my-opencode"
    suffix = Path(filename).suffix.lower()
    if suffix == ".jsonc":
        return "jsonc"
    if suffix == ".json":
        return "json"
    if suffix in (".yml", ".yaml"):
        return "yaml"
    if suffix == ".toml":
        return "toml"
    return "text"


def parse_options(config: dict[str, Any], where: str, base_dir: Path) -> dict[str, Any]:
    """Validate the kind-specific keys of the `config:` block; return them as options."""
    from rollout.configkinds import schema

    options: dict[str, Any] = {}
    if "schema" in config:
        options["schema"] = schema.load_schema(config["schema"], where, base_dir)
    if "validate" in config:
        options["validate"] = schema.parse_validate(config["validate"], where)
    if "catalog" in config:
        from rollout import catalog
        from rollout.errors import BadInput

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
        doc = kind.parse(data)
    except ConfigParseError as e:
        return [Problem("", str(e), e.line)]
    problems = kind.check(doc, data, ctx)
    from rollout.configkinds import schema

    if "schema" in ctx.options:
        problems += schema.check_schema(doc, data, ctx.options["schema"], kind_name)
    if "validate" in ctx.options:
        suffix = Path(ctx.source).suffix if ctx.source else ""
        problems += schema.run_validate(ctx.options["validate"], data, ctx, suffix)
    return problems


def parse_lenient(data: bytes | None, kind_name: str) -> Any:
    """Parse for diffing: a file that does not parse is diffed as text lines."""
    if data is None:
        return None
    try:
        return get(kind_name).parse(data)
    except ConfigParseError:
        return data.decode("utf-8", errors="replace").splitlines()
