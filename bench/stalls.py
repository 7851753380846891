"""Measure when the whole machine stood still, so a benchmark can tell its own time from a host's pauses.

A virtual machine on a busy host is sometimes not run at all: every vCPU is stopped together, for
tens of milliseconds up to seconds. A wall-clock benchmark then measures the neighbours. This starts
one sleeper per CPU, pinned to it and scheduled SCHED_FIFO (it preempts everything else there, so
our own load never delays it), waking every millisecond. A gap of more than `GAP_S` between two
wake-ups means that CPU did not run. Time during which every sleeper saw such a gap is time the
machine was stalled; `running(a, z)` is the wall time between `a` and `z` minus that.

Stalls shorter than `GAP_S`, or on only some of the CPUs, are not subtracted: the figure errs
towards counting the pause as ours. SCHED_FIFO needs root (or CAP_SYS_NICE); without it the meter is
off and `running` is the wall time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GAP_S = 0.02

SLEEPER = r"""
import os, sys, time
os.sched_setaffinity(0, {int(sys.argv[2])})
os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
out = open(sys.argv[1], "w", buffering=1)
print("ready", flush=True)
parent = os.getppid()
last = time.monotonic()
while os.getppid() == parent:  # ends with the benchmark, even one killed with -9
    time.sleep(0.001)
    now = time.monotonic()
    if now - last > float(sys.argv[3]):
        out.write(f"{last:.6f} {now:.6f}\n")
    last = now
"""

Interval = tuple[float, float]


class StallMeter:
    """Sleepers on every CPU; `running(a, z)` gives wall time minus whole-machine stalls."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="stalls-")
        self._procs: list[subprocess.Popen[bytes]] = []
        self.off_reason: str | None = None
        for cpu in sorted(os.sched_getaffinity(0)):
            path = Path(self._dir.name) / f"cpu{cpu}"
            proc = subprocess.Popen(
                [sys.executable, "-c", SLEEPER, str(path), str(cpu), str(GAP_S)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            if proc.stdout is None or proc.stdout.readline().strip() != b"ready":
                proc.wait()
                assert proc.stderr is not None
                why = proc.stderr.read().decode(errors="replace").strip().splitlines()
                self.off_reason = why[-1] if why else f"sleeper exited {proc.returncode}"
                self.close()
                return
            self._procs.append(proc)

    @property
    def on(self) -> bool:
        return bool(self._procs)

    def stalled(self, a: float, z: float) -> float:
        """Seconds within [a, z] (time.monotonic) during which every CPU was stalled."""
        if not self.on:
            return 0.0
        time.sleep(2 * GAP_S)  # a sleeper writes its last gap once it runs again
        per_cpu = [_gaps(Path(self._dir.name) / f"cpu{n}") for n in range(len(self._procs))]
        return overlap(all_stalled(per_cpu), a, z)

    def running(self, a: float, z: float) -> float:
        """Wall seconds from `a` to `z` minus the whole-machine stalls in between."""
        return (z - a) - self.stalled(a, z)

    def __enter__(self) -> StallMeter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for proc in self._procs:
            proc.kill()
            proc.wait()
        self._procs = []
        self._dir.cleanup()


def _gaps(path: Path) -> list[Interval]:
    out = []
    for line in path.read_text().splitlines():
        start, end = line.split()
        out.append((float(start), float(end)))
    return out


def all_stalled(per_cpu: list[list[Interval]]) -> list[Interval]:
    """Return the intervals during which every CPU was stalled (each list sorted and disjoint)."""
    together = per_cpu[0]
    for gaps in per_cpu[1:]:
        together = _intersect(together, gaps)
    return together


def overlap(intervals: list[Interval], a: float, z: float) -> float:
    """Return how many seconds of [a, z] the intervals cover."""
    return sum(max(0.0, min(z, end) - max(a, start)) for start, end in intervals)


def _intersect(xs: list[Interval], ys: list[Interval]) -> list[Interval]:
    """Return the overlaps of two sorted lists of disjoint intervals."""
    out, i, j = [], 0, 0
    while i < len(xs) and j < len(ys):
        start, end = max(xs[i][0], ys[j][0]), min(xs[i][1], ys[j][1])
        if end > start:
            out.append((start, end))
        if xs[i][1] < ys[j][1]:
            i += 1
        else:
            j += 1
    return out
