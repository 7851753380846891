"""A small shell loop kept running on each SSH host, so a swap or a check costs one round trip.

Opening an exec channel makes sshd fork a session and start a login shell: on loopback that costs
more than the SSH handshake itself. So each session starts this helper once (`sh -c SCRIPT`, the
script text is constant) and sends it requests over the channel's stdin. Every field is one line,
encoded so that backslashes and control characters travel as `\\0ooo` octal escapes that
`printf %b` turns back into bytes: a path or value is only ever held in a quoted variable, never
parsed as shell code. Every reply ends with a line starting with the session's random marker.
"""

from __future__ import annotations

import re
import secrets
import shlex
import time
from typing import TYPE_CHECKING

from rollout.util.errors import TransportError

if TYPE_CHECKING:
    from paramiko import Channel, Transport

KILL_GRACE_S = 5
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
OUTPUT_KEEP = 1 << 20  # a check's output beyond its last MiB is dropped

# Process creation is what costs on a host, so the loop forks as little as it can: fields are
# decoded by a subshell only when they hold an escape, a promotion hashes both files with one
# process, and a command's folder and environment are set by the loop's own subshell.
HELPER_SCRIPT = r"""m=$1
if command -v sha256sum >/dev/null 2>&1; then H=sha256sum; else H='shasum -a 256'; fi
if command -v timeout >/dev/null 2>&1; then T=1; else T=; fi
nl='
'
d() {
  IFS= read -r v || exit 0
  case $v in *\\*) v=$(printf '%bx' "$v"); v=${v%x} ;; esac
}
sum_of() { if [ -e "$1" ]; then v=$($H < "$1") || return 1; v=${v%% *}; else v=absent; fi; }
# the hashes of $1 in a and $2 in b ("absent" for a missing file), one process when both exist
sums() {
  if [ -e "$1" ] && [ -e "$2" ] && case $1$2 in *"$nl"*) false ;; esac; then
    v=$($H "$1" "$2") || return 1
    a=${v%%"$nl"*}; b=${v#*"$nl"}; a=${a#\\}; b=${b#\\}; a=${a%% *}; b=${b%% *}
  else
    sum_of "$1" || return 1; a=$v; sum_of "$2" || return 1; b=$v
  fi
}
# rename NEW over TARGET, or remove TARGET when NEW is empty: $1 $2; reply in $r
put() {
  if [ -z "$1" ]; then rm -f -- "$2" || { r="error cannot remove $2"; return 1; }
  else mv -f -- "$1" "$2" || { r="error cannot rename onto $2"; return 1; }; fi
  r=swapped
}
while IFS= read -r op; do
  case $op in
  cas)
    d; t=$v; d; new=$v; d; want=$v
    if ! sum_of "$t"; then r="error cannot hash $t"
    elif [ "$v" != "$want" ]; then r="drifted $v"
    else put "$new" "$t" </dev/null; fi
    [ "$r" = swapped ] || [ -z "$new" ] || rm -f -- "$new"
    echo "$m $r" ;;
  promote)
    d; src=$v; d; t=$v; d; wsrc=$v; d; want=$v
    if ! sums "$src" "$t" </dev/null; then r="error cannot hash $src or $t"
    elif [ "$a" != "$wsrc" ]; then r="source-changed $a"
    elif [ "$b" != "$want" ]; then r="drifted $b"
    else put "$src" "$t" </dev/null; fi
    echo "$m $r" ;;
  run)
    d; limit=$v; d; dir=$v; d; cmd=$v; d; n=$v; set --
    while [ "$n" -gt 0 ]; do d; set -- "$@" "$v"; n=$((n - 1)); done
    (
      cd "$dir" || exit 1
      for kv; do export "$kv"; done
      if [ -n "$T" ]; then exec timeout -k KILL "$limit" sh -c "$cmd"; else exec sh -c "$cmd"; fi
    ) </dev/null 2>&1
    rc=$?; printf '\n%s exit %s\n' "$m" "$rc" ;;
  mkdir)
    d; mkdir -p -- "$v" </dev/null 2>&1; rc=$?; printf '\n%s exit %s\n' "$m" "$rc" ;;
  *) echo "$m error unknown request"; exit 2 ;;
  esac
done""".replace("KILL", str(KILL_GRACE_S))


def encode(value: str) -> str:
    """Return `value` as one line `printf %b` decodes back (backslash and control bytes escaped)."""
    out = []
    for ch in value:
        code = ord(ch)
        if ch == "\\" or code < 0x20 or code == 0x7F:
            out.append(f"\\0{code:03o}")
        else:
            out.append(ch)
    return "".join(out)


class HostHelper:
    """The helper loop on one host, over one exec channel of an open SSH transport."""

    def __init__(self, transport: Transport, open_timeout: float) -> None:
        self.marker = "rollout-" + secrets.token_hex(8)
        self._chan: Channel = transport.open_session(timeout=open_timeout)
        self._chan.set_combine_stderr(True)
        self._chan.exec_command(f"sh -c {shlex.quote(HELPER_SCRIPT)} rollout-helper {self.marker}")
        self._buf = b""
        self._end = re.compile(rb"(?:^|\n)" + self.marker.encode() + rb" ([^\n]*)\n")

    def cas(self, target: str, new: str | None, want: str | None, timeout: float) -> str:
        """Rename the uploaded file `new` over `target` (remove target when new is None) if the
        target's hash is `want`. Return "swapped", "drifted <sha|absent>" or "error <why>"."""
        return self._request("cas", [target, new or "", want or "absent"], timeout)[1]

    def promote(self, src: str, target: str, want_src: str, want: str | None, timeout: float) -> str:
        """Rename `src` (a file on the host whose hash must be `want_src`) over `target` if the
        target's hash is `want`. Return "swapped", "drifted <sha|absent>",
        "source-changed <sha|absent>" or "error <why>"."""
        return self._request("promote", [src, target, want_src, want or "absent"], timeout)[1]

    def run(
        self, command: str, env: dict[str, str], workdir: str, limit: int, timeout: float
    ) -> tuple[int, str]:
        """Run the shell command `command` in `workdir` with `env` exported, under the host's
        `timeout limit`; return exit code and output."""
        for name in env:
            if not _ENV_NAME.match(name):
                raise ValueError(f"invalid environment variable name {name!r}")
        pairs = [f"{k}={v}" for k, v in env.items()]
        output, status = self._request(
            "run", [str(limit), workdir, command, str(len(pairs)), *pairs], timeout
        )
        return _exit_code(status), output

    def mkdir(self, folder: str, timeout: float) -> tuple[int, str]:
        """Create `folder` and its parents; return exit code and output."""
        output, status = self._request("mkdir", [folder], timeout)
        return _exit_code(status), output

    def _request(self, op: str, fields: list[str], timeout: float) -> tuple[str, str]:
        payload = "\n".join([op, *map(encode, fields)]) + "\n"
        deadline = time.monotonic() + timeout
        try:
            self._chan.sendall(payload.encode())
            while (found := self._end.search(self._buf)) is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                self._chan.settimeout(left)
                chunk = self._chan.recv(65536)
                if not chunk:
                    raise TransportError("the helper on the host exited")
                self._buf = (self._buf + chunk)[-OUTPUT_KEEP:]
        except (TimeoutError, TransportError):
            self.close()
            raise
        except Exception as e:  # noqa: BLE001 - a broken channel becomes a reason
            self.close()
            raise TransportError(f"remote request failed: {e or type(e).__name__}") from None
        output, self._buf = self._buf[: found.start()], self._buf[found.end() :]
        return output.decode(errors="replace"), found.group(1).decode(errors="replace")

    @property
    def alive(self) -> bool:
        return not self._chan.closed and not self._chan.exit_status_ready()

    def close(self) -> None:
        self._chan.close()


def _exit_code(status: str) -> int:
    words = status.split()
    if len(words) == 2 and words[0] == "exit" and words[1].isdigit():
        return int(words[1])
    raise TransportError(f"unexpected reply from the host helper: {status[:200]}")
