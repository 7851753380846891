"""Usage records as columns: one compact array per field, no Python object kept per call.

A gate over a million calls keeps eight bytes per field per call (timestamps, cost, duration,
tokens) and one byte for the outcome and one for failover, sorted by time, instead of a
`UsageRecord` each. Lines are decoded and checked by msgspec (in C, into a typed struct: about
1.6 us a line here, where `json.loads` alone takes 2.7 us) when it is installed; a line it refuses,
and every line without it, goes through the standard library's `json` (or orjson, if installed)
and the same checks as `record_from_json`, so every path accepts and refuses the same lines.
"""

from __future__ import annotations

import json
import math
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rollout.models.usage import (
    AGENT,
    INPUT_TOKENS,
    MODEL,
    OUTCOMES,
    OUTPUT_TOKENS,
    BadRecord,
    UsageRecord,
    parse_ts,
    record_from_json,
)

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Floats = npt.NDArray[np.float64]
    Codes = npt.NDArray[np.uint8]

OUTCOME_CODE: dict[str, int] = {name: i for i, name in enumerate(OUTCOMES)}  # success is 0
SUCCESS = 0
FIELDS = ("ts", "cost", "duration", "tokens")  # float64 columns; then outcome, failover (uint8)
_EXACT_INT = 2**53  # token counts up to here add up exactly as floats


def _numpy() -> Any:
    import numpy

    return numpy


_decoder: Callable[[bytes], Any] | None = None
_typed: Any = None  # msgspec's decoder of usage lines, False when msgspec is not installed


def decoder() -> Callable[[bytes], Any]:
    """Return the plain JSON decoder for usage lines: orjson's when it can be imported, else json's."""
    global _decoder
    if _decoder is None:
        try:
            import orjson
        except ImportError:
            _decoder = json.loads
        else:
            _decoder = orjson.loads
    return _decoder


def typed_decoder() -> Any:
    """Return msgspec's decoder of one usage line into a checked struct, or None without msgspec."""
    global _typed
    if _typed is None:
        try:
            from rollout.models.calls_msgspec import DECODER
        except ImportError:
            _typed = False
        else:
            _typed = DECODER
    return _typed or None


def reset_decoder() -> None:
    """Forget the decoders chosen, so the next use looks for msgspec and orjson again."""
    global _decoder, _typed
    _decoder = _typed = None


@dataclass(frozen=True)
class Calls:
    """Calls of one host (or a period), one array per field, sorted by `ts` (ties in file order)."""

    ts: Floats
    cost: Floats
    duration: Floats
    tokens: Floats  # input + output
    outcome: Codes  # index into OUTCOMES
    failover: Codes  # 1 when a fallback model answered

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    @staticmethod
    def empty() -> Calls:
        np = _numpy()
        f, b = np.empty(0, dtype=np.float64), np.empty(0, dtype=np.uint8)
        return Calls(f, f, f, f, b, b)

    @staticmethod
    def from_records(records: Iterable[UsageRecord]) -> Calls:
        """Return the records' columns, sorted by time (stable, like sorted(key=ts))."""
        builder = CallsBuilder()
        for r in records:
            builder.add(r)
        return builder.build()

    def slice(self, a: int, b: int) -> Calls:
        """Return calls a..b (views, no copy)."""
        return Calls(
            self.ts[a:b], self.cost[a:b], self.duration[a:b], self.tokens[a:b],
            self.outcome[a:b], self.failover[a:b],
        )  # fmt: skip

    def since(self, horizon: float) -> Calls:
        """Return the calls stamped at or after `horizon`."""
        np = _numpy()
        cut = int(np.searchsorted(self.ts, horizon, side="left"))
        return self if cut == 0 else self.slice(cut, len(self))

    def merged(self, later: Calls) -> Calls:
        """Return these calls and `later` ones (read after them) in one time order; a call of
        `later` stamped like one of these comes after it, as a stable sort of the file would."""
        if not len(later):
            return self
        if not len(self):
            return later
        np = _numpy()
        if later.ts[0] >= self.ts[-1] and bool(np.all(later.ts[1:] >= later.ts[:-1])):
            return Calls(*(np.concatenate((a, b)) for a, b in zip(self.columns(), later.columns(), strict=True)))
        # Only the stretch the new calls reach back into needs sorting again.
        start = int(np.searchsorted(self.ts, later.ts.min(), side="right"))
        head = self.slice(0, start)
        tail = [np.concatenate((a[start:], b)) for a, b in zip(self.columns(), later.columns(), strict=True)]
        order = np.argsort(tail[0], kind="stable")
        return Calls(*(np.concatenate((h, t[order])) for h, t in zip(head.columns(), tail, strict=True)))

    def columns(self) -> tuple[Any, ...]:
        return (self.ts, self.cost, self.duration, self.tokens, self.outcome, self.failover)

    def to_bytes(self) -> bytes:
        """Return the columns as bytes (float64 columns, then the two byte columns)."""
        np = _numpy()
        return b"".join(memoryview(np.ascontiguousarray(c)).cast("B") for c in self.columns())

    @staticmethod
    def from_bytes(data: bytes | memoryview, n: int) -> Calls:
        """Return `n` calls from `to_bytes` output: read-only views of `data` (no copy)."""
        np = _numpy()
        if len(data) != n * (8 * len(FIELDS) + 2):
            raise ValueError("calls: size does not match the count")
        if n == 0:
            return Calls.empty()
        floats = [np.frombuffer(data, dtype=np.float64, count=n, offset=8 * n * i) for i in range(4)]
        base = 8 * n * 4
        codes = [np.frombuffer(data, dtype=np.uint8, count=n, offset=base + n * i) for i in range(2)]
        return Calls(*floats, *codes)


def concat(parts: Sequence[Calls]) -> Calls:
    """Return the calls of several parts one after another (not re-sorted)."""
    if len(parts) == 1:
        return parts[0]
    if not parts:
        return Calls.empty()
    np = _numpy()
    return Calls(*(np.concatenate(cols) for cols in zip(*(p.columns() for p in parts), strict=True)))


class CallsBuilder:
    """Collects decoded calls into typed arrays (8 or 1 bytes a field), then sorts them by time."""

    def __init__(self) -> None:
        self.ts, self.cost, self.duration, self.tokens = array("d"), array("d"), array("d"), array("d")
        self.outcome, self.failover = array("B"), array("B")
        self.bad = 0
        self.bad_examples: list[tuple[int, str]] = []  # the first few (line, reason)

    def add(self, r: UsageRecord) -> None:
        self.ts.append(r.ts)
        self.cost.append(r.cost_usd)
        self.duration.append(r.duration_s)
        self.tokens.append(float(r.input_tokens + r.output_tokens))
        self.outcome.append(OUTCOME_CODE[r.outcome])
        self.failover.append(1 if r.failover else 0)

    def _bad(self, lineno: int, why: str) -> None:
        self.bad += 1
        if len(self.bad_examples) < 5:
            self.bad_examples.append((lineno, why))

    def add_lines(self, data: bytes, first_line: int = 1) -> None:
        """Decode JSON lines (`first_line` is the first one's number); blank lines are skipped,
        bad ones counted. msgspec decodes a whole chunk at once; a chunk with a line it refuses is
        decoded line by line, and each refused line gets the plain path's checks and reasons."""
        typed = typed_decoder()
        if typed is None:
            self._add_plain(data, first_line)
            return
        try:
            self._add_structs(typed.decode_lines(data))
            return
        except Exception:  # noqa: BLE001 - some line is unusual: find it line by line
            pass
        pending: list[Any] = []
        for lineno, line in enumerate(data.split(b"\n"), start=first_line):
            try:
                pending.append(typed.decode(line))
            except Exception:  # noqa: BLE001
                self._add_structs(pending)
                pending = []
                self._add_plain(line, lineno)
        self._add_structs(pending)

    def _add_structs(self, recs: list[Any]) -> None:
        if not recs:
            return
        codes = OUTCOME_CODE
        self.ts.extend(array("d", [r.ts if type(r.ts) is float else _epoch(r.ts) for r in recs]))
        self.cost.extend(array("d", [r.cost_usd for r in recs]))
        self.duration.extend(array("d", [r.duration_s for r in recs]))
        self.tokens.extend(array("d", [float(r.input_tokens + r.output_tokens) for r in recs]))
        self.outcome.extend(array("B", [codes[r.outcome] for r in recs]))
        self.failover.extend(array("B", [r.failover for r in recs]))

    def _add_plain(self, data: bytes, first_line: int) -> None:
        """Decode lines with the plain decoder; the checks below are those of `record_from_json`,
        which gets anything unusual, so both give the same records."""
        loads = decoder()
        ts_add, cost_add, dur_add = self.ts.append, self.cost.append, self.duration.append
        tok_add, out_add, fail_add = self.tokens.append, self.outcome.append, self.failover.append
        codes, stamps = OUTCOME_CODE, _stamp_cache
        lineno = first_line - 1
        inf = math.inf
        for line in data.split(b"\n"):
            lineno += 1
            try:
                obj = loads(line)
            except ValueError:
                text = line.decode("utf-8", errors="replace").strip()
                if not text:
                    continue
                try:
                    obj = json.loads(text)  # what orjson refuses and json reads (ints past 64 bits)
                except ValueError as e:
                    self._bad(lineno, f"invalid JSON: {e}")
                    continue
            try:
                ts = obj["ts"]
                if type(ts) is str:
                    t = stamps.get(ts)
                    if t is None:
                        t = _stamp(ts)
                        if len(stamps) > 65536:
                            stamps.clear()
                        stamps[ts] = t
                elif (type(ts) is float or type(ts) is int) and 0 <= ts < inf:
                    t = float(ts)
                else:
                    raise BadRecord
                code = codes[obj["outcome"]]
                fo = obj.get("failover", False)
                d = obj["duration_s"]
                c = obj.get("cost_usd", 0)
                i = obj.get(INPUT_TOKENS, 0)
                o = obj.get(OUTPUT_TOKENS, 0)
                a = obj.get(AGENT)
                m = obj.get(MODEL)
                if (
                    (fo is not False and fo is not True)
                    or not (type(d) is float or type(d) is int)
                    or not 0 <= d < inf
                    or not (type(c) is float or type(c) is int)
                    or not 0 <= c < inf
                    or type(i) is not int
                    or type(o) is not int
                    or not 0 <= i < _EXACT_INT
                    or not 0 <= o < _EXACT_INT
                    or not (a is None or type(a) is str)
                    or not (m is None or type(m) is str)
                ):
                    raise BadRecord
            except Exception:  # noqa: BLE001 - anything unusual: the full check says what
                try:
                    self.add(record_from_json(obj))
                except BadRecord as e:
                    self._bad(lineno, str(e))
                continue
            ts_add(t)
            cost_add(c)
            dur_add(d)
            tok_add(float(i + o))
            out_add(code)
            fail_add(1 if fo else 0)

    def build(self) -> Calls:
        """Return the calls collected, sorted by time (ties keep the order they were read in)."""
        np = _numpy()
        if not len(self.ts):
            return Calls.empty()
        # Views of the arrays (no copy): the builder's arrays live on in them.
        cols = [
            np.frombuffer(a, dtype=np.float64 if a.typecode == "d" else np.uint8)
            for a in (self.ts, self.cost, self.duration, self.tokens, self.outcome, self.failover)
        ]
        ts = cols[0]
        if not bool(np.all(ts[1:] >= ts[:-1])):
            order = np.argsort(ts, kind="stable")
            cols = [c[order] for c in cols]
        return Calls(*cols)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _epoch(stamp: datetime) -> float:
    """Return epoch seconds of a decoded ISO 8601 stamp (no offset means UTC)."""
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return (stamp - _EPOCH).total_seconds()


def _stamp(text: str) -> float:
    """Return epoch seconds for a `ts` string, as `parse_ts` does, faster for ISO 8601 dates."""
    if text[4:5] == "-":  # an extended ISO date; no number float() reads has a '-' there and parses as a date
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return parse_ts(text)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    return parse_ts(text)


_stamp_cache: dict[str, float] = {}  # ISO stamps repeat (calls within one second): parse each once
