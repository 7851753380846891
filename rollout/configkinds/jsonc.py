"""JSONC: JSON with // and /* */ comments and trailing commas, exactly what OpenCode accepts.

OpenCode reads its config with `Bun.file(path).text()` and parses it with Microsoft's jsonc-parser
(`parse(text, errors, {allowTrailingComma: true})`), refusing the file on any error. So:
- a comma is trailing (and allowed) only after a value: `{,}`, `[,]` and `[ ,1]` are errors;
- whitespace is what JSON's is (jsonc-parser 3: space, tab, CR, LF; no NBSP, \f, \v);
- one leading UTF-8 BOM is accepted: jsonc-parser alone rejects U+FEFF, but Bun's `.text()`
  decodes as WHATWG UTF-8 and drops a leading BOM before the parser sees it (oven-sh/bun#8227),
  so OpenCode loads such a file; a second BOM, or one elsewhere, is an error.

A small blanking pass instead of a JSON5 library: JSON5 also accepts unquoted keys, single
quotes and hex numbers, which jsonc-parser refuses, so a JSON5 reader would pass files the fleet
cannot load. Comments and trailing commas are replaced by spaces, so line and column numbers
stay those of the original text, and Python's strict JSON decoder judges the rest.
"""

from __future__ import annotations

import json
import math
from typing import Any

from rollout.configkinds.base import ConfigContext, ConfigParseError, Problem, number_problem


def blank_jsonc(text: str) -> str:
    """Return `text` with comments and trailing commas replaced by spaces (newlines kept)."""
    out = list(text)
    i, n = 0, len(text)
    last_comma: int | None = None  # index of a comma not yet followed by a value
    previous = ""  # the last significant character before i (outside strings and comments)
    while i < n:
        char = text[i]
        if char == '"':
            last_comma = None
            previous = char
            i += 1
            while i < n and text[i] != '"':
                if text[i] == "\n":
                    break  # json.loads reports the unterminated string
                i += 2 if text[i] == "\\" else 1
            i += 1
        elif text.startswith("//", i):
            while i < n and text[i] != "\n":
                out[i] = " "
                i += 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                line = text.count("\n", 0, i) + 1
                raise ConfigParseError("invalid JSONC: unterminated /* comment", line)
            for j in range(i, end + 2):
                if out[j] != "\n":
                    out[j] = " "
            i = end + 2
        elif char == ",":
            # Right after `{` or `[` a comma follows no value: jsonc-parser's ValueExpected even
            # with allowTrailingComma, so it is left for the decoder to refuse.
            last_comma = None if previous in ("{", "[") else i
            previous = char
            i += 1
        elif char in "}]":
            if last_comma is not None:
                out[last_comma] = " "
            last_comma = None
            previous = char
            i += 1
        else:
            if not char.isspace():
                last_comma = None
                previous = char
            i += 1
    return "".join(out)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def load_jsonc(data: bytes) -> tuple[Any, str]:
    """Decode JSONC bytes; return the document and the blanked text (for line lookup)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigParseError(f"not UTF-8 ({e.reason})") from None
    text = text.removeprefix("\ufeff")  # as Bun's .text() does (see the module docstring)
    blanked = blank_jsonc(text)
    try:
        doc = json.loads(blanked, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise ConfigParseError(f"invalid JSONC: {e.msg} (column {e.colno})", e.lineno) from None
    except ValueError as e:
        raise ConfigParseError(f"invalid JSONC: {number_problem(e)}") from None
    return doc, blanked


def is_number(value: Any) -> bool:
    """Return True for a finite int or float that is not a bool."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return isinstance(value, int) or math.isfinite(value)  # math.isfinite(10**400) overflows


class JsoncKind:
    name = "jsonc"

    def parse(self, data: bytes) -> Any:
        return load_jsonc(data)[0]

    def check(self, doc: Any, data: bytes, ctx: ConfigContext) -> list[Problem]:
        return []


JSONC = JsoncKind()
