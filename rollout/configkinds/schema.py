"""Checks any kind can add: `schema:` (a JSON Schema file) and `validate:` (a command, Ansible-style)."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from rollout.configkinds.base import ConfigContext, Problem
from rollout.configkinds.locate import LocatedProblems, json_lines, yaml_lines
from rollout.util.errors import BadInput
from rollout.util.redact import is_secret_key, redact_text

VALIDATE_TIMEOUT = 60.0
_OUTPUT_TAIL = 400


def load_schema(value: Any, where: str, base_dir: Path) -> str:
    """Check `config.schema` names a readable, valid JSON Schema; return its absolute path."""
    if not isinstance(value, str) or not value.strip():
        raise BadInput(f"{where}: config.schema: must be a path to a JSON Schema file, got {value!r}")
    path = (base_dir / Path(value).expanduser()).resolve()
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInput(f"{where}: config.schema: schema file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise BadInput(f"{where}: config.schema: cannot read {path} ({e})") from None
    except json.JSONDecodeError as e:
        raise BadInput(f"{where}: config.schema: {path}:{e.lineno}: not valid JSON: {e.msg}") from None
    import jsonschema

    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as e:
        raise BadInput(f"{where}: config.schema: {path}: not a valid JSON Schema: {e.message}") from None
    return str(path)


def parse_validate(value: Any, where: str) -> str:
    """Check `config.validate` is a command containing {path}."""
    if not isinstance(value, str) or "{path}" not in value:
        raise BadInput(
            f"{where}: config.validate: must be a command containing {{path}} "
            f"(replaced by the candidate file), got {value!r}"
        )
    return value


def check_schema(doc: Any, data: bytes, schema_file: str, kind: str) -> list[Problem]:
    """Validate a parsed document against the schema; one problem per violation, with its line."""
    import jsonschema

    schema = json.loads(Path(schema_file).read_text(encoding="utf-8"))
    validator = jsonschema.validators.validator_for(schema)(schema)
    text = data.decode("utf-8", errors="replace")
    if kind in ("yaml", "litellm"):
        lines = yaml_lines(text)
    else:
        from rollout.configkinds.jsonc import blank_jsonc

        try:
            lines = json_lines(blank_jsonc(text))
        except Exception:  # a locator miss only costs the line number
            lines = {}
    report = LocatedProblems(lines)
    for error in sorted(validator.iter_errors(doc), key=lambda e: [str(p) for p in e.absolute_path]):
        path = tuple(error.absolute_path)
        if any(is_secret_key(part) for part in path):
            message = f"value does not satisfy the schema's {error.validator!r} rule (value hidden)"
        else:
            message = redact_text(error.message)
        report.error(path, f"schema: {message}")
    return report.result()


def run_validate(command: str, data: bytes, ctx: ConfigContext, suffix: str) -> list[Problem]:
    """Run the validate command on a temporary copy of the candidate; a non-zero exit is an error."""
    with tempfile.TemporaryDirectory(prefix="rollout-validate-") as tmp:
        candidate = Path(tmp) / f"candidate{suffix}"
        candidate.write_bytes(data)
        argv = command.replace("{path}", _quote(str(candidate)))
        try:
            done = subprocess.run(
                argv,
                shell=True,
                cwd=ctx.base_dir,
                capture_output=True,
                timeout=VALIDATE_TIMEOUT,
                env={**os.environ, "ROLLOUT_CONFIG_PATH": str(candidate)},
            )
        except subprocess.TimeoutExpired:
            return [Problem("", f"validate command timed out after {VALIDATE_TIMEOUT:g}s: {command}")]
    if done.returncode == 0:
        return []
    output = (done.stdout + done.stderr).decode("utf-8", errors="replace").strip()
    output = redact_text(output.replace(str(candidate), "{path}"))[-_OUTPUT_TAIL:]
    tail = f": {output}" if output else ""
    return [Problem("", f"validate command failed (exit {done.returncode}){tail}")]


def _quote(path: str) -> str:
    import shlex

    return shlex.quote(path)
