"""Time `rollout serve`'s endpoints on a rollout whose gate has measured many times.

A real rollout (local hosts, two metric checks) is taken live at 25% and gated three times through
the CLI; its last gate event is then journaled again (through the store, so the hash chain stays
whole) until the journal holds --looks gate events: a day's bake at a look a minute is 1440. The
real CLI serves it on a free loopback port; each endpoint is fetched --requests times, the first
(cold: the journal parsed) apart from the rest (warm: parsed once per change).

Usage: python3 bench/serve.py [--looks 1440] [--requests 50]
Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from rollout.edges.store import Rollout  # noqa: E402
from tests.test_serve import build_fleet  # noqa: E402


def fetch(port: int, path: str) -> tuple[float, int]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    began = time.perf_counter()
    conn.request("GET", path)
    r = conn.getresponse()
    body = r.read()
    took = time.perf_counter() - began
    conn.close()
    return took, len(body)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--looks", type=int, default=1440)
    ap.add_argument("--requests", type=int, default=50)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["HOME"] = tmp
        fleet = build_fleet(Path(tmp))
        folder = fleet.rollout_dir()
        rollout = Rollout(folder)
        gates = [e for e in rollout.events() if e["event"] == "gate"]
        last = {k: v for k, v in gates[-1].items() if k not in ("time", "event", "stage", "seq", "prev")}
        for _ in range(args.looks - len(gates)):
            rollout.log("gate", **last)
        size = (folder / "events.jsonl").stat().st_size
        print(f"journal: {len(rollout.events())} events, {size / 1e6:.1f} MB, {args.looks} gate looks")
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rollout",
                "--state-dir",
                str(fleet.state),
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--json",
            ],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        assert proc.stdout is not None
        port = int(json.loads(proc.stdout.readline())["url"].rsplit(":", 1)[1].rstrip("/"))
        try:
            for path in (
                "/api/rollouts",
                f"/api/rollouts/{folder.name}",
                f"/api/rollouts/{folder.name}/series",
                f"/api/rollouts/{folder.name}/series?points=600",  # what the page asks for
                "/metrics",
                "/",
            ):
                cold, size = fetch(port, path)
                warm = sorted(fetch(port, path)[0] for _ in range(args.requests))
                print(
                    f"{path.replace(folder.name, 'ID'):<34} {size / 1e3:8.1f} kB  first {cold * 1e3:7.1f} ms  "
                    f"then median {statistics.median(warm) * 1e3:6.1f} ms, p95 {warm[int(0.95 * (len(warm) - 1))] * 1e3:6.1f} ms"
                )
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
