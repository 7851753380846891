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
}

# Keys of the playbook's `config:` block that belong to config kinds (beyond source/path/kind).
OPTION_KEYS: frozenset[str] = frozenset()


def names() -> list[str]:
    """Return the registered config kinds."""
    return sorted(_REGISTRY)


def get(name: str) -> ConfigKind:
    """Return the config kind registered under `name`."""
    module, attr = _REGISTRY[name].split(":")
    found: ConfigKind = getattr(importlib.import_module(module), attr)
    return found


def infer(filename: str) -> str:
    """Return the kind a file name suggests (json, yaml, text)."""
    suffix = Path(filename).suffix.lower()
    if suffix == ".json":
        return "json"
    if suffix in (".yml", ".yaml"):
        return "yaml"
    return "text"


def parse_options(config: dict[str, Any], where: str, base_dir: Path) -> dict[str, Any]:
    """Validate the kind-specific keys of the `config:` block; return them as options."""
    return {k: config[k] for k in OPTION_KEYS if k in config}


def check_candidate(data: bytes, kind_name: str, ctx: ConfigContext) -> list[Problem]:
    """Parse and check a candidate file; return every problem found (errors and warnings)."""
    kind = get(kind_name)
    try:
        doc = kind.parse(data)
    except ConfigParseError as e:
        return [Problem("", str(e), e.line)]
    return kind.check(doc, data, ctx)


def parse_lenient(data: bytes | None, kind_name: str) -> Any:
    """Parse for diffing: a file that does not parse is diffed as text lines."""
    if data is None:
        return None
    try:
        return get(kind_name).parse(data)
    except ConfigParseError:
        return data.decode("utf-8", errors="replace").splitlines()
