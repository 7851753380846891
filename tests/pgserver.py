"""A real PostgreSQL server on loopback for one test session (trust auth on 127.0.0.1 only).

Importable without pytest (bench/state_backends.py uses `start_postgres`). The server runs as the
`postgres` user when this process is root (initdb refuses root), in a folder under /tmp that user
can enter; it is stopped (and its folder removed) at the end.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

INSTALL = "apt-get install -y postgresql"


def bin_dir() -> Path | None:
    """Return the folder holding initdb and pg_ctl (Debian keeps them in /usr/lib/postgresql/N/bin)."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.access(os.path.join(candidate, "initdb"), os.X_OK):
            return Path(candidate)
    return None


def missing() -> str | None:
    """Say what is missing to run a PostgreSQL server here (one line, with the package), or None."""
    if bin_dir() is None:
        return f"the PostgreSQL state tests need initdb and pg_ctl, which are missing: {INSTALL}"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Postgres:
    """A running server: `url(db)` names a database on it."""

    folder: Path
    port: int
    bin: Path
    as_user: list[str]

    def url(self, db: str = "postgres", **params: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}" + (f"?{query}" if query else "")

    def createdb(self, name: str) -> str:
        """Make a fresh database; return its URL."""
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return self.url(name)

    def _run(self, *argv: str) -> None:
        done = subprocess.run([*self.as_user, *argv], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip() or done.stdout.strip()}")

    def stop(self) -> None:
        subprocess.run(
            [
                *self.as_user,
                str(self.bin / "pg_ctl"),
                "-D",
                str(self.folder / "data"),
                "-m",
                "immediate",
                "stop",
            ],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(self.folder, ignore_errors=True)


def start_postgres() -> Postgres:
    """Start a server; raise RuntimeError saying why when it cannot."""
    why = missing()
    if why is not None:
        raise RuntimeError(why)
    binaries = bin_dir()
    assert binaries is not None
    folder = Path(tempfile.mkdtemp(prefix="rollout-pg-", dir="/tmp"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(folder, "postgres", "postgres")
    os.chmod(folder, 0o755)
    port = _free_port()
    server = Postgres(folder, port, binaries, as_user)
    data = folder / "data"
    server._run(
        str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"
    )
    (data / "pg_hba.conf").write_text("host all all 127.0.0.1/32 trust\n")
    options = (
        f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={folder} "
        "-c fsync=off -c max_connections=200 -c shared_buffers=16MB"
    )
    server._run(
        str(binaries / "pg_ctl"),
        "-D",
        str(data),
        "-o",
        options,
        "-l",
        str(folder / "log"),
        "-w",
        "-t",
        "60",
        "start",
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server
        except OSError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"PostgreSQL did not listen on 127.0.0.1:{port}")
