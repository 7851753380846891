"""YAML parsing through libyaml when PyYAML was built with it (several times faster)."""

from __future__ import annotations

from typing import Any

import yaml

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def safe_load(text: str) -> Any:
    """Parse one YAML document with the safe loader (plain data only); raises yaml.YAMLError."""
    return yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader, C or Python
