"""The dashboard's web app (Starlette): the page, the JSON API, /metrics, and the token gate."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from importlib import resources
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.datastructures import URL
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from rollout.dashboard import exposition
from rollout.dashboard.series import metric_series, thinned
from rollout.dashboard.snapshot import StateView, StoreView, Unreadable, summary
from rollout.edges.backends import StateAt, local_folder, open_store

COOKIE = "rollout_dashboard"
STATIC = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
# Everything the page loads comes from this server: no CDN, no inline script.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _asset(name: str) -> bytes:
    return resources.files("rollout.dashboard").joinpath("static", name).read_bytes()


def _finite(value: Any) -> Any:
    """Return `value` with NaN and infinities as null (JSON has neither; a browser refuses them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


class _JSON(JSONResponse):
    def render(self, content: Any) -> bytes:
        try:
            text = json.dumps(content, allow_nan=False, default=str)
        except ValueError:
            text = json.dumps(_finite(content), allow_nan=False, default=str)
        return text.encode()


def _error(status: int, message: str) -> Response:
    return _JSON({"error": {"status": status, "message": message}}, status_code=status)


class TokenGate:
    """Refuse (401) every request that does not carry the token: `Authorization: Bearer <token>`,
    or the cookie the page gets by opening it once with `?token=<token>` (then redirected to the
    same URL without it, so the token does not stay in the address bar or the history)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.digest = hashlib.sha256(token.encode()).digest()
        # The cookie holds a value derived from the token, not the token itself.
        self.cookie = hmac.new(token.encode(), b"rollout dashboard cookie", hashlib.sha256).hexdigest()

    def _is_token(self, given: str) -> bool:
        # Digests of equal length, compared in constant time: neither the token nor its length leaks.
        return hmac.compare_digest(hashlib.sha256(given.encode()).digest(), self.digest)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() == "bearer" and self._is_token(given.strip()):
            await self.app(scope, receive, send)
            return
        cookie = request.cookies.get(COOKIE, "")
        if cookie and hmac.compare_digest(cookie.encode(), self.cookie.encode()):
            await self.app(scope, receive, send)
            return
        query = request.query_params.get("token")
        if query is not None and self._is_token(query):
            rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
            target = URL(scope=scope).replace(query=urlencode(rest))
            path = "/" + target.path.lstrip("/")  # never `//host`: a redirect off this server
            response: Response = RedirectResponse(
                path + (f"?{target.query}" if target.query else ""), status_code=303
            )
            response.set_cookie(COOKIE, self.cookie, httponly=True, samesite="strict", path="/")
        else:
            why = (
                "a token is needed: Authorization: Bearer <token>, or open the page once with ?token=<token>"
            )
            response = PlainTextResponse(
                why + "\n", status_code=401, headers={"WWW-Authenticate": 'Bearer realm="rollout"'}
            )
        await response(scope, receive, send)


def build_app(state_dir: StateAt, token: str | None = None) -> ASGIApp:
    """Return the dashboard app over `state_dir` (read-only), behind the token when one is given."""
    folder = local_folder(state_dir)
    view = StateView(folder) if folder is not None else StoreView(open_store(state_dir))
    shown = str(folder) if folder is not None else view.store.where if isinstance(view, StoreView) else ""

    def page(request: Request) -> Response:
        return Response(_asset("index.html"), media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS)

    def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:
            return _error(404, f"no such file: {name}")
        return Response(_asset(name), media_type=STATIC[name], headers=SECURITY_HEADERS)

    def rollouts(request: Request) -> Response:
        listed = []
        for found in view.rollouts():
            listed.append(found.to_json() if isinstance(found, Unreadable) else summary(found))
        data: dict[str, Any] = {"state_dir": shown, "rollouts": listed}
        if folder is not None and not folder.is_dir():
            data["note"] = f"the state folder {folder} does not exist (yet): no rollouts"
        return _JSON(data, headers=SECURITY_HEADERS)

    def _open(request: Request) -> Any:
        rid = request.path_params["rollout_id"]
        found = view.find(rid)
        if found is None:
            return _error(404, f"{shown}: no rollout with id {rid!r}")
        if isinstance(found, Unreadable):
            return _error(503, f"rollout {found.id}: {found.error}")
        return found

    def rollout(request: Request) -> Response:
        found = _open(request)
        if isinstance(found, Response):
            return found
        data = view.status(found)
        if isinstance(data, Unreadable):
            return _error(503, f"rollout {data.id}: {data.error}")
        return _JSON(data, headers=SECURITY_HEADERS)

    def series(request: Request) -> Response:
        found = _open(request)
        if isinstance(found, Response):
            return found
        checks = view.derived(found, "series", metric_series)
        limit = request.query_params.get("points", "")
        if limit.isdigit():
            checks = thinned(checks, int(limit))
        return _JSON({"id": found.id, "checks": checks}, headers=SECURITY_HEADERS)

    def metrics(request: Request) -> Response:
        return Response(exposition.render(view), media_type=exposition.CONTENT_TYPE)

    app = Starlette(
        routes=[
            Route("/", page, methods=["GET"]),
            Route("/static/{name}", static, methods=["GET"]),
            Route("/api/rollouts", rollouts, methods=["GET"]),
            Route("/api/rollouts/{rollout_id}", rollout, methods=["GET"]),
            Route("/api/rollouts/{rollout_id}/series", series, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ]
    )
    dashboard: ASGIApp = app if token is None else TokenGate(app, token)
    # The pull API (issue 15) sits beside the dashboard, behind the hosts' own tokens; its hosts
    # and inbox are kept with the state (the folder's `.pull/`, or the server's tables).
    from rollout.dashboard.pull_api import build_pull_app
    from rollout.edges.backends import open_pull_store

    pull = build_pull_app(open_pull_store(state_dir))

    async def route(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path", "").startswith("/v1/"):
            await pull(scope, receive, send)
        else:
            await dashboard(scope, receive, send)

    return route
