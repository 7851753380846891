"""Time a whole rollout on N simulated local hosts: per stage, a rollback, and `status`.

Usage: python3 bench/local_fleet.py [--hosts 50]
Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from rollout.commands.abort import abort, undo
from rollout.commands.advance import advance
from rollout.commands.start import start


def make(root: Path, n: int) -> Path:
    hosts = [f"h{i:03d}" for i in range(n)]
    for h in hosts:
        (root / "fleet" / h).mkdir(parents=True)
        (root / "fleet" / h / "app.json").write_text(json.dumps({"model": "a/old", "host": "x"}))
    (root / "candidate.json").write_text(json.dumps({"model": "b/new", "host": "x"}))
    pb = {
        "name": "bench",
        "config": {"source": "candidate.json", "path": "fleet/{host}/app.json"},
        "targets": {"transport": "local", "hosts": hosts, "concurrency": 16},
        "health": {"checks": [{"name": "exists", "run": 'test -s "$ROLLOUT_CONFIG_PATH"'}]},
    }
    (root / "pb.yml").write_text(yaml.safe_dump(pb))
    return root / "pb.yml"


def timed(label: str, fn: object) -> None:
    t = time.perf_counter()
    report = fn()  # type: ignore[operator]
    print(f"{label:28} {time.perf_counter() - t:7.3f} s  exit {report.exit_code}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        playbook, state = make(root, args.hosts), root / "state"
        print(f"{args.hosts} local hosts, bake 0, one `run` check per host")
        total = time.perf_counter()
        timed("start (backup + shadow gate)", lambda: start(playbook, state))
        for stage in ("25%", "50%", "100%", "final gate"):
            timed(f"advance -> {stage}", lambda: advance(state))
        print(f"{'whole rollout':28} {time.perf_counter() - total:7.3f} s")
        timed("undo (restore 100%)", lambda: undo(state, reason="bench"))
        timed("start again", lambda: start(playbook, state))
        timed("advance -> 25%", lambda: advance(state))
        timed("advance -> 50%", lambda: advance(state))
        timed("abort (restore 50%)", lambda: abort(state, reason="bench"))
        old = json.dumps({"model": "a/old", "host": "x"})
        back = sum((root / "fleet" / f"h{i:03d}" / "app.json").read_text() == old for i in range(args.hosts))
        print(f"{'hosts back on baseline':28} {back}/{args.hosts}")
        runs = []
        for _ in range(5):
            t = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "rollout", "--state-dir", str(state), "status", "--json"],
                check=True,
                capture_output=True,
            )
            runs.append(time.perf_counter() - t)
        print(
            f"{'status --json (subprocess)':28} {min(runs):7.3f} s  best of 5 (median {sorted(runs)[2]:.3f} s)"
        )


if __name__ == "__main__":
    main()
