"""Security headers on every answer of the API process, and the origin check of the pages.

``SecurityHeaders`` adds to every response (pages, static files, JSON, errors): a Content-Security-
Policy that allows scripts, styles, images and connections from this origin only and no framing,
``X-Content-Type-Options: nosniff``, ``Referrer-Policy: same-origin`` and ``X-Frame-Options:
DENY``. The pages have no inline script or style, so the policy needs no 'unsafe-inline'; only the
OpenAPI documentation pages (FastAPI's /docs and /redoc, which load their viewer from a CDN and
start it with an inline script) get a policy that allows those.

``OriginGuard`` refuses, with 403 and before any route runs, every request under /web/ that may
change state (any method but GET, HEAD and OPTIONS) unless its ``Origin`` header, or its
``Referer`` when a browser sent no Origin, is exactly the site's own origin: scheme, host and port.
A request with neither is refused too. SameSite cookies do not separate the ports of one host, so
this is what refuses a page on another port. Bodies of type text/plain (what a cross-origin form or
a "simple" fetch can send without asking) are refused under /web/, since no page route takes them.
The per-session CSRF token (services/api/web/deps.py) is checked on top of this.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
DOCS_CSP = (
    "default-src 'self'; script-src 'self' https://cdn.jsdelivr.net 'unsafe-inline'; "
    "style-src 'self' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
    "connect-src 'self'; worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
DOCS_PATHS = ("/docs", "/redoc")
HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        policy = DOCS_CSP if path.startswith(DOCS_PATHS) else CSP

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["content-security-policy"] = policy
                for name, value in HEADERS.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, with_headers)


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of ``url``, lower case, the default port left out; None if it is
    not an http(s) URL."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    default = 443 if parts.scheme == "https" else 80
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None and port != default else "")


def own_origin(scope: Scope, configured: str) -> str | None:
    """The site's origin: the configured one (the public address behind a proxy), else the one
    this request was addressed to (its scheme and Host header)."""
    if configured:
        return origin_of(configured)
    host = Headers(scope=scope).get("host", "")
    return origin_of(f"{scope.get('scheme', 'http')}://{host}") if host else None


def refusal(scope: Scope, configured: str) -> str | None:
    """Why a state-changing request under /web/ is refused, or None when it may go on."""
    headers = Headers(scope=scope)
    mine = own_origin(scope, configured)
    origin = headers.get("origin")
    if origin is not None:
        if mine is None or origin_of(origin) != mine or origin.strip().lower() == "null":
            return f"it comes from another origin ({origin[:100]})"
    else:
        referer = headers.get("referer")
        if referer is None:
            return "it names no origin (neither Origin nor Referer)"
        if mine is None or origin_of(referer) != mine:
            return "it comes from another origin (Referer)"
    media = headers.get("content-type", "").split(";")[0].strip().lower()
    if media == "text/plain":
        return "a text/plain body is not accepted here"
    return None


Refuse = Callable[[Request, str], Awaitable[Response]]


class OriginGuard:
    def __init__(self, app: ASGIApp, configured_origin: str, refuse: Refuse | None = None) -> None:
        self.app = app
        self.configured = configured_origin
        self.refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and str(scope.get("path", "")).startswith("/web/")
            and scope.get("method", "GET") not in SAFE_METHODS
            and (reason := refusal(scope, self.configured)) is not None
        ):
            request = Request(scope, receive)
            if self.refuse is not None:
                response = await self.refuse(request, reason)
            else:
                body = json.dumps({"detail": refused_message(reason)}, ensure_ascii=False)
                response = Response(body, status_code=403, media_type="application/json")
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def refused_message(reason: str) -> str:
    return (
        "Yêu cầu bị từ chối: yêu cầu phải được gửi từ chính trang này. Hãy tải lại trang rồi thử lại. "
        f"/ Request refused: {reason}; reload the page and try again."
    )
