"""The pages' dependencies: their components and the session a request is made on.

Dependencies are coroutines: FastAPI runs a plain function dependency in a worker thread."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from pymongo.errors import PyMongoError

from services.api.web.components import WebComponents
from services.api.web.errors import CsrfRefused, LoginRequired, PageError
from services.api.web.security import SAFE_METHODS
from services.api.web.session import (
    COOKIE,
    MINTED_SECONDS,
    BadSession,
    Session,
    SessionsUnavailable,
    StoredSession,
    client_address,
    parse_id,
)
from shared.adapters.revocations import RevocationsUnavailable, refused
from shared.domain.auth import InvalidToken, Principal, mint, verify

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


async def account_session(web: WebComponents, request: Request, stored: StoredSession) -> Session:
    """An account's session as it stands now: the account read again (so roles an admin changed
    apply to the next request), LoginRequired when it is gone or disabled (in the store, or in
    the revoked list, which every service reads), and a token minted for this request for the
    pages' calls to ingest (``MINTED_SECONDS``, naming the account and the browser's address)."""
    assert stored.account is not None
    try:
        account = await web.accounts.get(stored.account)
    except PyMongoError as exc:
        raise SessionsUnavailable(str(exc)) from exc
    if account is None or account.disabled:
        raise LoginRequired
    origin = client_address(request)
    principal = account.principal(stored.token_id, int(stored.expires_at), origin)
    try:
        revoked = await refused(web.api.auth.revocations, principal)
    except RevocationsUnavailable:
        raise PageError(503, REVOCATIONS_DOWN) from None
    if revoked:
        raise LoginRequired
    token = mint(
        web.config.secret, account.unit, account.scopes, MINTED_SECONDS, account=account.username, origin=origin
    )
    return Session(token, principal, stored, account)


async def current_session(request: Request, web: Web) -> Session:
    """The request's session: LoginRequired without a live one, CsrfRefused for a state-changing
    request without its CSRF token; the token is verified again (signature, expiry, revocation),
    or for an account's session, the account read again (``account_session``)."""
    try:
        session_id = parse_id(request.cookies.get(COOKIE))
    except BadSession:
        raise LoginRequired from None
    stored = await web.sessions.get(session_id)
    if stored is None:
        raise LoginRequired
    if request.method not in SAFE_METHODS and not stored.csrf_ok(await csrf_given(request)):
        raise CsrfRefused
    if stored.account is not None:
        return await account_session(web, request, stored)
    principal = await principal_of(web, stored.token)
    return Session(stored.token, principal, stored)


CurrentSession = Annotated[Session, Depends(current_session)]
