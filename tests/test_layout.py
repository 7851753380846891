"""The layout the README's map promises: folders import only the folders below them, modules form no circle."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "rollout"

# Each folder and the folders it may import (the README's "Code layout" table).
ALLOWED: dict[str, set[str]] = {
    "util": set(),
    "models": {"util"},
    "hosts": {"util"},
    "configkinds": {"models", "util"},
    "checks": {"hosts", "models", "util"},
    "core": {"checks", "configkinds", "hosts", "util"},
    "edges": {"core", "checks", "configkinds", "hosts", "models", "util"},
    "dashboard": {"commands", "edges", "core", "checks", "configkinds", "hosts", "models", "util"},
}


def _modules() -> dict[str, Path]:
    return {
        ".".join(path.relative_to(ROOT.parent).with_suffix("").parts).removesuffix(".__init__"): path
        for path in ROOT.rglob("*.py")
    }


def _imports() -> dict[str, set[str]]:
    """Return module -> the rollout modules it imports (at run time and for type checking alike).

    `from rollout.a import b` names the module `rollout.a.b` when there is one, else `rollout.a`.
    """
    modules = _modules()
    found: dict[str, set[str]] = defaultdict(set)
    for module, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rollout"):
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    found[module].add(sub if sub in modules else node.module)
            elif isinstance(node, ast.Import):
                found[module] |= {a.name for a in node.names if a.name.startswith("rollout")}
        found[module].discard(module)
    return found


def _folder(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_folders_import_only_the_folders_below_them() -> None:
    wrong = [
        f"{module} imports {target}"
        for module, targets in _imports().items()
        if _folder(module) in ALLOWED
        for target in targets
        if _folder(target) != _folder(module) and _folder(target) not in ALLOWED[_folder(module)]
    ]
    assert wrong == []


def test_no_module_imports_itself_through_others() -> None:
    graph = _imports()
    circles: set[tuple[str, ...]] = set()

    def visit(module: str, path: list[str]) -> None:
        for target in sorted(graph.get(module, ())):
            if target in path:
                circle = path[path.index(target) :]
                turn = circle.index(min(circle))
                circles.add(tuple(circle[turn:] + circle[:turn]))
            elif target not in finished:
                visit(target, [*path, target])
        finished.add(module)

    finished: set[str] = set()
    for start in sorted(graph):
        if start not in finished:
            visit(start, [start])
    assert sorted(circles) == []
