"""TOML (Codex CLI's `config.toml`, pyproject-style files), parsed by the standard library's tomllib."""

from __future__ import annotations

import re
import tomllib
from typing import Any

from rollout.configkinds.base import ConfigContext, ConfigParseError, Problem

# tomllib says where in its message: "Invalid value (at line 3, column 7)" or "(at end of document)".
_AT = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


class TomlKind:
    name = "toml"

    def parse(self, data: bytes) -> Any:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ConfigParseError(f"not UTF-8 ({e.reason})") from None
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            message = str(e)
            at = _AT.search(message)
            if at is None:
                raise ConfigParseError(f"invalid TOML: {message}", _last_line(text)) from None
            where = f" (column {at.group(2)})"
            raise ConfigParseError(
                f"invalid TOML: {message[: at.start()]}{where}", int(at.group(1))
            ) from None

    def check(self, doc: Any, data: bytes, ctx: ConfigContext) -> list[Problem]:
        return []


def _last_line(text: str) -> int | None:
    """Return the number of the last line ("at end of document" errors), None for an empty file."""
    return (text.count("\n") + (0 if text.endswith("\n") else 1)) or None


TOML = TomlKind()
