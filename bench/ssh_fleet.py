"""Benchmark: a staged rollout over SSH vs bare parallel SFTP uploads, on N loopback hosts.

    python bench/ssh_fleet.py [--hosts 20] [--size 4096] [--rounds 3] [--no-check] [--ansible PATH]

Starts its own sshd (tests/sshd.py), serving hosts 127.0.0.2 .. 127.0.0.(N+1) on one port, and prints:
(a) bare uploads: the candidate put over SFTP to every host, one connection each (connect included),
    in a bounded thread pool; (b) `rollout run --auto` through shadow, 25, 50, 100 with bake 0;
(c) the same rollout verb by verb (start, advance x4), one process-free call each; (d) a rollback:
`abort` with the candidate live on every host; (e) with --ansible (a path to ansible-playbook, e.g.
from `pip install ansible-core` in a venv): the same staged copy by ansible-core (serial 25%/50%/100%,
copy with backup, the same check), over the same sshd.

Each time is printed twice: wall time, and "running" time, the wall time minus the moments the
whole machine stood still (every CPU at once, seen by bench/stalls.py; a VM on a busy host is
paused for up to seconds). Ratios are given for both.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import yaml  # noqa: E402
from stalls import StallMeter  # noqa: E402

from rollout.commands.abort import abort  # noqa: E402
from rollout.commands.advance import advance  # noqa: E402
from rollout.commands.auto import run_auto  # noqa: E402
from rollout.commands.start import start  # noqa: E402
from rollout.hosts.fleet import started_pool  # noqa: E402
from tests.sshd import Sshd, start_sshd  # noqa: E402

CHECK = 'test -s "$ROLLOUT_CONFIG_PATH"'


def candidate_bytes(size: int) -> bytes:
    """Return a JSON config of about `size` bytes."""
    agents = {f"agent-{i}": {"model": "openai/gpt-5.2", "temperature": 0.1} for i in range(size // 60)}
    return (json.dumps({"model": "openai/gpt-5.2", "agent": agents}, indent=1) + "\n").encode()


def bare_uploads(server: Sshd, known: Path, data: bytes, folder: Path, workers: int) -> Span:
    """Upload `data` to every host over SFTP, one fabric Connection each; return when it ran."""
    import paramiko
    from fabric import Config, Connection

    def one(host: str) -> None:
        c = Connection(
            host,
            user="root",
            port=server.port,
            connect_timeout=30,
            connect_kwargs={
                "key_filename": [str(server.key_file)],
                "look_for_keys": False,
                "allow_agent": False,
            },
            config=Config(ssh_config=paramiko.SSHConfig(), lazy=True),
        )
        c.client.load_host_keys(str(known))
        c.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            c.put(io.BytesIO(data), str(folder / host / "opencode.json"))
        finally:
            c.close()

    for host in server.hosts:
        (folder / host).mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    # The same pool rollout uses (threads running before work is given): a fair baseline.
    with started_pool(min(workers, len(server.hosts))) as pool:
        list(pool.map(one, server.hosts))
    return Span(started, time.monotonic())


def cpu_seconds(server: Sshd) -> tuple[float, float]:
    """Return CPU seconds used so far by this process and by sshd with every process it started
    (counted once sshd has reaped them, so this first waits for its connections to end)."""
    import resource

    assert server.proc is not None
    pid = server.proc.pid
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(
        Path(f"/proc/{pid}/task/{tid}/children").read_text().strip()
        for tid in os.listdir(f"/proc/{pid}/task")
    ):
        time.sleep(0.05)
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime, sum(int(x) for x in fields[11:15]) / ticks


def make_playbook(
    root: Path, server: Sshd, known: Path, data: bytes, check: bool, name: str, hosts: list[str] | None = None
) -> Path:
    """Write baseline files, the candidate and a playbook for `hosts` (default: every host of `server`)."""
    hosts = hosts or server.hosts
    for host in hosts:
        f = root / "fleet" / server.spec(host) / "opencode.json"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text('{"model": "anthropic/claude-sonnet-4-5"}\n')
    (root / "candidate.json").write_bytes(data)
    book = {
        "name": name,
        "config": {"source": "candidate.json", "path": str(root / "fleet" / "{host}" / "opencode.json")},
        "targets": {
            "transport": "ssh",
            "hosts": [server.spec(h) for h in hosts],
            "ssh": {"key_file": str(server.key_file), "known_hosts": str(known), "connect_timeout": "30s"},
        },
        "stages": ["shadow", 25, 50, 100],
        "health": {"checks": [{"name": "non-empty", "run": CHECK}] if check else []},
    }
    path = root / "playbook.yml"
    path.write_text(yaml.safe_dump(book, sort_keys=False))
    return path


ANSIBLE_PLAY = """\
- hosts: fleet
  gather_facts: false
  serial: ["25%", "50%", "100%"]
  tasks:
    - name: copy the candidate, keeping a backup
      ansible.builtin.copy: {{src: "{src}", dest: "{{{{ dest }}}}", backup: true}}
    - name: check
      ansible.builtin.shell: 'test -s "{{{{ dest }}}}"'
"""


def ansible_rollout(ansible: str, root: Path, server: Sshd, known: Path, data: bytes) -> Span:
    """Run the same staged copy with ansible-core over the same sshd; return when it ran."""
    root.mkdir()
    (root / "candidate.json").write_bytes(data)
    lines = ["[fleet]"]
    for n, host in enumerate(server.hosts):
        dest = root / "fleet" / host / "opencode.json"
        dest.parent.mkdir(parents=True)
        dest.write_text('{"model": "anthropic/claude-sonnet-4-5"}\n')
        lines.append(f"h{n} ansible_host={host} ansible_port={server.port} dest={dest}")
    (root / "inventory.ini").write_text("\n".join(lines) + "\n")
    (root / "play.yml").write_text(ANSIBLE_PLAY.format(src=root / "candidate.json"))
    env = {
        **os.environ,
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_SSH_ARGS": f"-o UserKnownHostsFile={known} -o StrictHostKeyChecking=yes",
        "ANSIBLE_REMOTE_USER": "root",
        "ANSIBLE_PRIVATE_KEY_FILE": str(server.key_file),
        "ANSIBLE_PYTHON_INTERPRETER": "/usr/bin/python3",
        "ANSIBLE_FORKS": "20",
        "ANSIBLE_NOCOLOR": "1",
    }
    started = time.monotonic()
    done = subprocess.run(
        [ansible, "-i", str(root / "inventory.ini"), str(root / "play.yml")],
        env=env,
        capture_output=True,
        text=True,
    )
    ran = Span(started, time.monotonic())
    if done.returncode != 0:
        raise SystemExit(
            f"ansible-playbook exit {done.returncode}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
    return ran


@dataclass
class Span:
    """When something ran (time.monotonic at its start and end)."""

    start: float
    end: float

    @property
    def wall(self) -> float:
        return self.end - self.start


@dataclass
class Round:
    """One round: when (a) and (b) ran, their running time, and the CPU seconds (client, sshd) each used."""

    bare: Span
    auto: Span
    bare_cpu: tuple[float, float]
    auto_cpu: tuple[float, float]
    bare_running: float  # wall time minus whole-machine stalls
    auto_running: float


def one_round(
    n: int, server: Sshd, known: Path, data: bytes, root: Path, check: bool, meter: StallMeter
) -> Round:
    """Time (a) then (b) once and print them. CPU seconds are printed too: the work each side asks
    of the CPU moves less with the neighbours than wall time does."""
    before = cpu_seconds(server)
    bare = bare_uploads(server, known, data, root / f"bare-{n}", 20)
    middle = cpu_seconds(server)
    auto_root = root / f"auto-{n}"
    auto_root.mkdir()
    book = make_playbook(auto_root, server, known, data, check, f"bench-auto-{n}")
    started = time.monotonic()
    report = run_auto(auto_root / "state", book)
    auto = Span(started, time.monotonic())
    if report.exit_code != 0:
        raise SystemExit(f"run --auto: exit {report.exit_code}: {report.lines}")
    after = cpu_seconds(server)
    run_a, run_b = meter.running(bare.start, bare.end), meter.running(auto.start, auto.end)
    r = Round(bare, auto, _minus(middle, before), _minus(after, middle), run_a, run_b)
    say(f"round {n + 1}:")
    say(
        f"(a) bare parallel SFTP uploads (connect + put):   {bare.wall:7.2f} s (running {run_a:5.2f} s)"
        f"   cpu: client {r.bare_cpu[0]:5.2f} s, sshd {r.bare_cpu[1]:5.2f} s"
    )
    say(
        f"(b) rollout run --auto, every stage:              {auto.wall:7.2f} s (running {run_b:5.2f} s)"
        f"   cpu: client {r.auto_cpu[0]:5.2f} s, sshd {r.auto_cpu[1]:5.2f} s"
    )
    say(
        f"    (b)/(a): {auto.wall / bare.wall:.2f}x in wall time, {run_b / run_a:.2f}x in running time,"
        f" {sum(r.auto_cpu) / sum(r.bare_cpu):.2f}x in cpu"
    )
    return r


def _minus(later: tuple[float, float], earlier: tuple[float, float]) -> tuple[float, float]:
    return later[0] - earlier[0], later[1] - earlier[1]


def timed(label: str, fn, times: list[tuple[str, float, float]], meter: StallMeter):  # type: ignore[no-untyped-def]
    """Run `fn`, print its wall and running time, add both to `times`."""
    started = time.monotonic()
    report = fn()
    ended = time.monotonic()
    times.append((label, ended - started, meter.running(started, ended)))
    if report.exit_code != 0:
        raise SystemExit(f"{label}: exit {report.exit_code}: {report.lines}")
    say(f"      {label:34s} {times[-1][1]:7.2f} s (running {times[-1][2]:5.2f} s)")
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--size", type=int, default=4096, help="candidate size in bytes")
    parser.add_argument("--no-check", action="store_true", help="no health check command")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of (a) and (b)")
    parser.add_argument("--ansible", help="path to ansible-playbook: also time ansible-core's staged copy")
    args = parser.parse_args()
    data = candidate_bytes(args.size)
    # Both sides start with their libraries loaded: fabric/paramiko for (a), and also deepdiff
    # (the diffs `start` writes) for (b). A `rollout` process pays this once; it is printed apart.
    started = time.monotonic()
    import deepdiff  # noqa: F401
    import fabric  # noqa: F401

    imports = time.monotonic() - started
    check = "no check" if args.no_check else "one `run` check per host"
    say(f"{args.hosts} loopback hosts, {len(data)} bytes, stages shadow/25/50/100, bake 0, {check}")
    say(f"library imports before timing (fabric, paramiko, deepdiff): {imports:.2f} s")
    meter = StallMeter()
    if not meter.on:
        say(f"stall meter off ({meter.off_reason}): running time is wall time")
    with meter, tempfile.TemporaryDirectory(prefix="ssh-fleet-") as tmp:
        root = Path(tmp)
        server = start_sshd(root / "sshd", args.hosts)
        try:
            known = server.known_hosts(root / "known_hosts")
            # Untimed: one host through every stage, so the modules rollout loads on first use
            # (config kinds, checks, diffs) are loaded before (b) is timed, as fabric is for (a).
            warm = root / "warm-up"
            warm.mkdir()
            started = time.monotonic()
            book = make_playbook(warm, server, known, data, not args.no_check, "bench-warm", server.hosts[:1])
            if run_auto(warm / "state", book).exit_code != 0:
                raise SystemExit("warm-up rollout failed")
            say(f"untimed warm-up, one host through every stage: {time.monotonic() - started:.2f} s")
            # Alternate (a) and (b) so a busy machine slows both alike; report every round.
            rounds = [
                one_round(n, server, known, data, root, not args.no_check, meter) for n in range(args.rounds)
            ]
            bares, autos = [r.bare.wall for r in rounds], [r.auto.wall for r in rounds]
            best = min(autos)
            say(f"best of {args.rounds}: (a) {min(bares):.2f} s, (b) {best:.2f} s = {best / min(bares):.2f}x")
            ratios = [b / a for a, b in zip(bares, autos, strict=True)]
            say(
                f"median of the {args.rounds} rounds' ratios (b)/(a), wall time: {statistics.median(ratios):.2f}x"
            )
            if meter.on:
                running = [r.auto_running / r.bare_running for r in rounds]
                say(f"median of the rounds' ratios (b)/(a), running time: {statistics.median(running):.2f}x")
                stalled = sum(r.bare.wall + r.auto.wall - r.bare_running - r.auto_running for r in rounds)
                say(
                    f"the whole machine stood still for {stalled:.2f} s of the {sum(bares) + sum(autos):.2f} s timed"
                )
            a_cpu = sum(sum(r.bare_cpu) for r in rounds)
            b_cpu = sum(sum(r.auto_cpu) for r in rounds)
            say(f"cpu, all rounds: (a) {a_cpu:.2f} s, (b) {b_cpu:.2f} s = {b_cpu / a_cpu:.2f}x")

            say("(c) the same rollout verb by verb:")
            verbs: list[tuple[str, float, float]] = []
            manual_root = root / "manual"
            manual_root.mkdir()
            book = make_playbook(manual_root, server, known, data, not args.no_check, "bench-verbs")
            state = manual_root / "state"
            timed("start (snapshot, shadow, checks)", lambda: start(book, state), verbs, meter)
            for to in ("25%", "50%", "100%"):
                timed(f"advance -> {to}", lambda: advance(state), verbs, meter)
            timed("advance -> complete", lambda: advance(state), verbs, meter)
            wall, running = sum(v[1] for v in verbs), sum(v[2] for v in verbs)
            say(f"      {'total':34s} {wall:7.2f} s (running {running:5.2f} s)")

            say("(d) rollback with the candidate live on every host:")
            back_root = root / "rollback"
            back_root.mkdir()
            book = make_playbook(back_root, server, known, data, not args.no_check, "bench-abort")
            state = back_root / "state"
            start(book, state)
            for _ in range(3):
                advance(state)
            timed(f"abort (restore {args.hosts} hosts)", lambda: abort(state), [], meter)
            if args.ansible:
                ran = ansible_rollout(args.ansible, root / "ansible", server, known, data)
                running = meter.running(ran.start, ran.end)
                best_running = min(r.auto_running for r in rounds)
                say(
                    f"(e) ansible-core, the same staged copy and check:  {ran.wall:7.2f} s (running {running:5.2f} s)"
                    f" = {ran.wall / best:.1f}x the best (b), {running / best_running:.1f}x in running time"
                )
        finally:
            server.stop()


def say(line: str) -> None:
    print(line, flush=True)


if __name__ == "__main__":
    main()
