"""Bounds on input: how long a name, host or path may be, and how much of a value an error echoes."""

from __future__ import annotations

import reprlib

MAX_NAME = 100  # the rollout's name becomes part of its folder name
MAX_HOST = 255  # a DNS name's limit; a host name also becomes a path component
MAX_PATH_BYTES = 4095  # PATH_MAX on Linux, less its NUL
MAX_COMPONENT_BYTES = 255  # NAME_MAX
MAX_MESSAGE = 2000  # an error message never grows past this, whatever it quotes

_REPR = reprlib.Repr()
_REPR.maxlevel = 3
_REPR.maxstring = 80
_REPR.maxother = 80
_REPR.maxlong = 40
for _attr in ("maxlist", "maxtuple", "maxdict", "maxset", "maxfrozenset"):
    setattr(_REPR, _attr, 6)


def show(value: object) -> str:
    """Return a short repr of `value` for an error message, however large or deep the value is."""
    try:
        return _REPR.repr(value)
    except ValueError:  # an int past Python's int-to-str digit limit
        return f"<a number of about {int(value.bit_length() * 0.30103):,} digits>"  # type: ignore[attr-defined]


def shorten(text: str, limit: int = MAX_MESSAGE) -> str:
    """Return `text` cut to about `limit` characters, saying how long it was."""
    if len(text) <= limit:
        return text
    keep = max(limit - 40, 10)
    return f"{text[:keep]}... ({len(text):,} characters in all)"


def path_problem(text: str) -> str | None:
    """Return why `text` cannot name a file (NUL, ends in '/', too long), or None when it can."""
    if "\0" in text:
        return "contains a NUL character"
    if text.endswith("/"):
        return "ends in '/': it must name a file, not a folder"
    size = len(text.encode("utf-8", "surrogateescape"))
    if size > MAX_PATH_BYTES:
        return f"is {size:,} bytes long (the limit is {MAX_PATH_BYTES:,})"
    for part in text.split("/"):
        if len(part.encode("utf-8", "surrogateescape")) > MAX_COMPONENT_BYTES:
            return f"has a name longer than {MAX_COMPONENT_BYTES} bytes: {show(part)}"
    return None
