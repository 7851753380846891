"""Query a Prometheus HTTP API for one number, with {cohort}/{host}/{window} templating."""

from __future__ import annotations

import json
import math
import re
import urllib.error
import urllib.parse
import urllib.request


class QueryError(Exception):
    """The query could not be run or did not return one number; the message says why."""


def cohort_regex(hosts: tuple[str, ...]) -> str:
    """Return a PromQL string-literal regex matching exactly these hosts (for `host=~"{cohort}"`)."""
    return "|".join(re.escape(h).replace("\\", "\\\\") for h in hosts)


def render(template: str, hosts: tuple[str, ...], host: str | None, window_s: float) -> str:
    """Fill {cohort} (a regex of the cohort's hosts), {host} and {window} (like 600s)."""
    text = template.replace("{cohort}", cohort_regex(hosts)).replace("{window}", f"{int(window_s)}s")
    return text.replace("{host}", host) if host is not None else text


def query_value(url: str, promql: str, timeout: float) -> float | None:
    """Run an instant query; return its single value, None when it returned no data."""
    endpoint = url.rstrip("/") + "/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    try:
        with urllib.request.urlopen(endpoint, timeout=timeout) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as e:
        raise QueryError(f"HTTP {e.code} from {url}: {_error_text(e)}") from None
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        reason = getattr(e, "reason", e)
        raise QueryError(f"cannot reach Prometheus at {url}: {reason}") from None
    except ValueError:
        raise QueryError(f"{url} did not answer JSON") from None
    if body.get("status") != "success":
        raise QueryError(f"query failed: {body.get('error', body)}")
    data = body.get("data", {})
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar":
        return _number(result[1])
    if kind != "vector":
        raise QueryError(f"query returned a {kind}, expected an instant vector or scalar")
    if not result:
        return None
    if len(result) > 1:
        raise QueryError(f"query returned {len(result)} series, expected one (aggregate with sum or avg)")
    return _number(result[0]["value"][1])


def _number(text: str) -> float | None:
    value = float(text)
    return value if math.isfinite(value) else None


def _error_text(e: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(e.read()).get("error", e.reason))
    except (ValueError, OSError):
        return str(e.reason)
