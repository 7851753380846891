"""The format-only kinds: json, yaml, text."""

from __future__ import annotations

import json
from typing import Any

from rollout.configkinds.base import ConfigContext, ConfigParseError, Problem, number_problem


class JsonKind:
    name = "json"

    def parse(self, data: bytes) -> Any:
        try:
            return json.loads(data.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise ConfigParseError(f"not UTF-8 ({e.reason})") from None
        except json.JSONDecodeError as e:
            raise ConfigParseError(f"invalid JSON: {e.msg} (column {e.colno})", e.lineno) from None
        except ValueError as e:
            raise ConfigParseError(f"invalid JSON: {number_problem(e)}") from None

    def check(self, doc: Any, data: bytes, ctx: ConfigContext) -> list[Problem]:
        return []


class YamlKind:
    name = "yaml"

    def parse(self, data: bytes) -> Any:
        import yaml

        from rollout.util import yamlload

        try:
            return yamlload.load_config(data.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise ConfigParseError(f"not UTF-8 ({e.reason})") from None
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            problem = getattr(e, "problem", None) or str(e)
            raise ConfigParseError(
                f"invalid YAML: {problem}", mark.line + 1 if mark is not None else None
            ) from None

    def check(self, doc: Any, data: bytes, ctx: ConfigContext) -> list[Problem]:
        return []


class TextKind:
    name = "text"

    def parse(self, data: bytes) -> Any:
        return data.decode("utf-8", errors="replace").splitlines()

    def check(self, doc: Any, data: bytes, ctx: ConfigContext) -> list[Problem]:
        return []


JSON = JsonKind()
YAML = YamlKind()
TEXT = TextKind()
