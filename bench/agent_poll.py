"""One `rollout agent --once` poll: wall time and peak RSS, with and without a `ready` command.

A real `rollout serve` on loopback and real agent processes (each host a folder standing for a
laptop's home). For each playbook (no ready; `ready: true`, which passes on its first try; a ready
that passes on its third try, 0.1 s apart) a fleet
of --hosts laptops is started and taken to 100%, so each laptop's next poll applies its file
(activate none, ready as the playbook says) and reports; then each polls once more (in step).

    PYTHONPATH=. python3 bench/agent_poll.py --hosts 10

Prints the median and max of each kind of poll, and `python3 -c pass` as the floor.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CANDIDATE = b'{"model": "anthropic/claude-sonnet-4"}\n'


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, int]:
    """Run `cmd`; return (wall seconds, peak RSS MiB, exit code)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - start, usage.ru_maxrss / 1024, proc.returncode


def rollout(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rollout", "--state-dir", str(state), *args], capture_output=True, text=True, check=False
    )


def fleet(root: Path, hosts: int, ready: str | None) -> tuple[Path, list[str], dict[str, Path]]:
    state = root / "state"
    names = [f"lap-{i:03d}" for i in range(hosts)]
    (root / "candidate.json").write_bytes(CANDIDATE)
    extra = f"  ready:\n    run: '{ready}'\n    interval: 0.1\n" if ready else ""
    (root / "pb.yml").write_text(
        "name: laptops\nconfig:\n  source: candidate.json\n  path: ~/.config/opencode/opencode.json\n"
        + extra
        + f"targets:\n  transport: pull\n  hosts: [{', '.join(names)}]\nstages: [shadow, 100]\n"
        + "health:\n  checks:\n    - name: control\n      on: local\n      run: 'true'\n"
    )
    tokens = {}
    for name in names:
        home = root / "homes" / name / ".config" / "opencode"
        home.mkdir(parents=True)
        (home / "opencode.json").write_text(json.dumps({"model": f"openai/gpt-4o-{name}"}) + "\n")
        added = rollout(state, "hosts", "add", name)
        tokens[name] = root / f"{name}.token"
        tokens[name].write_text(added.stdout)
        tokens[name].chmod(0o600)
    return state, names, tokens


def serve(state: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "rollout", "--state-dir", str(state), "serve", "--listen", "127.0.0.1:0", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    if not select.select([proc.stdout], [], [], 30)[0]:
        raise SystemExit("rollout serve did not start")
    return proc, str(json.loads(proc.stdout.readline())["url"])


def measure(hosts: int, ready: str | None) -> dict[str, list[tuple[float, float]]]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        state, names, tokens = fleet(root, hosts, ready)
        server, url = serve(state)
        try:

            def poll(name: str) -> tuple[float, float]:
                env = {**os.environ, "HOME": str(root / "homes" / name)}
                cmd = [sys.executable, "-m", "rollout", "agent", "--server", url, "--host", name]
                wall, rss, code = timed([*cmd, "--token-file", str(tokens[name]), "--once"], env)
                if code != 0:
                    raise SystemExit(f"{name}: agent exited {code}")
                return wall, rss

            if rollout(state, "start", str(root / "pb.yml")).returncode != 0:
                raise SystemExit("start failed")
            upload = [poll(n) for n in names]  # first reports: each uploads its baseline
            if rollout(state, "advance").returncode != 0:  # shadow -> 100%: every laptop assigned
                raise SystemExit("advance failed")
            apply = [poll(n) for n in names]
            in_step = [poll(n) for n in names]
            done = json.loads(rollout(state, "status", "--json").stdout)
            if {h["state"] for h in done["hosts"].values()} != {"candidate"}:
                raise SystemExit(f"not all confirmed: {done['hosts']}")
            return {"upload baseline": upload, "apply + report": apply, "in step": in_step}
        finally:
            server.terminate()
            server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, default=10, help="laptops per playbook (polls of each kind)")
    args = parser.parse_args()
    floor = [timed([sys.executable, "-c", "pass"])[:2] for _ in range(args.hosts)]
    print(f"{'poll':<56} {'wall median':>12} {'wall max':>10} {'RSS median':>11} {'RSS max':>9}")

    def row(label: str, runs: list[tuple[float, float]]) -> None:
        walls, rss = [w for w, _ in runs], [r for _, r in runs]
        print(
            f"{label:<56} {statistics.median(walls) * 1000:>10.0f}ms {max(walls) * 1000:>8.0f}ms "
            f"{statistics.median(rss):>8.1f}MiB {max(rss):>6.1f}MiB"
        )

    row("python3 -c pass (floor)", floor)
    third = "n=$(cat tries 2>/dev/null || echo 0); n=$((n+1)); echo $n > tries; [ $n -ge 3 ]"
    for label, ready in (("no ready", None), ("ready: true", "true"), ("ready on its 3rd try, 0.1s apart", third)):
        for kind, runs in measure(args.hosts, ready).items():
            row(f"{kind} ({label})", runs)


if __name__ == "__main__":
    main()
