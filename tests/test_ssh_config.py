"""ssh_config as rollout reads it: ProxyJump hops checked like hosts, Include followed, key_file alone."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import paramiko
import pytest
import yaml

from rollout.hosts.transports import ssh_config
from rollout.hosts.transports.ssh_connect import close_connection
from rollout.util.errors import TransportError
from tests.sshd import Sshd, _no_real_home, silent_listener, sshd, sshd_keys
from tests.test_ssh_transport import transport_for

__all__ = ["_no_real_home", "sshd", "sshd_keys"]


def jump_config(path: Path, sshd: Sshd, jump: str, target: str = "127.0.0.3") -> Path:
    """Write an ssh_config where `target-alias` is `target` reached through the jump host `jump`."""
    path.write_text(f"Host target-alias\n  HostName {target}\n  Port {sshd.port}\n  ProxyJump {jump}\n")
    return path


def test_proxyjump_host_with_an_unknown_key_is_refused_under_strict(sshd: Sshd, tmp_path: Path) -> None:
    jump, target = sshd.hosts[0], sshd.hosts[1]
    config = jump_config(tmp_path / "ssh_config", sshd, f"root@{jump}:{sshd.port}", target)
    t = transport_for(sshd, tmp_path, ssh_config=str(config))
    sshd.known_hosts(tmp_path / "known_hosts", [target])  # the target is known, the jump host is not
    with pytest.raises(TransportError) as e:
        t.open("target-alias")
    assert str(e.value).startswith(
        f"ssh root@{target}:{sshd.port}: via jump host root@{jump}:{sshd.port}: "
        f"host key not found in {tmp_path / 'known_hosts'}"
    ), e.value


def test_proxyjump_with_known_keys_goes_through_the_jump_host(sshd: Sshd, tmp_path: Path) -> None:
    jump, target = sshd.hosts[0], sshd.hosts[1]
    config = jump_config(tmp_path / "ssh_config", sshd, f"{jump}:{sshd.port}", target)
    t = transport_for(sshd, tmp_path, ssh_config=str(config))
    sshd.known_hosts(tmp_path / "known_hosts", [jump, target])
    s = t.open("target-alias")
    try:
        assert isinstance(s.conn.transport.sock, paramiko.Channel)  # a forwarded channel, not a socket
        assert s.conn.gateway.host == jump and s.conn.gateway.is_connected
        assert isinstance(s.conn.gateway.client._policy, paramiko.RejectPolicy)
        assert s.run("echo through", {}, 10, None).output == "through\n"
    finally:
        s.close()
    assert not s.conn.gateway.is_connected  # closing the session closes its jump host too


def test_a_target_key_unknown_behind_a_known_jump_host_is_refused(sshd: Sshd, tmp_path: Path) -> None:
    jump, target = sshd.hosts[0], sshd.hosts[1]
    config = jump_config(tmp_path / "ssh_config", sshd, f"{jump}:{sshd.port}", target)
    t = transport_for(sshd, tmp_path, ssh_config=str(config))
    sshd.known_hosts(tmp_path / "known_hosts", [jump])
    with pytest.raises(TransportError, match=rf"^ssh root@{target}:{sshd.port}: host key not found in"):
        t.open("target-alias")


def test_accept_new_records_the_jump_host_key_too(sshd: Sshd, tmp_path: Path) -> None:
    jump, target = sshd.hosts[2], sshd.hosts[3]
    config = jump_config(tmp_path / "ssh_config", sshd, f"{jump}:{sshd.port}", target)
    known = tmp_path / "fresh" / "known_hosts"
    t = transport_for(
        sshd, tmp_path, ssh_config=str(config), known_hosts=str(known), host_key_policy="accept-new"
    )
    t.open("target-alias").close()
    assert sorted(known.read_text().splitlines()) == sorted(
        f"[{h}]:{sshd.port} {sshd.keys.host_pub}" for h in (jump, target)
    )


def test_a_silent_jump_host_fails_within_the_connect_timeout(sshd: Sshd, tmp_path: Path) -> None:
    listener, port = silent_listener()
    try:
        config = jump_config(tmp_path / "ssh_config", sshd, f"127.0.0.1:{port}")
        t = transport_for(sshd, tmp_path, ssh_config=str(config), connect_timeout=1.0)
        started = time.monotonic()
        with pytest.raises(TransportError, match=rf"via jump host root@127.0.0.1:{port}: no SSH"):
            t.open("target-alias")
        assert time.monotonic() - started < 15
    finally:
        listener.close()


def test_two_hops_each_checked(sshd: Sshd, tmp_path: Path) -> None:
    a, b, target = sshd.hosts[4], sshd.hosts[5], sshd.hosts[6]
    config = jump_config(tmp_path / "ssh_config", sshd, f"{a}:{sshd.port},{b}:{sshd.port}", target)
    t = transport_for(sshd, tmp_path, ssh_config=str(config))
    sshd.known_hosts(tmp_path / "known_hosts", [a, target])
    with pytest.raises(TransportError, match=rf"via jump host root@{b}:{sshd.port}: host key not found"):
        t.open("target-alias")
    sshd.known_hosts(tmp_path / "known_hosts", [a, b, target])
    s = t.open("target-alias")
    try:
        assert s.conn.gateway.host == b and s.conn.gateway.gateway.host == a
        assert s.run("echo two", {}, 10, None).output == "two\n"
    finally:
        s.close()


def test_a_wildcard_proxyjump_does_not_jump_through_itself(sshd: Sshd, tmp_path: Path) -> None:
    jump, target = sshd.hosts[0], sshd.hosts[1]
    config = tmp_path / "ssh_config"
    config.write_text(f"Host *\n  Port {sshd.port}\n  ProxyJump {jump}\n")
    t = transport_for(sshd, tmp_path, ssh_config=str(config))
    s = t.open(target)
    try:
        assert s.conn.gateway.host == jump and s.conn.gateway.gateway is False
    finally:
        close_connection(s.conn)


def test_include_with_a_glob_defines_the_host_alias(sshd: Sshd, tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "10-fleet.conf").write_text(
        f"Host fleet-alias\n  HostName {sshd.hosts[0]}\n  Port {sshd.port}\n"
    )
    main = tmp_path / "ssh_config"
    main.write_text(f"Include {tmp_path}/conf.d/*.conf\n")
    t = transport_for(sshd, tmp_path, ssh_config=str(main))
    s = t.open("fleet-alias")
    assert s.run("echo included", {}, 10, None).output == "included\n"
    s.close()


def test_user_config_includes_are_relative_to_dot_ssh(sshd: Sshd, tmp_path: Path) -> None:
    dot_ssh = Path.home() / ".ssh"
    (dot_ssh / "config.d").mkdir(parents=True)
    (dot_ssh / "config").write_text('Include "config.d/*"\n')
    (dot_ssh / "config.d" / "fleet").write_text(
        f"Host home-alias\n  HostName {sshd.hosts[0]}\n  Port {sshd.port}\n"
    )
    t = transport_for(sshd, tmp_path, ssh_config=True)
    s = t.open("home-alias")
    assert s.run("echo home", {}, 10, None).output == "home\n"
    s.close()


def test_an_include_inside_a_block_keeps_the_rest_of_the_block(tmp_path: Path) -> None:
    (tmp_path / "inc.conf").write_text("Port 1001\nHost b\n  Port 1002\n")
    main = tmp_path / "main.conf"
    main.write_text(f"Host a\n  Include {tmp_path}/inc.conf\n  User ua\nHost *\n  User everyone\n")
    config = ssh_config.load([str(main)], must_exist=True)
    assert (config.lookup("a")["port"], config.lookup("a")["user"]) == ("1001", "ua")
    assert (config.lookup("b")["port"], config.lookup("b")["user"]) == ("1002", "everyone")
    loop = tmp_path / "loop.conf"
    loop.write_text(f"Include {loop}\n")
    with pytest.raises(TransportError, match="too many nested Includes"):
        ssh_config.load([str(loop)], must_exist=True)


def test_key_file_is_the_only_key_even_when_ssh_config_names_another(sshd: Sshd, tmp_path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
    config = tmp_path / "ssh_config"
    # ssh_config names the key the server accepts; the playbook's key_file is another one.
    config.write_text(f"Host {sshd.hosts[0]}\n  IdentityFile {sshd.key_file}\n")
    t = transport_for(sshd, tmp_path, ssh_config=str(config), key_file=str(tmp_path / "k"))
    with pytest.raises(TransportError, match="authentication failed"):
        t.open(sshd.spec(sshd.hosts[0]))
    # Without key_file the ssh_config IdentityFile is used.
    config.write_text(f"Host {sshd.hosts[0]}\n  IdentityFile {sshd.key_file}\n")
    plain = transport_for(sshd, tmp_path, ssh_config=str(config), key_file=None)
    plain.open(sshd.spec(sshd.hosts[0])).close()


def test_start_through_an_unknown_jump_host_writes_nothing_then_rolls_once_it_is_known(
    tmp_path: Path, sshd: Sshd
) -> None:
    from tests.test_ssh_rollout import BASELINE, CANDIDATE, make_fleet

    fleet = make_fleet(tmp_path, [sshd], ["shadow", 100])
    jump, targets = sshd.spec(sshd.hosts[0]), fleet.hosts[1:4]
    book = yaml.safe_load(fleet.playbook.read_text())
    book["targets"]["hosts"] = targets
    book["targets"]["ssh"]["ssh_config"] = "ssh_config"
    fleet.playbook.write_text(yaml.safe_dump(book, sort_keys=False))
    (tmp_path / "ssh_config").write_text(f"Host 127.0.0.*\n  ProxyJump {jump}\n")
    sshd.known_hosts(tmp_path / "known_hosts", [h.rpartition(":")[0] for h in targets])
    result = fleet.cli("start", str(fleet.playbook))
    assert result.exit_code == 5, result.output
    assert f"via jump host root@{jump}: host key not found in" in result.stderr
    assert fleet.bytes_on() == dict.fromkeys(fleet.hosts, BASELINE)
    assert fleet.leftovers() == []

    sshd.known_hosts(tmp_path / "known_hosts")
    result = fleet.cli("run", str(fleet.playbook), "--auto")
    assert result.exit_code == 0, result.output
    on = fleet.bytes_on()
    assert [on[h] for h in targets] == [CANDIDATE] * 3
