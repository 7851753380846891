"""A rollout's named bytes (read_blob/write_blob): the seam new persistent things go through."""

from __future__ import annotations

import stat
from pathlib import Path

from rollout.edges.store import Rollout


def _rollout(tmp_path: Path) -> Rollout:
    folder = tmp_path / "r1"
    folder.mkdir()
    r = Rollout.__new__(Rollout)
    r.dir = folder
    return r


def test_missing_blob_reads_as_none(tmp_path: Path) -> None:
    assert _rollout(tmp_path).read_blob("metrics/cursor.json") is None


def test_blob_round_trips_owner_only(tmp_path: Path) -> None:
    r = _rollout(tmp_path)
    r.write_blob("metrics/cursor.json", b'{"a": 1}')
    r.write_blob("metrics/cursor.json", b'{"a": 2}')
    assert r.read_blob("metrics/cursor.json") == b'{"a": 2}'
    assert stat.S_IMODE((r.dir / "metrics" / "cursor.json").stat().st_mode) == 0o600
