"""Logging in and out, and an account's own change of password (services/api/web/session.py
keeps the sessions).

Two forms on one page: a person's username and password (the first), and a pasted token (for a
system's token, and for whoever has no account yet). A failed password login says one thing
whichever of the two was wrong, or whether the account is disabled; past the throttle's count
(``LoginThrottle``) the form answers 429 with Retry-After. Logins, failed logins and logouts go
to the audit log.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from services.api.web.audit import record
from services.api.web.components import WebComponents
from services.api.web.deps import CurrentSession, Web, csrf_given, principal_of
from services.api.web.errors import CsrfRefused, LoginRequired, PageError
from services.api.web.render import page
from services.api.web.session import (
    COOKIE,
    LOGIN_COOKIE,
    LOGIN_NONCE_SECONDS,
    BadSession,
    Session,
    StoredSession,
    client_address,
    cookie_secure,
    lifetime,
    login_proof,
    login_proof_ok,
    new_id,
    open_account_session,
    parse_id,
    session_response,
)
from shared.adapters.accounts import StaleAccount
from shared.domain import passwords
from shared.domain.accounts import MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS, USERNAME, Account, AccountError
from shared.domain.audit import Action
from shared.domain.auth import Principal
from shared.domain.hierarchy import COUNTRY

log = logging.getLogger(__name__)
router = APIRouter()
BAD_TOKEN = "Mã truy cập không hợp lệ, đã hết hạn hoặc đã bị thu hồi."
BAD_LOGIN = "Tên đăng nhập hoặc mật khẩu không đúng."
THROTTLED = "Đăng nhập sai quá nhiều lần. Hãy thử lại sau {minutes} phút."


def secure_cookie(request: Request, web: WebComponents) -> bool:
    return cookie_secure(request, web.config.settings)


def login_page(request: Request, web: WebComponents, status: int = 200, **context: Any) -> Response:
    """The login forms, with their CSRF field: the HMAC of a nonce kept in a cookie of its own
    (reused while valid, so two open login tabs both work)."""
    try:
        nonce = parse_id(request.cookies.get(LOGIN_COOKIE))
    except BadSession:
        nonce = new_id()
    settings = web.config.settings
    oidc_name = (settings.oidc_name or "OpenID Connect") if settings.oidc_issuer else None
    proof = login_proof(web.config.key, nonce)
    response = page(request, web, "login.html", None, status, csrf=proof, oidc_name=oidc_name, **context)
    response.set_cookie(
        LOGIN_COOKIE,
        nonce,
        max_age=LOGIN_NONCE_SECONDS,
        path="/web/login",
        httponly=True,
        samesite="strict",
        secure=secure_cookie(request, web),
    )
    response.headers["Cache-Control"] = "no-store"
    return response


async def checked_form(request: Request, web: WebComponents) -> FormData:
    """The login form, refused (CsrfRefused) without the proof of this browser's login nonce."""
    form = await request.form()
    proof = form.get("csrf")
    if not login_proof_ok(web.config.key, request.cookies.get(LOGIN_COOKIE), proof if isinstance(proof, str) else None):
        raise CsrfRefused
    return form


async def end_current(request: Request, web: WebComponents) -> None:
    """A session already open in this browser ends: a login always starts a new one."""
    try:
        await web.sessions.delete(parse_id(request.cookies.get(COOKIE)))
    except BadSession:
        pass


@router.get("/login")
async def login_form(request: Request, web: Web) -> Response:
    return login_page(request, web)


@router.post("/login")
async def login(request: Request, web: Web) -> Response:
    """Logging in with a pasted token."""
    form = await checked_form(request, web)
    token = str(form.get("token") or "").strip()
    try:
        principal = await principal_of(web, token)
    except LoginRequired:
        return login_page(request, web, 401, error=BAD_TOKEN)
    await end_current(request, web)
    expires_at = lifetime(principal.expires_at)
    session_id, _ = await web.sessions.create(token, principal.token_id, expires_at)
    await record(web, request, principal, Action.LOGIN, principal.unit)
    return session_response(request, web.config.settings, session_id, expires_at)


async def password_matches(web: WebComponents, account: Account | None, password: str) -> bool:
    """Whether ``password`` is ``account``'s and the account may log in, after the same argon2
    work whether or not the account exists (a password over the length allowed is refused
    without any). A hash made with weaker parameters than today's is replaced by a new one."""
    if len(password) > MAX_PASSWORD_CHARS:
        return False
    stored = account.password_hash if account is not None else None
    if not await asyncio.to_thread(passwords.verify, stored, password) or account is None or account.disabled:
        return False
    if stored is not None and passwords.needs_rehash(stored):
        rehashed = await asyncio.to_thread(passwords.hash_password, password)
        try:
            await web.accounts.update(account.changed(password_hash=rehashed))
        except StaleAccount:  # changed meanwhile: the next login rehashes
            pass
    return True


def why(account: Account | None) -> str:
    """Why a password login failed, for the audit log only (admins read it; the person is told
    nothing of it)."""
    if account is None:
        return "no such account"
    if account.disabled:
        return "account disabled"
    if account.password_hash is None:
        return "no password set (OpenID Connect only)"
    return "wrong password"


@router.post("/login/password")
async def password_login(request: Request, web: Web) -> Response:
    """Logging in with a username and a password."""
    form = await checked_form(request, web)
    username = str(form.get("username") or "").strip().lower()[:64]
    password = str(form.get("password") or "")
    address = client_address(request)
    wait = web.throttle.retry_after(username, address)
    if wait:
        minutes = -(-wait // 60)
        response = login_page(request, web, 429, password_error=THROTTLED.format(minutes=minutes), username=username)
        response.headers["Retry-After"] = str(wait)
        return response
    account = await web.accounts.get(username) if USERNAME.fullmatch(username) else None
    if account is None or not await password_matches(web, account, password):
        if account is None and len(password) <= MAX_PASSWORD_CHARS:  # the same work as for an account
            await asyncio.to_thread(passwords.verify, None, password)
        web.throttle.failed(username, address)
        unit = account.unit if account is not None else COUNTRY  # an unknown name: the country's admins see it
        await record(
            web, request, None, Action.LOGIN_FAILED, unit, subject=username, actor=username or "?", detail=why(account)
        )
        return login_page(request, web, 401, password_error=BAD_LOGIN, username=username)
    web.throttle.succeeded(username)
    return await open_account_session(web, request, account)


async def leaving(web: WebComponents, request: Request, stored: StoredSession) -> Principal | None:
    """Who is logging out, for the audit log: None when that can no longer be told (the token
    no longer valid, the account gone)."""
    if stored.account is not None:
        account = await web.accounts.get(stored.account)
        if account is None:
            return None
        return account.principal(stored.token_id, int(stored.expires_at), client_address(request))
    try:
        return await principal_of(web, stored.token)
    except LoginRequired:
        return None


@router.post("/logout")
async def logout(request: Request, web: Web) -> Response:
    """Ends the session on the server: its cookie, kept or replayed, opens nothing after."""
    try:
        session_id = parse_id(request.cookies.get(COOKIE))
    except BadSession:
        session_id = None
    if session_id is not None and (stored := await web.sessions.get(session_id)) is not None:
        if not stored.csrf_ok(await csrf_given(request)):
            raise CsrfRefused
        principal = await leaving(web, request, stored)
        await web.sessions.delete(session_id)
        if principal is not None:
            await record(web, request, principal, Action.LOGOUT, principal.unit, subject=principal.account)
    response = RedirectResponse("/web/login", status_code=303)
    response.delete_cookie(COOKIE, path="/web")
    return response


PASSWORD_ONLY_ACCOUNTS = "Chỉ tài khoản đăng nhập bằng mật khẩu mới đổi mật khẩu ở đây."
PASSWORD_RULE = f"Mật khẩu mới cần từ {MIN_PASSWORD_CHARS} đến {MAX_PASSWORD_CHARS} ký tự và không chứa tên đăng nhập."
PASSWORD_ERRORS = {
    "current_password": "Mật khẩu hiện tại không đúng.",
    "new_password": PASSWORD_RULE,
    "again": "Hai lần nhập mật khẩu mới không khớp.",
}


def own_account(s: Session) -> Account:
    if s.account is None or s.account.password_hash is None:
        raise PageError(404, PASSWORD_ONLY_ACCOUNTS)
    return s.account


@router.get("/password")
async def password_form(request: Request, web: Web, s: CurrentSession) -> Response:
    own_account(s)
    return page(request, web, "password.html", s, errors={}, rule=PASSWORD_RULE)


@router.post("/password")
async def change_password(request: Request, web: Web, s: CurrentSession) -> Response:
    """The account's own change of password: the current one, the new one twice. Its other
    sessions end; this one stays. Wrong current passwords count in the login throttle."""
    account = own_account(s)
    form = await request.form()
    current, new, again = (str(form.get(name) or "") for name in ("current_password", "new_password", "again"))
    address = client_address(request)
    if wait := web.throttle.retry_after(account.username, address):
        errors = {"current_password": THROTTLED.format(minutes=-(-wait // 60))}
        response = page(request, web, "password.html", s, 429, errors=errors, rule=PASSWORD_RULE)
        response.headers["Retry-After"] = str(wait)
        return response
    assert s.stored is not None
    try:
        if new != again:
            raise AccountError("again", "the two entries differ")
        change = await web.account_service.change_password(account.username, current, new, s.stored.key)
    except AccountError as exc:
        field = "new_password" if exc.field == "password" else exc.field  # the service's name of it
        if field == "current_password":
            web.throttle.failed(account.username, address)
        errors = {field: PASSWORD_ERRORS[field]}
        return page(request, web, "password.html", s, 422, errors=errors, rule=PASSWORD_RULE)
    before, after = change.audit_before, change.audit_after
    await record(
        web, request, s.principal, change.action, account.unit, subject=account.username, before=before, after=after
    )
    return page(request, web, "password.html", s, errors={}, rule=PASSWORD_RULE, changed=True)
