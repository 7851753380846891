"""A real OpenSSH server on loopback serving many 'hosts' (127.0.0.2, 127.0.0.3, ...) on one port.

Importable without pytest (bench/ssh_fleet.py uses `start_sshd`); the fixtures need pytest.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

SSHD = "/usr/sbin/sshd"
SSH_KEYGEN = "ssh-keygen"
INSTALL = "apt-get install -y openssh-server"


def missing() -> str | None:
    """Say which OpenSSH program is not on this machine (one line, with the package), or None."""
    if not (os.path.isfile(SSHD) and os.access(SSHD, os.X_OK)):
        return f"the SSH tests need OpenSSH's server at {SSHD}, which is missing: {INSTALL}"
    if shutil.which(SSH_KEYGEN) is None:
        return f"the SSH tests need {SSH_KEYGEN}, which is missing: {INSTALL}"
    return None


CONFIG = """\
Port {port}
ListenAddress 0.0.0.0
AddressFamily inet
HostKey {host_key}
PidFile none
AuthorizedKeysFile {authorized_keys}
AllowUsers root@127.0.0.0/8
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
UsePAM no
UseDNS no
StrictModes no
MaxStartups 200:30:400
MaxSessions 50
LogLevel ERROR
Subsystem sftp internal-sftp -d {home}
AllowTcpForwarding yes
PermitOpen any
SetEnv HOME={home}
"""


@dataclass
class Keys:
    """A host key and a client key, generated for one test session."""

    host_key: Path
    host_pub: str  # "ssh-ed25519 AAAA..."
    client_key: Path


@dataclass
class Sshd:
    """One running sshd; every 127.0.0.N (N >= 2) is a distinct host name on `port`."""

    root: Path
    port: int
    keys: Keys
    hosts: list[str]
    home: Path  # where SFTP starts: `~/x` and relative paths land here
    file_size_limit: int | None = None  # bytes any file the server writes may hold (a full disk)
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def key_file(self) -> Path:
        return self.keys.client_key

    @property
    def log(self) -> Path:
        return self.root / "sshd.log"

    def spec(self, host: str) -> str:
        """Return `host:port`, the form a playbook lists."""
        return f"{host}:{self.port}"

    def specs(self) -> list[str]:
        return [self.spec(h) for h in self.hosts]

    def known_hosts(self, path: Path, hosts: list[str] | None = None) -> Path:
        """Write a known_hosts file listing `hosts` (default: all) with this server's key."""
        lines = [f"[{h}]:{self.port} {self.keys.host_pub}\n" for h in (hosts or self.hosts)]
        path.write_text("".join(lines))
        return path

    def start(self) -> None:
        """Start (or restart) sshd in the foreground as a child process and wait for it."""
        if self.proc is not None and self.proc.poll() is None:
            return
        config = self.root / "sshd_config"
        config.write_text(
            CONFIG.format(
                port=self.port,
                host_key=self.keys.host_key,
                authorized_keys=self.root / "authorized_keys",
                home=self.home,
            )
        )
        Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                preexec_fn=self._limit_file_size if self.file_size_limit is not None else None,
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited {self.proc.returncode}: {self.log.read_text()}")
            if _banner(self.hosts[0], self.port):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"sshd did not answer on port {self.port}: {self.log.read_text()}")

    def _limit_file_size(self) -> None:
        """In the sshd child before exec: writes past the limit fail with EFBIG, as on a full disk
        (SIGXFSZ ignored, which exec keeps, so the writer gets the error instead of dying)."""
        import resource
        import signal

        assert self.file_size_limit is not None
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.file_size_limit, self.file_size_limit))

    def stop(self) -> None:
        """Stop the listening sshd (every host of it is then down)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def make_keys(folder: Path) -> Keys:
    """Generate an ed25519 host key and client key with ssh-keygen."""
    why = missing()
    if why is not None:
        raise RuntimeError(why)
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("host_key", "client_key"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(folder / name)],
            check=True,
            stdin=subprocess.DEVNULL,
        )
    host_pub = " ".join((folder / "host_key.pub").read_text().split()[:2])
    return Keys(folder / "host_key", host_pub, folder / "client_key")


def free_port() -> int:
    """Return a TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return int(s.getsockname()[1])


def start_sshd(
    folder: Path, n_hosts: int = 8, keys: Keys | None = None, file_size_limit: int | None = None
) -> Sshd:
    """Start an sshd serving `n_hosts` loopback hosts 127.0.0.2.. from `folder`."""
    why = missing()
    if why is not None:
        raise RuntimeError(why)
    folder.mkdir(parents=True, exist_ok=True)
    keys = keys or make_keys(folder / "keys")
    (folder / "authorized_keys").write_text(Path(f"{keys.client_key}.pub").read_text())
    home = folder / "home"
    home.mkdir(exist_ok=True)
    hosts = [f"127.0.0.{i}" for i in range(2, 2 + n_hosts)]
    for attempt in range(3):
        server = Sshd(folder, free_port(), keys, hosts, home, file_size_limit)
        try:
            server.start()
            return server
        except RuntimeError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _banner(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1) as s:
            return s.recv(4).startswith(b"SSH-")
    except OSError:
        return False


def silent_listener() -> tuple[socket.socket, int]:
    """Listen on loopback, accept TCP and never say a word (no SSH banner)."""
    import threading

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            held.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    return srv, int(srv.getsockname()[1])


try:
    import pytest
except ImportError:  # pragma: no cover - the bench imports this module without pytest
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    def _require_openssh() -> None:
        """Fail the test with one line naming the package when OpenSSH is not installed."""
        why = missing()
        if why is not None:
            pytest.fail(why, pytrace=False)

    @pytest.fixture(scope="session")
    def sshd_keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
        """Keys shared by every sshd of this test session."""
        _require_openssh()
        return make_keys(tmp_path_factory.mktemp("ssh-keys"))

    @pytest.fixture(scope="session")
    def sshd(tmp_path_factory: pytest.TempPathFactory, sshd_keys: Keys) -> Iterator[Sshd]:
        """One sshd for the whole session serving 8 hosts (127.0.0.2 .. 127.0.0.9)."""
        server = start_sshd(tmp_path_factory.mktemp("sshd"), 8, sshd_keys)
        yield server
        server.stop()

    @pytest.fixture
    def own_sshd(tmp_path: Path, sshd_keys: Keys) -> Iterator[Sshd]:
        """A private sshd a test may stop and restart (its hosts go down and come back)."""
        server = start_sshd(tmp_path / "own-sshd", 1, sshd_keys)
        yield server
        server.stop()

    @pytest.fixture(autouse=True)
    def _no_real_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Keep ssh tests away from the real ~/.ssh (config, known_hosts, keys)."""
        home = tmp_path / "local-home"
        home.mkdir()
        monkeypatch.setenv("HOME", str(home))
        monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
