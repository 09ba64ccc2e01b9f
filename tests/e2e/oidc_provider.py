"""A small OpenID Connect provider for the tests: the authorization code flow with PKCE, and
nothing else (OpenID Connect Core 1.0 §3.1, Discovery 1.0 §3, RFC 7636).

It runs in a thread of the test process (uvicorn on a free loopback port) and signs ID tokens
RS256 with a key generated when it starts. ``/authorize`` asks nobody: it consents as ``provider.user``,
which a test sets to the person it wants to sign in as, at once (a redirect) or, with
``consent_page``, on a page whose link the browser follows, as a person signing in at a real
provider does (so the way back starts on the provider's site).

The issuer is addressed as ``localhost`` while the services listen on ``127.0.0.1``: for a
browser those are two sites, so the callback arrives as a cross-site navigation, as it does from
a province's real provider, and the cookies' SameSite rules are exercised for real.
"""

from __future__ import annotations

import base64
import hashlib
import html
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from joserfc import jwt
from joserfc.jwk import RSAKey

CODE_SECONDS = 60
ID_TOKEN_SECONDS = 300


@dataclass(frozen=True)
class User:
    sub: str
    preferred_username: str
    name: str
    email: str


@dataclass(frozen=True)
class Grant:
    """What an authorization code was issued for; a code is redeemed at most once."""

    client_id: str
    redirect_uri: str
    nonce: str | None
    challenge: str
    user: User
    expires_at: float


def s256(verifier: str) -> str:
    """RFC 7636 §4.2: BASE64URL(SHA256(ASCII(code_verifier))), unpadded."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).decode().rstrip("=")


@dataclass
class Provider:
    client_id: str
    client_secret: str
    user: User
    redirect_uris: set[str] = field(default_factory=set)  # registered; the fixture adds the API's
    consent_page: bool = False
    port: int = 0
    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, parameters={"kid": "test-1", "use": "sig"}))
    codes: dict[str, Grant] = field(default_factory=dict)
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    @property
    def issuer(self) -> str:
        return f"http://localhost:{self.port}"

    def id_token(self, grant: Grant, now: float | None = None) -> str:
        issued = int(now if now is not None else time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": grant.user.sub,
            "aud": grant.client_id,
            "iat": issued,
            "exp": issued + ID_TOKEN_SECONDS,
            "auth_time": issued,
            "preferred_username": grant.user.preferred_username,
            "name": grant.user.name,
            "email": grant.user.email,
        }
        if grant.nonce is not None:
            claims["nonce"] = grant.nonce
        return jwt.encode({"alg": "RS256", "kid": self.key.kid}, claims, self.key)

    def app(self) -> FastAPI:
        app = FastAPI()
        app.get("/.well-known/openid-configuration")(self.discovery)
        app.get("/authorize")(self.authorize)
        app.post("/token")(self.token)
        app.get("/jwks")(self.jwks)
        return app

    async def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "profile", "email"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
        }

    async def jwks(self) -> dict[str, Any]:
        return {"keys": [self.key.as_dict(private=False)]}

    async def authorize(self, request: Request) -> Response:
        q = request.query_params
        redirect_uri = q.get("redirect_uri", "")
        # an unknown client or redirect URI is told to the person, never redirected (Core §3.1.2.4)
        if q.get("client_id") != self.client_id or redirect_uri not in self.redirect_uris:
            return PlainTextResponse("unknown client_id or redirect_uri", status_code=400)
        error = None
        if q.get("response_type") != "code":
            error = "unsupported_response_type"
        elif "openid" not in q.get("scope", "").split():
            error = "invalid_scope"
        elif q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            error = "invalid_request"
        state = {"state": q["state"]} if "state" in q else {}
        if error is not None:
            return RedirectResponse(f"{redirect_uri}?{urlencode({'error': error, **state})}", status_code=302)
        code = secrets.token_urlsafe(32)
        self.codes[code] = Grant(
            self.client_id, redirect_uri, q.get("nonce"), q["code_challenge"], self.user, time.time() + CODE_SECONDS
        )
        back = f"{redirect_uri}?{urlencode({'code': code, **state})}"
        if self.consent_page:
            link = html.escape(back, quote=True)
            return HTMLResponse(f'<!doctype html><title>SSO</title><a id="consent" href="{link}">Tiếp tục</a>')
        return RedirectResponse(back, status_code=302)

    def client_authenticated(self, request: Request, form: dict[str, str]) -> bool:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            try:
                given_id, _, given_secret = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                return False
        else:
            given_id, given_secret = form.get("client_id", ""), form.get("client_secret", "")
        return secrets.compare_digest(f"{given_id}\n{given_secret}", f"{self.client_id}\n{self.client_secret}")

    async def token(self, request: Request) -> Response:
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        if not self.client_authenticated(request, form):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        if form.get("grant_type") != "authorization_code":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        grant = self.codes.pop(form.get("code", ""), None)
        verifier = form.get("code_verifier", "")
        if (
            grant is None
            or grant.expires_at < time.time()
            or grant.redirect_uri != form.get("redirect_uri")
            or not secrets.compare_digest(s256(verifier), grant.challenge)
        ):
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        return JSONResponse(
            {
                "access_token": secrets.token_urlsafe(32),
                "token_type": "Bearer",
                "expires_in": ID_TOKEN_SECONDS,
                "id_token": self.id_token(grant),
            },
            headers={"Cache-Control": "no-store"},
        )

    def start(self) -> Provider:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(self.app(), log_level="warning", lifespan="off"))
        self._server = server
        self._thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the test OpenID Connect provider did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)
