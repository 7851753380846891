"""Rewrite a JSON(C) text to hold a new document by editing only the spans that changed.

The way Microsoft's jsonc-parser `modify`/`applyEdits` (what OpenCode itself uses to update a
config) keeps a file's formatting, for a whole target document at once: members whose value is
unchanged keep their bytes, comments and commas; a changed scalar is replaced in place; an object
present on both sides is edited member by member (a removed member goes with the comment on its
own line, a new one is appended after the last member at that member's indentation); an array of
the same length is edited item by item; anything else is written anew with the file's indentation.
Comments inside a value that is written anew are lost.

`rewrite` returns None when it cannot edit surgically (duplicate keys, say); the caller then
re-serialises the whole document.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class _Node:
    start: int
    end: int
    kind: str  # "object" | "array" | "scalar"
    keys: list[str] = field(default_factory=list)
    children: list[_Node] = field(default_factory=list)
    key_starts: list[int] = field(default_factory=list)
    commas: list[int | None] = field(default_factory=list)  # the comma after each child, if any


class _Scan:
    """A scanner over JSONC text that load_jsonc has already accepted."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0

    def skip(self) -> None:
        text, n = self.text, len(self.text)
        while self.i < n:
            if text[self.i] in " \t\r\n":
                self.i += 1
            elif text.startswith("//", self.i):
                end = text.find("\n", self.i)
                self.i = n if end < 0 else end
            elif text.startswith("/*", self.i):
                self.i = text.index("*/", self.i + 2) + 2
            else:
                return

    def string_end(self, i: int) -> int:
        i += 1
        while self.text[i] != '"':
            i += 2 if self.text[i] == "\\" else 1
        return i + 1

    def value(self) -> _Node:
        self.skip()
        start, char = self.i, self.text[self.i]
        if char == "{":
            return self.container(start, "object", "}")
        if char == "[":
            return self.container(start, "array", "]")
        if char == '"':
            self.i = self.string_end(start)
            return _Node(start, self.i, "scalar")
        while self.i < len(self.text) and self.text[self.i] not in ",]} \t\r\n/":
            self.i += 1
        return _Node(start, self.i, "scalar")

    def container(self, start: int, kind: str, close: str) -> _Node:
        node = _Node(start, start, kind)
        self.i += 1
        while True:
            self.skip()
            if self.text[self.i] == close:
                self.i += 1
                node.end = self.i
                return node
            if kind == "object":
                key_start = self.i
                self.i = self.string_end(key_start)
                node.keys.append(json.loads(self.text[key_start : self.i]))
                node.key_starts.append(key_start)
                self.skip()
                self.i += 1  # the colon
            child = self.value()
            if kind == "array":
                node.key_starts.append(child.start)
            node.children.append(child)
            self.skip()
            if self.text[self.i] == ",":
                node.commas.append(self.i)
                self.i += 1
            else:
                node.commas.append(None)


def detect_indent(text: str) -> str:
    """Return the file's indentation unit: a tab, or the smallest run of leading spaces (2 if none)."""
    widths = []
    for line in text.splitlines():
        stripped = line.lstrip(" \t")
        if not stripped or len(stripped) == len(line):
            continue
        if line[0] == "\t":
            return "\t"
        widths.append(len(line) - len(stripped))
    return " " * min(widths) if widths else "  "


def dump(value: Any, unit: str, margin: str, compact: bool) -> str:
    """Serialise a value the way the file writes one: on one line, or indented from `margin`."""
    if compact or not isinstance(value, dict | list) or not value:
        return json.dumps(value, ensure_ascii=False)
    text = json.dumps(value, ensure_ascii=False, indent=unit)
    return text.replace("\n", "\n" + margin)


class _Editor:
    def __init__(self, text: str, unit: str) -> None:
        self.text = text
        self.unit = unit
        self.newline = "\r\n" if "\r\n" in text else "\n"  # new lines end the way the file's do
        self.edits: list[tuple[int, int, str]] = []

    def line_start(self, i: int) -> int:
        return self.text.rfind("\n", 0, i) + 1

    def dump(self, value: Any, margin: str, compact: bool) -> str:
        return dump(value, self.unit, margin, compact).replace("\n", self.newline)

    def margin(self, i: int) -> str:
        """The whitespace that starts the line holding position i."""
        start = self.line_start(i)
        end = start
        while end < len(self.text) and self.text[end] in " \t":
            end += 1
        return self.text[start:end]

    def alone_before(self, i: int) -> bool:
        return not self.text[self.line_start(i) : i].strip()

    def line_rest_end(self, i: int) -> int | None:
        """Where the line break after i starts when only blanks and a // or /* */ comment come
        before it; else None."""
        j, n = i, len(self.text)
        while j < n and self.text[j] in " \t\r":
            j += 1
        if self.text.startswith("//", j):
            end = self.text.find("\n", j)
            j = n if end < 0 else end
        elif self.text.startswith("/*", j):
            end = self.text.index("*/", j) + 2
            if "\n" in self.text[j:end]:
                return None
            return self.line_rest_end(end)
        if j < n and self.text[j] != "\n":
            return None
        return j - 1 if j > i and self.text[j - 1] == "\r" else j

    def break_end(self, i: int) -> int:
        """The index after the line break starting at i (CRLF or LF; the end of the text)."""
        return min(i + (2 if self.text.startswith("\r\n", i) else 1), len(self.text))

    def replace(self, node: _Node, new: Any) -> None:
        compact = "\n" not in self.text[node.start : node.end]
        margin = self.margin(node.start)
        self.edits.append((node.start, node.end, self.dump(new, margin, compact)))

    def reconcile(self, node: _Node, old: Any, new: Any) -> bool:
        if old == new and type(old) is type(new):
            return True
        if node.kind == "object" and isinstance(old, dict) and isinstance(new, dict):
            return self.object(node, old, new)
        if node.kind == "array" and isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
            if len(node.children) != len(old):
                return False
            return all(self.reconcile(c, a, b) for c, a, b in zip(node.children, old, new, strict=True))
        self.replace(node, new)
        return True

    def object(self, node: _Node, old: dict[str, Any], new: dict[str, Any]) -> bool:
        if len(set(node.keys)) != len(node.keys) or list(old) != node.keys:
            return False  # duplicate keys: which one counts is the parser's business, not ours
        kept = [i for i, key in enumerate(node.keys) if key in new]
        added = [key for key in new if key not in old]
        if not kept:
            self.replace(node, new)
            return True
        for i, key in enumerate(node.keys):
            if key not in new:
                self.remove_member(node, i)
            elif not self.reconcile(node.children[i], old[key], new[key]):
                return False
        last = kept[-1]
        trailing = node.commas[-1] is not None  # the file's style: a comma after the last member
        if last != len(node.keys) - 1 and node.commas[last] is not None and not trailing and not added:
            comma = node.commas[last]
            assert comma is not None
            self.edits.append((comma, comma + 1, ""))
            node.commas[last] = None
        if added:
            self.append_members(node, last, added, new, trailing)
        return True

    def remove_member(self, node: _Node, i: int) -> None:
        start = node.key_starts[i]
        end = node.commas[i] + 1 if node.commas[i] is not None else node.children[i].end  # type: ignore[operator]
        if self.alone_before(start):
            rest = self.line_rest_end(end)
            if rest is not None:
                start = self.line_start(start)
                end = self.break_end(rest)
        self.edits.append((start, end, ""))

    def append_members(
        self, node: _Node, last: int, added: list[str], new: dict[str, Any], trailing: bool
    ) -> None:
        value_end = node.children[last].end
        comma = node.commas[last]
        after = comma + 1 if comma is not None else value_end
        inline = "\n" not in self.text[node.start : node.end]
        margin = self.margin(node.key_starts[last])
        members = [
            f"{json.dumps(key, ensure_ascii=False)}: {self.dump(new[key], margin, inline)}" for key in added
        ]
        if comma is None:
            self.edits.append((value_end, value_end, ","))
        if inline:
            body = " " + ", ".join(members) + ("," if trailing else "")
            self.edits.append((after, after, body))
            return
        rest = self.line_rest_end(after)
        at = rest if rest is not None else after
        body = "".join(f"{self.newline}{margin}{m}," for m in members)
        if not trailing or comma is None:
            body = body[:-1]
        if comma is None and trailing:
            body += ","
        self.edits.append((at, at, body))

    def result(self) -> str:
        out = self.text
        # From the end backwards; of two edits at one place, the one made first ends up first.
        order = sorted(range(len(self.edits)), key=lambda n: (self.edits[n][0], n), reverse=True)
        for n in order:
            start, end, text = self.edits[n]
            out = out[:start] + text + out[end:]
        return out


def rewrite(text: str, old: Any, new: Any) -> str | None:
    """Return `text` (JSONC that parses to `old`) edited to parse to `new`, or None if it cannot."""
    bom = "\ufeff" if text.startswith("\ufeff") else ""
    body = text.removeprefix("\ufeff")
    try:
        root = _Scan(body).value()
    except (IndexError, ValueError):
        return None
    editor = _Editor(body, detect_indent(body))
    if not editor.reconcile(root, old, new):
        return None
    return bom + editor.result()


def fresh(new: Any, unit: str = "  ") -> str:
    """Serialise a document for a file that has no baseline (or could not be edited)."""
    return json.dumps(new, ensure_ascii=False, indent=unit) + "\n"
