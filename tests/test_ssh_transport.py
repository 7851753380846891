"""The ssh transport against a real sshd on loopback: SFTP bytes, CAS on the host, runs, host keys."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rollout.core import playbook
from rollout.hosts import transports
from rollout.hosts.transports.ssh import SshSession, SshTransport
from rollout.hosts.transports.ssh_options import HostSpec, SshOptions, parse_host
from rollout.util.errors import BadInput, TransportError
from tests.sshd import (
    Keys,
    Sshd,
    _no_real_home,
    free_port,
    own_sshd,
    silent_listener,
    sshd,
    sshd_keys,
    start_sshd,
)

__all__ = ["_no_real_home", "own_sshd", "sshd", "sshd_keys"]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def transport_for(server: Sshd, tmp_path: Path, **overrides: object) -> SshTransport:
    known = server.known_hosts(tmp_path / "known_hosts")
    settings = {"key_file": str(server.key_file), "known_hosts": str(known), "connect_timeout": 30.0}
    settings.update(overrides)
    options = SshOptions(**settings)  # type: ignore[arg-type]
    return transports.get("ssh").build(options, tmp_path, tuple(server.specs()))  # type: ignore[return-value]


@pytest.fixture(scope="module")
def session(sshd: Sshd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshSession]:
    s = transport_for(sshd, tmp_path_factory.mktemp("session")).open(sshd.spec(sshd.hosts[0]))
    yield s
    s.close()


def test_parse_host_forms() -> None:
    assert parse_host("web-1") == HostSpec(None, "web-1", None)
    assert parse_host("deploy@web-1") == HostSpec("deploy", "web-1", None)
    assert parse_host("10.0.0.5:2222") == HostSpec(None, "10.0.0.5", 2222)
    assert parse_host("ops@10.0.0.5:22") == HostSpec("ops", "10.0.0.5", 22)
    assert parse_host("[::1]:2200") == HostSpec(None, "::1", 2200)
    for bad in ("web:0", "web:http", "a b", "x;rm", "@web"):
        with pytest.raises(ValueError):
            parse_host(bad)


def test_parse_options_defaults_and_errors() -> None:
    ssh = transports.get("ssh")
    opts = ssh.parse_options({"transport": "ssh", "hosts": ["a"]}, "pb.yml")
    assert (opts.host_key_policy, opts.concurrency, opts.connect_timeout) == ("strict", 20, 10.0)
    opts = ssh.parse_options(
        {"hosts": ["a"], "ssh": {"host_key_policy": "accept-new", "connect_timeout": "2s"}}, "pb.yml"
    )
    assert (opts.host_key_policy, opts.connect_timeout) == ("accept-new", 2.0)
    cases = {
        "hostkey_policy": ("strict", "pb.yml: targets.ssh.hostkey_policy: unknown key (expected"),
        "host_key_policy": ("yes", "pb.yml: targets.ssh.host_key_policy: must be one of strict, accept-new"),
        "port": (0, "pb.yml: targets.ssh.port: must be a port number"),
        "concurrency": (0, "pb.yml: targets.ssh.concurrency: must be a whole number >= 1, got 0"),
        "connect_timeout": ("soon", "pb.yml: targets.ssh.connect_timeout: must be a duration"),
        "ssh_config": (3, "pb.yml: targets.ssh.ssh_config: must be true, false or a file path"),
    }
    for key, (value, message) in cases.items():
        with pytest.raises(BadInput) as e:
            ssh.parse_options({"hosts": ["a"], "ssh": {key: value}}, "pb.yml")
        assert str(e.value).startswith(message), str(e.value)
    with pytest.raises(BadInput, match=r"^pb.yml: targets.hosts\[1\]: 'b:99999': invalid port"):
        ssh.parse_options({"hosts": ["a", "b:99999"]}, "pb.yml")
    with pytest.raises(BadInput, match=r"^pb.yml: targets.user: unknown key for transport 'ssh'"):
        ssh.parse_options({"hosts": ["a"], "user": "x"}, "pb.yml")


def test_playbook_names_file_and_field(tmp_path: Path) -> None:
    (tmp_path / "new.json").write_text("{}")
    book = tmp_path / "playbook.yml"
    book.write_text(
        "name: t\nconfig: {source: new.json, path: /etc/app.json}\n"
        "targets: {transport: ssh, hosts: [a, b], ssh: {hostkey_policy: strict}}\n"
    )
    with pytest.raises(BadInput) as e:
        playbook.load(book)
    assert str(e.value).startswith(f"{book}:3: targets.ssh.hostkey_policy: unknown key")


def test_read_swap_keep_mode_and_cas_drift(session: SshSession, tmp_path: Path) -> None:
    target = tmp_path / "app" / "config.json"
    assert session.read(str(target)).sha256 is None
    created = session.swap(str(target), b"v1", None, 0o640)
    assert (created.swapped, created.actual_sha256) == (True, sha(b"v1"))
    assert target.read_bytes() == b"v1" and target.stat().st_mode & 0o777 == 0o640
    os.chmod(target, 0o600)
    got = session.read(str(target))
    assert (got.sha256, got.mode, got.data) == (sha(b"v1"), 0o600, b"v1")

    assert session.swap(str(target), b"v2", sha(b"v1"), 0o644).swapped
    assert target.read_bytes() == b"v2" and target.stat().st_mode & 0o777 == 0o600

    target.write_bytes(b"edited by a human")
    result = session.swap(str(target), b"v3", sha(b"v2"), None)
    assert (result.swapped, result.actual_sha256) == (False, sha(b"edited by a human"))
    assert "changed since it was recorded" in result.reason
    assert target.read_bytes() == b"edited by a human"
    assert sorted(p.name for p in target.parent.iterdir()) == ["config.json"]  # no temp left


def test_creating_a_file_never_clobbers_one_that_appeared(session: SshSession, tmp_path: Path) -> None:
    # Recorded as absent, but a file is there by the time of the swap: it is left alone.
    target = tmp_path / "app" / "new.json"
    target.parent.mkdir()
    target.write_bytes(b"written on the host meanwhile")
    result = session.swap(str(target), b"candidate", None, None)
    assert (result.swapped, result.actual_sha256) == (False, sha(b"written on the host meanwhile"))
    assert "changed since it was recorded" in result.reason
    assert target.read_bytes() == b"written on the host meanwhile"
    assert [p.name for p in target.parent.iterdir()] == ["new.json"]  # no temp left


def test_swap_creates_folders_and_removes(session: SshSession, tmp_path: Path) -> None:
    target = tmp_path / "deep" / "er" / "x.yml"
    assert session.swap(str(target), b"a: 1\n", None, None).swapped
    # A new file is owner-only (issue 18: it may hold the candidate's secrets); was 0644.
    assert target.read_bytes() == b"a: 1\n" and target.stat().st_mode & 0o777 == 0o600
    drift = session.swap(str(target), None, sha(b"other"), None)
    assert (drift.swapped, target.exists()) == (False, True)
    removed = session.swap(str(target), None, sha(b"a: 1\n"), None)
    assert (removed.swapped, removed.actual_sha256) == (True, None)
    assert not target.exists()
    absent = session.swap(str(target), None, sha(b"a: 1\n"), None)
    assert (absent.swapped, absent.actual_sha256) == (False, None)


def test_a_write_the_host_fails_is_an_error_and_nothing_goes_live(sshd_keys: Keys, tmp_path: Path) -> None:
    # This host's server cannot write past 4 KiB, as on a full disk (writes fail with EFBIG).
    server = start_sshd(tmp_path / "full-sshd", 1, sshd_keys, file_size_limit=4096)
    try:
        session = transport_for(server, tmp_path).open(server.spec(server.hosts[0]))
        target = tmp_path / "app" / "config.json"
        target.parent.mkdir()
        target.write_bytes(b"v1")
        with pytest.raises(
            TransportError, match=r"cannot upload .*config\.json.*rollout-tmp: the host failed the write"
        ):
            session.swap(str(target), b"x" * 10_000, sha(b"v1"), None)
        assert target.read_bytes() == b"v1"
        assert sorted(p.name for p in target.parent.iterdir()) == ["config.json"]  # no temp left
        assert session.swap(str(target), b"small", sha(b"v1"), None).swapped  # the session still works
        session.close()
    finally:
        server.stop()


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another owner needs root")
def test_swap_keeps_the_owner_and_mode_of_the_file_it_replaces(session: SshSession, tmp_path: Path) -> None:
    target = tmp_path / "owned.json"
    target.write_bytes(b"v1")
    os.chown(target, 4242, 4343)
    os.chmod(target, 0o640)
    assert session.swap(str(target), b"v2", sha(b"v1"), 0o600).swapped
    st = target.stat()
    assert (target.read_bytes(), st.st_uid, st.st_gid, st.st_mode & 0o777) == (b"v2", 4242, 4343, 0o640)


def test_promote_renames_the_staged_copy_in_place(session: SshSession, tmp_path: Path) -> None:
    folder = tmp_path / "app"
    folder.mkdir()
    target, staged = folder / "app.json", folder / "app.json.rollout-shadow"
    target.write_bytes(b"baseline")
    os.chmod(target, 0o640)
    if os.geteuid() == 0:
        os.chown(target, 4242, 4343)
    staged.write_bytes(b"candidate")
    os.chmod(staged, 0o600)

    changed = session.promote(str(staged), str(target), sha(b"something else"), sha(b"baseline"), 0o600)
    assert (changed.swapped, changed.source_changed) == (False, True)
    drift = session.promote(str(staged), str(target), sha(b"candidate"), sha(b"an older baseline"), 0o600)
    assert (drift.swapped, drift.source_changed, drift.actual_sha256) == (False, False, sha(b"baseline"))
    assert (target.read_bytes(), staged.read_bytes()) == (b"baseline", b"candidate")  # nothing moved

    done = session.promote(str(staged), str(target), sha(b"candidate"), sha(b"baseline"), 0o600)
    assert (done.swapped, done.actual_sha256) == (True, sha(b"candidate"))
    assert target.read_bytes() == b"candidate" and not staged.exists()
    st = target.stat()
    assert st.st_mode & 0o777 == 0o640
    if os.geteuid() == 0:
        assert (st.st_uid, st.st_gid) == (4242, 4343)
    gone = session.promote(str(staged), str(target), sha(b"candidate"), sha(b"candidate"), 0o600)
    assert (gone.swapped, gone.source_changed) == (False, True)
    assert sorted(p.name for p in folder.iterdir()) == ["app.json"]  # no temp left


def test_a_new_live_file_is_owner_only_unless_a_mode_is_given(session: SshSession, tmp_path: Path) -> None:
    staged, target = tmp_path / "shadow.json", tmp_path / "live.json"
    staged.write_bytes(b"candidate")
    os.chmod(staged, 0o644)
    assert session.promote(str(staged), str(target), sha(b"candidate"), None, None).swapped
    assert target.stat().st_mode & 0o777 == 0o600
    other = tmp_path / "given.json"
    assert session.swap(str(other), b"x", None, 0o640).swapped
    assert other.stat().st_mode & 0o777 == 0o640


@pytest.mark.parametrize("name", ["back\\slash.json", "new\nline.json"])
def test_promote_with_names_the_hash_tool_escapes(session: SshSession, tmp_path: Path, name: str) -> None:
    # sha256sum escapes a name holding a backslash or a newline: both hashes must still be read right.
    folder = tmp_path / name.replace(".json", " dir")
    folder.mkdir()
    target, staged = folder / name, folder / f"{name}.rollout-shadow"
    target.write_bytes(b"baseline")
    staged.write_bytes(b"candidate")
    drift = session.promote(str(staged), str(target), sha(b"candidate"), sha(b"older"), None)
    assert (drift.swapped, drift.source_changed, drift.actual_sha256) == (False, False, sha(b"baseline"))
    changed = session.promote(str(staged), str(target), sha(b"other"), sha(b"baseline"), None)
    assert (changed.swapped, changed.source_changed) == (False, True)
    done = session.promote(str(staged), str(target), sha(b"candidate"), sha(b"baseline"), None)
    assert done.swapped and target.read_bytes() == b"candidate" and not staged.exists()


def test_many_requests_share_one_channel_and_survive_a_dead_helper(
    session: SshSession, tmp_path: Path
) -> None:
    target = tmp_path / "n.txt"
    before = None
    for n in range(30):
        data = b"%d" % n
        assert session.swap(str(target), data, before, None).swapped
        before = sha(data)
        assert session.run('cat "$F"', {"F": str(target)}, 10, None).output == data.decode()
    helper = session.helper()
    helper.close()  # the channel dies (as if the host killed it): the next request starts a new one
    assert session.run("echo back", {}, 10, None).output == "back\n"
    assert session.helper() is not helper


def _helper_markers() -> set[str]:
    """Return the markers of the helper loops running on this machine (the test hosts are local)."""
    found = set()
    for pid in os.listdir("/proc"):
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        found.update(re.findall(r"rollout-helper (rollout-[0-9a-f]{16})", args))
    return found


def test_open_starts_the_helper_before_any_request(sshd: Sshd, tmp_path: Path) -> None:
    before = _helper_markers()
    s = transport_for(sshd, tmp_path).open(sshd.spec(sshd.hosts[1]))
    try:
        deadline = time.monotonic() + 10
        while not (started := _helper_markers() - before) and time.monotonic() < deadline:
            time.sleep(0.05)
        # Its shell started while nothing had been asked of the session yet.
        assert s.helper().marker in started
        assert s.run("echo ready", {}, 10, None).output == "ready\n"
    finally:
        s.close()


def test_home_relative_paths(session: SshSession, sshd: Sshd) -> None:
    assert session.swap("~/rel-test/a.txt", b"tilde", None, None).swapped
    assert (sshd.home / "rel-test" / "a.txt").read_bytes() == b"tilde"
    assert session.read("rel-test/a.txt").data == b"tilde"
    assert session.run("cat rel-test/a.txt", {}, 10, None).output == "tilde"
    env = {"ROLLOUT_CONFIG_PATH": "~/rel-test/a.txt"}
    assert session.run('cat "$ROLLOUT_CONFIG_PATH"', env, 10, "/").output == "tilde"


def test_hostile_path_is_never_shell_code(session: SshSession, tmp_path: Path, sshd: Sshd) -> None:
    folder = tmp_path / "my dir $(touch pwned-a) `touch pwned-b`;touch pwned-c"
    target = folder / 'it\'s a "config".json'
    assert session.swap(str(target), b"{}", None, None).swapped
    assert session.read(str(target)).data == b"{}"
    assert session.swap(str(target), b'{"a":1}', sha(b"{}"), None).swapped
    assert target.read_bytes() == b'{"a":1}'
    env = {"ROLLOUT_CONFIG_PATH": str(target), "X": "$(touch pwned-d)"}
    result = session.run('cat "$ROLLOUT_CONFIG_PATH"; echo "[$X]"', env, 10, str(folder))
    assert (result.exit_code, result.output) == (0, '{"a":1}[$(touch pwned-d)]\n')
    for where in (Path("/root"), sshd.home, folder, tmp_path, Path.cwd()):
        assert not list(where.glob("pwned-*")), where


def test_run_exit_code_output_env_and_cwd(session: SshSession, tmp_path: Path) -> None:
    r = session.run("echo out; echo err >&2; exit 7", {}, 10, None)
    assert (r.exit_code, r.output, r.error) == (7, "out\nerr\n", None)
    r = session.run(
        'echo "$ROLLOUT_HOST:$ROLLOUT_PERCENT:$(pwd)"',
        {"ROLLOUT_HOST": "h 1", "ROLLOUT_PERCENT": "25"},
        10,
        str(tmp_path),
    )
    assert (r.exit_code, r.output) == (0, f"h 1:25:{tmp_path}\n")
    odd = 'a=b\nit\'s \\ "$(x)" `y`'  # values are data, whatever they hold
    r = session.run('printf %s "$V"', {"V": odd, "EMPTY": ""}, 10, None)
    assert (r.exit_code, r.output) == (0, odd)
    r = session.run("echo never", {}, 10, str(tmp_path / "missing"))
    assert r.exit_code != 0 and "never" not in r.output


def test_run_timeout_kills_the_remote_process(session: SshSession) -> None:
    token = f"{os.getpid() % 1000}.{free_port() % 1000}"
    r = session.run(f"echo started; sleep 30{token}", {}, 1, None)
    assert (r.exit_code, r.error) == (None, "timed out after 1s")
    assert r.output in ("", "started\n")  # a loaded host may not have started it yet
    left = subprocess.run(["pgrep", "-f", f"sleep 30{token}"], capture_output=True)
    assert left.returncode == 1, left.stdout


def test_unknown_host_key_refused_under_strict(sshd: Sshd, tmp_path: Path) -> None:
    t = transport_for(sshd, tmp_path)
    sshd.known_hosts(tmp_path / "known_hosts", sshd.hosts[:1])
    with pytest.raises(TransportError) as e:
        t.open(sshd.spec(sshd.hosts[1]))
    assert f"ssh root@{sshd.hosts[1]}:{sshd.port}: host key not found in {tmp_path / 'known_hosts'}" in str(
        e.value
    )
    assert "host_key_policy: accept-new" in str(e.value)
    (tmp_path / "known_hosts").unlink()
    with pytest.raises(TransportError, match="host key not found in .*, a file that does not exist"):
        t.open(sshd.spec(sshd.hosts[0]))


def test_accept_new_records_key_and_changed_key_is_refused(sshd: Sshd, tmp_path: Path) -> None:
    known = tmp_path / "fresh" / "known_hosts"
    t = transport_for(sshd, tmp_path, known_hosts=str(known), host_key_policy="accept-new")
    t.open(sshd.spec(sshd.hosts[2])).close()
    assert known.read_text() == f"[{sshd.hosts[2]}]:{sshd.port} {sshd.keys.host_pub}\n"
    strict = transport_for(sshd, tmp_path, known_hosts=str(known))
    strict.open(sshd.spec(sshd.hosts[2])).close()

    other = subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True
    )
    assert other.returncode == 0
    wrong = " ".join((tmp_path / "other.pub").read_text().split()[:2])
    known.write_text(f"[{sshd.hosts[2]}]:{sshd.port} {wrong}\n")
    with pytest.raises(TransportError, match="host key does not match"):
        t.open(sshd.spec(sshd.hosts[2]))
    assert known.read_text() == f"[{sshd.hosts[2]}]:{sshd.port} {wrong}\n"


def test_hashed_known_hosts_entries_are_matched(sshd: Sshd, tmp_path: Path) -> None:
    known = sshd.known_hosts(tmp_path / "known_hosts")
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(known)], check=True, capture_output=True)
    assert all(line.startswith("|1|") for line in known.read_text().splitlines())
    t = transport_for(sshd, tmp_path)
    for host in sshd.hosts[:3]:
        t.open(sshd.spec(host)).close()


def test_down_host_and_wrong_key_are_errors(sshd: Sshd, tmp_path: Path) -> None:
    t = transport_for(sshd, tmp_path)
    port = free_port()
    with pytest.raises(TransportError, match=rf"ssh root@127.0.0.2:{port}: connection refused"):
        t.open(f"127.0.0.2:{port}")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
    stranger = transport_for(sshd, tmp_path, key_file=str(tmp_path / "k"))
    with pytest.raises(TransportError, match="authentication failed"):
        stranger.open(sshd.spec(sshd.hosts[0]))


def test_silent_host_fails_within_timeouts(
    sshd: Sshd, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    listener, port = silent_listener()
    try:
        t = transport_for(sshd, tmp_path, connect_timeout=1.0)
        with pytest.raises(
            TransportError, match=r"ssh root@127.0.0.1:\d+: no SSH (handshake|banner) within 1s"
        ):
            t.open(f"127.0.0.1:{port}")
    finally:
        listener.close()
    assert "Traceback" not in capfd.readouterr().err


def test_stopped_server_then_back(own_sshd: Sshd, tmp_path: Path) -> None:
    t = transport_for(own_sshd, tmp_path)
    spec = own_sshd.spec(own_sshd.hosts[0])
    own_sshd.stop()
    with pytest.raises(TransportError, match="connection refused"):
        t.open(spec)
    own_sshd.start()
    s = t.open(spec)
    assert s.run("echo back", {}, 10, None).output == "back\n"
    s.close()


def test_a_server_hanging_up_mid_handshake_has_a_reason() -> None:
    from rollout.hosts.transports.ssh_connect import connect_failure

    for error in (EOFError(), ConnectionResetError(104, "Connection reset by peer")):
        assert (
            connect_failure(error, SshOptions(), 0.1)
            == "the server closed the connection during the SSH handshake"
        )


def test_a_new_file_is_created_owner_only(session: SshSession, tmp_path: Path) -> None:
    target = tmp_path / "new" / "opencode.json"
    assert session.swap(str(target), b'{"apiKey": "sk-x"}', None, None).swapped
    assert target.stat().st_mode & 0o777 == 0o600
