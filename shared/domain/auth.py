"""Access tokens: bound to one org unit and to scopes, signed with a key from the environment.

A token is ``bcv1.<payload>.<signature>``: the payload (base64url JSON) names the unit, the
scopes, the expiry and a token id; the signature is HMAC-SHA256 with BAOCAO_AUTH_SECRET. Nothing
secret is stored: the services only verify. Revoked token ids are kept in MongoDB
(``revoked_tokens``) and checked on every request, cached for a few seconds.

A token for unit U may act on U and everything under it; ``VN`` stands for the whole country.

A token may also name a person's account (``acct``) and where the person is (``from``, an IP
address): the pages mint such a token, valid a few minutes, for each request they make to ingest
on an account's behalf, so ingest and the audit log know who sent a report and from where. A
disabled account is in the revoked list as ``account:<username>`` (``account_key``), which refuses
every token naming it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from shared.domain.hierarchy import COUNTRY, OrgTree, UnknownUnit

PREFIX = "bcv1"
MIN_SECRET_BYTES = 32


class Scope(StrEnum):
    SUBMIT = "submit"  # send reports for units of the subtree
    READ = "read"  # read units, totals and completeness of the subtree
    STREAM = "stream"  # follow total changes of the subtree
    ADMIN = "admin"  # register agencies in the subtree, list and replay dead letters
    APPROVE = "approve"  # approve and unapprove the subtree's figures (shared/domain/approvals.py)


class Placement(StrEnum):
    """Where a report for a unit and period stands for one token (:meth:`Principal.may_report`)."""

    ALLOWED = "allowed"  # a unit of the period's tree, in the token's subtree there
    OUTSIDE = "outside"  # not in the token's subtree in the period's tree (answered 403)
    CLOSED = "closed"  # the token's unit in another tree, not a unit of the period's tree (422)


class InvalidToken(Exception):
    """Missing, malformed, badly signed, expired or revoked. Answered 401."""


class Forbidden(Exception):
    """A valid token without the right to this unit or scope. Answered 403."""


def account_key(username: str) -> str:
    """The id under which a disabled account is kept in the revoked list."""
    return f"account:{username}"


@dataclass(frozen=True)
class Principal:
    token_id: str
    unit: str
    scopes: frozenset[Scope]
    expires_at: int
    account: str | None = None  # the person's username when the token was minted for an account
    origin: str | None = None  # the person's address, as the pages saw it

    @property
    def revocation_ids(self) -> tuple[str, ...]:
        """The ids of the revoked list any of which refuses this principal."""
        return (self.token_id,) if self.account is None else (self.token_id, account_key(self.account))

    @property
    def actor(self) -> str:
        """Who acts, as the audit log names them: the account, else the token id."""
        return self.account if self.account is not None else f"token:{self.token_id}"

    def covers(self, tree: OrgTree, code: str) -> bool:
        """True when ``code`` is this token's unit or lies under it."""
        if self.unit == COUNTRY:
            return True
        try:
            return self.unit in tree.path(code)
        except UnknownUnit:
            return False

    def may_report(self, tree: OrgTree, code: str, period: str) -> Placement:
        """Whether this token may send a report of ``period`` for ``code``, decided in the tree of
        the period (any version of ``tree`` will do: codes are reused across versions, so 14923 is
        under district 386 before July 2025 and under province 38 after). A code that is not a unit
        of the period's tree is ``CLOSED`` only for a token that covers it in a tree that holds it
        (so only such a token learns why); for any other token it is ``OUTSIDE``."""
        own = tree.for_period(period)
        if code in own:
            return Placement.ALLOWED if self.covers(own, code) else Placement.OUTSIDE
        holder = tree.holding(code, period)
        if code in holder and self.covers(holder, code):
            return Placement.CLOSED
        return Placement.OUTSIDE

    def may_see(self, tree: OrgTree, code: str) -> bool:
        """Whether this token may learn if ``code`` exists. For a known unit, ``covers``; for an
        unknown code, whether it would lie under this token's unit if it existed: the whole
        country's token sees every code, and an agency code ``<parent>-<slug>`` lies under its
        parent. Any other unknown code is answered like a unit outside the subtree (403), so a
        token cannot tell a neighbour's unit from a code that does not exist."""
        if self.unit == COUNTRY:
            return True
        if code in tree:
            return self.covers(tree, code)
        # a unit of another version of the tree (a district after the 2025 reform): the token may
        # learn that it is not in this one if it covers it in its own
        other = next((t for t in tree.versions if code in t), None)
        if other is not None:
            return self.covers(other, code)
        parent, dash, _ = code.partition("-")
        return bool(dash) and parent in tree and self.covers(tree, parent)

    def require_scope(self, scope: Scope) -> None:
        if scope not in self.scopes:
            raise Forbidden(f"this token lacks the '{scope}' scope")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


_B64URL = re.compile(r"[A-Za-z0-9_-]*")


def _unb64(text: str) -> bytes:
    """Strict unpadded base64url: ``base64.urlsafe_b64decode`` alone skips characters outside the
    alphabet, so ``sig!!`` or ``si g`` would decode like ``sig``. Only the one canonical spelling
    of the bytes is accepted (unused trailing bits must be zero)."""
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not unpadded base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(data) != text:
        raise ValueError("not the canonical base64url of its bytes")
    return data


def check_secret(secret: str) -> bytes:
    key = secret.encode()
    if len(key) < MIN_SECRET_BYTES:
        raise ValueError(f"BAOCAO_AUTH_SECRET must be at least {MIN_SECRET_BYTES} characters")
    return key


def mint(
    secret: str,
    unit: str,
    scopes: Iterable[Scope | str],
    ttl_seconds: int,
    now: float | None = None,
    *,
    account: str | None = None,
    origin: str | None = None,
    token_id: str | None = None,
) -> str:
    issued = int(now if now is not None else time.time())
    payload: dict[str, object] = {
        "jti": token_id or secrets.token_hex(8),
        "unit": unit,
        "scopes": sorted({Scope(s).value for s in scopes}),
        "iat": issued,
        "exp": issued + int(ttl_seconds),
    }
    if account is not None:
        payload["acct"] = account
    if origin is not None:
        payload["from"] = origin
    body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    sig = _b64(hmac.new(check_secret(secret), f"{PREFIX}.{body}".encode(), hashlib.sha256).digest())
    return f"{PREFIX}.{body}.{sig}"


def _optional_str(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError("a string claim")
    return value


def verify(secret: str, token: str, now: float | None = None) -> Principal:
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != PREFIX or len(token) > 2048:
        raise InvalidToken("malformed token")
    expected = hmac.new(check_secret(secret), f"{PREFIX}.{parts[1]}".encode(), hashlib.sha256).digest()
    try:
        given = _unb64(parts[2])
    except ValueError:
        raise InvalidToken("malformed token") from None
    if not hmac.compare_digest(given, expected):
        raise InvalidToken("bad signature")
    try:
        payload = json.loads(_unb64(parts[1]))
        principal = Principal(
            token_id=str(payload["jti"]),
            unit=str(payload["unit"]),
            scopes=frozenset(Scope(s) for s in payload["scopes"]),
            expires_at=int(payload["exp"]),
            account=_optional_str(payload.get("acct")),
            origin=_optional_str(payload.get("from")),
        )
    except (ValueError, KeyError, TypeError):
        raise InvalidToken("malformed token") from None
    if principal.expires_at < (now if now is not None else time.time()):
        raise InvalidToken("token expired")
    return principal
