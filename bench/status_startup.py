"""Time `rollout status` on a small rollout against `python3 -c 'import click, yaml'` (the floor:
the two libraries any click + YAML tool loads), in pairs (A B A B ...), and print the median of
the per-pair ratios of CPU and wall time. Bytecode is compiled first, as an installed package has it.

Usage: python3 bench/status_startup.py [--runs 21]
Also: python3 -X importtime -m rollout --state-dir DIR status   (what each import costs)
"""

from __future__ import annotations

import argparse
import compileall
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def cpu_of(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Return the wall and CPU seconds (user + system) of one run of `cmd`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=21)
    args = ap.parse_args()
    compileall.compile_dir(str(REPO / "rollout"), quiet=1)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rollout = [sys.executable, "-m", "rollout", "--state-dir", str(root / "state")]
        # the demo: 8 local hosts through every stage, its gates (metric checks) on simulated traffic
        subprocess.run([*rollout, "demo", "--dir", str(root / "demo")], env=env, check=True, capture_output=True)
        status = [*rollout, "status"]
        floor = [sys.executable, "-c", "import click, yaml"]
        cpu_of(status, env)  # warm-up (the first status also keeps the stage clock as a blob)
        cpu_of(floor, env)
        pairs = []
        for _ in range(args.runs):
            a, b = cpu_of(status, env), cpu_of(floor, env)
            pairs.append((a, b))
    wall = statistics.median(a[0] / b[0] for a, b in pairs)
    cpu = statistics.median(a[1] / b[1] for a, b in pairs)
    print(f"status: wall {statistics.median(a[0] for a, _ in pairs) * 1000:.0f} ms, "
          f"cpu {statistics.median(a[1] for a, _ in pairs) * 1000:.0f} ms")
    print(f"floor (import click, yaml): wall {statistics.median(b[0] for _, b in pairs) * 1000:.0f} ms, "
          f"cpu {statistics.median(b[1] for _, b in pairs) * 1000:.0f} ms")
    print(f"ratio (median of {args.runs} pairs): wall {wall:.2f}x, cpu {cpu:.2f}x")


if __name__ == "__main__":
    main()
