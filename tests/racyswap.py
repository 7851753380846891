"""Run the rollout CLI with a write racing the agent's swap (a test-side seam, not product code).

`python -m tests.racyswap BYTES rollout-args...`: the agent's second compare-and-swap of a poll
first writes BYTES over the file it is about to replace, as a developer's editor saving between
the agent's check of the file and its swap would; every other swap runs as it is.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any

import rollout.hosts.agent as agent


def arm(data: bytes) -> None:
    real = agent.swap_checked
    calls = [0]

    @functools.wraps(real)
    def racing(target: Path, *args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == 2:
            Path(target).write_bytes(data)
        return real(target, *args, **kwargs)

    agent.swap_checked = racing  # type: ignore[assignment]


def main() -> None:
    data = sys.argv[1].encode()
    sys.argv = ["rollout", *sys.argv[2:]]
    from rollout.cli import main as cli_main

    arm(data)
    cli_main()


if __name__ == "__main__":
    main()
