"""OpenCode's store read on from its `time.created` cursor: only new messages are decoded, a
message still streaming at one look counts once when it finishes, a store that lost messages
before the cursor is read again from its start, and the numbers equal a whole read's."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from rollout.checks.metrics import opencode_cursor
from rollout.checks.metrics.opencode_cursor import read_store, store_usage
from rollout.checks.metrics.opencode_store import read_opencode_bytes
from rollout.models.calls import Calls
from tests import opencode_db

T0 = 1_780_000_000_000  # ms


@pytest.fixture(autouse=True)
def _fresh():
    opencode_cursor.forget_all()
    yield
    opencode_cursor.forget_all()


def _bytes(path: Path) -> bytes:
    return path.read_bytes()


def _whole(path: Path) -> Calls:
    return Calls.from_records(read_opencode_bytes(path.read_bytes()).records)


def _add(conn, i: int, data: dict) -> None:
    created = data["time"]["created"]
    conn.execute(
        "INSERT INTO message VALUES (?, 'ses_1', ?, ?, ?)", (f"msg_x{i:05d}", created, created, json.dumps(data))
    )
    conn.commit()


def _same(a: Calls, b: Calls) -> None:
    assert len(a) == len(b)
    for x, y in zip(a.columns(), b.columns(), strict=True):
        assert list(x) == list(y)


def test_a_second_look_decodes_only_new_messages_and_counts_a_finished_one_once(tmp_path):
    db = tmp_path / "opencode.db"
    rng = random.Random(7)
    first = [opencode_db.assistant(T0 + i * 1000, rng.randint(500, 4000), cost=rng.random() / 10) for i in range(200)]
    streaming = opencode_db.assistant(T0 + 200_500, None)  # not finished at the first look
    conn = opencode_db.create(db, [*first, opencode_db.user(T0 + 100), streaming])
    one = read_store(_bytes(db), None, None, float("-inf"))
    assert one.from_start and one.rows_read == 202 and len(one.calls) == 200
    assert one.after_ms == T0 + 200_500  # held at the message still streaming

    # It finishes; three more arrive.
    streaming["time"]["completed"] = T0 + 203_000
    conn.execute("UPDATE message SET data = ? WHERE id = 'msg_0201'", (json.dumps(streaming),))
    for i in range(3):
        _add(conn, i, opencode_db.assistant(T0 + 210_000 + i * 1000, 1000))
    two = read_store(_bytes(db), None, one, float("-inf"))
    assert not two.from_start
    assert two.rows_read == 4  # the finished one and the three new: nothing older decoded again
    _same(two.calls, _whole(db))

    # Nothing new: nothing decoded but the newest (already counted), same calls.
    three = read_store(_bytes(db), None, two, float("-inf"))
    assert three.rows_read == 1 and len(three.calls) == 204
    _same(three.calls, _whole(db))


def test_a_store_that_lost_older_messages_is_read_again_from_its_start(tmp_path):
    db = tmp_path / "opencode.db"
    conn = opencode_db.create(db, [opencode_db.assistant(T0 + i * 1000, 1000) for i in range(50)])
    seen = read_store(_bytes(db), None, None, float("-inf"))
    conn.execute("DELETE FROM message WHERE id = 'msg_0003'")  # pruned (or a new store)
    conn.commit()
    again = read_store(_bytes(db), None, seen, float("-inf"))
    assert again.from_start and len(again.calls) == 49
    _same(again.calls, _whole(db))


def test_an_older_message_rewritten_in_place_is_caught(tmp_path):
    db = tmp_path / "opencode.db"
    conn = opencode_db.create(db, [opencode_db.assistant(T0 + i * 1000, 1000, cost=0.01) for i in range(20)])
    seen = read_store(_bytes(db), None, None, float("-inf"))
    changed = opencode_db.assistant(T0 + 5000, 1000, cost=12.5)  # a longer row: its bytes differ
    conn.execute("UPDATE message SET data = ? WHERE id = 'msg_0005'", (json.dumps(changed),))
    conn.commit()
    again = read_store(_bytes(db), None, seen, float("-inf"))
    assert again.from_start
    _same(again.calls, _whole(db))


def test_the_window_lets_old_calls_go_and_a_look_further_back_reads_again(tmp_path):
    db = tmp_path / "opencode.db"
    opencode_db.create(db, [opencode_db.assistant(T0 + i * 1000, 1000) for i in range(100)])
    key = ("opencode", "dev-01", str(db), "")
    near = store_usage(key, _bytes(db), None, (T0 + 60_000) / 1000)
    assert len(near.calls) == 40 and near.first_ts == T0 / 1000  # when logging began is kept
    far = store_usage(key, _bytes(db), None, float("-inf"))  # reaches back past what was let go
    assert far.from_start and len(far.calls) == 100


def test_a_wal_file_is_folded_in(tmp_path):
    db = tmp_path / "opencode.db"
    conn = opencode_db.create(db, [opencode_db.assistant(T0, 1000)], wal=True)
    _add(conn, 1, opencode_db.assistant(T0 + 5000, 1000))
    wal = (tmp_path / "opencode.db-wal").read_bytes()
    got = read_store(_bytes(db), wal, None, float("-inf"))
    assert len(got.calls) == 2
