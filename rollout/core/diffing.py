"""Baseline vs candidate per host with deepdiff, secrets redacted, identical baselines grouped."""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from rollout import configkinds
from rollout.util.redact import redact_pair, redact_text, secret_values

# deepdiff takes about 7 s per MB here (and difflib's line diff is quadratic): above this size
# a change is summarized by lines instead, so start and plan stay quick on a 5 MB candidate.
DEEP_DIFF_MAX_BYTES = 256 * 1024
SUMMARY_LINES = 20


def host_ranges(hosts: Sequence[str]) -> str:
    """Return hosts compactly: consecutive numbered names become `dev-01..dev-04`."""
    parts: list[str] = []
    run: list[str] = []

    def key(h: str) -> tuple[str, int, int] | None:
        m = re.fullmatch(r"(.*?)(\d+)", h)
        return (m.group(1), int(m.group(2)), len(m.group(2))) if m else None

    def flush() -> None:
        if len(run) > 2:
            parts.append(f"{run[0]}..{run[-1]}")
        else:
            parts.extend(run)
        run.clear()

    for h in hosts:
        k, prev = key(h), key(run[-1]) if run else None
        if run and k and prev and k[0] == prev[0] and k[2] == prev[2] and k[1] == prev[1] + 1:
            run.append(h)
        else:
            flush()
            run.append(h)
    flush()
    return ", ".join(parts)


def diff_one(baseline: bytes | None, candidate: bytes, kind: str) -> tuple[dict[str, Any], str]:
    """Return (deepdiff as JSON-able dict, readable text) of baseline vs candidate, redacted;
    files together larger than DEEP_DIFF_MAX_BYTES get a line summary instead (bounded time)."""
    if len(baseline or b"") + len(candidate) > DEEP_DIFF_MAX_BYTES:
        return line_summary(baseline, candidate)
    from deepdiff import DeepDiff

    old_doc, new_doc = configkinds.parse_lenient(baseline, kind), configkinds.parse_lenient(candidate, kind)
    known = secret_values([old_doc, new_doc])  # a secret copied under an ordinary key is masked too
    old, new = redact_pair(old_doc, new_doc, known)
    dd = DeepDiff(old, new, verbose_level=2)
    as_json = json.loads(dd.to_json()) if dd else {}
    if baseline is None:
        text = "new file (no baseline on the host)"
    elif not dd:
        text = "no change"
    else:
        text = dd.pretty()
    if kind == "text" and dd and baseline is not None:
        unified = difflib.unified_diff(
            redact_text(baseline.decode("utf-8", "replace")).splitlines(),
            redact_text(candidate.decode("utf-8", "replace")).splitlines(),
            "baseline",
            "candidate",
            lineterm="",
        )
        text += "\n" + "\n".join(unified)
    return as_json, text


def line_summary(baseline: bytes | None, candidate: bytes) -> tuple[dict[str, Any], str]:
    """Summarize a large change in linear time: sizes, hashes, lines added and removed (as
    multisets, not an alignment: difflib is quadratic on such files), the first few redacted."""
    if baseline == candidate:
        return {}, "no change"
    old = baseline.decode("utf-8", "replace").splitlines() if baseline is not None else []
    new = candidate.decode("utf-8", "replace").splitlines()
    added, removed = Counter(new) - Counter(old), Counter(old) - Counter(new)
    n_added, n_removed = sum(added.values()), sum(removed.values())
    size = len(baseline or b"") + len(candidate)
    why = (
        f"{size:,} bytes in all, over the {DEEP_DIFF_MAX_BYTES // 1024} KiB deepdiff limit: "
        "a line summary instead of a deepdiff"
    )
    sides = {"baseline": _side(baseline, old)} if baseline is not None else {}
    sides["candidate"] = _side(candidate, new)
    summary = {"why": why, **sides, "lines_added": n_added, "lines_removed": n_removed}
    lines = ["new file (no baseline on the host)"] if baseline is None else []
    lines.append(why)
    lines += [
        f"{k}: {v['bytes']:,} bytes, {v['lines']:,} lines, sha256 {v['sha256']}" for k, v in sides.items()
    ]
    lines.append(f"{n_added:,} line(s) added, {n_removed:,} removed; the first of each:")
    for sign, pool, extra in (("-", old, removed), ("+", new, added)):
        shown = _first(pool, extra, SUMMARY_LINES)
        lines += [f"{sign} {redact_text(line[:200])}" for line in shown]
        if sum(extra.values()) > len(shown):
            lines.append(f"{sign} ...")
    return {"summary": summary}, "\n".join(lines)


def _side(data: bytes, lines: list[str]) -> dict[str, Any]:
    return {"bytes": len(data), "lines": len(lines), "sha256": hashlib.sha256(data).hexdigest()}


def _first(lines: list[str], extra: Counter[str], n: int) -> list[str]:
    """Return the first `n` lines of `lines` counted in `extra` (the multiset difference)."""
    left = Counter(extra)
    out: list[str] = []
    for line in lines:
        if len(out) == n:
            break
        if left[line] > 0:
            left[line] -= 1
            out.append(line)
    return out


def group_by_baseline(baselines: dict[str, str | None]) -> list[tuple[str | None, list[str]]]:
    """Group hosts by their baseline hash, in host order."""
    groups: dict[str | None, list[str]] = {}
    for host, sha in baselines.items():
        groups.setdefault(sha, []).append(host)
    return list(groups.items())
