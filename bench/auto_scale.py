"""Time `rollout run PLAYBOOK --auto` (start, shadow, 25/50/100%, no bakes) on N local hosts
through the real CLI, with an `on: local` check that reads ROLLOUT_HOSTS_FILE, and print the
seconds, the peak RSS (os.wait4) and the seconds per 1,000 hosts, to show it stays linear.

Usage: python3 bench/auto_scale.py [--hosts 10000 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


def make(root: Path, n: int) -> Path:
    # A playbook is at most 1 MiB (validate refuses more): 100,000 hosts fit with 6-character names
    # in flow style, not with 20-character ones (2.5 MB).
    hosts = [f"h{i:05d}" for i in range(n)]
    same = json.dumps({"model": "a/old"})
    for h in hosts:
        (root / "fleet" / h).mkdir(parents=True)
        (root / "fleet" / h / "app.json").write_text(same)
    (root / "candidate.json").write_text(json.dumps({"model": "b/new"}))
    check = {"name": "count", "on": "local", "run": 'test "$(wc -l < "$ROLLOUT_HOSTS_FILE")" -ge 1'}
    pb = {
        "name": "auto-scale",
        "config": {"source": "candidate.json", "path": "fleet/{host}/app.json"},
        "targets": {"transport": "local", "hosts": hosts, "concurrency": 16},
        "stages": ["shadow", 25, 50, 100],
        "health": {"interval": "1s", "checks": [check]},
    }
    (root / "pb.yml").write_text(yaml.safe_dump(pb, default_flow_style=None, width=1 << 30))
    return root / "pb.yml"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, nargs="+", default=[10_000, 100_000])
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for n in args.hosts:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            pb = make(root, n)
            cmd = [sys.executable, "-m", "rollout", "--state-dir", str(root / "state"), "run", str(pb), "--auto"]
            t = time.perf_counter()
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            _, status, usage = os.wait4(proc.pid, 0)
            secs = time.perf_counter() - t
            code = os.waitstatus_to_exitcode(status)
            err = proc.stderr.read().decode(errors="replace")[-300:] if proc.stderr else ""
            print(
                f"{n:>7} hosts: run --auto {secs:7.1f} s, peak {usage.ru_maxrss / 1024:6.0f} MB, "
                f"{secs / n * 1000:.2f} s per 1,000 hosts, exit {code}" + (f" ({err.strip()})" if code else ""),
                flush=True,
            )


if __name__ == "__main__":
    main()
