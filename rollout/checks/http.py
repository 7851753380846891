"""Check kind `http`: probe a URL, expect a status and bounds on fields of its JSON body."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rollout.checks.base import CheckSpec, GateContext, Measurement
from rollout.util.errors import BadInput
from rollout.util.redact import redact_text

MISSING = object()


@dataclass(frozen=True)
class FieldBound:
    """A JSON field (dotted path) that must equal a value or lie within min/max."""

    path: str
    equals: Any = MISSING
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class HttpOptions:
    url: str
    status: tuple[int, ...]
    fields: tuple[FieldBound, ...]


class HttpKind:
    name = "http"
    keys = frozenset({"http", "status", "json"})

    def parse(self, spec: dict[str, Any], where: str, base_dir: Path) -> HttpOptions:
        url = spec.get("http")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            shown = redact_text(url) if isinstance(url, str) else url
            raise BadInput(f"{where}.http: must be a URL starting with http:// or https://, got {shown!r}")
        status = spec.get("status", 200)
        codes = status if isinstance(status, list) else [status]
        if not codes or not all(
            isinstance(c, int) and not isinstance(c, bool) and 100 <= c <= 599 for c in codes
        ):
            raise BadInput(f"{where}.status: must be an HTTP status or a list of them, got {status!r}")
        raw = spec.get("json", {})
        if not isinstance(raw, dict):
            raise BadInput(f"{where}.json: must map field paths to a value or {{min, max}}, got {raw!r}")
        fields = tuple(_field(path, bound, f"{where}.json.{path}") for path, bound in raw.items())
        return HttpOptions(url, tuple(codes), fields)

    def evaluate(self, check: CheckSpec, ctx: GateContext) -> list[Measurement]:
        opts: HttpOptions = check.options
        if check.on == "local":
            return [_probe(check, opts, None)]
        return [_probe(check, opts, host) for host in ctx.canary]


def _field(path: Any, bound: Any, where: str) -> FieldBound:
    if not isinstance(path, str) or not path:
        raise BadInput(f"{where}: field path must be a non-empty string")
    if not isinstance(bound, dict):
        return FieldBound(path, equals=bound)
    extra = sorted(set(bound) - {"min", "max", "equals"}, key=str)
    if extra:
        raise BadInput(f"{where}.{extra[0]}: unknown key (expected: equals, max, min)")
    for key in ("min", "max"):
        v = bound.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
            raise BadInput(f"{where}.{key}: must be a number, got {v!r}")
    return FieldBound(path, bound.get("equals", MISSING), bound.get("min"), bound.get("max"))


def lookup(doc: Any, path: str) -> Any:
    """Return the value at a dotted path (list items by index), or MISSING."""
    for part in path.split("."):
        if isinstance(doc, dict) and part in doc:
            doc = doc[part]
        elif isinstance(doc, list) and part.isdigit() and int(part) < len(doc):
            doc = doc[int(part)]
        else:
            return MISSING
    return doc


def _probe(check: CheckSpec, opts: HttpOptions, host: str | None) -> Measurement:
    url = opts.url.replace("{host}", host) if host is not None else opts.url
    details: dict[str, Any] = {"url": redact_text(url)}

    def result(outcome: Any, why: str) -> Measurement:
        return Measurement(check.name, host, outcome, why, check.enforce, details)

    request, password = _request(url)
    try:
        with urllib.request.urlopen(request, timeout=check.timeout) as response:
            code, body = response.status, response.read()
    except urllib.error.HTTPError as e:
        code, body = e.code, e.read()
    except (urllib.error.URLError, OSError, TimeoutError, ValueError) as e:
        reason = redact_text(str(getattr(e, "reason", e)))
        if password:
            reason = reason.replace(password, "***REDACTED***")
        return result("error", f"cannot reach {details['url']}: {reason}")
    details["status"] = code
    if code not in opts.status:
        wanted = " or ".join(str(c) for c in opts.status)
        return result("fail", f"HTTP {code} (expected {wanted})")
    if not opts.fields:
        return result("pass", f"HTTP {code}")
    try:
        doc = json.loads(body)
    except ValueError:
        return result("fail", f"HTTP {code} but the body is not JSON")
    seen = []
    for f in opts.fields:
        value = lookup(doc, f.path)
        details.setdefault("fields", {})[f.path] = None if value is MISSING else value
        problem = _violation(f, value)
        if problem:
            return result("fail", f"HTTP {code}, {problem}")
        seen.append(f"{f.path}={value!r}")
    return result("pass", f"HTTP {code}, {', '.join(seen)}")


def _request(url: str) -> tuple[urllib.request.Request, str | None]:
    """Return a request for `url` with its `user:password@` sent as basic auth, not in the URL
    (urllib would take it for part of the host name), and the password to keep out of reasons."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return urllib.request.Request(url), None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    request = urllib.request.Request(urllib.parse.urlunsplit(parts._replace(netloc=hostport)))
    pair = f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}"
    request.add_header("Authorization", "Basic " + base64.b64encode(pair.encode()).decode())
    return request, password or None


def _violation(f: FieldBound, value: Any) -> str | None:
    if value is MISSING:
        return f"field {f.path} is missing"
    if f.equals is not MISSING and value != f.equals:
        return f"{f.path} is {value!r}, expected {f.equals!r}"
    if f.min is None and f.max is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{f.path} is {value!r}, not a number"
    if f.min is not None and value < f.min:
        return f"{f.path} {value:g} is below min {f.min:g}"
    if f.max is not None and value > f.max:
        return f"{f.path} {value:g} is above max {f.max:g}"
    return None


KIND = HttpKind()
