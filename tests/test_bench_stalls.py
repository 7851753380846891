"""The bench's stall meter: only time every CPU stood still is taken off a measurement."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from stalls import all_stalled, overlap  # noqa: E402


def test_only_stalls_seen_on_every_cpu_count():
    cpu0 = [(1.0, 2.0), (5.0, 6.0), (9.0, 9.5)]
    cpu1 = [(1.5, 3.0), (5.2, 5.4), (7.0, 8.0)]
    assert all_stalled([cpu0, cpu1]) == [(1.5, 2.0), (5.2, 5.4)]
    assert all_stalled([cpu0]) == cpu0
    assert all_stalled([cpu0, cpu1, [(0.0, 1.6)]]) == [(1.5, 1.6)]


def test_overlap_counts_only_the_part_inside_the_measurement():
    stalls = [(1.5, 2.0), (5.2, 5.4)]
    assert abs(overlap(stalls, 0.0, 10.0) - 0.7) < 1e-9
    assert abs(overlap(stalls, 1.75, 5.3) - 0.35) < 1e-9
    assert overlap(stalls, 2.0, 5.2) == 0.0
