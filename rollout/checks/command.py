"""Check kind `run`: a shell command on every cohort host, or once on the control machine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rollout.checks.base import CheckSpec, GateContext, Measurement
from rollout.hosts.transports.local import LocalSession
from rollout.util.errors import BadInput
from rollout.util.redact import redact_text

TAIL_CHARS = 2000


class RunKind:
    name = "run"
    keys = frozenset({"run"})

    def parse(self, spec: dict[str, Any], where: str, base_dir: Path) -> str:
        command = spec.get("run")
        if not isinstance(command, str) or not command.strip():
            raise BadInput(f"{where}.run: must be a non-empty shell command, got {command!r}")
        return command

    def evaluate(self, check: CheckSpec, ctx: GateContext) -> list[Measurement]:
        command: str = check.options
        if check.on == "local":
            session = LocalSession(host="local", cwd=ctx.playbook.base_dir)
            env = ctx.env_for(None)
            result = session.run(command, env, check.timeout, None)
            return [_measure(check, None, result.exit_code, result.output, result.error)]
        results = ctx.fleet.map(
            ctx.canary,
            lambda s: s.run(command, ctx.env_for(s.host), check.timeout, None),
            label=f"check {check.name}",
        )
        out = []
        for host in ctx.canary:
            r = results[host]
            if r.value is None:
                out.append(_measure(check, host, None, "", r.error))
            else:
                out.append(_measure(check, host, r.value.exit_code, r.value.output, r.value.error))
        return out


def _measure(
    check: CheckSpec, host: str | None, code: int | None, output: str, error: str | None
) -> Measurement:
    # Redact before cutting: a tail that starts mid-line could keep a value and lose its key.
    tail = redact_text(output)[-TAIL_CHARS:]
    details: dict[str, Any] = {"exit_code": code, "output_tail": tail}
    if error is not None:
        return Measurement(check.name, host, "error", error, check.enforce, details)
    if code == 0:
        return Measurement(check.name, host, "pass", "exit 0", check.enforce, details)
    last = tail.strip().splitlines()[-1] if tail.strip() else "no output"
    return Measurement(check.name, host, "fail", f"exit {code}: {last}", check.enforce, details)


KIND = RunKind()
