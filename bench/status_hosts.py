"""Time `rollout status` (text, --json, --hosts) on a rollout of N local hosts, against the floor
`python -c 'import click, yaml'`. Medians of interleaved runs.

Usage: python3 bench/status_hosts.py [--hosts 10000] [--runs 7]
Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml


def make(root: Path, n: int) -> Path:
    hosts = [f"host-{i:05d}.example.internal"[:20] for i in range(n)]
    for h in hosts:
        (root / "fleet" / h).mkdir(parents=True)
        (root / "fleet" / h / "app.json").write_text(json.dumps({"model": "a/old"}))
    (root / "candidate.json").write_text(json.dumps({"model": "b/new"}))
    pb = {
        "name": "bench",
        "config": {"source": "candidate.json", "path": "fleet/{host}/app.json"},
        "targets": {"transport": "local", "hosts": hosts, "concurrency": 16},
        "health": {"checks": []},  # a check at 10,000 hosts needs ROLLOUT_HOSTS_FILE (issue 16)
    }
    (root / "pb.yml").write_text(yaml.safe_dump(pb))
    return root / "pb.yml"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pb = make(root, args.hosts)
        state = root / "state"
        rollout = [sys.executable, "-m", "rollout", "--state-dir", str(state)]
        t0 = time.perf_counter()
        subprocess.run([*rollout, "start", str(pb)], check=True, capture_output=True)
        print(f"start on {args.hosts} hosts: {time.perf_counter() - t0:.1f} s")
        commands = {
            "floor: import click, yaml": [sys.executable, "-c", "import click, yaml"],
            "status": [*rollout, "status"],
            "status --json": [*rollout, "status", "--json"],
            "status --hosts": [*rollout, "status", "--hosts"],
        }
        times: dict[str, list[float]] = {k: [] for k in commands}
        for _ in range(args.runs):
            for label, cmd in commands.items():
                t = time.perf_counter()
                subprocess.run(cmd, check=True, capture_output=True)
                times[label].append(time.perf_counter() - t)
        floor = statistics.median(times["floor: import click, yaml"])
        for label, got in times.items():
            med = statistics.median(got)
            print(f"{label:28s} median {med:.3f} s  min {min(got):.3f} s  {med / floor:.2f}x floor")


if __name__ == "__main__":
    main()
