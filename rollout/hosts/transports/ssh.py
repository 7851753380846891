"""SSH transport: one fabric Connection per host; SFTP for bytes, compare-and-swap on the host."""

from __future__ import annotations

import errno
import hashlib
import math
import posixpath
import secrets
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rollout.hosts.transports.base import NEW_FILE_MODE, CommandResult, FileState, FileTail, SwapResult
from rollout.hosts.transports.ssh_helper import KILL_GRACE_S, HostHelper
from rollout.hosts.transports.ssh_options import SshOptions, parse_options
from rollout.util.errors import TransportError

if TYPE_CHECKING:
    from fabric import Connection
    from paramiko import SFTPAttributes, SFTPClient, SFTPFile


@dataclass
class SshSession:
    """One host over one SSH connection (SFTP client and home folder cached)."""

    host: str
    conn: Connection
    options: SshOptions
    _home: str | None = field(default=None, repr=False)
    _helper: HostHelper | None = field(default=None, repr=False)

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
                size, mode = st.st_size or 0, st.st_mode
                if size > 32768:
                    f.prefetch(size)
                # Read exactly the size stat gave (one round trip for a small file); bytes added
                # meanwhile change the hash, and the compare-and-swap on the host catches that.
                data = f.read(size) if size else f.read()
        except OSError as e:
            if e.errno == errno.ENOENT:
                return FileState(sha256=None)
            raise TransportError(f"cannot read {target}: {e.strerror or e}") from None
        return FileState(hashlib.sha256(data).hexdigest(), stat.S_IMODE(mode or 0o644), data)

    def read_from(self, path: str, offset: int, guard: int) -> FileTail | None:
        """Read a remote file from `offset` over SFTP (seek, then prefetched reads up to the size
        stat gave). SFTP tells no inode: a rotation shows as other first or preceding bytes, or a
        smaller size."""
        target = self.abspath(path)
        try:
            f = self._sftp().open(target, "rb")
        except OSError as e:
            if e.errno == errno.ENOENT:
                return None
            raise TransportError(f"cannot read {target}: {e.strerror or e}") from None
        try:
            size = f.stat().st_size or 0
            head = f.read(min(guard, size)) if size else b""
            end = min(offset, size)
            start = max(0, end - guard)
            f.seek(start)
            before = f.read(end - start) if end > start else b""
            f.seek(offset)
            if size - offset > 32768:
                f.prefetch(size)
        except BaseException:
            f.close()
            raise

        def chunks() -> Iterator[bytes]:
            try:
                at = offset
                while at < size:
                    piece = f.read(min(1 << 20, size - at))
                    if not piece:
                        return
                    at += len(piece)
                    yield piece
            finally:
                f.close()

        return FileTail(None, size, head, before, chunks())

    def swap(self, path: str, data: bytes | None, expect_sha256: str | None, mode: int | None) -> SwapResult:
        target = self.abspath(path)
        new = new_sha256 = None
        if data is not None:
            new, new_sha256 = self._scratch(target), hashlib.sha256(data).hexdigest()
            self._upload(target, new, data, mode if mode is not None else NEW_FILE_MODE)
            if expect_sha256 is None and self._renames_without_clobbering():
                return self._rename_if_absent(new, target, new_sha256)
        reply = self._ask(target, lambda h, t: h.cas(target, new, expect_sha256, t))
        return _swap_result(reply, new_sha256, target)

    def _renames_without_clobbering(self) -> bool:
        """Whether the host's SFTP rename refuses an existing name, as SFTP v3 asks: OpenSSH's
        links the new name then unlinks the old one, so the check and the rename are one step."""
        transport = self.conn.transport
        return transport is not None and "OpenSSH" in (transport.remote_version or "")

    def _rename_if_absent(self, tmp: str, target: str, new_sha256: str) -> SwapResult:
        """Compare-and-swap against "no file": rename `tmp` onto `target` unless something is there.
        Costs no process on the host, where the helper's swap costs a hash and an `mv`."""
        try:
            self._sftp().rename(tmp, target)
            return SwapResult(True, new_sha256)
        except OSError as e:
            failed = e
        self._remove_quietly(tmp)
        found = self.read(target)  # SFTP says only "Failure": see whether a file is in the way
        if found.sha256 is None:
            raise TransportError(f"cannot rename onto {target}: {failed.strerror or failed}")
        return _drifted(found.sha256)

    def promote(
        self, src: str, path: str, expect_src: str, expect_sha256: str | None, mode: int | None
    ) -> SwapResult:
        source, target = self.abspath(src), self.abspath(path)
        try:
            sftp = self._sftp()
            staged = sftp.stat(source)
            keep = mode if mode is not None else NEW_FILE_MODE
            _take_attributes(sftp, source, staged, self._attributes(target), keep)
        except OSError as e:
            if e.errno == errno.ENOENT:
                return SwapResult(False, None, "the file to promote is gone", source_changed=True)
            raise TransportError(f"cannot prepare {source}: {e.strerror or e}") from None
        reply = self._ask(target, lambda h, t: h.promote(source, target, expect_src, expect_sha256, t))
        return _swap_result(reply, expect_src, target)

    def _attributes(self, target: str) -> SFTPAttributes | None:
        """Return the target's attributes (owner, mode), None when it does not exist."""
        try:
            found: SFTPAttributes = self._sftp().stat(target)
            return found
        except OSError as e:
            if e.errno == errno.ENOENT:
                return None
            raise

    def _ask(self, target: str, request: Callable[[HostHelper, float], str]) -> str:
        timeout = self.options.command_timeout
        try:
            return request(self.helper(), timeout)
        except TimeoutError:
            raise TransportError(f"swap of {target} timed out after {timeout:g}s") from None

    @staticmethod
    def _scratch(target: str) -> str:
        """Return a fresh hidden name beside `target` (same folder, so a rename is atomic)."""
        folder, name = posixpath.split(target)
        return posixpath.join(folder, f".{name}.{secrets.token_hex(6)}.rollout-tmp")

    def _upload(self, target: str, tmp: str, data: bytes, mode: int) -> None:
        """Write `data` to the new file `tmp` over SFTP, with the target's owner and mode (`mode`
        for a new file) set while it is still empty, so a secret is never readable by others."""
        sftp = self._sftp()
        try:
            current = self._attributes(target)
            with self._create(sftp, tmp) as f:
                _take_attributes(sftp, tmp, None, current, mode)  # while it is still empty
                # Not pipelined: paramiko drops the replies to pipelined writes, so a full disk
                # would go unnoticed and a truncated file be renamed into place.
                f.write(data)
                f.flush()
                _fsync(sftp, f)
        except OSError as e:
            self._remove_quietly(tmp)
            reason = e.strerror or str(e)
            if reason == "Failure":  # SFTP's generic status: the host did not say why
                reason = "the host failed the write (is its disk full?)"
            raise TransportError(f"cannot upload {tmp}: {reason}") from None

    def _create(self, sftp: SFTPClient, tmp: str) -> SFTPFile:
        """Open the new file `tmp` for writing, creating its folder when it is missing."""
        try:
            return sftp.open(tmp, "wbx")
        except OSError as e:
            if e.errno != errno.ENOENT:
                raise
        folder = posixpath.dirname(tmp)
        rc, out = self.helper().mkdir(folder, self.options.command_timeout)
        if rc != 0:
            raise TransportError(f"cannot create {folder}: {out.strip()[-300:]}")
        return sftp.open(tmp, "wbx")

    def cleanup(self, path: str) -> list[str]:
        folder, name = posixpath.split(path)
        try:
            names = self._sftp().listdir(folder or ".")
        except OSError:
            return []  # no folder: nothing was left there
        gone = []
        for entry in names:
            if entry.startswith(f".{name}.") and entry.endswith(".rollout-tmp"):
                self._remove_quietly(posixpath.join(folder, entry))
                gone.append(posixpath.join(folder, entry))
        return gone

    def _remove_quietly(self, tmp: str) -> None:
        try:
            self._sftp().remove(tmp)
        except Exception:  # noqa: BLE001 - best effort; the temp name is unique and hidden
            pass

    def helper(self) -> HostHelper:
        """Return the helper loop on the host, starting it on first use (or after it died)."""
        if self._helper is None or not self._helper.alive:
            transport = self.conn.transport
            if transport is None or not transport.is_active():
                raise TransportError("connection is closed")
            try:
                self._helper = HostHelper(transport, self.options.connect_timeout)
            except Exception as e:  # noqa: BLE001 - a refused channel becomes a reason
                raise TransportError(f"cannot start a command channel: {e or type(e).__name__}") from None
        return self._helper

    def start_helper(self) -> None:
        """Start the helper now, so its shell starts on the host while this session reads files;
        a host that refuses it fails the first request that needs it, with the reason."""
        try:
            self.helper()
        except TransportError:
            pass

    def run(self, command: str, env: dict[str, str], timeout: float, cwd: str | None) -> CommandResult:
        started = time.monotonic()
        try:
            workdir = self.abspath(cwd) if cwd else self.home()
            if env.get("ROLLOUT_CONFIG_PATH", "").startswith("~"):
                # The shell never sees a quoted `~` expanded: hand the check the real path.
                env = {**env, "ROLLOUT_CONFIG_PATH": self.abspath(env["ROLLOUT_CONFIG_PATH"])}
            # The host's `timeout` ends the command; this bound only covers a host that stops answering.
            wait = timeout + KILL_GRACE_S + self.options.connect_timeout
            rc, out = self.helper().run(command, env, workdir, max(1, math.ceil(timeout)), wait)
        except TimeoutError:
            return CommandResult(None, "", f"timed out after {timeout:g}s", _since(started))
        except Exception as e:  # noqa: BLE001 - a broken channel is a result, not a crash
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            return CommandResult(None, "", f"ssh failed: {reason}", _since(started))
        if rc in (124, 128 + 9):
            return CommandResult(None, out, f"timed out after {timeout:g}s", _since(started))
        return CommandResult(rc, out, None, _since(started))

    def close(self) -> None:
        from rollout.hosts.transports.ssh_connect import close_connection

        if self._helper is not None:
            self._helper.close()
        close_connection(self.conn)


def _take_attributes(
    sftp: SFTPClient, path: str, has: SFTPAttributes | None, want: SFTPAttributes | None, mode: int
) -> None:
    """Give `path`, whose attributes are `has` (None: just created), the mode and owner of `want`,
    the file it will replace (`mode` when there is none). An owner we may not give (we are not
    root) is left as it is."""
    new_mode = stat.S_IMODE(want.st_mode) if want is not None and want.st_mode is not None else mode
    if has is None or has.st_mode is None or stat.S_IMODE(has.st_mode) != new_mode:
        sftp.chmod(path, new_mode)
    if want is None or want.st_uid is None or want.st_gid is None:
        return
    if has is not None and (has.st_uid, has.st_gid) == (want.st_uid, want.st_gid):
        return
    try:
        sftp.chown(path, want.st_uid, want.st_gid)
    except PermissionError:
        pass


def _fsync(sftp: SFTPClient, f: SFTPFile) -> None:
    """Have the host flush `f` to disk (OpenSSH's fsync@openssh.com), so a crash after the rename
    cannot leave an empty file in place. A server without the extension is let be."""
    from paramiko.sftp import CMD_EXTENDED

    try:
        # paramiko has no public call for it; posix_rename is built the same way.
        sftp._request(CMD_EXTENDED, "fsync@openssh.com", f.handle)
    except OSError as e:
        if "unsupported" not in str(e).lower():
            raise


def _swap_result(reply: str, new_sha256: str | None, target: str) -> SwapResult:
    """Turn the helper's reply to a swap or promote into a SwapResult (or raise on an error)."""
    words = reply.split()
    if words == ["swapped"]:
        return SwapResult(True, new_sha256)
    if len(words) == 2 and words[0] in ("drifted", "source-changed"):
        actual = None if words[1] == "absent" else words[1]
        if words[0] == "source-changed":
            return SwapResult(False, None, f"the file to promote changed (now {actual})", source_changed=True)
        return _drifted(actual)
    raise TransportError(f"swap of {target} failed: {reply[:300]}")


def _drifted(actual: str | None) -> SwapResult:
    """The target no longer holds what was recorded (`actual`: its hash, None when removed)."""
    return SwapResult(False, actual, f"file changed since it was recorded (now {actual})")


def _since(started: float) -> float:
    return time.monotonic() - started


@dataclass
class SshTransport:
    """Opens one SSH session per host with the playbook's `ssh:` options."""

    options: SshOptions
    concurrency: int
    name: str = "ssh"

    def open(self, host: str) -> SshSession:
        from rollout.hosts.transports.ssh_connect import open_connection

        session = SshSession(host=host, conn=open_connection(self.options, host), options=self.options)
        session.start_helper()
        return session

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
