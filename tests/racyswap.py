"""Run the rollout CLI with a write racing the agent's swap (a test-side seam, not product code).

`python -m tests.racyswap CALLS BYTES rollout-args...`: each of the agent's compare-and-swaps of a
poll numbered in CALLS (e.g. `2`, or `2,3`) first writes BYTES over the file it is about to
replace, as a developer's editor saving between the agent's check of the file and its swap would;
every other swap runs as it is.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any

import rollout.hosts.agent as agent


def arm(racing_calls: set[int], data: bytes) -> None:
    real = agent.swap_checked
    calls = [0]

    @functools.wraps(real)
    def racing(target: Path, *args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] in racing_calls:
            Path(target).write_bytes(data)
        return real(target, *args, **kwargs)

    agent.swap_checked = racing  # type: ignore[assignment]


def main() -> None:
    racing_calls = {int(n) for n in sys.argv[1].split(",")}
    data = sys.argv[2].encode()
    sys.argv = ["rollout", *sys.argv[3:]]
    from rollout.cli import main as cli_main

    arm(racing_calls, data)
    cli_main()


if __name__ == "__main__":
    main()
