"""The config-kind seam: how a kind of config file is parsed, checked and diffed."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol


@dataclass(frozen=True)
class Problem:
    """One thing wrong (or doubtful) in a config file, located by JSON path and line."""

    path: str  # JSON path, e.g. "agent.build.model"; "" for the file as a whole
    message: str
    line: int | None = None
    severity: Literal["error", "warning"] = "error"

    def render(self, source: str) -> str:
        """Return `file:line: path: message` for humans."""
        where = source + (f":{self.line}" if self.line else "")
        at = f" {self.path}:" if self.path else ""
        tag = "" if self.severity == "error" else " warning:"
        return f"{where}:{tag}{at} {self.message}"


class ConfigParseError(Exception):
    """The bytes are not a valid document of this kind."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


def number_problem(e: ValueError) -> str:
    """Return a readable message for a ValueError raised while reading a number."""
    text = str(e)
    if "integer string conversion" in text:  # Python's int-to-str limit (4300 digits)
        return "a number has too many digits (the limit is 4300)"
    return text[:200]


@dataclass(frozen=True)
class ConfigContext:
    """What a kind may need beyond the document: the playbook folder and the `config:` block."""

    base_dir: Path
    options: dict[str, Any] = field(default_factory=dict)
    source: str = ""


class ConfigKind(Protocol):
    """Registry entry for one kind of config file."""

    name: str

    def parse(self, data: bytes) -> Any:
        """Return the document (dict/list for structured kinds, list of lines for text)."""

    def check(self, doc: Any, data: bytes, ctx: ConfigContext) -> list[Problem]:
        """Return semantic problems of a parsed document (empty when it is fine)."""
