"""The bearer token of a request with a body, checked before the body is read.

FastAPI reads a route's body before it resolves the route's dependencies, the token check among
them, so a client without a token could hold a connection for as long as it took to send a body.
For the routes that take a body and need a token (``/v1/``, POST and the like), this checks the
token's form, signature and expiry from the headers alone and answers 401 at once, closing the
connection, when it fails; no byte of the body is read. Revocation is checked by the route as
before (it needs the database). Pages under ``/web/`` are not under it: they carry a session.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.domain.auth import InvalidToken, verify

METHODS_WITH_BODIES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class BearerBeforeBody:
    def __init__(self, app: ASGIApp, secret: str, prefix: str = "/v1/") -> None:
        self.app = app
        self.secret = secret
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in METHODS_WITH_BODIES
            or not scope["path"].startswith(self.prefix)
        ):
            await self.app(scope, receive, send)
            return
        header = next((v for k, v in scope.get("headers", []) if k == b"authorization"), b"")
        scheme, _, token = header.decode("latin-1").partition(" ")
        problem = None
        if scheme.lower() != "bearer" or not token:
            problem = "missing bearer token"
        else:
            try:
                verify(self.secret, token.strip())
            except InvalidToken as exc:
                problem = str(exc)
        if problem is None:
            await self.app(scope, receive, send)
            return
        response = JSONResponse(
            {"detail": problem}, status_code=401, headers={"WWW-Authenticate": "Bearer", "Connection": "close"}
        )
        await response(scope, receive, send)


def check_bearer_before_body(app: FastAPI, secret: str) -> None:
    """Call before ``add_body_size_limit``: the size limit then answers a declared oversize body
    first (413), and this one any other body without a valid token (401)."""
    app.add_middleware(BearerBeforeBody, secret=secret)
