"""SSH transport: one fabric Connection per host; SFTP for bytes, compare-and-swap on the host."""

from __future__ import annotations

import errno
import hashlib
import math
import posixpath
import re
import secrets
import shlex
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rollout.errors import TransportError
from rollout.transports.base import CommandResult, FileState, SwapResult
from rollout.transports.ssh_options import SshOptions, parse_options

if TYPE_CHECKING:
    from fabric import Connection
    from paramiko import SFTPClient

KILL_GRACE_S = 5
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Compare-and-swap on the host. The script text is constant; target, temp file and expected hash
# arrive as quoted positional arguments, so no path or value is ever parsed as shell code.
CAS_SCRIPT = r"""t=$1 tmp=$2 want=$3
if command -v sha256sum >/dev/null 2>&1; then h() { sha256sum; }; else h() { shasum -a 256; }; fi
if [ -e "$t" ]; then
  have=$(h < "$t") || { [ -z "$tmp" ] || rm -f -- "$tmp"; echo "error cannot hash $t"; exit 3; }
  have=${have%% *}
else have=absent; fi
if [ "$have" != "$want" ]; then [ -z "$tmp" ] || rm -f -- "$tmp"; echo "drifted $have"; exit 0; fi
if [ -n "$tmp" ]; then mv -f -- "$tmp" "$t" || exit 4; else rm -f -- "$t" || exit 4; fi
echo swapped"""


def cas_command(target: str, tmp: str | None, expect_sha256: str | None) -> str:
    """Return the shell command that swaps `tmp` over `target` only if its hash is expected."""
    args = [target, tmp or "", expect_sha256 or "absent"]
    return f"sh -c {shlex.quote(CAS_SCRIPT)} rollout-cas " + " ".join(map(shlex.quote, args))


def run_command(command: str, env: dict[str, str], timeout: float, workdir: str) -> str:
    """Return the shell line running `command` in `workdir` with `env`, killed after `timeout`."""
    for name in env:
        if not _ENV_NAME.match(name):
            raise ValueError(f"invalid environment variable name {name!r}")
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    limit = max(1, math.ceil(timeout))
    inner = shlex.quote(command)
    return (
        f"cd {shlex.quote(workdir)} && "
        + (f"export {exports} && " if exports else "")
        + "if command -v timeout >/dev/null 2>&1; then "
        + f"exec timeout -k {KILL_GRACE_S} {limit} sh -c {inner} 2>&1; "
        + f"else exec sh -c {inner} 2>&1; fi"
    )


@dataclass
class SshSession:
    """One host over one SSH connection (SFTP client and home folder cached)."""

    host: str
    conn: Connection
    options: SshOptions
    _home: str | None = field(default=None, repr=False)

    def _sftp(self) -> SFTPClient:
        sftp: SFTPClient = self.conn.sftp()
        return sftp

    def home(self) -> str:
        """Return the remote home folder (where SFTP starts)."""
        if self._home is None:
            self._home = self._sftp().normalize(".")
        return self._home

    def abspath(self, path: str) -> str:
        """Resolve `~/x` and relative paths against the remote home."""
        if path == "~" or path.startswith("~/"):
            return posixpath.normpath(self.home() + path[1:])
        if path.startswith("~"):
            raise TransportError(f"{path}: ~user paths are not supported; write the full path")
        if path.startswith("/"):
            return posixpath.normpath(path)
        return posixpath.normpath(posixpath.join(self.home(), path))

    def read(self, path: str) -> FileState:
        target = self.abspath(path)
        try:
            with self._sftp().open(target, "rb") as f:
                st = f.stat()
                if (st.st_size or 0) > 32768:
                    f.prefetch(st.st_size)
                mode = st.st_mode
                data = f.read()
        except OSError as e:
            if e.errno == errno.ENOENT:
                return FileState(sha256=None)
            raise TransportError(f"cannot read {target}: {e.strerror or e}") from None
        return FileState(hashlib.sha256(data).hexdigest(), stat.S_IMODE(mode or 0o644), data)

    def swap(self, path: str, data: bytes | None, expect_sha256: str | None, mode: int | None) -> SwapResult:
        target = self.abspath(path)
        tmp = None
        if data is not None:
            folder, name = posixpath.split(target)
            tmp = posixpath.join(folder, f".{name}.{secrets.token_hex(6)}.rollout-tmp")
            self._upload(target, tmp, data, mode)
        try:
            rc, out = self._exec(cas_command(target, tmp, expect_sha256))
        except TimeoutError:
            raise TransportError(
                f"swap of {target} timed out after {self.options.command_timeout:g}s"
            ) from None
        words = out.split()
        if rc == 0 and words[-1:] == ["swapped"]:
            return SwapResult(True, hashlib.sha256(data).hexdigest() if data is not None else None)
        if rc == 0 and len(words) >= 2 and words[-2] == "drifted":
            actual = None if words[-1] == "absent" else words[-1]
            return SwapResult(False, actual, f"file changed since it was recorded (now {actual})")
        if tmp is not None:
            self._remove_quietly(tmp)
        raise TransportError(f"swap of {target} failed (exit {rc}): {out.strip()[-300:]}")

    def _upload(self, target: str, tmp: str, data: bytes, mode: int | None) -> None:
        sftp = self._sftp()
        try:
            keep = stat.S_IMODE(sftp.stat(target).st_mode or 0)
        except OSError:
            keep = mode if mode is not None else 0o644
        try:
            try:
                f = sftp.open(tmp, "wb")
            except OSError as e:
                if e.errno != errno.ENOENT:
                    raise
                self._exec("mkdir -p -- " + shlex.quote(posixpath.dirname(tmp)))
                f = sftp.open(tmp, "wb")
            with f:
                f.set_pipelined(True)
                f.write(data)
            sftp.chmod(tmp, keep)
        except OSError as e:
            self._remove_quietly(tmp)
            raise TransportError(f"cannot upload {tmp}: {e.strerror or e}") from None

    def _remove_quietly(self, tmp: str) -> None:
        try:
            self._sftp().remove(tmp)
        except Exception:  # noqa: BLE001 - best effort; the temp name is unique and hidden
            pass

    def _exec(self, command: str, timeout: float | None = None) -> tuple[int, str]:
        """Run a command on a raw channel (no invoke threads); return exit code, stdout+stderr."""
        transport = self.conn.transport
        if transport is None or not transport.is_active():
            raise TransportError("connection is closed")
        chan = None
        try:
            chan = transport.open_session(timeout=self.options.connect_timeout)
            chan.settimeout(timeout or self.options.command_timeout)
            chan.set_combine_stderr(True)
            chan.exec_command(command)
            chunks = []
            while chunk := chan.recv(65536):
                chunks.append(chunk)
            rc = chan.recv_exit_status()
        except TimeoutError:
            raise
        except Exception as e:  # noqa: BLE001 - channel failures become a reason
            raise TransportError(f"remote command failed: {e or type(e).__name__}") from None
        finally:
            if chan is not None:
                chan.close()
        return rc, b"".join(chunks).decode(errors="replace")

    def run(self, command: str, env: dict[str, str], timeout: float, cwd: str | None) -> CommandResult:
        started = time.monotonic()
        try:
            workdir = self.abspath(cwd) if cwd else self.home()
            if env.get("ROLLOUT_CONFIG_PATH", "").startswith("~"):
                # The shell never sees a quoted `~` expanded: hand the check the real path.
                env = {**env, "ROLLOUT_CONFIG_PATH": self.abspath(env["ROLLOUT_CONFIG_PATH"])}
            line = run_command(command, env, timeout, workdir)
            # The host's `timeout` ends the command; this bound only covers a host that stops answering.
            rc, out = self._exec(line, timeout + KILL_GRACE_S + self.options.connect_timeout)
        except TimeoutError:
            return CommandResult(None, "", f"timed out after {timeout:g}s", _since(started))
        except Exception as e:  # noqa: BLE001 - a broken channel is a result, not a crash
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            return CommandResult(None, "", f"ssh failed: {reason}", _since(started))
        if rc in (124, 128 + 9):
            return CommandResult(None, out, f"timed out after {timeout:g}s", _since(started))
        return CommandResult(rc, out, None, _since(started))

    def close(self) -> None:
        self.conn.close()


def _since(started: float) -> float:
    return time.monotonic() - started


@dataclass
class SshTransport:
    """Opens one SSH session per host with the playbook's `ssh:` options."""

    options: SshOptions
    concurrency: int
    name: str = "ssh"

    def open(self, host: str) -> SshSession:
        from rollout.transports.ssh_connect import open_connection

        return SshSession(host=host, conn=open_connection(self.options, host), options=self.options)

    def resolve_path(self, template: str, host: str) -> str:
        return template.replace("{host}", host)


class SshKind:
    name = "ssh"

    def parse_options(self, targets: dict[str, Any], where: str) -> SshOptions:
        return parse_options(targets, where)

    def build(self, options: Any, base_dir: Path, hosts: tuple[str, ...]) -> SshTransport:
        resolved = options.resolved(base_dir)
        return SshTransport(options=resolved, concurrency=resolved.concurrency)


KIND = SshKind()
