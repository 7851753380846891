"""Time the verbs on the folder state and on a PostgreSQL state (a real server on loopback, started
here as tests/pgserver.py does): `status`, `status --json`, and one cycle start -> advance -> abort
on N local hosts. Medians of interleaved runs, and the ratio postgresql / folder.

Usage: python3 bench/state_backends.py [--hosts 100] [--runs 7]
Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.pgserver import start_postgres  # noqa: E402


def make(root: Path, n: int) -> Path:
    hosts = [f"host-{i:05d}" for i in range(n)]
    for h in hosts:
        (root / "fleet" / h).mkdir(parents=True)
        (root / "fleet" / h / "app.json").write_text(json.dumps({"model": "a/old"}))
    (root / "candidate.json").write_text(json.dumps({"model": "b/new"}))
    pb = {
        "name": "bench",
        "config": {"source": "candidate.json", "path": "fleet/{host}/app.json"},
        "targets": {"transport": "local", "hosts": hosts, "concurrency": 16},
        "stages": ["shadow", 100],
        "health": {"checks": []},
    }
    (root / "pb.yml").write_text(yaml.safe_dump(pb))
    return root / "pb.yml"


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    took = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {done.returncode}: {done.stderr.strip()}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=100)
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    server = start_postgres()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_CACHE_HOME": str(Path(tmp) / "cache")}
            states = {"folder": str(Path(tmp) / "state"), "postgresql": server.url("postgres", namespace="bench")}
            playbooks = {}
            for name in states:
                (Path(tmp) / name).mkdir()
                playbooks[name] = make(Path(tmp) / name, args.hosts)
            times: dict[tuple[str, str], list[float]] = {}
            for _ in range(args.runs):
                for name, state in states.items():
                    rollout = [sys.executable, "-m", "rollout", "--state", state]
                    steps = [
                        ("start", [*rollout, "start", str(playbooks[name])]),
                        ("status", [*rollout, "status"]),
                        ("status --json", [*rollout, "status", "--json"]),
                        ("advance", [*rollout, "advance"]),
                        ("abort", [*rollout, "abort", "--reason", "bench"]),
                    ]
                    for label, cmd in steps:
                        times.setdefault((label, name), []).append(timed(cmd, env))
            floor = statistics.median(
                timed([sys.executable, "-c", "import click, yaml"], env) for _ in range(args.runs)
            )
            print(f"{args.hosts} local hosts, medians of {args.runs} interleaved runs")
            print(f"floor `python -c 'import click, yaml'`: {floor * 1000:.0f} ms")
            print(f"{'verb':<15} {'folder':>10} {'postgresql':>11} {'pg/folder':>10}")
            for label in ("start", "status", "status --json", "advance", "abort"):
                f = statistics.median(times[(label, "folder")])
                p = statistics.median(times[(label, "postgresql")])
                print(f"{label:<15} {f * 1000:>8.0f}ms {p * 1000:>9.0f}ms {p / f:>9.2f}x")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
