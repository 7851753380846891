"""Time checking an OpenCode config against a models.dev-sized catalog (unknown models included)."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from rollout import configkinds
from rollout.configkinds.base import ConfigContext
from rollout.models import catalog


def main(providers: int = 100, models: int = 30, agents: int = 50) -> None:
    """Print catalog load, clean check and all-unknown check times."""
    data = {
        f"prov{p}": {"id": f"prov{p}", "models": {f"model-{p}-{m}.{m % 7}": {
            "name": f"M{m}", "cost": {"input": 1, "output": 2}} for m in range(models)}}
        for p in range(providers)
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "catalog.json"
        path.write_text(json.dumps(data))
        t0 = time.perf_counter()
        catalog.load(path)
        load_s = time.perf_counter() - t0
        ctx = ConfigContext(Path(tmp), {"catalog": str(path)}, "opencode.json")
        for label, fmt in (("known", "prov{i}/model-{i}-{i}.{r}"), ("unknown", "prov{i}/modl-{i}-{i}.{r}x")):
            agent = {f"a{i}": {"description": "d", "model": fmt.format(i=i % providers, r=i % 7)}
                     for i in range(agents)}  # fmt: skip
            doc = json.dumps({"agent": agent}, indent=2).encode()
            t0 = time.perf_counter()
            problems = configkinds.check_candidate(doc, "opencode", ctx)
            took = time.perf_counter() - t0
            print(f"{label:8} {agents} agents vs {providers * models} models: {took * 1000:.0f} ms, "
                  f"{len(problems)} problem(s)")  # fmt: skip
        print(f"catalog load ({providers * models} models): {load_s * 1000:.0f} ms")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
