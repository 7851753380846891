"""Secrets never leave the baseline backups: redact them in documents, diffs, logs and output.

Three tables say what a secret is: the words of a key that names one (everything under such a key
is masked, lists and objects too), the shapes of well-known credentials (masked in any value), and
the password of a URL (`scheme://user:password@host`). Every pattern starts at a literal or at the
start of a run and repeats a single character class, so redacting is linear in the text's length:
a 5 MB token costs one pass, not one pass per character.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

MASK = "***REDACTED***"
MASK_CHANGED = "***REDACTED (changed)***"
KNOWN_MIN_CHARS = 6  # a known secret shorter than this is too likely an ordinary word to mask

# A key names a secret when its words, joined, contain one of these...
SECRET_PARTS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "credential",
    "authorization",
    "cookie",
    "apikey",
    "privatekey",
    "accesskey",
    "masterkey",
    "secretkey",
    "signingkey",
    "encryptionkey",
    "sessionkey",
    "authkey",
)
# ...or one of its words is one of these...
SECRET_WORDS = frozenset({"pwd", "token", "tokens", "bearer"})
# ...or its last word is `key`/`keys` (`key`, `master_key`, `ssh_key`), unless it says it is public.
KEY_WORDS = frozenset({"key", "keys"})
NOT_SECRET_KEY_QUALIFIERS = frozenset(
    {"public", "pub", "sort", "primary", "foreign", "partition", "cache", "hot", "group", "lookup", "routing"}
)
# Token counts are not tokens: `max_tokens`, `input_tokens`, `token_limit`, `budget_tokens`.
TOKEN_COUNT_BEFORE = frozenset(
    {
        "max",
        "min",
        "input",
        "output",
        "total",
        "prompt",
        "completion",
        "completions",
        "reasoning",
        "cache",
        "cached",
        "num",
        "context",
        "reserved",
        "used",
        "thinking",
        "budget",
    }
)
TOKEN_COUNT_AFTER = frozenset({"limit", "limits", "count", "counts", "budget", "usage", "used", "per"})

# Well-known credential shapes, masked wherever they appear. Each starts at the start of a run of
# token characters (the look-behind), so a long run is tried once, not at each of its characters.
TOKEN_SHAPES: tuple[tuple[str, str], ...] = (
    ("anthropic", r"sk-ant-[A-Za-z0-9_-]{16,}"),
    ("openai", r"sk-[A-Za-z0-9_-]{16,}"),
    ("stripe", r"[rs]k_(?:live|test)_[A-Za-z0-9]{16,}"),
    ("github", r"gh[pousr]_[A-Za-z0-9]{20,}"),
    ("github-pat", r"github_pat_[A-Za-z0-9_]{20,}"),
    ("gitlab", r"glpat-[A-Za-z0-9_-]{20,}"),
    ("slack", r"xox[abposr]-[A-Za-z0-9-]{10,}"),
    ("huggingface", r"hf_[A-Za-z0-9]{30,}"),
    ("aws-access-key-id", r"(?:AKIA|ASIA)[A-Z0-9]{16}"),
    ("google-api-key", r"AIza[A-Za-z0-9_-]{35}"),
    ("jwt", r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"),
)
_TOKENS = re.compile(
    r"(?<![A-Za-z0-9_.-])(?:" + "|".join(f"(?:{pattern})" for _, pattern in TOKEN_SHAPES) + ")"
)
_BEARER = re.compile(r"(?i)(?<![\w-])(bearer|basic)[ \t]+[A-Za-z0-9._~+/=-]{8,}")
# `scheme://user:password@`: user and password stop at `/`, so from one `://` the scan ends before
# the next one; the password runs to the last `@` before the host (an unescaped `@` in it).
_URL_CREDENTIALS = re.compile(
    r"(?i)(?<![a-z0-9+.-])([a-z][a-z0-9+.-]{0,31}://)([^\s/?#@:\"'<>]{0,256}):([^\s/?#\"'<>]{1,1024})@"
)
# `key: value`, `key=value`, `"key": value`: the key and its separator; the value is read after.
_KEY = re.compile(r"""(?<![\w.-])(["']?)(-{0,2}[A-Za-z_][\w.-]{0,63})\1[ \t]{0,8}([:=])[ \t]*""")
_QUOTED = {
    '"': re.compile(r'"([^"\\\n]*(?:\\.[^"\\\n]*)*)"?'),  # escapes: `\"` does not end it
    "'": re.compile(r"'([^'\n]*)'?"),
}
_BARE = re.compile(r"""(?i)(?:(?:bearer|basic|token|digest)[ \t]+)?[^\s"',;&\]}]+""")
_BRACKET_STEP = re.compile(r"""\"[^"\\]*(?:\\.[^"\\]*)*\"|'[^'\n]*'|[\[\]{}]""")
_YAML_BLOCK_SCALAR = frozenset({"|", ">", "|-", ">-", "|+", ">+"})
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


@lru_cache(maxsize=4096)
def _key_is_secret(key: str) -> bool:
    words = [w.lower() for w in _WORD.findall(key)]
    if not words:
        return False
    joined = "".join(words)
    if any(part in joined for part in SECRET_PARTS):
        return True
    if words[-1] in KEY_WORDS and (len(words) == 1 or words[-2] not in NOT_SECRET_KEY_QUALIFIERS):
        return True
    for i, word in enumerate(words):
        if word in SECRET_WORDS:
            before = words[i - 1] if i > 0 else ""
            after = words[i + 1] if i + 1 < len(words) else ""
            if word.startswith("token") and (before in TOKEN_COUNT_BEFORE or after in TOKEN_COUNT_AFTER):
                continue
            return True
    return False


def is_secret_key(key: object) -> bool:
    """Return True when a mapping key names a secret."""
    return isinstance(key, str) and _key_is_secret(key)


def _mask_all(value: Any, mask: str = MASK) -> Any:
    """Mask every string and number in `value` (a secret key's value, however nested)."""
    if isinstance(value, dict):
        return {k: _mask_all(v, mask) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_all(v, mask) for v in value]
    if isinstance(value, str):
        return mask if value else value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return mask
    return value


def redact(doc: Any, known: frozenset[str] = frozenset()) -> Any:
    """Return a copy of a parsed document with every secret (and every `known` value) masked."""
    if isinstance(doc, dict):
        return {k: (_mask_all(v) if is_secret_key(k) else redact(v, known)) for k, v in doc.items()}
    if isinstance(doc, list):
        return [redact(v, known) for v in doc]
    if isinstance(doc, str):
        return redact_text(doc, known)
    return doc


def secret_values(docs: Iterable[Any]) -> frozenset[str]:
    """Return the values under secret keys of parsed documents, as text: a check that prints one
    bare (`jq -r .apiKey`) shows no key and maybe no known shape, but these can be masked."""
    found: set[str] = set()

    def collect(value: Any, under_secret: bool) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                collect(v, under_secret or is_secret_key(k))
        elif isinstance(value, list):
            for v in value:
                collect(v, under_secret)
        elif under_secret and isinstance(value, str | int | float) and not isinstance(value, bool):
            text = str(value)
            if len(text) >= KNOWN_MIN_CHARS:
                found.add(text)

    for doc in docs:
        collect(doc, False)
    return frozenset(found)


def _mask_pair(old: Any, new: Any) -> tuple[Any, Any]:
    """Mask two versions of a secret value, marking what changed."""
    if old == new:
        return _mask_all(old), _mask_all(new)
    if isinstance(old, dict) and isinstance(new, dict):
        a = {k: _mask_all(v) for k, v in old.items()}
        b = {}
        for k, v in new.items():
            b[k] = _mask_pair(old[k], v)[1] if k in old else _mask_all(v, MASK_CHANGED)
        return a, b
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        pairs = [_mask_pair(x, y) for x, y in zip(old, new, strict=True)]
        return [p[0] for p in pairs], [p[1] for p in pairs]
    return _mask_all(old), _mask_all(new, MASK_CHANGED)


def redact_pair(old: Any, new: Any, known: frozenset[str] = frozenset()) -> tuple[Any, Any]:
    """Redact two versions of a document so a changed secret still shows up as changed; `known`
    secret values are masked wherever else they appear."""
    if isinstance(old, dict) and isinstance(new, dict):
        a: dict[Any, Any] = {}
        b: dict[Any, Any] = {}
        for k in old.keys() | new.keys():
            secret = is_secret_key(k)
            if k in old and k in new:
                a[k], b[k] = _mask_pair(old[k], new[k]) if secret else redact_pair(old[k], new[k], known)
            elif k in old:
                a[k] = _mask_all(old[k]) if secret else redact(old[k], known)
            else:
                b[k] = _mask_all(new[k]) if secret else redact(new[k], known)
        return {k: a[k] for k in old if k in a}, {k: b[k] for k in new if k in b}
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        pairs = [redact_pair(x, y, known) for x, y in zip(old, new, strict=True)]
        return [p[0] for p in pairs], [p[1] for p in pairs]
    return redact(old, known), redact(new, known)


def redact_text(text: str, known: frozenset[str] = frozenset()) -> str:
    """Mask secrets in free text: URL passwords, token shapes, bearer tokens, `key: value` pairs,
    and the `known` secret values wherever they appear."""
    for value in sorted(known, key=len, reverse=True):  # a longer value may hold a shorter one
        text = text.replace(value, MASK)
    text = _URL_CREDENTIALS.sub(lambda m: f"{m.group(1)}{m.group(2)}:{MASK}@", text)
    text = _TOKENS.sub(MASK, text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
    return _redact_key_values(text)


def _redact_key_values(text: str) -> str:
    """Mask the value after every secret key; scanning resumes after the value it masked."""
    out: list[str] = []
    done = 0  # text[:done] is in `out`
    pos = 0
    while (m := _KEY.search(text, pos)) is not None:
        if not _key_is_secret(m.group(2)):
            pos = m.end(2)  # a key may hide in the value: `x=password=...`
            continue
        start, end, masked = _masked_value(text, m)
        out += (text[done:start], masked)
        done = pos = max(end, m.end())
    out.append(text[done:])
    return "".join(out)


def _masked_value(text: str, key: re.Match[str]) -> tuple[int, int, str]:
    """Return (start, end, replacement) for the value after a secret key's separator."""
    p = key.end()
    c = text[p : p + 1]
    if c in _QUOTED:
        q = _QUOTED[c].match(text, p)
        assert q is not None  # the opening quote always matches
        inner = q.group(1)
        return q.start(1), q.start(1) + len(inner), MASK if inner else ""
    if c in ("[", "{"):
        end = _bracket_end(text, p)
        close = text[end - 1] if text[end - 1] in "]}" and end - 1 > p else ""
        return p, end, f"{c}{MASK}{close}"
    bare = _BARE.match(text, p)
    if bare is not None and bare.group(0) not in _YAML_BLOCK_SCALAR:
        return p, bare.end(), MASK
    if key.group(3) == ":" and (bare is not None or text[p : p + 1] in ("", "\n", "\r")):
        return _yaml_block(text, key, bare.end() if bare is not None else p)
    return p, p, ""


def _bracket_end(text: str, p: int) -> int:
    """Return the end of the `[...]` or `{...}` starting at p (the end of text when unclosed)."""
    depth = 0
    for step in _BRACKET_STEP.finditer(text, p):
        token = step.group(0)
        if token in ("[", "{"):
            depth += 1
        elif token in ("]", "}"):
            depth -= 1
            if depth == 0:
                return step.end()
    return len(text)


def _yaml_block(text: str, key: re.Match[str], after: int) -> tuple[int, int, str]:
    """Mask the lines of a YAML block under a secret key (`key:` then indented lines or `- ` items)."""
    base = key.start() - (text.rfind("\n", 0, key.start()) + 1)  # the key's column
    eol = text.find("\n", after)
    if eol < 0:
        return after, after, ""
    lines: list[str] = []
    pos = eol + 1
    while pos < len(text):
        nl = text.find("\n", pos)
        line = text[pos : nl if nl >= 0 else len(text)]
        body = line.lstrip(" ")
        indent = len(line) - len(body)
        if body.strip() and not (indent > base or (indent == base and body.startswith("-"))):
            break
        if body.strip():
            marker = "- " if body.startswith("- ") else ""
            lines.append(" " * indent + marker + MASK)
        else:
            lines.append(line)
        pos = nl + 1 if nl >= 0 else len(text)
    if not lines:
        return after, after, ""
    tail = "\n" if text[pos - 1 : pos] == "\n" else ""
    return eol + 1, pos, "\n".join(lines) + tail
