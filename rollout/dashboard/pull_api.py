"""The pull API beside the dashboard: agents fetch their assignment and report what they hold.

Every request carries its host's own token (`rollout hosts add`); a host reads only its own
assignment and reports only for itself. The server never takes the state folder's lock and never
writes a rollout's state: a poll is one stat (and, when it changed, one read) of the assignment
the verbs prepared for that host, or on a PostgreSQL state one indexed read; a report is written
to the host's inbox for the verbs to fold. Both go through the pull store (hosts/pullstore.py's
PullBackend) of `--state`, so several servers can share one PostgreSQL state.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from rollout.hosts.pullstore import SEEN_IDS, PullBackend, PullStore, check_name
from rollout.util.errors import BadInput

MAX_REPORT = 4 << 20  # bytes of a report body (a config upload plus a batch of usage records)
MAX_USAGE = 5000  # usage records in one report
MAX_FILES = 64
__all__ = ["SEEN_IDS", "build_pull_app"]


def _error(status: int, message: str, **headers: str) -> Response:
    return JSONResponse(
        {"error": {"status": status, "message": message}}, status_code=status, headers=headers
    )


def _check_report(body: Any) -> dict[str, Any]:
    """Return the report's fields, checked; raise BadInput saying what is wrong."""
    if not isinstance(body, dict):
        raise BadInput("a report is a JSON object")
    rid = body.get("report_id")
    if not isinstance(rid, str) or not 1 <= len(rid) <= 128:
        raise BadInput("report_id: a string of 1 to 128 characters is required")
    files = body.get("files", [])
    if not isinstance(files, list) or len(files) > MAX_FILES:
        raise BadInput(f"files: a list of at most {MAX_FILES} files")
    out_files, uploads = [], {}
    for i, f in enumerate(files):
        if not isinstance(f, dict) or not isinstance(f.get("path"), str):
            raise BadInput(f"files[{i}]: an object with a path")
        sha = f.get("sha256")
        if sha is not None and (not isinstance(sha, str) or len(sha) != 64):
            raise BadInput(f"files[{i}].sha256: a hex sha256 or null")
        out_files.append({"path": f["path"], "sha256": sha})
        if f.get("content_b64") is not None:
            try:
                data = base64.b64decode(f["content_b64"], validate=True)
            except (binascii.Error, TypeError, ValueError):
                raise BadInput(f"files[{i}].content_b64: not base64") from None
            if hashlib.sha256(data).hexdigest() != sha:
                raise BadInput(f"files[{i}].content_b64: the bytes do not hash to its sha256")
            uploads[f["path"]] = data.hex()
    usage = body.get("usage", [])
    if not isinstance(usage, list) or len(usage) > MAX_USAGE or not all(isinstance(u, dict) for u in usage):
        raise BadInput(f"usage: a list of at most {MAX_USAGE} records (objects)")
    errors = body.get("errors", [])
    drift = body.get("drift", {})
    if not isinstance(errors, list) or not isinstance(drift, dict):
        raise BadInput("errors: a list; drift: an object (path -> why)")
    return {
        "report_id": rid,
        "files": out_files,
        "uploads": uploads,
        "usage": usage,
        "errors": [str(e)[:500] for e in errors[:20]],
        "drift": {str(k): str(v)[:500] for k, v in drift.items()},
        "agent_version": str(body.get("agent_version", ""))[:64],
        "applied": body.get("applied") if isinstance(body.get("applied"), str) else None,
        "ready": body["ready"] if isinstance(body.get("ready"), str) and len(body["ready"]) <= 200 else None,
    }


def build_pull_app(state: Any) -> ASGIApp:
    """Return the pull API over `state` (a PullBackend, or a state folder: its `.pull/`):
    /v1/hosts/<host>/assignment and /report."""
    store: PullBackend = state if hasattr(state, "keep_report") else PullStore(state)

    def credentials(request: Request) -> tuple[str, str] | Response:
        """Return (the host the path names, the token the request carries), or the refusal."""
        host = str(request.path_params["host"])
        try:
            check_name(host)
        except BadInput as e:
            return _error(404, str(e))
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return _error(
                401, "a host token is needed: Authorization: Bearer <token>", **{"WWW-Authenticate": "Bearer"}
            )
        return host, token

    def refused(host: str, token: str) -> Response:
        # A valid token of another host: that host may not act for this one.
        if any(store.authenticate(other, token) for other in store.hosts() if other != host):
            return _error(403, f"this token is not {host}'s: a host reads and reports only for itself")
        return _error(401, f"not a valid token for {host}", **{"WWW-Authenticate": "Bearer"})

    def authorize(request: Request) -> str | Response:
        found = credentials(request)
        if isinstance(found, Response):
            return found
        host, token = found
        return host if store.authenticate(host, token) else refused(host, token)

    def assignment(request: Request) -> Response:
        found = credentials(request)
        if isinstance(found, Response):
            return found
        host, token = found
        ok, data = store.authorized_assignment(host, token)  # one read on a state server
        if not ok:
            return refused(host, token)
        if data is None:
            return _error(404, f"nothing assigned to {host}: no pull rollout names it")
        return Response(data, media_type="application/json", headers={"Cache-Control": "no-store"})

    async def report(request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        host = await run_in_threadpool(authorize, request)  # a read of the state server, maybe
        if isinstance(host, Response):
            return host
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_REPORT):
            return _error(413, f"a report is at most {MAX_REPORT} bytes")
        body = bytearray()
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > MAX_REPORT:
                return _error(413, f"a report is at most {MAX_REPORT} bytes")
        try:
            checked = _check_report(json.loads(body))
        except (ValueError, UnicodeDecodeError):
            return _error(400, "the report is not JSON")
        except BadInput as e:
            return _error(400, f"bad report: {e}")
        duplicate = await run_in_threadpool(_keep, host, checked)
        return JSONResponse({"ok": True, "duplicate": duplicate})

    def _keep(host: str, checked: dict[str, Any]) -> bool:
        return store.keep_report(host, checked)

    return Starlette(
        routes=[
            Route("/v1/hosts/{host}/assignment", assignment, methods=["GET"]),
            Route("/v1/hosts/{host}/report", report, methods=["POST"]),
        ]
    )
