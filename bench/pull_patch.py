"""A patch over a pull fleet: `rollout start` over N hosts that have reported, and the fold of N
late baselines (each laptop's candidate computed from the bytes of its first report).

    PYTHONPATH=. python3 bench/pull_patch.py --hosts 1000 10000

Each host's opencode.json is its own (a `username` of its own: no two hosts share a baseline, so
nothing is patched or diffed once for many), patched with the shipped model-assignment merge patch.
Reports are written into the inbox as the server keeps them (no server, no agents: this measures
the verbs). Prints, per N: `start` with every host reported (patch, kind check, diff, backups,
assignments), and `status` folding N late first reports (the same work, under the lock), in
seconds and milliseconds per host.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PATH = "~/.config/opencode/opencode.json"


def own(host: str) -> bytes:
    return (
        "{\n"
        '  "$schema": "https://opencode.ai/config.json",\n'
        "  // my own proxy\n"
        f'  "username": "{host}",\n'
        '  "provider": {"corp": {"options": {"baseURL": "https://llm.corp.example/v1", "apiKey": "sk-x"}}},\n'
        '  "agent": {"build": {"model": "anthropic/claude-sonnet-4-5"}}\n'
        "}\n"
    ).encode()


def report(host: str) -> dict[str, object]:
    data = own(host)
    return {
        "time": time.time(),
        "report_id": host,
        "files": [{"path": PATH, "sha256": hashlib.sha256(data).hexdigest()}],
        "uploaded": {PATH: data.hex()},
        "errors": [],
        "drift": {},
        "agent_version": "bench",
        "applied": None,
        "seen": [host],
    }


def fleet(root: Path, n: int) -> tuple[Path, list[str], Path]:
    from rollout.hosts.pullstore import PullStore

    state = root / "state"
    hosts = [f"lap{i:05d}" for i in range(n)]
    PullStore(state).add_many(hosts)
    shutil.copytree(REPO / "playbooks" / "model-assignment", root / "model-assignment")
    pb = root / "pb.yml"
    pb.write_text(
        "name: bench\nconfig: {patch: model-assignment/opencode.json, patch_format: merge, "
        f"path: '{PATH}', kind: opencode}}\n"
        f"targets: {{transport: pull, hosts: [{', '.join(hosts)}]}}\nstages: [shadow, 25, 100]\n"
    )
    return state, hosts, pb


def timed(cli: list[str], *args: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    t0 = time.perf_counter()
    done = subprocess.run([*cli, *args], env=env, capture_output=True, text=True, check=False)
    took = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} exited {done.returncode}: {done.stdout[-500:]}{done.stderr[-500:]}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, nargs="+", default=[1000])
    a = ap.parse_args()
    sys.path.insert(0, str(REPO))
    from rollout.hosts.pullstore import PullStore

    for n in a.hosts:
        # 1. every host reported before start: start patches, checks and diffs each one.
        root = Path(tempfile.mkdtemp(prefix="pull-patch-"))
        state, hosts, pb = fleet(root, n)
        store = PullStore(state)
        for h in hosts:
            store.write_report(h, report(h))
        cli = [sys.executable, "-m", "rollout", "--state-dir", str(state)]
        took = timed(cli, "start", str(pb))
        print(f"N={n}: start, every host reported: {took:.1f}s ({took / n * 1000:.2f} ms/host)")
        shutil.rmtree(root)
        # 2. nobody reported at start; then every host's first report, folded by one `status`.
        root = Path(tempfile.mkdtemp(prefix="pull-patch-"))
        state, hosts, pb = fleet(root, n)
        store = PullStore(state)
        cli = [sys.executable, "-m", "rollout", "--state-dir", str(state)]
        took = timed(cli, "start", str(pb))
        print(f"N={n}: start, nobody reported: {took:.1f}s")
        idle = timed(cli, "status")
        for h in hosts:
            store.write_report(h, report(h))
        took = timed(cli, "status")
        rollout = next(p for p in state.iterdir() if (p / "state.json").exists())
        st = json.loads((rollout / "state.json").read_text())
        known = sum(1 for r in st["hosts"].values() if r["files"]["opencode.json"]["candidate_sha256"])
        groups = len(json.loads((rollout / "diffs" / "index.json").read_text()))
        print(
            f"N={n}: status folding {n} late first reports: {took:.1f}s "
            f"({(took - idle) / n * 1000:.2f} ms/host over an idle status of {idle:.2f}s); "
            f"{known} candidates, {groups} diff groups"
        )
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
