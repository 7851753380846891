"""Load on one `rollout serve`: N simulated agents polling their assignment every P seconds.

    PYTHONPATH=. python3 bench/pull_load.py --agents 10000 --period 60 --seconds 30 --burst 2

Prints requests/s, p50/p99 latency, the server's CPU and RSS, and how long `rollout status` takes
meanwhile. Hosts are added and a pull rollout is started in a temp state folder first.
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--agents", type=int, default=10000)
    ap.add_argument("--period", type=float, default=60.0)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--burst", type=float, default=2.0, help="rate multiplier for the second half")
    ap.add_argument("--workers", type=int, default=32)
    a = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="pull-load-"))
    state = root / "state"
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from rollout.hosts.pullstore import PullStore

    store = PullStore(state)
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
    t0 = time.time()
    subprocess.run([*cli, "start", str(root / "pb.yml")], env=env, capture_output=True, check=False)
    print(f"start (publishes {len(hosts)} assignments): {time.time() - t0:.1f}s")
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
    srv.terminate()
    srv.wait()
    lat.sort()
    n = len(lat)
    print(f"target rate {rate:.0f} req/s (burst x{a.burst} in the second half)")
    print(f"requests {n} in {elapsed:.1f}s: {n / elapsed:.0f} req/s, errors {errors[0]}")
    print(f"latency p50 {lat[n // 2] * 1000:.1f} ms, p99 {lat[int(n * 0.99)] * 1000:.1f} ms")
    print(f"server CPU {100 * (cpu1 - cpu0) / elapsed:.0f}% of one core, RSS {rss / 2**20:.0f} MiB")
    busy = sorted(status_times)[len(status_times) // 2]
    print(f"rollout status with no polls: median {idle[len(idle) // 2] * 1000:.0f} ms over {len(idle)} runs")
    print(
        f"rollout status meanwhile: median {busy * 1000:.0f} ms over {len(status_times)} runs "
        f"({busy / idle[len(idle) // 2]:.2f}x)"
    )


if __name__ == "__main__":
    main()
