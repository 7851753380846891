"""The commands `rollout agent` runs on the laptop after it applied an assignment: `activate`, then
(after a switch) `ready`, as the engine runs them on a pushed host (rollout/edges/activation.py).

Each runs in the laptop user's home with the pushed host's variables (`ROLLOUT_HOST`,
`ROLLOUT_ROLLOUT_ID`, `ROLLOUT_ACTION`, `ROLLOUT_FILES`, `ROLLOUT_FILE` for a file's own activate,
`ROLLOUT_STAGE` and `ROLLOUT_PERCENT` when the assignment names them), in a session of its own:
at its timeout the whole process group is killed, so a command that forks never holds the agent
(its output goes to a temp file, not a pipe a grandchild could keep open); what a command that
exited in time leaves running (a service it started) is left alone. The tail of a failing
command's output is kept in the reason, redacted as the server side redacts it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ACTIVATE_TIMEOUT = 60.0
TAIL = 200  # characters of a failing command's output in its reason
READY_DEFAULTS = {"timeout": 10.0, "interval": 1.0, "deadline": 60.0}  # core.playbook.Ready's


@dataclass(frozen=True)
class Ran:
    """What one command did: its exit code (None: killed at its timeout) and its output's tail."""

    exit_code: int | None
    tail: str
    timeout: float


def expand(path: str, host: str) -> Path:
    """Return the laptop path of an assignment's path (`~/` and `{host}` allowed)."""
    return Path(path.replace("{host}", host)).expanduser()


def run(command: str, env: dict[str, str], timeout: float) -> Ran:
    """Run `command` with the shell in the home folder, killed with its children at `timeout`."""
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(  # noqa: S602 - the playbook's own command
            command, shell=True, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            env=env, cwd=Path.home(), start_new_session=True,
        )  # fmt: skip
        try:
            code: int | None = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the command and whatever it started
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait()
        out.seek(max(0, out.seek(0, os.SEEK_END) - 4 * TAIL))
        text = out.read().decode(errors="replace").strip()[-TAIL:]
    if code == 0 or not text:
        return Ran(code, "", timeout)
    from rollout.util.redact import redact_text  # only for a failure's tail: a poll that passes skips it

    return Ran(code, redact_text(text), timeout)


def _why(ran: Ran, what: str) -> str:
    if ran.exit_code is None:
        return f"{what} timed out after {ran.timeout:.3g}s"
    return f"{what} exited {ran.exit_code}" + (f": {ran.tail}" if ran.tail else "")


def environment(host: str, doc: dict[str, Any], action: str) -> dict[str, str]:
    """Return the variables a command of the assignment `doc` runs with."""
    env = {
        **os.environ,
        "ROLLOUT_HOST": host,
        "ROLLOUT_ROLLOUT_ID": str(doc.get("rollout") or ""),
        "ROLLOUT_ACTION": action,
        "ROLLOUT_FILES": "\n".join(str(expand(f["path"], host)) for f in doc["files"]),
    }
    if doc.get("stage") is not None:
        env["ROLLOUT_STAGE"] = str(doc["stage"])
        env["ROLLOUT_PERCENT"] = str(doc.get("percent", ""))
    return env


def _seconds(value: Any, default: float) -> float:
    return float(value) if isinstance(value, int | float) and value > 0 else default


def activate(host: str, doc: dict[str, Any], action: str) -> str | None:
    """Run the assignment's activate commands in order; return why one failed (None: all ran,
    or there are none)."""
    commands = doc.get("activate")
    if not isinstance(commands, list):
        return None
    limit = _seconds(doc.get("activate_timeout"), ACTIVATE_TIMEOUT)
    env = environment(host, doc, action)
    for entry in commands:
        if not isinstance(entry, dict) or not isinstance(entry.get("run"), str):
            continue
        extra = dict(env)
        if isinstance(entry.get("file"), str):
            extra["ROLLOUT_FILE"] = str(expand(entry["file"], host))
        ran = run(entry["run"], extra, limit)
        if ran.exit_code != 0:
            return _why(ran, f"activation ({action}) `{entry['run']}`")
    return None


def wait_ready(host: str, doc: dict[str, Any]) -> tuple[str | None, int]:
    """Try the assignment's ready command until it exits 0, every `interval`, each try bounded by
    `timeout` and all of them by `deadline`; return why it did not become ready (None: ready, or
    no ready command) and how many tries it took."""
    ready = doc.get("ready")
    if not isinstance(ready, dict) or not isinstance(ready.get("run"), str):
        return None, 0
    timeout, interval, deadline = (_seconds(ready.get(k), d) for k, d in READY_DEFAULTS.items())
    env = environment(host, doc, "switch")
    end = time.monotonic() + deadline
    tries = 0
    while True:
        tries += 1
        ran = run(ready["run"], env, min(timeout, max(0.1, end - time.monotonic())))
        if ran.exit_code == 0:
            return None, tries
        if time.monotonic() + interval >= end:
            return _why(ran, f"not ready after {tries} tr{'y' if tries == 1 else 'ies'}: `{ready['run']}`"), tries
        time.sleep(interval)
