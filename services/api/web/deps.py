"""The pages' dependencies: their components and the session a request is made on.

Dependencies are coroutines: FastAPI runs a plain function dependency in a worker thread."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.api.web.components import WebComponents
from services.api.web.errors import CsrfRefused, LoginRequired, PageError
from services.api.web.security import SAFE_METHODS
from services.api.web.session import COOKIE, BadSession, Session, parse_id
from shared.adapters.revocations import RevocationsUnavailable, refused
from shared.domain.auth import InvalidToken, Principal, verify

REVOCATIONS_DOWN = "Không kiểm tra được mã truy cập lúc này; hãy thử lại sau ít giây."


async def web_components(request: Request) -> WebComponents:
    web: WebComponents = request.app.state.web
    return web


Web = Annotated[WebComponents, Depends(web_components)]


async def principal_of(web: WebComponents, token: str) -> Principal:
    """The token's principal: LoginRequired when it is not valid, expired or revoked."""
    try:
        principal = verify(web.config.secret, token)
    except InvalidToken:
        raise LoginRequired from None
    try:
        revoked = await refused(web.api.auth.revocations, principal)
    except RevocationsUnavailable:
        raise PageError(503, REVOCATIONS_DOWN) from None
    if revoked:
        raise LoginRequired
    return principal


async def csrf_given(request: Request) -> str | None:
    """The CSRF token a request carries: the X-CSRF-Token header (the pages' script), or the
    ``csrf`` field of a urlencoded form (a form sent without script)."""
    if header := request.headers.get("x-csrf-token"):
        return header
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media == "application/x-www-form-urlencoded":
        field = (await request.form()).get("csrf")
        return field if isinstance(field, str) else None
    return None


async def current_session(request: Request, web: Web) -> Session:
    """The request's session: LoginRequired without a live one, CsrfRefused for a state-changing
    request without its CSRF token; the token is verified again (signature, expiry, revocation)."""
    try:
        session_id = parse_id(request.cookies.get(COOKIE))
    except BadSession:
        raise LoginRequired from None
    stored = await web.sessions.get(session_id)
    if stored is None:
        raise LoginRequired
    if request.method not in SAFE_METHODS and not stored.csrf_ok(await csrf_given(request)):
        raise CsrfRefused
    principal = await principal_of(web, stored.token)
    return Session(stored.token, principal, stored)


CurrentSession = Annotated[Session, Depends(current_session)]
