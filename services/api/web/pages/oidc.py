"""Signing in through the province's OpenID Connect provider (services/api/web/oidc.py): start,
and the provider's callback. Both answer 404 when no provider is configured.

The attempt's state, nonce and PKCE verifier wait in a cookie of their own (Path=/web/oidc,
HttpOnly, ten minutes). It is SameSite=Lax, not Strict like the session's: the callback is a
top-level GET from the provider's site, on which a browser sends Lax cookies and not Strict ones.
"""

from __future__ import annotations

import logging
import secrets

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from services.api.web.audit import record
from services.api.web.components import WebComponents
from services.api.web.deps import Web
from services.api.web.errors import PageError
from services.api.web.oidc import PENDING_SECONDS, Identity, OidcClient, OidcConfig, OidcError, Pending
from services.api.web.render import TEMPLATES, error_page
from services.api.web.security import own_origin
from services.api.web.session import cookie_secure, open_account_session
from shared.domain.audit import Action
from shared.domain.hierarchy import COUNTRY

log = logging.getLogger(__name__)
router = APIRouter()

OIDC_COOKIE = "baocao_oidc"
COOKIE_PATH = "/web/oidc"
NOT_CONFIGURED = "Trang này không tồn tại: chưa cấu hình đăng nhập qua nhà cung cấp định danh."
RESTART = "Lần đăng nhập này đã hết hạn hoặc không bắt đầu từ trang này; hãy bắt đầu lại từ trang đăng nhập."
MAX_CODE_CHARS = 2048


def client_of(request: Request, web: WebComponents) -> OidcClient:
    """The app's client of the provider, made on first use (it keeps discovery and keys)."""
    config = OidcConfig.of(web.config.settings)
    if config is None:
        raise PageError(404, NOT_CONFIGURED)
    client: OidcClient | None = getattr(request.app.state, "oidc", None)
    if client is None:
        client = request.app.state.oidc = OidcClient(config)
    return client


def redirect_uri(request: Request, web: WebComponents) -> str:
    """Where the provider sends the person back: this site's public origin (the one the provider
    registered for this client) and the callback's path."""
    origin = own_origin(request.scope, web.config.settings.web_origin)
    if origin is None:
        raise PageError(400, "Không xác định được địa chỉ của trang (thiếu tiêu đề Host).")
    return f"{origin}/web/oidc/callback"


@router.get("/oidc/start")
async def start(request: Request, web: Web) -> Response:
    client = client_of(request, web)
    pending = Pending.new()
    try:
        url = await client.authorization_url(pending, redirect_uri(request, web))
    except OidcError as exc:
        return refused(request, exc)
    response = RedirectResponse(url, status_code=303)
    response.set_cookie(
        OIDC_COOKIE,
        pending.cookie(),
        max_age=PENDING_SECONDS,
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=cookie_secure(request, web.config.settings),
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/oidc/callback")
async def callback(request: Request, web: Web) -> Response:
    client = client_of(request, web)
    try:
        identity = await identify(request, web, client)
    except OidcError as exc:
        return refused(request, exc)
    account = await web.accounts.by_oidc(identity.subject)
    if account is None or account.disabled:
        why = "linked to no account" if account is None else "its account is disabled"
        await record(
            web,
            request,
            None,
            Action.LOGIN_FAILED,
            account.unit if account is not None else COUNTRY,
            subject=account.username if account is not None else identity.subject,
            detail=f"OpenID Connect: the identity {identity.subject} is {why}",
            actor=account.username if account is not None else f"oidc:{identity.subject}",
        )
        message = (
            f"Danh tính {identity.name} ({client.config.name}) chưa được liên kết với tài khoản nào;"
            " hãy nhờ quản trị viên đơn vị liên kết."
            if account is None
            else f"Tài khoản {account.username} đã bị khoá; hãy liên hệ quản trị viên đơn vị."
        )
        return refused(request, OidcError(403, message, f"{identity.subject}: {why}"))
    opened = await open_account_session(web, request, account)
    # the session's cookie is SameSite=Strict: a page of this site, not a redirect, goes on to /web/
    response = TEMPLATES.TemplateResponse(request, "oidc_continue.html", {"provider": client.config.name})
    for name, value in opened.raw_headers:
        if name.lower() == b"set-cookie":
            response.raw_headers.append((name, value))
    response.delete_cookie(OIDC_COOKIE, path=COOKIE_PATH)
    response.headers["Cache-Control"] = "no-store"
    return response


async def identify(request: Request, web: WebComponents, client: OidcClient) -> Identity:
    """The identity the provider vouches for in this callback, after checking it is the answer to
    this browser's own attempt (its state)."""
    query = request.query_params
    pending = Pending.from_cookie(request.cookies.get(OIDC_COOKIE))
    if pending is None:
        raise OidcError(400, RESTART, "no attempt cookie")
    if not secrets.compare_digest(query.get("state", "").encode(), pending.state.encode()):
        raise OidcError(400, RESTART, "the state does not match this browser's attempt")
    if "error" in query:
        error = query["error"][:100]
        raise OidcError(
            401, f"{client.config.name} không cho đăng nhập ({error}).", f"the provider answered error={error}"
        )
    code = query.get("code", "")
    if not code or len(code) > MAX_CODE_CHARS:
        raise OidcError(400, RESTART, "no code in the callback")
    return await client.redeem(code, pending, redirect_uri(request, web))


def refused(request: Request, exc: OidcError) -> Response:
    """The page of a sign-in that did not happen; the attempt is forgotten."""
    log.warning("OpenID Connect sign-in refused: %s", exc.reason)
    response = error_page(request, exc.message, exc.status, session=None)
    response.delete_cookie(OIDC_COOKIE, path=COOKIE_PATH)
    response.headers["Cache-Control"] = "no-store"
    return response
