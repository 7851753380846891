"""OpenCode's store read whole vs read on from its time.created cursor (one host's store).

    python3 bench/opencode_store.py [--messages 50000] [--new 500] [--rounds 5]

Prints the median seconds of: the whole read (every message decoded, as before cursors), the
first cursor read (the same work), and a look after `--new` messages were added (only those).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rollout.checks.metrics.opencode_cursor import read_store  # noqa: E402
from rollout.checks.metrics.opencode_store import read_opencode_bytes  # noqa: E402
from tests import opencode_db  # noqa: E402

T0 = 1_780_000_000_000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=50_000)
    ap.add_argument("--new", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-opencode-"))
    db = folder / "opencode.db"
    conn = opencode_db.create(db, [opencode_db.assistant(T0 + i * 100, 1000) for i in range(a.messages)])
    before = db.read_bytes()
    for i in range(a.new):
        created = T0 + (a.messages + i) * 100
        data = opencode_db.assistant(created, 1000)
        conn.execute("INSERT INTO message VALUES (?, 'ses_1', ?, ?, ?)", (f"n{i}", created, created, json.dumps(data)))
    conn.commit()
    after = db.read_bytes()
    whole, first, again = [], [], []
    for _ in range(a.rounds):
        t = time.perf_counter()
        read_opencode_bytes(after)
        whole.append(time.perf_counter() - t)
        t = time.perf_counter()
        seen = read_store(before, None, None, float("-inf"))
        first.append(time.perf_counter() - t)
        t = time.perf_counter()
        got = read_store(after, None, seen, float("-inf"))
        again.append(time.perf_counter() - t)
        assert len(got.calls) == a.messages + a.new and not got.from_start
    w, f, g = (statistics.median(x) for x in (whole, first, again))
    print(f"store of {a.messages} messages (+{a.new} new), medians of {a.rounds}:")
    print(f"  whole read (before cursors)     {w:.3f} s")
    print(f"  first look with a cursor        {f:.3f} s")
    print(f"  next look, {a.new} new messages  {g:.3f} s  ({g / w:.2f}x the whole read)")


if __name__ == "__main__":
    main()
