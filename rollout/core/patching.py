"""Per-host patches: a host's candidate is a patch applied to that host's own file.

Two formats, each by a library that implements its RFC: `merge` is RFC 7386 JSON Merge Patch
(`json-merge-patch`: objects merge key by key, `null` deletes a key, anything else replaces), and
`json-patch` is RFC 6902 (`jsonpatch`: add, remove, replace, move, copy, test at JSON Pointers).
The patch file may be JSON or YAML. The host's file is parsed with its kind, patched as a plain
document, and written back in its own format by `configkinds.roundtrip`, which edits only what
changed (comments, key order and indentation of the rest are kept).
"""

from __future__ import annotations

import copy
import json
from typing import Any

from rollout.configkinds import get, parse_bounded, roundtrip
from rollout.configkinds.base import ConfigParseError
from rollout.util.errors import BadInput
from rollout.util.redact import redact_text

FORMATS = ("merge", "json-patch")
_OPS = ("add", "remove", "replace", "move", "copy", "test")


def load_patch(data: bytes, patch_format: str, where: str) -> Any:
    """Parse a patch file (JSON, else YAML) and check its shape for `patch_format`; raise BadInput."""
    if patch_format not in FORMATS:
        raise BadInput(f"{where}: patch_format must be one of {', '.join(FORMATS)}, got {patch_format!r}")
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        raise BadInput(f"{where}: the patch is not UTF-8 ({e.reason})") from None
    try:
        patch = json.loads(text)
    except ValueError:
        patch = _yaml_patch(text, where)
    if patch_format == "json-patch":
        _check_ops(patch, where)
    return patch


def _yaml_patch(text: str, where: str) -> Any:
    import yaml

    from rollout.util import yamlload

    try:
        return yamlload.load_config(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(e, "problem", None) or "not JSON or YAML"
        raise BadInput(f"{where}: the patch is neither JSON nor YAML{line}: {problem}") from None


def _check_ops(patch: Any, where: str) -> None:
    if not isinstance(patch, list):
        raise BadInput(f"{where}: a json-patch must be a list of operations (RFC 6902)")
    for n, op in enumerate(patch, 1):
        if not isinstance(op, dict) or op.get("op") not in _OPS:
            raise BadInput(f"{where}: json-patch op {n}: must be an object with op one of {', '.join(_OPS)}")
        if not isinstance(op.get("path"), str):
            raise BadInput(f"{where}: json-patch op {n} ({op['op']}): needs a path (a JSON Pointer string)")
        if op["op"] in ("move", "copy") and not isinstance(op.get("from"), str):
            raise BadInput(f"{where}: json-patch op {n} ({op['op']} {op['path']}): needs a from")
        if op["op"] in ("add", "replace", "test") and "value" not in op:
            raise BadInput(f"{where}: json-patch op {n} ({op['op']} {op['path']}): needs a value")


def apply_patch(baseline: bytes | None, patch: bytes, patch_format: str, kind: str, *, where: str) -> bytes:
    """Return the host's candidate: `patch` applied to its `baseline` bytes (None: no file), written
    in the format of `kind`; raise BadInput naming `where` when the patch does not apply."""
    ops = load_patch(patch, patch_format, where)
    if kind not in roundtrip.STRUCTURED:
        raise BadInput(f"{where}: a {kind} file cannot be patched (only JSON, JSONC, YAML and TOML kinds)")
    old: Any = None
    if baseline is not None:
        try:
            old = parse_bounded(get(kind), baseline)
        except ConfigParseError as e:
            at = f" (line {e.line})" if e.line else ""
            raise BadInput(_safe(f"{where}: the host's file is not valid {kind}{at}: {e}")) from None
    new = _patched(old, ops, patch_format, where)
    try:
        return roundtrip.write(kind, baseline, old, new)
    except roundtrip.CannotWrite as e:
        raise BadInput(_safe(f"{where}: {e}")) from None


def _patched(old: Any, ops: Any, patch_format: str, where: str) -> Any:
    if patch_format == "merge":
        import json_merge_patch

        # The library merges into its first argument: give it a copy. A missing file is {}.
        base = copy.deepcopy(old) if old is not None else {}
        return json_merge_patch.merge(base, copy.deepcopy(ops))
    return _json_patch(old, ops, where)


def _json_patch(old: Any, ops: list[dict[str, Any]], where: str) -> Any:
    import jsonpatch
    import jsonpointer

    doc = copy.deepcopy(old) if old is not None else None
    for n, op in enumerate(ops, 1):
        label = f"{where}: json-patch op {n} ({op['op']} {op['path']})"
        if doc is None and op["path"] != "":
            raise BadInput(_safe(f"{label}: the host has no such file"))
        try:
            doc = jsonpatch.JsonPatch([op]).apply(doc)
        except jsonpatch.JsonPatchTestFailed:
            # The library's message quotes both values, which may be secrets.
            raise BadInput(
                _safe(f"{label}: test failed: the value there is not the one the patch expects")
            ) from None
        except (jsonpatch.JsonPatchConflict, jsonpointer.JsonPointerException) as e:
            raise BadInput(_safe(f"{label}: path not found ({_reason(e)})")) from None
        except jsonpatch.InvalidJsonPatch as e:
            raise BadInput(_safe(f"{label}: invalid operation ({e})")) from None
    return doc


def _reason(e: Exception) -> str:
    """The library's reason, without the document it quotes ('member x not found in {...}')."""
    text = str(e)
    cut = text.find(" in {")
    text = text if cut < 0 else text[:cut]
    return text[:200]


def _safe(message: str) -> str:
    return redact_text(message)


def host_file(
    baseline: bytes | None,
    patch: bytes,
    patch_format: str,
    kind: str,
    check: Any,
    *,
    where: str,
) -> tuple[bytes | None, list[str]]:
    """Return one host's patched file and the errors that refuse it (redacted, each naming
    `where`): `check(data)` returns the kind's problems of the patched bytes. (None, errors):
    the patch does not apply, or its kind refuses the result; the host gets nothing."""
    try:
        data = apply_patch(baseline, patch, patch_format, kind, where=where)
    except BadInput as e:
        return None, [str(e)]
    errors = [_safe(p.render(where)) for p in check(data) if p.severity == "error"]
    return (None, errors) if errors else (data, [])
