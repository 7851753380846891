"""What a bundle costs: `rollout run --auto` over a local fleet with one file per host against two
files per host (one of them a merge patch, so every host gets its own candidate), and with an
activate command. Prints the wall time of each, median of --repeat runs.

    python bench/bundle_fleet.py --hosts 20 --repeat 3
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
from typing import Any

import yaml


def _fleet(root: Path, hosts: list[str], variant: str) -> Path:
    for h in hosts:
        folder = root / "fleet" / h
        folder.mkdir(parents=True)
        (folder / "opencode.json").write_text(json.dumps({"model": "a/b", "mcp": {h: {"type": "local"}}}))
        (folder / "oh-my-opencode.json").write_text(json.dumps({"agents": {"build": {"model": "a/b"}}}))
    (root / "opencode.json").write_text(json.dumps({"model": "openai/gpt-5.2"}))
    (root / "patch.json").write_text(json.dumps({"agents": {"build": {"model": "openai/gpt-5.2"}}}))
    one = {"source": "opencode.json", "path": "fleet/{host}/opencode.json", "kind": "json"}
    config: dict[str, Any] = dict(one)
    if variant != "one file":
        patch = {"patch": "patch.json", "patch_format": "merge", "path": "fleet/{host}/oh-my-opencode.json"}
        config = {"files": [one, {**patch, "kind": "json"}]}
    if variant == "two files + activate":
        config["activate"] = "true"
    book = {
        "name": "bench",
        "config": config,
        "targets": {"transport": "local", "hosts": hosts},
        "stages": ["shadow", 25, 50, 100],
        "health": {"checks": [{"name": "present", "run": 'test -s "$ROLLOUT_CONFIG_PATH"'}]},
    }
    playbook = root / "playbook.yml"
    playbook.write_text(yaml.safe_dump(book, sort_keys=False))
    return playbook


def _once(n: int, variant: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        playbook = _fleet(root, [f"dev-{i:02d}" for i in range(1, n + 1)], variant)
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "rollout", "--state-dir", str(root / "state"), "run", str(playbook), "--auto"],
            capture_output=True,
            text=True,
            env=dict(os.environ),
        )
        took = time.monotonic() - started
        if proc.returncode != 0:
            raise SystemExit(f"{variant}: exit {proc.returncode}\n{proc.stdout}{proc.stderr}")
        return took


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for variant in ("one file", "two files (one patched)", "two files + activate"):
        times = [_once(args.hosts, variant) for _ in range(args.repeat)]
        print(f"{variant:28} {args.hosts} hosts: run --auto median {statistics.median(times):.2f}s "
              f"(min {min(times):.2f}s, max {max(times):.2f}s, {args.repeat} runs)")  # fmt: skip


if __name__ == "__main__":
    main()
