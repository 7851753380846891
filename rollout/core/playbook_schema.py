"""The playbook's JSON Schema (rollout/data/playbook.schema.json): load it, check a document against it.

The schema is the one list of the playbook's keys, their types, defaults and messages; this module
turns jsonschema's errors into `field: message` issues that read like the rest of rollout's:

- a subschema's `errorMessage` is the message for its own keywords (the outermost one along the way
  to the failing keyword at the same place in the document wins, so a field can refine a `$defs`
  entry's); `, got <value>` is added for a value that is not a mapping, and an `unknown ...` message on
  an enum reads `unknown metric 'x' (known: a, b)`;
- a `required` key missing is `missing (required)` (or its subschema's `errorMessage`);
- an unknown key is `unknown key 'helth' (did you mean 'health'?)`, or `unknown key (expected one of:
  ...)` when nothing is close.

jsonschema is imported on the first check only: `status` reads frozen playbooks and never loads it.
"""

from __future__ import annotations

import difflib
import functools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rollout.util import limits
from rollout.util.redact import redact_text

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "data" / "playbook.schema.json"
DRAFT = "https://json-schema.org/draft/2020-12/schema"
FieldPath = tuple[Any, ...]  # keys and list indexes from the document's root

# Keywords that step into a part of the document: an errorMessage above them is about another place.
_DESCENDING = {"properties", "items", "prefixItems", "additionalProperties", "unevaluatedProperties",
               "patternProperties", "contains", "unevaluatedItems", "propertyNames"}  # fmt: skip
_TYPE_NAMES = {"object": "a mapping", "array": "a list", "string": "a string", "integer": "a whole number",
               "number": "a number", "boolean": "true or false"}  # fmt: skip
_UNKNOWN_KEY = ("additionalProperties", "unevaluatedProperties")


@dataclass(frozen=True)
class Issue:
    """One thing wrong at a place in the document."""

    path: FieldPath
    message: str


def schema_text() -> str:
    """Return the schema file's text (what `rollout schema playbook` prints)."""
    return SCHEMA_FILE.read_text(encoding="utf-8")


@functools.cache
def schema() -> dict[str, Any]:
    """Return the parsed schema (read once)."""
    loaded: dict[str, Any] = json.loads(schema_text())
    return loaded


@functools.cache
def _validator() -> Any:
    import jsonschema

    base = jsonschema.Draft202012Validator
    # YAML tells 25 from 25.0: a whole number is an int here, as the code that reads it expects.
    checker = base.TYPE_CHECKER.redefine(
        "integer", lambda _, value: isinstance(value, int) and not isinstance(value, bool)
    )
    return jsonschema.validators.extend(base, type_checker=checker)(schema())


def field_name(path: FieldPath) -> str:
    """Render a path as the messages do: `health.checks[0].run`, odd keys shortened."""
    out = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        else:
            key = limits.shorten(part if isinstance(part, str) else limits.show(part), 80)
            out += f".{key}" if out else key
    return out


def check(data: Any) -> list[Issue]:
    """Return every way `data` breaks the schema (one issue per place, in the order found)."""
    validator = _validator()
    issues: list[Issue] = []
    seen: set[FieldPath] = set()
    for error in validator.iter_errors(data):
        for issue in _issues(validator, error):
            if issue.path not in seen:
                seen.add(issue.path)
                issues.append(issue)
    return _without_noise(issues)


def _issues(validator: Any, error: Any) -> Iterator[Issue]:
    path = tuple(error.absolute_path)
    keyword = error.validator
    if keyword in _UNKNOWN_KEY and isinstance(error.instance, dict):
        known = _declared_keys(validator, error.schema, error.instance)
        for key in error.instance:
            if key not in known:
                yield Issue((*path, key), unknown_key(key, known))
        return
    if keyword == "required":
        message = error.schema.get("errorMessage", "missing (required)")
        for key in error.validator_value:
            if isinstance(error.instance, dict) and key not in error.instance:
                yield Issue((*path, key), message)
        return
    message = _message_for(error)
    value = error.instance
    if message is None and keyword == "type":
        wanted = [_TYPE_NAMES.get(t, t) for t in _listed(error.validator_value) if t != "null"]
        message = f"must be {' or '.join(wanted)}"
    if message is None:
        yield Issue(path, limits.shorten(error.message, 300))
        return
    if keyword == "enum" and path and isinstance(path[-1], int) and message.startswith("unknown "):
        path = path[:-1]  # `events: unknown event 'x'`: an item of a list of names is the list's fault
    if keyword == "type" and "object" in _listed(error.validator_value):
        yield Issue(path, f"{message}, got {type(value).__name__}")
    elif message.startswith("unknown ") and "enum" in error.schema and keyword == "enum":
        listed = ", ".join(str(v) for v in error.schema["enum"])
        yield Issue(path, f"{message} {redact_text(limits.show(value))} (known: {listed})")
    elif keyword == "not" or isinstance(value, dict):
        yield Issue(path, message)
    else:
        yield Issue(path, f"{message}, got {redact_text(limits.show(value))}")


def unknown_key(key: Any, known: set[str] | list[str]) -> str:
    """Return the message for an unknown key, suggesting the closest known one."""
    names = sorted(str(k) for k in known)
    close = difflib.get_close_matches(str(key), names, n=1) if isinstance(key, str) else []
    if close:
        return f"unknown key {limits.show(key)} (did you mean {close[0]!r}?)"
    return f"unknown key (expected one of: {', '.join(names)})"


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _message_for(error: Any) -> str | None:
    """Return the outermost errorMessage between the failing keyword and the last step into the
    document above it: a field's own message before its `$defs` entry's."""
    node: Any = schema()
    found: str | None = None
    naming = False  # the part is a property's name (after `properties`), not a keyword
    for part in error.absolute_schema_path:
        # jsonschema's paths go on inside a `$ref`'s target without naming the `$ref`.
        while isinstance(node, dict) and part not in node and isinstance(node.get("$ref"), str):
            node = _resolve(node["$ref"])
            found = found if found is not None else _own_message(node)
        is_name, naming = naming, False
        if not is_name and part in _DESCENDING:
            found = None
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            break
        naming = not is_name and part in ("properties", "patternProperties", "$defs")
        if not naming:
            found = found if found is not None else _own_message(node)
    if isinstance(error.schema, dict) and found is None:
        own = error.schema.get("errorMessage")
        found = own if isinstance(own, str) else None
    return found


def _own_message(node: Any) -> str | None:
    message = node.get("errorMessage") if isinstance(node, dict) else None
    return message if isinstance(message, str) else None


def _resolve(ref: str) -> Any:
    """Return the local subschema a `#/$defs/...` reference names."""
    node: Any = schema()
    for part in ref.removeprefix("#").strip("/").split("/"):
        if part:
            node = node[part]
    return node


def _declared_keys(validator: Any, node: Any, instance: dict[Any, Any]) -> set[str]:
    """Return the keys a subschema declares for `instance`: its properties and those of the
    branches that apply (allOf, a `then` whose `if` holds, valid anyOf/oneOf branches)."""
    if not isinstance(node, dict):
        return set()
    if "$ref" in node:
        node = {**_resolve(node["$ref"]), **{k: v for k, v in node.items() if k != "$ref"}}
    keys = set(node.get("properties", {}))
    for sub in node.get("allOf", []):
        keys |= _declared_keys(validator, sub, instance)
    for sub in node.get("anyOf", []) + node.get("oneOf", []):
        if validator.evolve(schema=sub).is_valid(instance):
            keys |= _declared_keys(validator, sub, instance)
    if "if" in node:
        holds = validator.evolve(schema=node["if"]).is_valid(instance)
        branch = node.get("then") if holds else node.get("else")
        keys |= _declared_keys(validator, branch, instance)
    return keys


def _without_noise(issues: list[Issue]) -> list[Issue]:
    """Drop unknown-key issues inside a check whose kind cannot be told: its keys are unknown
    only because its kind is."""
    kindless: set[FieldPath] = set()
    for i in issues:
        if i.message.startswith("cannot tell the check's kind"):
            kindless.add(i.path[:-1] if i.path[-1:] == ("kind",) else i.path)
    return [
        i
        for i in issues
        if not (i.path[:-1] in kindless and i.message.startswith("unknown key") and i.path[-1:] != ("kind",))
    ]
