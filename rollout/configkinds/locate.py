"""Find the line of a JSON path in JSON or YAML source text, and collect located problems."""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from rollout.configkinds.base import Problem

JsonPath = tuple[str | int, ...]  # keys and indexes from the document's root: ("agent", "build", "model")
_PLAIN_KEY = re.compile(r"^[A-Za-z_$][\w$-]*$")


def path_str(path: JsonPath) -> str:
    """Render a path as `agent.build.model`, `model_list[0]`, or `agent["a.b"]` for odd keys."""
    out = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        elif not isinstance(part, str):  # a YAML key that is not a string: null, true, 1.5
            out += f"[{json.dumps(part) if part is None or isinstance(part, bool) else str(part)}]"
        elif _PLAIN_KEY.match(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part)}]"
    return out


def json_lines(text: str) -> dict[JsonPath, int]:
    """Map every path of a valid JSON text (comments already blanked) to its 1-based line."""
    scanner = _JsonScanner(text)
    if text.strip():
        scanner.value(())
    return scanner.lines


class _JsonScanner:
    """A forgiving scanner over text that json.loads has already accepted."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self.line = 1
        self.lines: dict[JsonPath, int] = {}

    def skip(self) -> None:
        text, n = self.text, len(self.text)
        while self.i < n and text[self.i] in " \t\r\n,:":
            if text[self.i] == "\n":
                self.line += 1
            self.i += 1

    def string(self) -> str:
        start = self.i
        self.i += 1
        while self.text[self.i] != '"':
            self.i += 2 if self.text[self.i] == "\\" else 1
        self.i += 1
        decoded: str = json.loads(self.text[start : self.i])
        return decoded

    def value(self, path: JsonPath) -> None:
        self.skip()
        self.lines.setdefault(path, self.line)
        char = self.text[self.i]
        if char == "{":
            self.i += 1
            while True:
                self.skip()
                if self.text[self.i] == "}":
                    self.i += 1
                    return
                line = self.line
                key = self.string()
                self.lines[(*path, key)] = line
                self.value((*path, key))
        elif char == "[":
            self.i += 1
            index = 0
            while True:
                self.skip()
                if self.text[self.i] == "]":
                    self.i += 1
                    return
                self.value((*path, index))
                index += 1
        elif char == '"':
            self.string()
        else:
            while self.i < len(self.text) and self.text[self.i] not in ",]} \t\r\n":
                self.i += 1


def yaml_lines(text: str) -> dict[JsonPath, int]:
    """Map every path of a YAML document to its 1-based line, from the composed node tree."""
    import yaml

    lines: dict[JsonPath, int] = {}
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return lines

    def walk(node: Any, path: JsonPath) -> None:
        lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
                lines[(*path, key)] = key_node.start_mark.line + 1
                walk(value_node, (*path, key))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, (*path, index))

    if root is not None:
        walk(root, ())
    return lines


class LocatedProblems:
    """Collects problems for one document, each located at the line of its path."""

    def __init__(self, lines: dict[JsonPath, int]) -> None:
        self.lines = lines
        self.problems: list[Problem] = []

    def line_of(self, path: JsonPath) -> int | None:
        """Return the line of `path`, or of its nearest located parent."""
        for end in range(len(path), -1, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return None

    def add(self, path: JsonPath, message: str, severity: Literal["error", "warning"]) -> None:
        self.problems.append(Problem(path_str(path), message, self.line_of(path), severity))

    def error(self, path: JsonPath, message: str) -> None:
        """Record an error at `path`."""
        self.add(path, message, "error")

    def warn(self, path: JsonPath, message: str) -> None:
        """Record a warning at `path`."""
        self.add(path, message, "warning")

    def result(self) -> list[Problem]:
        """Return the problems in file order (stable: same line keeps the order found)."""
        return sorted(self.problems, key=lambda p: p.line or 0)
