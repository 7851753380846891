"""Baseline vs candidate per host with deepdiff, secrets redacted, identical baselines grouped."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Sequence
from typing import Any

from rollout import configkinds
from rollout.redact import redact_pair, redact_text, secret_values


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
    """Return (deepdiff as JSON-able dict, readable text) of baseline vs candidate, redacted."""
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


def group_by_baseline(baselines: dict[str, str | None]) -> list[tuple[str | None, list[str]]]:
    """Group hosts by their baseline hash, in host order."""
    groups: dict[str | None, list[str]] = {}
    for host, sha in baselines.items():
        groups.setdefault(sha, []).append(host)
    return list(groups.items())
