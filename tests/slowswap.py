"""Run the rollout CLI with every local swap slowed down (a test-side seam, not product code).

`python -m tests.slowswap SECONDS rollout-args...`: each `swap` and `promote` of the local
transport sleeps SECONDS after it is done, so a test's kill -9 lands mid-stage.
"""

from __future__ import annotations

import functools
import sys
import time
from typing import Any

from rollout.hosts.transports.local import LocalSession


def arm(seconds: float) -> None:
    for name in ("swap", "promote"):
        real = getattr(LocalSession, name)

        @functools.wraps(real)
        def slowed(*args: Any, _real: Any = real, **kwargs: Any) -> Any:
            result = _real(*args, **kwargs)
            time.sleep(seconds)
            return result

        setattr(LocalSession, name, slowed)


def main() -> None:
    seconds = float(sys.argv[1])
    sys.argv = ["rollout", *sys.argv[2:]]
    from rollout.cli import main as cli_main

    arm(seconds)
    cli_main()


if __name__ == "__main__":
    main()
