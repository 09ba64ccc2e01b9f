"""HTTP pieces both FastAPI services use: body size limit, request metrics, probes, /metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Protocol, TypeVar

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.telemetry import TelemetryConfig
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from pydantic import BaseModel
from pymongo.errors import PyMongoError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.adapters.revocations import Revocations, RevocationsUnavailable, refused
from shared.domain.auth import Forbidden, InvalidToken, Principal, check_secret, verify
from shared.domain.auth import Scope as TokenScope
from shared.domain.hierarchy import OrgTree

log = logging.getLogger(__name__)

C = TypeVar("C")


class ErrorOut(BaseModel):
    """Every error answer of both services: ``detail`` is a message, or for 422 a list of errors,
    each naming its field (``loc``) and the problem (``msg``)."""

    detail: str | list[dict[str, Any]]


# FastAPI's own OpenTelemetry, off: baocao's metrics are Prometheus's (RequestMetrics below), and
# left on it asks the global OpenTelemetry providers whether to trace on every request, a cost
# paid by every read. Passed as FastAPI(telemetry=...).
NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


def error(description: str) -> dict[str, Any]:
    """An error answer for a route's ``responses``, with the one error schema."""
    return {"model": ErrorOut, "description": description}


# Answers any route may give, declared once for the OpenAPI schema.
COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: error("The body is not valid JSON"),
    401: error("Missing, malformed, expired or revoked token"),
    403: error("The token lacks the scope, or the unit is outside its subtree"),
    413: error("Request body too large"),
    422: error("Invalid input; each error names the field"),
}


def invalid_json(exc: RequestValidationError) -> JSONResponse | None:
    """400 with where parsing stopped, when the body is not valid JSON (FastAPI reports that as a
    validation error, 422); None for any other validation error."""
    for error in exc.errors():
        if error.get("type") == "json_invalid":
            loc = list(error.get("loc", ()))
            where = f" at position {loc[-1]}" if loc and isinstance(loc[-1], int) else ""
            reason = str((error.get("ctx") or {}).get("error", "JSON decode error"))
            return JSONResponse({"detail": f"invalid JSON{where}: {reason}"}, status_code=400)
    return None


def answer_invalid_json_with_400(app: FastAPI) -> None:
    """A body that is not JSON gets 400 (as COMMON_RESPONSES says), other validation errors
    FastAPI's 422."""

    async def handler(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return invalid_json(exc) or await request_validation_exception_handler(request, exc)

    app.add_exception_handler(RequestValidationError, handler)
    name_unparsable_bodies(app)


DATABASE_DOWN = "the database did not answer; retry shortly"


def answer_database_errors_with_503(app: FastAPI) -> None:
    app.add_exception_handler(PyMongoError, database_unavailable)


async def database_unavailable(request: Request, exc: Exception) -> Response:
    """A read or write the database did not answer (down, no primary, timed out): 503 with
    Retry-After, never a 500: nothing was wrong with the request. The pages answer it with a page
    of their own (services/api/web/routes.py)."""
    log.warning("database unavailable for %s %s: %s", request.method, request.url.path, type(exc).__name__)
    return JSONResponse({"detail": DATABASE_DOWN}, status_code=503, headers={"Retry-After": "5"})


def name_unparsable_bodies(app: FastAPI) -> None:
    """A body the JSON parser gives up on without a decode error (FastAPI answers those "There
    was an error parsing the body", the reason kept as the exception's cause) gets a 400 that
    says why: nested deeper than the parser goes, or bytes that are not UTF-8."""

    async def handler(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 400 and isinstance(exc.__cause__, RecursionError):
            return JSONResponse({"detail": "invalid JSON: arrays or objects nested too deep"}, status_code=400)
        if exc.status_code == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
            where = exc.__cause__.start
            return JSONResponse({"detail": f"invalid JSON: not UTF-8 at byte {where}"}, status_code=400)
        return await http_exception_handler(request, exc)

    app.add_exception_handler(StarletteHTTPException, handler)


class BodyTooLarge(Exception):
    pass


class BodySizeLimit:
    """Answers 413 when a request body is larger than ``limit`` bytes, before any route, token check
    or parser sees it: at once when the Content-Length says so, and otherwise (chunked) as soon as
    the bytes received pass the limit, so no more than ``limit`` bytes are ever read."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await self._reject(scope, receive, send)
                return
        seen = 0
        exceeded = False
        started = False

        async def limited() -> Message:
            nonlocal seen, exceeded
            if exceeded:
                raise BodyTooLarge
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    exceeded = True
                    raise BodyTooLarge
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            # FastAPI turns an error while reading the body into its own 400; once the limit is
            # passed the answer is ours (413), so the app's is dropped.
            if exceeded:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited, guarded)
        except BodyTooLarge:
            pass
        if exceeded and not started:
            await self._reject(scope, receive, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(
            {"detail": f"request body larger than {self.limit} bytes"}, status_code=413, headers={"Connection": "close"}
        )
        await response(scope, receive, send)


def add_body_size_limit(app: FastAPI, limit: int) -> None:
    """Call before ``add_request_metrics``: the metrics then wrap the limit and count its 413s."""
    app.add_middleware(BodySizeLimit, limit=limit)


class RequestMetrics:
    """Counts requests and times them per route template and status, as plain ASGI middleware
    (FastAPI's @app.middleware("http") costs about a third of a small request's time)."""

    def __init__(self, app: ASGIApp, requests: Counter, latency: Histogram) -> None:
        self.app = app
        self.requests = requests
        self.latency = latency

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            route = scope.get("route")  # set by the router once it has matched
            template = str(getattr(route, "path", "unmatched")) if route is not None else "unmatched"
            self.latency.labels(template).observe(time.perf_counter() - started)
            self.requests.labels(template, str(status)).inc()


def add_request_metrics(app: FastAPI, requests: Counter, latency: Histogram) -> None:
    app.add_middleware(RequestMetrics, requests=requests, latency=latency)


def probes_router(registry: CollectorRegistry, ready: Callable[[], Awaitable[dict[str, bool]]]) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="The process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", summary="Dependencies are reachable", responses={503: {"description": "not ready"}})
    async def readyz() -> Any:
        checks = await ready()
        ok = all(checks.values())
        return JSONResponse({"status": "ready" if ok else "not ready", **checks}, status_code=200 if ok else 503)

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router


class Authenticator:
    """Verifies the bearer token of a request and checks its scope and unit."""

    def __init__(self, secret: str, revocations: Revocations) -> None:
        check_secret(secret)
        self.secret = secret
        self.revocations = revocations

    async def principal(self, request: Request) -> Principal:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
        try:
            principal = verify(self.secret, token.strip())
        except InvalidToken as exc:
            raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from None
        try:
            revoked = await refused(self.revocations, principal)
        except RevocationsUnavailable as exc:
            raise HTTPException(503, f"{exc}; retry shortly", headers={"Retry-After": "5"}) from None
        if revoked:
            raise HTTPException(401, "token revoked", headers={"WWW-Authenticate": "Bearer"})
        return principal


def authorize(principal: Principal, scope: TokenScope, tree: OrgTree, unit: str | None) -> None:
    """403 unless the token has ``scope`` and ``unit`` (when given) lies in its subtree. An unknown
    ``unit`` passes only when the token could see it if it existed (``Principal.may_see``), so the
    caller's 404 or 422 for it tells nothing about units outside the subtree."""
    try:
        principal.require_scope(scope)
    except Forbidden as exc:
        raise HTTPException(403, str(exc)) from None
    if unit is not None and not principal.may_see(tree, unit):
        raise HTTPException(403, f"unit {unit} is outside this token's unit {principal.unit}")


# Declares the bearer scheme in the OpenAPI schema (components.securitySchemes and each route's
# security). auto_error=False: the Authenticator reads the header and gives its own 401s.
BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    bearerFormat="bcv1.<payload>.<signature>",
    description="an access token minted by `baocao token mint`, naming a unit, scopes and an expiry",
)


class HasAuthenticator(Protocol):
    @property
    def auth(self) -> Authenticator: ...


def opened_components(app: FastAPI, kind: type[C], service: str) -> C:
    """The typed components a service's lifespan put on ``app.state.components``."""
    components = getattr(app.state, "components", None)
    if not isinstance(components, kind):
        raise RuntimeError(f"{service}'s components are opened by the app's lifespan, which has not started")
    return components


def principal_dependency(
    components: Callable[[FastAPI], HasAuthenticator],
) -> Callable[..., Awaitable[Principal]]:
    """A FastAPI dependency giving the verified principal of the request (401 otherwise; 503 when
    the revoked tokens cannot be read), through ``components(app).auth``. It declares the bearer
    scheme in the OpenAPI schema; the Authenticator reads the header."""

    async def current_principal(
        request: Request, _declared: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]
    ) -> Principal:
        return await components(request.app).auth.principal(request)

    return current_principal
