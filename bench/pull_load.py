"""Load on one `rollout serve`: N simulated agents polling their assignment every P seconds.

    PYTHONPATH=. python3 bench/pull_load.py --agents 10000 --period 60 --seconds 30 --burst 2
    PYTHONPATH=. python3 bench/pull_load.py --agents 10000 --postgres        # a PostgreSQL state
    PYTHONPATH=. python3 bench/pull_load.py --state 'postgresql://...?namespace=load-1'

Prints requests/s, p50/p99 latency, the server's CPU and RSS (and, on PostgreSQL, the database
server's CPU), and how long `rollout status` takes meanwhile. Hosts are added and a pull rollout is
started in a temp state folder first (or on the state server: `--postgres` starts one with
tests/pgserver.py in a fresh namespace; `--state URL` names one, whose namespace should be new).
`--reports` has every host report its baseline first, so `status` folds a report per host.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--agents", type=int, default=10000)
    ap.add_argument("--period", type=float, default=60.0)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--burst", type=float, default=2.0, help="rate multiplier for the second half")
    ap.add_argument("--workers", type=int, default=32)
    ap.add_argument("--state", default=None, help="a postgresql:// state URL (default: a temp folder)")
    ap.add_argument("--postgres", action="store_true", help="start a PostgreSQL server (tests/pgserver.py)")
    ap.add_argument("--reports", action="store_true", help="every host reports its baseline before the load")
    a = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="pull-load-"))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from rollout.edges.backends import open_pull_store

    pg_server = None
    if a.postgres:
        import uuid

        from tests import pgserver

        pg_server = pgserver.start_postgres()
        a.state = pg_server.url("postgres", namespace=f"load-{uuid.uuid4().hex[:8]}")
    state: Path | str = a.state or root / "state"
    print(f"state: {state}")
    try:
        run(a, root, state, open_pull_store)
    finally:
        if pg_server is not None:
            pg_server.stop()


def _pg_cpu() -> float:
    """Return the CPU seconds of every `postgres` process of this machine."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)
        except OSError:
            continue
        if not fields[0].endswith("(postgres"):
            continue
        rest = fields[1].split()
        total += (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")
    return total


def run(a: argparse.Namespace, root: Path, state: Path | str, open_pull_store: Any) -> None:
    store = open_pull_store(state)
    hosts = [f"h{i:05d}" for i in range(a.agents)]
    tokens = {}
    t0 = time.time()
    tokens.update(store.add_many(hosts))  # one write (`rollout hosts add` per host writes each time)
    print(f"added {len(hosts)} hosts in {time.time() - t0:.1f}s")
    (root / "c.json").write_text('{"model": "x/y"}\n')
    (root / "pb.yml").write_text(
        "name: load\nconfig: {source: c.json, path: '~/.config/opencode/opencode.json'}\n"
        f"targets: {{transport: pull, hosts: [{', '.join(hosts)}]}}\nstages: [shadow, 100]\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    cli = [sys.executable, "-m", "rollout", "--state-dir", str(state)]
    if a.reports:
        import hashlib

        baseline = b'{"model": "a/b"}\n'
        path = "~/.config/opencode/opencode.json"
        doc = {
            "time": time.time(),
            "report_id": "r0",
            "files": [{"path": path, "sha256": hashlib.sha256(baseline).hexdigest()}],
            "uploaded": {path: baseline.hex()},
            "errors": [],
            "drift": {},
            "agent_version": "bench",
            "applied": None,
            "seen": ["r0"],
        }
        t0 = time.time()
        for h in hosts:
            store.write_report(h, doc)
        print(f"wrote a report per host in {time.time() - t0:.1f}s")
    t0 = time.time()
    done = subprocess.run([*cli, "start", str(root / "pb.yml")], env=env, capture_output=True, check=False)
    print(f"start (publishes {len(hosts)} assignments): {time.time() - t0:.1f}s, exit {done.returncode}")
    if a.reports:
        t0 = time.time()
        subprocess.run([*cli, "status"], env=env, capture_output=True, check=False)
        print(f"first status (takes {len(hosts)} baselines): {time.time() - t0:.1f}s")
    srv = subprocess.Popen([*cli, "serve", "--listen", "127.0.0.1:0", "--json"], env=env, stdout=subprocess.PIPE, text=True)
    assert srv.stdout is not None
    url = json.loads(srv.stdout.readline())["url"]
    port = int(url.rsplit(":", 1)[1].strip("/"))
    rate = a.agents / a.period
    lat: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop = time.monotonic() + a.seconds
    half = time.monotonic() + a.seconds / 2
    counter = [0]

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while time.monotonic() < stop:
            with lock:
                i = counter[0]
                counter[0] += 1
            r = rate * (a.burst if time.monotonic() > half else 1.0)
            due = start + i / r if time.monotonic() <= half else start + i / r
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            h = hosts[i % len(hosts)]
            t = time.perf_counter()
            try:
                conn.request("GET", f"/v1/hosts/{h}/assignment", headers={"Authorization": f"Bearer {tokens[h]}"})
                resp = conn.getresponse()
                resp.read()
                ok = resp.status == 200
            except Exception:  # noqa: BLE001
                ok = False
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            with lock:
                lat.append(time.perf_counter() - t)
                errors[0] += 0 if ok else 1

    def cpu_rss() -> tuple[float, int]:
        stat = Path(f"/proc/{srv.pid}/stat").read_text().split()
        rss = int(Path(f"/proc/{srv.pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        return (int(stat[13]) + int(stat[14])) / os.sysconf("SC_CLK_TCK"), rss

    def status_once() -> float:
        t = time.perf_counter()
        subprocess.run([*cli, "status"], env=env, capture_output=True, check=False)
        return time.perf_counter() - t

    idle = sorted(status_once() for _ in range(7))  # the same state, the server up but not polled
    cpu0, _ = cpu_rss()
    pg0 = _pg_cpu()
    start = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(a.workers)]
    for t in threads:
        t.start()
    status_times = []
    while time.monotonic() < stop:
        status_times.append(status_once())
        time.sleep(1)
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    cpu1, rss = cpu_rss()
    pg1 = _pg_cpu()
    srv.terminate()
    srv.wait()
    lat.sort()
    n = len(lat)
    print(f"target rate {rate:.0f} req/s (burst x{a.burst} in the second half)")
    print(f"requests {n} in {elapsed:.1f}s: {n / elapsed:.0f} req/s, errors {errors[0]}")
    print(f"latency p50 {lat[n // 2] * 1000:.1f} ms, p99 {lat[int(n * 0.99)] * 1000:.1f} ms")
    print(f"server CPU {100 * (cpu1 - cpu0) / elapsed:.0f}% of one core, RSS {rss / 2**20:.0f} MiB")
    if pg1 > pg0:
        print(f"PostgreSQL CPU {100 * (pg1 - pg0) / elapsed:.0f}% of one core (every postgres process)")
    busy = sorted(status_times)[len(status_times) // 2]
    print(f"rollout status with no polls: median {idle[len(idle) // 2] * 1000:.0f} ms over {len(idle)} runs")
    print(
        f"rollout status meanwhile: median {busy * 1000:.0f} ms over {len(status_times)} runs "
        f"({busy / idle[len(idle) // 2]:.2f}x)"
    )


if __name__ == "__main__":
    main()
