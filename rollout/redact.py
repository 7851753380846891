"""Secrets never leave the baseline backups: redact them in documents, diffs, logs and output."""

from __future__ import annotations

import re
from typing import Any

MASK = "***REDACTED***"
MASK_CHANGED = "***REDACTED (changed)***"
_SECRET_KEY = re.compile(
    r"(api[_-]?key|token(?!s)|secret|passw(or)?d|authorization|credential|private[_-]?key|cookie)",
    re.IGNORECASE,
)
_SECRET_TEXT = re.compile(
    r"""(?ix)
    (["']?[\w.-]*(?:api[_-]?key|token(?!s)|secret|passw(?:or)?d|authorization|credential|private[_-]?key)
       [\w.-]*["']?\s*[:=]\s*)      # key and separator
    (["']?)([^\s"',}]+)             # the value
    """
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")


def is_secret_key(key: object) -> bool:
    """Return True when a mapping key names a secret."""
    return isinstance(key, str) and _SECRET_KEY.search(key) is not None


def redact(doc: Any) -> Any:
    """Return a copy of a parsed document with every secret-keyed value masked."""
    if isinstance(doc, dict):
        return {
            k: (MASK if is_secret_key(k) and isinstance(v, str) and v else redact(v)) for k, v in doc.items()
        }
    if isinstance(doc, list):
        return [redact(v) for v in doc]
    if isinstance(doc, str):
        return redact_text(doc)
    return doc


def redact_pair(old: Any, new: Any) -> tuple[Any, Any]:
    """Redact two versions of a document so a changed secret still shows up as changed."""
    if isinstance(old, dict) and isinstance(new, dict):
        a: dict[Any, Any] = {}
        b: dict[Any, Any] = {}
        for k in old.keys() | new.keys():
            if k in old and k in new:
                if is_secret_key(k) and isinstance(old[k], str) and isinstance(new[k], str):
                    a[k] = MASK
                    b[k] = MASK if old[k] == new[k] else MASK_CHANGED
                else:
                    a[k], b[k] = redact_pair(old[k], new[k])
            elif k in old:
                a[k] = redact({k: old[k]})[k]
            else:
                b[k] = redact({k: new[k]})[k]
        return {k: a[k] for k in old if k in a}, {k: b[k] for k in new if k in b}
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        pairs = [redact_pair(x, y) for x, y in zip(old, new, strict=True)]
        return [p[0] for p in pairs], [p[1] for p in pairs]
    return redact(old), redact(new)


def redact_text(text: str) -> str:
    """Mask `key: value` / `key=value` secrets and bearer tokens in free text."""
    text = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
    return _SECRET_TEXT.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
