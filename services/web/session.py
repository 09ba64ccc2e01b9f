"""The session cookie: the token the user pasted at login, with an expiry, signed.

The cookie is HttpOnly and SameSite=Strict (no script reads it, no other site sends it), and it
expires after ``SESSION_SECONDS`` or with its token, whichever comes first. The signing key is
derived from BAOCAO_AUTH_SECRET, so no new secret is needed and a new auth secret ends every
session. The token in it is verified again on every request, like a bearer token (revocations
included): the cookie only carries it, it grants nothing by itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

COOKIE = "baocao_session"
SESSION_SECONDS = 2 * 3600


class BadSession(Exception):
    """A cookie that is malformed, tampered with or expired."""


def session_key(auth_secret: str) -> bytes:
    return hmac.new(auth_secret.encode(), b"baocao web session v1", hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def seal(key: bytes, token: str, token_expires_at: int, now: float | None = None) -> tuple[str, int]:
    """The cookie value for ``token`` and how many seconds it lives."""
    issued = int(now if now is not None else time.time())
    expires = min(issued + SESSION_SECONDS, token_expires_at)
    body = _b64(json.dumps({"t": token, "exp": expires}, separators=(",", ":")).encode())
    sig = _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())
    return f"{body}.{sig}", max(expires - issued, 0)


def unseal(key: bytes, value: str, now: float | None = None) -> str:
    """The token held by a cookie value; BadSession if it is not one we sealed or has expired."""
    body, _, sig = value.partition(".")
    if not body or not sig or len(value) > 4096:
        raise BadSession("malformed session")
    expected = hmac.new(key, body.encode(), hashlib.sha256).digest()
    try:
        given = _unb64(sig)
    except ValueError:
        raise BadSession("malformed session") from None
    if not hmac.compare_digest(given, expected):
        raise BadSession("bad signature")
    try:
        payload = json.loads(_unb64(body))
        token, expires = str(payload["t"]), int(payload["exp"])
    except (ValueError, KeyError, TypeError):
        raise BadSession("malformed session") from None
    if expires < (now if now is not None else time.time()):
        raise BadSession("session expired")
    return token
