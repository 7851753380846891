"""JSONC parses exactly as OpenCode does: jsonc-parser 3.x `parse(text, errors, {allowTrailingComma: true})`
on the text of `Bun.file(path).text()`, the file refused on any error.

The cases are jsonc-parser's own (src/test/json.test.ts at v3.3.1: "parse: literals", "objects",
"arrays", "objects with errors", "array with errors", "errors", "trailing comma", and the scanner's
string, number, keyword and trivia cases), judged with OpenCode's options: a trailing comma that
jsonc-parser's default options refuse is accepted here, every other error case is refused.
"""

from __future__ import annotations

from typing import Any

import pytest

from rollout.configkinds.base import ConfigParseError
from rollout.configkinds.jsonc import load_jsonc

ACCEPTED: list[tuple[str, Any]] = [
    # parse: literals
    ("true", True),
    ("false", False),
    ("null", None),
    ('"foo"', "foo"),
    ('"\\"-\\\\-\\/-\\b-\\f-\\n-\\r-\\t"', '"-\\-/-\b-\f-\n-\r-\t'),
    ('"\\u00DC"', "Ü"),
    ("9", 9),
    ("-9", -9),
    ("0.129", 0.129),
    ("23e3", 23e3),
    ("1.2E+3", 1.2e3),
    ("1.2E-3", 1.2e-3),
    ("1.2E-3 // comment", 1.2e-3),
    # parse: objects
    ("{}", {}),
    ('{ "foo": true }', {"foo": True}),
    ('{ "bar": 8, "xoo": "foo" }', {"bar": 8, "xoo": "foo"}),
    ('{ "hello": [], "world": {} }', {"hello": [], "world": {}}),
    ('{ "a": false, "b": true, "c": [ 7.4 ] }', {"a": False, "b": True, "c": [7.4]}),
    (
        '{ "lineComment": "//", "blockComment": ["/*", "*/"], "brackets": [ ["{", "}"], ["[", "]"], ["(", ")"] ] }',
        {"lineComment": "//", "blockComment": ["/*", "*/"], "brackets": [["{", "}"], ["[", "]"], ["(", ")"]]},
    ),
    ('{ "hello": { "again": { "inside": 5 }, "world": 1 }}', {"hello": {"again": {"inside": 5}, "world": 1}}),
    ('{ "foo": /*hello*/true }', {"foo": True}),
    ('{ "": true }', {"": True}),
    # parse: arrays
    ("[]", []),
    ("[ [],  [ [] ]]", [[], [[]]]),
    ("[ 1, 2, 3 ]", [1, 2, 3]),
    ('[ { "a": null } ]', [{"a": None}]),
    # parse: trailing comma, with allowTrailingComma as OpenCode passes it
    ('{ "hello": [], }', {"hello": []}),
    ('{ "hello": [], "world": {}, }', {"hello": [], "world": {}}),
    ("[ 1, 2, ]", [1, 2]),
    ('{ "foo": true, }', {"foo": True}),  # an "objects with errors" case only without the option
    # scanner: strings, numbers, trivia
    ('"\u88ff"', "\u88ff"),
    ('"\u200b\u2028"', "\u200b\u2028"),
    ("90E+123", 90e123),
    ("-0.1", -0.1),
    ("  \t  \n  \t  true", True),
    ("\r\n[\r1\n]\n\r", [1]),
    ("false//hello", False),
    # comments anywhere trivia may be, a trailing comma before a comment
    ('{"a": [1, // one\n], /* end */}', {"a": [1]}),
    # one leading BOM: Bun's .text() drops it before jsonc-parser sees the text
    ("\ufeff{}", {}),
]

REFUSED: list[str] = [
    # parse: objects with errors
    "{,}",
    '{ "bar": 8 "xoo": "foo" }',
    '{ ,"bar": 8 }',
    '{ ,"bar": 8, "foo" }',
    '{ "bar": 8, "foo": }',
    '{ 8, "foo": 9 }',
    # parse: array with errors
    "[,]",
    "[ 1 2, 3 ]",
    "[ ,1, 2, 3 ]",
    "[ ,1, 2, 3, ]",
    # parse: errors
    "",
    "1,1",
    # scanner: comments, strings, numbers, keywords
    "/* this is a",
    "/* this is a \ncomment",
    "/ ttt",
    '"\\v"',
    '"test',
    '"test\n"',
    '"\t"',
    '"\t "',
    '"\0 "',
    "01",
    "-01",
    "-",
    ".0",
    "nulllll",
    "True",
    "foo-bar",
    "foo bar",
    # and what follows from them
    "{ , }",
    "[ /* c */ , ]",
    "[1,,]",
    '{"a": 1,,}',
    "// only a comment",
    "NaN",
    "Infinity",
    "{a: 1}",
    "{'a': 1}",
    "0x10",
    "\u00a0{}",  # NBSP is not whitespace to jsonc-parser 3
    "\f{}",
    "\v{}",
    "\ufeff\ufeff{}",  # only one BOM is dropped
    '{"a":\ufeff1}',
]


@pytest.mark.parametrize(("text", "expected"), ACCEPTED)
def test_accepts_what_opencode_accepts(text: str, expected: Any) -> None:
    assert load_jsonc(text.encode())[0] == expected


@pytest.mark.parametrize("text", REFUSED)
def test_refuses_what_opencode_refuses(text: str) -> None:
    with pytest.raises(ConfigParseError):
        load_jsonc(text.encode())
