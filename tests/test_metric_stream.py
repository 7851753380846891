"""Usage logs streamed into columns: the same numbers as records, read on from a cursor, rotations
and truncations read from the start, the window, blobs across processes, SSH, and no msgspec."""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rollout.checks.metrics import stream
from rollout.checks.metrics.assess import Bounds, assess
from rollout.checks.metrics.definitions import METRICS
from rollout.checks.metrics.periods import split_cohorts
from rollout.hosts.transports.local import LocalSession
from rollout.models import calls as calls_module
from rollout.models.usage import read_usage_bytes
from tests import metric_golden as golden
from tests.sshd import Sshd, _no_real_home, sshd, sshd_keys
from tests.test_ssh_transport import transport_for

__all__ = ["_no_real_home", "sshd", "sshd_keys"]


class Blobs:
    """The blob seam of a rollout (edges.store.Rollout in the product), kept in a dict."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def read_blob(self, name: str) -> bytes | None:
        return self.data.get(name)

    def write_blob(self, name: str, data: bytes) -> None:
        self.data[name] = data


@pytest.fixture(autouse=True)
def fresh_cursors() -> Iterator[None]:
    stream.forget_all()
    yield
    stream.forget_all()


def lines(n: int, start: float, step: float = 1.0, outcome: str = "success") -> bytes:
    return b"".join(
        json.dumps({"ts": start + i * step, "duration_s": 1.0 + i % 7, "outcome": outcome, "cost_usd": 0.01}).encode()
        + b"\n"
        for i in range(n)
    )


def close(a: Any, b: Any) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return bool(a == b)


def streamed_verdicts(tmp_path: Path) -> dict[str, Any]:
    for h in golden.HOSTS:
        (tmp_path / h).mkdir(exist_ok=True)
        (tmp_path / h / "usage.jsonl").write_bytes(golden.usage_lines(h))
    looks, counts = {}, {}
    for h in golden.HOSTS:
        usage, look = stream.host_usage(LocalSession(h, tmp_path), "usage-log", f"{h}/usage.jsonl", -math.inf, None)
        looks[h] = look
        counts[h] = [len(usage.calls), usage.bad]
    out: dict[str, Any] = {"_counts": counts}
    for name, spec in golden.CHECKS.items():
        metric = METRICS[name].over_window(golden.WINDOW)
        bounds = Bounds(spec.get("max"), spec.get("min"), spec["max_regression"], 10, 0.01)
        canary, baseline = split_cohorts(
            metric,
            {h: look.calls for h, look in looks.items()},
            golden.CANARY,
            golden.HOSTS[2:],
            golden.SWITCH,
            golden.NOW,
            golden.WINDOW,
            len(golden.HOSTS),
            {h: look.first_ts for h, look in looks.items() if look.first_ts is not None},
        )
        verdict = assess(metric, bounds, canary, baseline, 0.005)
        out[name] = json.loads(json.dumps(golden.summary(verdict.details, verdict.outcome)))
    return out


def test_streamed_columns_give_the_numbers_records_gave(tmp_path: Path) -> None:
    expected = json.loads(golden.GOLDEN.read_text())
    got = streamed_verdicts(tmp_path)
    assert got["_counts"] == expected["_counts"]
    outcomes = set()
    for name in golden.CHECKS:
        assert close(expected[name], got[name]), name
        outcomes.add(got[name]["outcome"])
    assert outcomes == {"pass", "fail", "inconclusive"}  # the seeded data decides every way


def test_without_msgspec_or_orjson_the_stdlib_path_gives_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "msgspec", None)  # import fails
    monkeypatch.setitem(sys.modules, "orjson", None)
    monkeypatch.delitem(sys.modules, "rollout.models.calls_msgspec", raising=False)
    calls_module.reset_decoder()
    try:
        assert calls_module.typed_decoder() is None
        assert calls_module.decoder() is json.loads
        expected = json.loads(golden.GOLDEN.read_text())
        got = streamed_verdicts(tmp_path)
        assert got["_counts"] == expected["_counts"]
        assert all(close(expected[n], got[n]) for n in golden.CHECKS)
    finally:
        calls_module.reset_decoder()


def test_odd_lines_are_read_or_refused_exactly_as_records_are() -> None:
    odd = [
        b'{"ts": "1764000000", "duration_s": 1, "outcome": "success"}',
        b"   ",
        b'{"ts": 5, "duration_s": 1.5, "outcome": "error", "gen_ai.usage.input_tokens": 3.7}',
        b'{"ts": true, "duration_s": 1, "outcome": "success"}',
        b"[1]",
        b'{"ts": "2026-11-25 10:00:00", "duration_s": 1, "outcome": "timeout", "failover": true}',
        b'{"ts": "2026-11-25T10:00:00+02:00", "duration_s": 1, "outcome": "success", "cost_usd": null}',
        b'{"ts": 7, "duration_s": 1, "outcome": "success", "gen_ai.agent.name": 5}',
        b'{"ts": 8, "duration_s": 1, "outcome": "success", "gen_ai.usage.input_tokens": 100000000000000000000000}',
        b"\xff\xfe",
        b'{"ts": 9, "duration_s": -1, "outcome": "success"}',
        b'{"ts": "2026-11-25T10:00:00.250Z", "duration_s": 2, "outcome": "rate_limited"}',
    ]
    data = b"\n".join(odd) + b"\n"
    builder = calls_module.CallsBuilder()
    builder.add_lines(data)
    got = builder.build()
    old = read_usage_bytes(data)
    ref = sorted(old.records, key=lambda r: r.ts)
    assert got.ts.tolist() == [r.ts for r in ref]
    assert got.tokens.tolist() == [float(r.input_tokens + r.output_tokens) for r in ref]
    assert got.outcome.tolist() == [calls_module.OUTCOME_CODE[r.outcome] for r in ref]
    assert builder.bad == len(old.bad_lines) == 6


def test_an_appended_log_is_read_on_from_where_the_last_look_stopped(tmp_path: Path) -> None:
    log = tmp_path / "usage.jsonl"
    log.write_bytes(lines(500, 1000.0))
    session = LocalSession("h", tmp_path)
    first, _ = stream.host_usage(session, "usage-log", "usage.jsonl", -math.inf, None)
    assert (first.lines_read, first.offset, len(first.calls)) == (500, log.stat().st_size, 500)
    with log.open("ab") as f:
        f.write(lines(30, 1500.0))
    again, look = stream.host_usage(session, "usage-log", "usage.jsonl", -math.inf, None)
    assert again.lines_read == 30 and not again.from_start  # only the new lines
    assert again.offset == log.stat().st_size and len(look.calls) == 530
    idle, _ = stream.host_usage(session, "usage-log", "usage.jsonl", -math.inf, None)
    assert idle.lines_read == 0 and len(idle.calls) == 530


def test_a_line_still_being_written_counts_once_whole_and_never_as_bad(tmp_path: Path) -> None:
    log = tmp_path / "usage.jsonl"
    record = lines(1, 2000.0)
    log.write_bytes(lines(10, 1000.0) + record[:20])  # a writer mid-line
    session = LocalSession("h", tmp_path)
    usage, look = stream.host_usage(session, "usage-log", "usage.jsonl", -math.inf, None)
    assert (len(look.calls), usage.bad) == (10, 0)
    with log.open("ab") as f:
        f.write(record[20:-1])  # whole now, newline still to come
    usage, look = stream.host_usage(session, "usage-log", "usage.jsonl", -math.inf, None)
    assert (len(look.calls), len(usage.calls), usage.bad) == (11, 10, 0)
    with log.open("ab") as f:
        f.write(b"\n")
    usage, look = stream.host_usage(session, "usage-log", "usage.jsonl", -math.inf, None)
    assert (len(look.calls), len(usage.calls), usage.lines_read) == (11, 11, 1)


def test_a_truncated_log_is_read_from_its_start(tmp_path: Path) -> None:
    log = tmp_path / "usage.jsonl"
    log.write_bytes(lines(200, 1000.0))
    session = LocalSession("h", tmp_path)
    stream.host_usage(session, "usage-log", "usage.jsonl", -math.inf, None)
    log.write_bytes(lines(20, 5000.0))  # truncated (smaller than the offset)
    usage, look = stream.host_usage(session, "usage-log", "usage.jsonl", -math.inf, None)
    assert usage.from_start and len(look.calls) == 20 and look.calls.ts[0] == 5000.0
    # truncated in place and grown past the old offset again (copytruncate): other first bytes
    with log.open("r+b") as f:
        f.truncate(0)
        f.write(lines(400, 9000.0, outcome="error"))
    usage, look = stream.host_usage(session, "usage-log", "usage.jsonl", -math.inf, None)
    assert usage.from_start and len(look.calls) == 400 and look.calls.ts[0] == 9000.0


def test_a_rotated_log_is_read_from_the_start_of_the_new_file(tmp_path: Path) -> None:
    log = tmp_path / "usage.jsonl"
    log.write_bytes(lines(100, 1000.0))
    session = LocalSession("h", tmp_path)
    before, _ = stream.host_usage(session, "usage-log", "usage.jsonl", -math.inf, None)
    os.rename(log, tmp_path / "usage.jsonl.1")
    log.write_bytes(lines(100, 1000.0) + lines(50, 3000.0))  # same first bytes, longer: only the inode tells
    usage, look = stream.host_usage(session, "usage-log", "usage.jsonl", -math.inf, None)
    assert usage.identity != before.identity
    assert usage.from_start and usage.lines_read == 150 and len(look.calls) == 150
    # a rewrite in place past the offset with the same first bytes: the bytes before the offset differ
    data = bytearray(log.read_bytes())
    data[-200] = ord("7") if data[-200] != ord("7") else ord("8")
    log.write_bytes(bytes(data) + lines(5, 4000.0))
    usage, _ = stream.host_usage(session, "usage-log", "usage.jsonl", -math.inf, None)
    assert usage.from_start and usage.lines_read == 155


def test_the_window_lets_old_calls_go_but_keeps_when_logging_began(tmp_path: Path) -> None:
    log = tmp_path / "usage.jsonl"
    log.write_bytes(lines(1000, 1000.0))  # one call a second from t=1000 to t=1999
    session = LocalSession("h", tmp_path)
    usage, look = stream.host_usage(session, "usage-log", "usage.jsonl", 1500.0, None)
    assert len(usage.calls) == 500 and usage.calls.ts[0] == 1500.0 and usage.first_ts == 1000.0
    assert look.first_ts == 1000.0
    # a later look wanting older calls again cannot be served from what was kept: read again
    usage, look = stream.host_usage(session, "usage-log", "usage.jsonl", 1200.0, None)
    assert usage.from_start and len(look.calls) == 800
    # the gate's periods: the same numbers as with every record
    metric = METRICS["error_rate"]
    records = {"h": read_usage_bytes(log.read_bytes()).records}
    kept = split_cohorts(metric, {"h": look.calls}, ("h",), (), {"h": 1900.0}, 2000.0, 600.0, 1, {"h": 1000.0})
    every = split_cohorts(metric, records, ("h",), (), {"h": 1900.0}, 2000.0, 600.0, 1)
    assert kept[0].samples == every[0].samples == 100
    assert kept[0].notes == every[0].notes


def test_cursors_survive_the_process_through_blobs_and_a_doubtful_blob_is_dropped(tmp_path: Path) -> None:
    log = tmp_path / "usage.jsonl"
    log.write_bytes(lines(300, 1000.0))
    session = LocalSession("h", tmp_path)
    blobs = Blobs()
    stream.host_usage(session, "usage-log", "usage.jsonl", -math.inf, blobs)
    [(name, blob)] = blobs.data.items()
    assert name.startswith("metrics/") and name.endswith(".bin")
    header = json.loads(blob.split(b"\n", 1)[0])
    assert (header["offset"], header["lines"], header["n"]) == (log.stat().st_size, 300, 300)
    with log.open("ab") as f:
        f.write(lines(7, 2000.0))
    stream.forget_all()  # a new process: only the blob is left
    usage, look = stream.host_usage(session, "usage-log", "usage.jsonl", -math.inf, blobs)
    assert usage.lines_read == 7 and not usage.from_start and len(look.calls) == 307
    # the same blob for another host, path or folder is not used
    other = LocalSession("h", tmp_path / "elsewhere")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "usage.jsonl").write_bytes(lines(3, 1.0))
    stream.forget_all()
    blobs.data[stream.blob_name(stream.memory_key("usage-log", other, "usage.jsonl"))] = blobs.data[name]
    usage, look = stream.host_usage(other, "usage-log", "usage.jsonl", -math.inf, blobs)
    assert usage.from_start and len(look.calls) == 3
    # a damaged blob is dropped, and the log read from its start
    stream.forget_all()
    blobs.data[name] = blobs.data[name][:-100] + b"x" * 100
    usage, look = stream.host_usage(session, "usage-log", "usage.jsonl", -math.inf, blobs)
    assert usage.from_start and usage.lines_read == 307 and len(look.calls) == 307


def test_an_ssh_host_log_is_read_on_from_its_offset(sshd: Sshd, tmp_path: Path) -> None:
    session = transport_for(sshd, tmp_path).open(sshd.spec(sshd.hosts[0]))
    try:
        remote = sshd.home / "stream-test" / "usage.jsonl"
        remote.parent.mkdir(parents=True, exist_ok=True)
        remote.write_bytes(lines(2000, 1000.0))
        first, _ = stream.host_usage(session, "usage-log", "stream-test/usage.jsonl", -math.inf, None)
        assert (first.lines_read, len(first.calls), first.offset) == (2000, 2000, remote.stat().st_size)
        with remote.open("ab") as f:
            f.write(lines(25, 5000.0, outcome="error"))
        again, look = stream.host_usage(session, "usage-log", "stream-test/usage.jsonl", -math.inf, None)
        assert again.lines_read == 25 and not again.from_start and len(look.calls) == 2025
        assert int((look.calls.outcome != 0).sum()) == 25
        remote.write_bytes(lines(10, 7000.0))  # truncated: no inode over SFTP, the size and bytes tell
        cut, look = stream.host_usage(session, "usage-log", "stream-test/usage.jsonl", -math.inf, None)
        assert cut.from_start and len(look.calls) == 10
    finally:
        session.close()
