"""Run the rollout CLI and SIGKILL it at its Nth effect on disk (a test-side seam, not product code).

`python -m tests.killpoint N rollout-args...`: every fsync, rename, link, unlink and write is an
effect (on a `postgresql://` state, every statement sent to the server too); the process kills
itself just before effect N. Exit code 99 means it finished first.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any


def arm(limit: int) -> None:
    count = [0]

    def wrap(name: str) -> None:
        real = getattr(os, name)

        def effect(*args: Any, **kwargs: Any) -> Any:
            count[0] += 1
            if count[0] >= limit:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*args, **kwargs)

        setattr(os, name, effect)

    for name in ("fsync", "replace", "rename", "link", "unlink", "write"):
        wrap(name)
    if any(a.startswith(("postgresql://", "postgres://")) for a in sys.argv):
        # On a PostgreSQL state every statement sent to the server is an effect too.
        import psycopg

        for name in ("execute", "executemany"):  # Connection.execute goes through Cursor.execute
            real = getattr(psycopg.Cursor, name)

            def statement(*args: Any, _real: Any = real, **kwargs: Any) -> Any:
                count[0] += 1
                if count[0] >= limit:
                    os.kill(os.getpid(), signal.SIGKILL)
                return _real(*args, **kwargs)

            setattr(psycopg.Cursor, name, statement)


def main() -> None:
    limit = int(sys.argv[1])
    sys.argv = ["rollout", *sys.argv[2:]]
    from rollout.cli import main as cli_main

    arm(limit)
    try:
        cli_main()
    except SystemExit:
        pass
    os._exit(99)


if __name__ == "__main__":
    main()
