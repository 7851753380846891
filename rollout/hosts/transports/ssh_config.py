"""Read ssh_config files as OpenSSH does, `Include` too (paramiko ignores it).

paramiko's parser stores `Include` as an ordinary, unused setting, so a host alias defined in an
included file (Debian's /etc/ssh/ssh_config starts with `Include /etc/ssh/ssh_config.d/*.conf`)
is unknown to it. Here the included files are spliced in where their `Include` stands, before
paramiko parses the text. Known difference from OpenSSH: an `Include` inside a `Host`/`Match`
block that matches nothing is still read (its own `Host` blocks then apply on their own).
"""

from __future__ import annotations

import glob
import io
import os
import re
import shlex
import threading

import paramiko

from rollout.util.errors import TransportError

USER_BASE = "~/.ssh"  # where an Include relative path points from a user config (or a given file)
SYSTEM_BASE = "/etc/ssh"
SYSTEM_CONFIG = "/etc/ssh/ssh_config"
MAX_DEPTH = 16  # OpenSSH's READCONF_MAX_DEPTH
_KEYWORD = re.compile(r"^\s*(\w+)(?:\s*=\s*|\s+)(.*?)\s*$")
_CACHE: dict[tuple[str, ...], paramiko.SSHConfig] = {}
_CACHE_LOCK = threading.Lock()


def load(paths: list[str], must_exist: bool) -> paramiko.SSHConfig:
    """Return the ssh_config read from `paths` in order, Includes followed (cached per process)."""
    key = (str(must_exist), *paths)
    with _CACHE_LOCK:
        found = _CACHE.get(key)
        if found is None:
            text: list[str] = []
            for path in paths:
                if not os.path.isfile(path):
                    if must_exist:
                        raise TransportError(f"ssh_config file not found: {path}")
                    continue
                base = SYSTEM_BASE if os.path.abspath(path) == SYSTEM_CONFIG else USER_BASE
                text += expanded_lines(path, base)
                text.append("Host *")  # the next file starts outside any block of this one
            found = paramiko.SSHConfig()
            try:
                found.parse(io.StringIO("\n".join(text)))
            except paramiko.ssh_exception.ConfigParseError as e:
                raise TransportError(f"cannot read ssh_config: {e}") from None
            _CACHE[key] = found
    return found


def expanded_lines(path: str, base: str, depth: int = 0) -> list[str]:
    """Return the lines of the config file `path` with every `Include` replaced by its files' lines."""
    if depth > MAX_DEPTH:
        raise TransportError(f"ssh_config: too many nested Includes (at {path})")
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise TransportError(f"cannot read ssh_config {path}: {e.strerror or e}") from None
    out: list[str] = []
    header = "Host *"  # the block the next line belongs to
    for line in lines:
        m = _KEYWORD.match(line)
        keyword = m.group(1).lower() if m else ""
        if keyword in ("host", "match"):
            header = line.strip()
        if keyword != "include" or m is None:
            out.append(line)
            continue
        spliced: list[str] = []
        for name in include_paths(m.group(2), base, path):
            spliced += expanded_lines(name, base, depth + 1)
        out += spliced
        if any((k := _KEYWORD.match(s)) and k.group(1).lower() in ("host", "match") for s in spliced):
            out.append(header)  # the included file opened blocks: what follows is the outer one's
    return out


def include_paths(argument: str, base: str, where: str) -> list[str]:
    """Return the files one `Include` line names: `~` expanded, relative to `base`, globs sorted."""
    try:
        words = shlex.split(argument)
    except ValueError as e:
        raise TransportError(f"ssh_config {where}: bad Include line ({e})") from None
    found: list[str] = []
    for word in words:
        pattern = os.path.expanduser(word)
        if not os.path.isabs(pattern):
            pattern = os.path.join(os.path.expanduser(base), pattern)
        found += sorted(p for p in glob.glob(pattern) if os.path.isfile(p))
    return found
