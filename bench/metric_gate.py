"""Time a metric gate over N hosts x M usage records through the real CLI, against the floor of a
script that only `json.loads` each line of the same files, in the same run (interleaved rounds).

Rows:
  floor          python3 -c: read every usage.jsonl, json.loads each line
  advance cold   `rollout advance` with no cursor kept (the rollout's metrics/ blobs removed): reads
                 and aggregates every record, then judges three checks (error rate: max and
                 regression; mean latency: max and regression; a hold check whose min_samples is
                 never met, so the gate stays inconclusive, exit 5, and the stage can be gated again)
  advance again  the same, after each host's log grew by --new-seconds of calls at the same rate:
                 only the new lines are read (the cursors kept through Rollout.write_blob)
  advance idle   the same, nothing new in the logs

Each row prints the median seconds, the median peak RSS of that process (os.wait4's ru_maxrss),
and the ratio to the floor's median. Usage:

  python3 bench/metric_gate.py [--hosts 20] [--records 50000] [--rounds 3] [--new-seconds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
FLOOR = """
import json, sys
n = 0
for path in sys.argv[1:]:
    with open(path, 'rb') as f:
        for line in f:
            json.loads(line)
            n += 1
print(n)
"""


def line(rng: random.Random, ts: float, slow: float) -> str:
    iso = datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    outcome = "success" if rng.random() > 0.02 else "error"
    return (
        f'{{"ts": "{iso}", "gen_ai.agent.name": "build", "gen_ai.request.model": "anthropic/claude-sonnet-4-5", '
        f'"gen_ai.usage.input_tokens": {rng.randint(100, 20000)}, "gen_ai.usage.output_tokens": {rng.randint(10, 2000)}, '
        f'"cost_usd": {rng.random() * 0.05:.6f}, "duration_s": {rng.lognormvariate(1.3, 0.5) * slow:.3f}, '
        f'"outcome": "{outcome}", "failover": false}}\n'
    )


def write_logs(root: Path, hosts: list[str], records: int, start: float, end: float, seed: int) -> None:
    rng = random.Random(seed)
    for h in hosts:
        step = (end - start) / records
        with open(root / "fleet" / h / "usage.jsonl", "a") as f:
            f.writelines(line(rng, start + i * step, 1.0) for i in range(records))


def make(root: Path, hosts: list[str]) -> Path:
    for h in hosts:
        (root / "fleet" / h).mkdir(parents=True)
        (root / "fleet" / h / "app.json").write_text(json.dumps({"model": "a/old"}))
    (root / "candidate.json").write_text(json.dumps({"model": "b/new"}))
    source = {"type": "usage-log", "path": "fleet/{host}/usage.jsonl"}
    pb = {
        "name": "bench-metric",
        "config": {"source": "candidate.json", "path": "fleet/{host}/app.json"},
        "targets": {"transport": "local", "hosts": hosts},
        "stages": ["shadow", {"percent": 25, "bake": "0s"}, 100],
        "health": {
            "checks": [
                {"name": "errors", "metric": "error_rate", "source": source, "max": 0.05, "max_regression": 0.1},
                {"name": "latency", "metric": "latency_mean_s", "source": source, "max": 10, "max_regression": 0.1},
                {"name": "hold", "metric": "error_rate", "source": source, "max": 0.5, "min_samples": 10**9},
            ]
        },
    }
    (root / "pb.yml").write_text(yaml.safe_dump(pb))
    return root / "pb.yml"


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """Return wall seconds, peak RSS in MB and exit code of one child."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - t, usage.ru_maxrss / 1024, proc.returncode


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=20)
    ap.add_argument("--records", type=int, default=50_000, help="usage records per host")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--new-seconds", type=float, default=5.0, help="calls added before `advance again`")
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    hosts = [f"dev-{i:03d}" for i in range(args.hosts)]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pb = make(root, hosts)
        state = root / "state"
        rollout = [sys.executable, "-m", "rollout", "--state-dir", str(state)]
        subprocess.run([*rollout, "start", str(pb)], check=True, capture_output=True, env=env)
        subprocess.run([*rollout, "advance"], check=True, capture_output=True, env=env)  # live at 25%
        switched = time.time()
        span = 480.0  # the records cover the 8 minutes before the switch and 50 s after it
        write_logs(root, hosts, args.records, switched - span, switched + 50, seed=1)
        rate = args.records / (span + 50)  # calls per host-second
        logs = [str(root / "fleet" / h / "usage.jsonl") for h in hosts]
        size = sum(os.path.getsize(p) for p in logs)
        print(f"{args.hosts} hosts x {args.records} records = {args.hosts * args.records} records, {size / 1e6:.0f} MB")
        [rollout_dir] = [p for p in state.iterdir() if p.is_dir() and not p.name.startswith(".")]
        rows: dict[str, list[tuple[float, float]]] = {"floor": [], "advance cold": [], "advance again": [], "advance idle": []}
        codes = set()
        new = round(rate * args.new_seconds)
        for r in range(args.rounds):
            rows["floor"].append(timed([sys.executable, "-c", FLOOR, *logs], env)[:2])
            shutil.rmtree(rollout_dir / "metrics", ignore_errors=True)
            secs, mb, code = timed([*rollout, "advance"], env)
            rows["advance cold"].append((secs, mb))
            codes.add(code)
            now = time.time()
            write_logs(root, hosts, new, now - args.new_seconds, now, seed=100 + r)
            secs, mb, code = timed([*rollout, "advance"], env)
            rows["advance again"].append((secs, mb))
            codes.add(code)
            secs, mb, code = timed([*rollout, "advance"], env)
            rows["advance idle"].append((secs, mb))
            codes.add(code)
        floor = statistics.median(s for s, _ in rows["floor"])
        print(f"rounds: {args.rounds}; new records per `advance again`: {new} per host ({new * args.hosts} in all)")
        for label, got in rows.items():
            secs = statistics.median(s for s, _ in got)
            mb = statistics.median(m for _, m in got)
            print(f"{label:14s} {secs:6.2f} s  peak {mb:6.0f} MB  ratio to floor {secs / floor:5.2f}x  ({', '.join(f'{s:.2f}' for s, _ in got)})")
        print(f"advance exit codes: {sorted(codes)} (5: the hold check keeps the gate inconclusive)")
        status = subprocess.run([*rollout, "status", "--json"], capture_output=True, text=True, env=env)
        gate = json.loads(status.stdout).get("last_gate") or {}
        for m in gate.get("measurements", [])[:3]:
            print(f"  {m.get('check')}: {m.get('outcome')}: {m.get('why', '')[:150]}")


if __name__ == "__main__":
    main()
