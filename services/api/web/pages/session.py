"""Logging in with a token and out again (services/api/web/session.py keeps the sessions)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from services.api.web.components import WebComponents
from services.api.web.deps import Web, csrf_given, principal_of
from services.api.web.errors import CsrfRefused, LoginRequired
from services.api.web.render import page
from services.api.web.session import (
    COOKIE,
    LOGIN_COOKIE,
    LOGIN_NONCE_SECONDS,
    BadSession,
    lifetime,
    login_proof,
    login_proof_ok,
    new_id,
    parse_id,
)

router = APIRouter()
BAD_TOKEN = "Mã truy cập không hợp lệ, đã hết hạn hoặc đã bị thu hồi."


def secure_cookie(request: Request, web: WebComponents) -> bool:
    settings = web.config.settings
    if settings.web_cookie_secure is not None:
        return settings.web_cookie_secure
    return request.url.scheme == "https" or settings.web_origin.lower().startswith("https:")


def login_page(request: Request, web: WebComponents, status: int = 200, **context: Any) -> Response:
    """The login form, with its CSRF field: the HMAC of a nonce kept in a cookie of its own
    (reused while valid, so two open login tabs both work)."""
    try:
        nonce = parse_id(request.cookies.get(LOGIN_COOKIE))
    except BadSession:
        nonce = new_id()
    response = page(request, web, "login.html", None, status, csrf=login_proof(web.config.key, nonce), **context)
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


@router.get("/login")
async def login_form(request: Request, web: Web) -> Response:
    return login_page(request, web)


@router.post("/login")
async def login(request: Request, web: Web) -> Response:
    form = await request.form()
    proof = form.get("csrf")
    if not login_proof_ok(web.config.key, request.cookies.get(LOGIN_COOKIE), proof if isinstance(proof, str) else None):
        raise CsrfRefused
    token = str(form.get("token") or "").strip()
    try:
        principal = await principal_of(web, token)
    except LoginRequired:
        return login_page(request, web, 401, error=BAD_TOKEN)
    try:  # a session already open in this browser ends: a login always starts a new one
        await web.sessions.delete(parse_id(request.cookies.get(COOKIE)))
    except BadSession:
        pass
    expires_at = lifetime(principal.expires_at)
    session_id, _ = await web.sessions.create(token, principal.token_id, expires_at)
    response = RedirectResponse("/web/", status_code=303)
    response.set_cookie(
        COOKIE,
        session_id,
        max_age=max(int(expires_at - time.time()), 0),
        path="/web",
        httponly=True,
        samesite="strict",
        secure=secure_cookie(request, web),
    )
    response.delete_cookie(LOGIN_COOKIE, path="/web/login")
    return response


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
        await web.sessions.delete(session_id)
    response = RedirectResponse("/web/login", status_code=303)
    response.delete_cookie(COOKIE, path="/web")
    return response
