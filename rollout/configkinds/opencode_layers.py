"""The layer that wins: which of the files OpenCode merges would override the file a rollout writes.

OpenCode merges its config layers lowest first (see docs/opencode-layers.md for the source read):
remote `.well-known/opencode` < global `~/.config/opencode/opencode.json(c)` < `OPENCODE_CONFIG` <
project `opencode.json(c)` found upward < `.opencode/opencode.json(c)` < `OPENCODE_CONFIG_CONTENT` <
the managed folder (`/etc/opencode`, `/Library/Application Support/opencode`). The merge is remeda's
`mergeDeep`: objects merge key by key, any other value (arrays included, except `plugin` and
`instructions`, which are concatenated) is replaced by the higher layer's. So a key the rollout
changes is overridden exactly when a higher layer sets that key, one of its parents to a non-object,
or anything below it.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from rollout.configkinds.base import ConfigParseError
from rollout.configkinds.jsonc import load_jsonc
from rollout.configkinds.locate import JsonPath, path_str

# Lowest first; the rank of each layer in OpenCode's merge order.
LAYERS = ("remote", "global", "custom", "project", "dot-opencode", "content", "managed")
RANK = {name: n for n, name in enumerate(LAYERS)}
MANAGED_DIRS = ("/etc/opencode", "/Library/Application Support/opencode")
CONCATENATED = frozenset({"plugin", "instructions"})  # arrays OpenCode joins instead of replacing
DEFAULT_SSH = (
    "~/.config/opencode/opencode.jsonc",
    "~/.config/opencode/opencode.json",
    "/etc/opencode/opencode.jsonc",
    "/etc/opencode/opencode.json",
)


@dataclass(frozen=True)
class LayerSpec:
    """One file to read on each host: a config layer, or an environment file (`env` True)."""

    path: str
    layer: str = ""
    env: bool = False


def layer_of(path: str) -> str:
    """Return the OpenCode layer a config file's path says it is."""
    p = PurePosixPath(path.replace("\\", "/"))
    folder = str(p.parent)
    if any(folder == d or folder.endswith(d) for d in MANAGED_DIRS):
        return "managed"
    if p.parent.name == ".opencode":
        return "dot-opencode"
    if folder.endswith(".config/opencode"):
        return "global"
    return "project"


def order(path: str, layer: str) -> tuple[int, int]:
    """Where a file stands in the merge: its layer's rank, then .json after .jsonc in one folder."""
    return RANK[layer], 1 if path.endswith(".json") else 0


def parse_specs(value: Any, where: str) -> tuple[LayerSpec, ...]:
    """Read `config.layers` (already checked by the schema); raise ValueError on a bad entry."""
    specs = []
    for n, item in enumerate(value):
        if isinstance(item, str):
            specs.append(LayerSpec(item, layer_of(item)))
        elif isinstance(item, dict) and "env_file" in item:
            specs.append(LayerSpec(str(item["env_file"]), "", env=True))
        elif isinstance(item, dict) and "path" in item:
            layer = str(item.get("layer") or layer_of(str(item["path"])))
            if layer not in RANK:
                raise ValueError(f"{where}: config.layers[{n}].layer: must be one of {', '.join(LAYERS)}")
            specs.append(LayerSpec(str(item["path"]), layer))
        else:
            raise ValueError(f"{where}: config.layers[{n}]: must be a path, {{path, layer}} or {{env_file}}")
    return tuple(specs)


def default_specs(transport: str) -> tuple[LayerSpec, ...]:
    """OpenCode's own files on a Linux host; none for simulated (local) hosts, whose `/etc` and
    home would be this machine's and the same for every host."""
    if transport == "local":
        return ()
    return tuple(LayerSpec(p, layer_of(p)) for p in DEFAULT_SSH)


def changed_paths(old: Any, new: Any, prefix: JsonPath = ()) -> list[JsonPath]:
    """Return the paths whose value differs between two documents (objects compared key by key)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[JsonPath] = []
        for key in list(old) + [k for k in new if k not in old]:
            if key not in new or key not in old:
                out.append((*prefix, key))
            elif old[key] != new[key]:
                out += changed_paths(old[key], new[key], (*prefix, key))
        return out
    return [] if old == new else [prefix]


def env_layers(text: str) -> dict[str, str]:
    """Return OPENCODE_CONFIG and OPENCODE_CONFIG_CONTENT as an environment file sets them."""
    from dotenv import dotenv_values

    values = dotenv_values(stream=io.StringIO(text))
    return {k: v for k, v in values.items() if k in ("OPENCODE_CONFIG", "OPENCODE_CONFIG_CONTENT") and v}


def _sets(doc: Any, path: JsonPath) -> bool:
    """True when a layer document overrides `path`: it sets it, something below it, or a parent
    to a non-object (mergeDeep replaces non-objects whole)."""
    node = doc
    for depth, key in enumerate(path):
        if not isinstance(node, dict):
            return depth > 0  # a non-object parent replaces the whole subtree
        if key not in node:
            return False
        node = node[key]
        if depth == 0 and key in CONCATENATED:
            return False  # joined with the lower layers, not replacing them
    return True


@dataclass(frozen=True)
class LayerDoc:
    """A layer read on a host: its label (path or variable), its place in the merge, its bytes."""

    label: str
    order: tuple[int, int]
    data: bytes | None


def findings(host: str, target: str, changes: list[JsonPath], layers: list[LayerDoc]) -> list[str]:
    """Return one line per changed key that a higher layer on `host` sets, and per layer that
    could not be parsed."""
    mine = order(target, layer_of(target))
    out = []
    for layer in sorted(layers, key=lambda d: d.order):
        if layer.data is None or layer.order <= mine or layer.label == target:
            continue
        try:
            doc = load_jsonc(layer.data)[0]
        except ConfigParseError as e:
            out.append(f"{host}: {layer.label} does not parse ({e}); OpenCode refuses to start with it")
            continue
        for path in changes:
            if _sets(doc, path):
                out.append(f"{host}: {path_str(path)} is set by {layer.label}, which overrides this file")
    return out


def content_doc(value: str) -> bytes:
    """OPENCODE_CONFIG_CONTENT as bytes for `findings` (OpenCode reads it as JSON)."""
    return value.encode("utf-8") if value.strip() else json.dumps({}).encode()
