"""Write a changed document back in its file's own format, keeping what the format lets us keep.

JSON and JSONC are edited as text (`jsonc_edit`); YAML goes through ruamel.yaml's round-trip
loader (comments, key order, quoting and the file's indentation kept); TOML through tomlkit
(comments, order and layout kept). In each, only the keys whose values changed are touched, and
every result is parsed again with the kind's own parser and must equal the intended document.
"""

from __future__ import annotations

import io
from typing import Any

from rollout.configkinds import get, jsonc_edit, parse_bounded
from rollout.configkinds.base import ConfigParseError

JSON_KINDS = frozenset({"json", "jsonc", "opencode", "oh-my-opencode"})
YAML_KINDS = frozenset({"yaml", "litellm"})
TOML_KINDS = frozenset({"toml"})
STRUCTURED = JSON_KINDS | YAML_KINDS | TOML_KINDS


class CannotWrite(Exception):
    """The document cannot be written in this format (a null in TOML, say)."""


def write(kind: str, baseline: bytes | None, old: Any, new: Any) -> bytes:
    """Return bytes of `kind` that parse to `new`, edited from `baseline` (which parses to `old`)."""
    if kind in JSON_KINDS:
        out = _json(kind, baseline, old, new)
    elif kind in YAML_KINDS:
        out = _yaml(baseline, old, new)
    elif kind in TOML_KINDS:
        out = _toml(baseline, old, new)
    else:
        raise CannotWrite(f"a {kind} file cannot be patched (only JSON, JSONC, YAML and TOML kinds)")
    data = out.encode("utf-8")
    try:
        again = parse_bounded(get(kind), data)
    except ConfigParseError as e:
        raise CannotWrite(f"the patched file would not parse: {e}") from None
    if not _same(again, new):
        raise CannotWrite("the patched document cannot be written in this format without changing it")
    return data


def _same(a: Any, b: Any) -> bool:
    """Equal, with key order and int/float/bool types counted."""
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _parses_to(kind: str, text: str, new: Any) -> bool:
    try:
        return _same(parse_bounded(get(kind), text.encode("utf-8")), new)
    except ConfigParseError:
        return False


def _json(kind: str, baseline: bytes | None, old: Any, new: Any) -> str:
    if baseline is None:
        return jsonc_edit.fresh(new)
    text = baseline.decode("utf-8")
    edited = jsonc_edit.rewrite(text, old, new)
    if edited is not None and _parses_to(kind, edited, new):
        return edited
    ending = "\n" if text.endswith("\n") else ""
    return jsonc_edit.fresh(new, jsonc_edit.detect_indent(text)).rstrip("\n") + ending


def _yaml(baseline: bytes | None, old: Any, new: Any) -> str:
    from ruamel.yaml import YAML
    from ruamel.yaml.util import load_yaml_guess_indent

    yaml = YAML()  # round-trip
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap a long line
    yaml.brace_single_entry_mapping_in_flow_sequence = True  # keep [{a: [b]}] (LiteLLM's fallbacks)
    if baseline is None:
        yaml.indent(mapping=2, sequence=4, offset=2)
        tree: Any = None
    else:
        text = baseline.decode("utf-8").removeprefix("\ufeff")
        _, sequence, offset = load_yaml_guess_indent(text)
        mapping = _yaml_mapping_indent(text)
        yaml.indent(mapping=mapping, sequence=sequence or mapping, offset=offset or 0)
        tree = yaml.load(text)
    tree = _edited(tree, old, new)
    out = io.StringIO()
    yaml.dump(tree, out)
    return out.getvalue()


def _yaml_mapping_indent(text: str) -> int:
    """The smallest indentation of a mapping key (ruamel guesses the sequences' only); 2 if none."""
    widths = []
    for line in text.splitlines():
        stripped = line.lstrip(" ")
        if stripped and stripped[0] not in "-#" and len(stripped) < len(line):
            widths.append(len(line) - len(stripped))
    return min(widths) if widths else 2


def _toml(baseline: bytes | None, old: Any, new: Any) -> str:
    import tomlkit

    if _has_null(new):
        raise CannotWrite("TOML has no null: a patch cannot set a TOML value to null")
    if baseline is None:
        return tomlkit.dumps(new)
    tree = _edited(tomlkit.parse(baseline.decode("utf-8")), old, new)
    return tomlkit.dumps(tree)


def _has_null(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, dict):
        return any(_has_null(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_null(v) for v in value)
    return False


def _edited(tree: Any, old: Any, new: Any) -> Any:
    """Edit a round-trip tree (ruamel or tomlkit) in place toward `new`; return the tree to dump."""
    if tree is None or not isinstance(old, dict) or not isinstance(new, dict):
        return new
    try:
        _reconcile(tree, old, new)
    except (KeyError, IndexError, TypeError, ValueError) as e:
        # The round-trip reader saw another document than the kind's parser (YAML 1.2 reads
        # `on:` as a string key where PyYAML's 1.1 reads true): editing it could change other keys.
        raise CannotWrite(
            f"cannot edit this file in place ({type(e).__name__} at a key the two YAML readers see differently)"
        ) from None
    return tree


def _reconcile(node: Any, old: Any, new: Any) -> None:
    """Make a mutable round-trip mapping or sequence `node` (which equals `old`) equal `new`."""
    if isinstance(old, dict):
        for key in list(old):
            if key not in new:
                del node[key]
        for key, value in new.items():
            if key not in old:
                node[key] = value
            elif old[key] == value and type(old[key]) is type(value):
                continue
            elif _editable(node[key], old[key], value):
                _reconcile(node[key], old[key], value)
            else:
                node[key] = value
        return
    for i, value in enumerate(new):
        if old[i] == value and type(old[i]) is type(value):
            continue
        if _editable(node[i], old[i], value):
            _reconcile(node[i], old[i], value)
        else:
            node[i] = value


def _editable(node: Any, old: Any, new: Any) -> bool:
    """True when a changed value can be edited inside (so its comments stay) rather than replaced."""
    if isinstance(old, dict) and isinstance(new, dict):
        return hasattr(node, "keys") and set(node.keys()) == set(old.keys())
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return hasattr(node, "__len__") and not hasattr(node, "keys") and len(node) == len(old)
    return False
