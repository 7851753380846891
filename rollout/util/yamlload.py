"""YAML parsing through libyaml when PyYAML has it, bounded in size, nesting and alias expansion.

Two readings: `safe_load` for what rollout reads itself (playbooks), where a key is taken as
written (`on: local` has the key "on", not True: YAML 1.1 turns on/off/yes/no into booleans);
`load_config` for candidate configs, read the way the program that consumes them (PyYAML,
YAML 1.1) will. Both refuse a document that is too long, nested too deep, or whose aliases
expand into more nodes than `MAX_ALIAS_NODES` (billion laughs), with a short yaml.YAMLError.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import ConstructorError

from rollout.util.limits import shorten

_BASE: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

MAX_DEPTH = 100  # nesting levels; deeper overflows libyaml's composer (a segfault) or deepdiff
MAX_ALIAS_NODES = 100_000  # nodes that aliases may add to a document once expanded
PLAYBOOK_MAX_CHARS = 1 << 20
CONFIG_MAX_CHARS = 64 << 20
_BOOL_TAG = "tag:yaml.org,2002:bool"
_STR_TAG = "tag:yaml.org,2002:str"


class LimitError(yaml.MarkedYAMLError):
    """The document is too long, too deep or expands too far through aliases."""

    def __init__(self, problem: str, mark: Any = None) -> None:
        super().__init__(problem=problem, problem_mark=mark)


class _ConfigLoader(_BASE):  # type: ignore[misc]
    """The safe loader whose construction errors (a 5,000-digit integer, a bad date) are YAML errors."""

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as e:
            problem = shorten(str(e), 200)
            if node.tag == "tag:yaml.org,2002:int":
                problem = f"integer too long ({len(node.value):,} characters)"
            raise ConstructorError(None, None, problem, node.start_mark) from None


class _PlaybookLoader(_ConfigLoader):
    """Mapping keys are taken as written: a plain `on`, `off`, `yes` or `no` key stays a string."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        self.flatten_mapping(node)
        for key_node, _ in node.value:
            if key_node.tag == _BOOL_TAG and key_node.value.lower() not in ("true", "false"):
                key_node.tag = _STR_TAG
        return super().construct_mapping(node, deep)


def _check_bounds(text: str, loader: Any, max_chars: int) -> None:
    """Walk the event stream (flat, cheap) and refuse what would be too big once composed."""
    if len(text) > max_chars:
        raise LimitError(f"document too large: {len(text):,} characters (limit {max_chars:,})")
    sizes: dict[str, int] = {}  # anchor -> nodes it stands for, expanded
    open_anchors: set[str] = set()
    stack: list[list[Any]] = []  # per open collection: [anchor, nodes so far]
    added = 0
    for event in yaml.parse(text, Loader=loader):
        nodes = 0
        anchor = getattr(event, "anchor", None)
        if isinstance(event, yaml.CollectionStartEvent):
            if len(stack) >= MAX_DEPTH:
                raise LimitError(f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
            stack.append([anchor, 1])
            if anchor is not None:
                open_anchors.add(anchor)
            continue
        if isinstance(event, yaml.CollectionEndEvent):
            anchor, nodes = stack.pop()
            open_anchors.discard(anchor)
        elif isinstance(event, yaml.ScalarEvent):
            nodes = 1
        elif isinstance(event, yaml.AliasEvent):
            if anchor in open_anchors:
                raise LimitError(f"recursive alias *{anchor}", event.start_mark)
            nodes = sizes.get(str(anchor), 1)  # an undefined alias is the composer's error to report
            added += nodes
            if added > MAX_ALIAS_NODES:
                raise LimitError(f"aliases expand to more than {MAX_ALIAS_NODES:,} nodes", event.start_mark)
            anchor = None
        else:
            continue
        if anchor is not None:
            sizes[anchor] = nodes
        if stack:
            stack[-1][1] += nodes


def _load(text: str, loader: Any, max_chars: int) -> Any:
    _check_bounds(text, loader, max_chars)
    return yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader, C or Python


def safe_load(text: str) -> Any:
    """Parse one playbook document (plain data, keys as written); raise yaml.YAMLError."""
    return _load(text, _PlaybookLoader, PLAYBOOK_MAX_CHARS)


def load_config(text: str) -> Any:
    """Parse one candidate config document as PyYAML (YAML 1.1) reads it; raise yaml.YAMLError."""
    return _load(text, _ConfigLoader, CONFIG_MAX_CHARS)
