"""Web sessions, kept on the server: the cookie holds only a random session id.

The id (32 random bytes, unpadded base64url: exactly 43 characters) is no bearer token: the API
answers it 401, and it names a session only while the session's document exists. The document
(``web_sessions``, keyed by the SHA-256 of the id, so what the database holds cannot be replayed as
a cookie) keeps the token the user pasted, its id, the session's expiry and the session's CSRF
token. A session lives ``SESSION_SECONDS`` at most and never past its token's expiry; logout
deletes it; the token is verified again on every request (signature, expiry, revocation), so a
revoked token or a new BAOCAO_AUTH_SECRET ends every session that holds it.

An account's session (a password login, or OpenID Connect: ``open_account_session``) holds no
token: its document names the account instead, and every request reads the account again
(services/api/web/deps.py), so a role an admin changed applies to the next request and a disabled
account is refused at once; the pages' calls to ingest carry a token minted for that request
(``MINTED_SECONDS``). Disabling an account or changing its password ends its sessions
(``end_account``), and the stream guard ends their live streams within its interval.

Expired documents are removed by a TTL index where the server has them (MongoDB); every read
checks the expiry itself, so a server without TTL indexes never revives an expired session.

The login form is protected before any session exists by a login nonce: a random value in a
short-lived cookie (Path=/web/login) and its HMAC in the form, which another site can neither read
nor compute.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import math
import re
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from shared.adapters.mongo import access_collection
from shared.adapters.revocations import REVOKED, Revocations
from shared.domain.accounts import Account
from shared.domain.audit import Action
from shared.domain.auth import Principal, account_key

if TYPE_CHECKING:
    from services.api.settings import ApiSettings
    from services.api.web.components import WebComponents

log = logging.getLogger(__name__)

COOKIE = "baocao_session"
LOGIN_COOKIE = "baocao_login"
SESSIONS = "web_sessions"
SESSION_SECONDS = 2 * 3600
MINTED_SECONDS = 300  # an account's token for one call to ingest: long enough for a large upload
LOGIN_NONCE_SECONDS = 3600
ID_BYTES = 32
_ID = re.compile(r"[A-Za-z0-9_-]{43}")  # ID_BYTES in unpadded base64url


class BadSession(Exception):
    """A cookie that is malformed, unknown, ended or expired."""


class SessionsUnavailable(RuntimeError):
    """The session store could not be read: no page is served on a session nobody can check."""


def session_key(auth_secret: str) -> bytes:
    """The key of the login nonce's HMAC, derived from BAOCAO_AUTH_SECRET."""
    return hmac.new(auth_secret.encode(), b"baocao web session v2", hashlib.sha256).digest()


def new_id() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(ID_BYTES)).decode().rstrip("=")


def parse_id(value: str | None) -> str:
    """The id of a cookie value, spelled exactly as this module writes one: 43 characters of the
    base64url alphabet, no padding, nothing around it, and the canonical spelling of its bytes
    (the last character's two unused bits zero)."""
    if not value or not _ID.fullmatch(value):
        raise BadSession("malformed session")
    raw = base64.urlsafe_b64decode(value + "=")
    if base64.urlsafe_b64encode(raw).decode().rstrip("=") != value:
        raise BadSession("malformed session")
    return value


def digest(session_id: str) -> str:
    """Where a session is stored: the hash of its id, never the id itself."""
    return hashlib.sha256(session_id.encode()).hexdigest()


def login_proof(key: bytes, nonce: str) -> str:
    """The login form's CSRF field for the login nonce ``nonce``."""
    mac = hmac.new(key, b"login:" + nonce.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def login_proof_ok(key: bytes, nonce: str | None, proof: str | None) -> bool:
    try:
        parse_id(nonce)
    except BadSession:
        return False
    return bool(proof) and hmac.compare_digest(login_proof(key, str(nonce)), str(proof))


@dataclass(frozen=True)
class StoredSession:
    key: str  # digest of the id
    token: str  # the pasted token; "" for an account's session
    token_id: str  # the pasted token's id; a random id of its own for an account's session
    csrf: str
    expires_at: float  # unix seconds
    account: str | None = None  # the username of an account's session

    def csrf_ok(self, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(self.csrf.encode(), str(given).encode())


def lifetime(token_expires_at: int, now: float | None = None) -> float:
    """When a session opened now with a token expiring at ``token_expires_at`` ends."""
    issued = now if now is not None else time.time()
    return float(min(issued + SESSION_SECONDS, token_expires_at))


def revocation_ids(stored: StoredSession) -> tuple[str, ...]:
    """The ids of the revoked list any of which ends the session: its token's, and its
    account's when it is an account's session."""
    return (stored.token_id,) if stored.account is None else (stored.token_id, account_key(stored.account))


class SessionStore(Protocol):
    async def create(
        self, token: str, token_id: str, expires_at: float, account: str | None = None
    ) -> tuple[str, StoredSession]: ...

    async def get(self, session_id: str) -> StoredSession | None: ...

    async def delete(self, session_id: str) -> None: ...

    async def ended(self, sessions: Iterable[StoredSession]) -> set[str]:
        """The keys of those ``sessions`` that are over now: deleted, expired, their token
        revoked or their account disabled (``account_key`` in the revoked list), read from the
        store itself (no cache)."""
        ...

    async def end_account(self, username: str, keep: str | None = None) -> None:
        """Deletes every session of the account ``username`` but the one whose key is ``keep``."""
        ...


class MongoSessions:
    def __init__(self, client: AsyncMongoClient[dict[str, Any]], database: str) -> None:
        self._col = access_collection(client, database, SESSIONS)
        self._revoked = access_collection(client, database, REVOKED)
        self._indexed = False
        self._lock = asyncio.Lock()

    async def _ensure_index(self) -> None:
        if self._indexed:
            return
        async with self._lock:
            if self._indexed:
                return
            try:
                await self._col.create_index("expires_at", expireAfterSeconds=0, name="expires_at_ttl")
            except PyMongoError as exc:  # no TTL indexes on this server: the reads check expiry
                log.warning("no TTL index on %s (%s); expired sessions are refused on read", SESSIONS, exc)
            await self._col.create_index("account", sparse=True, name="account")  # end_account
            self._indexed = True

    async def create(
        self, token: str, token_id: str, expires_at: float, account: str | None = None
    ) -> tuple[str, StoredSession]:
        await self._ensure_index()
        session_id = new_id()
        stored = StoredSession(digest(session_id), token, token_id, new_id(), expires_at, account)
        doc: dict[str, Any] = {
            "_id": stored.key,
            "token": token,
            "token_id": token_id,
            "csrf": stored.csrf,
            "expires_at": datetime.fromtimestamp(expires_at, UTC),
            "created_at": datetime.now(UTC),
        }
        if account is not None:  # absent for a token's session: the sparse index skips it
            doc["account"] = account
        try:
            await self._col.insert_one(doc)
        except PyMongoError as exc:
            raise SessionsUnavailable(str(exc)) from exc
        return session_id, stored

    async def get(self, session_id: str) -> StoredSession | None:
        try:
            doc = await self._col.find_one({"_id": digest(session_id)}, max_time_ms=2000)
        except PyMongoError as exc:
            raise SessionsUnavailable(str(exc)) from exc
        if doc is None:
            return None
        expires = doc["expires_at"]
        expires_at = expires.timestamp() if isinstance(expires, datetime) else float(expires)
        if expires_at <= time.time():
            return None
        account = doc.get("account")
        return StoredSession(
            doc["_id"],
            str(doc["token"]),
            str(doc["token_id"]),
            str(doc["csrf"]),
            expires_at,
            str(account) if account is not None else None,
        )

    async def delete(self, session_id: str) -> None:
        try:
            await self._col.delete_one({"_id": digest(session_id)})
        except PyMongoError as exc:
            raise SessionsUnavailable(str(exc)) from exc

    async def ended(self, sessions: Iterable[StoredSession]) -> set[str]:
        sessions = list(sessions)
        if not sessions:
            return set()
        now = datetime.now(UTC)
        keys = [s.key for s in sessions]
        alive = {
            d["_id"]
            async for d in self._col.find(
                {"_id": {"$in": keys}, "expires_at": {"$gt": now}}, projection={"_id": 1}, max_time_ms=2000
            )
        }
        ids = list({i for s in sessions for i in revocation_ids(s)})
        revoked = {
            d["_id"] async for d in self._revoked.find({"_id": {"$in": ids}}, projection={"_id": 1}, max_time_ms=2000)
        }
        return {s.key for s in sessions if s.key not in alive or not revoked.isdisjoint(revocation_ids(s))}

    async def end_account(self, username: str, keep: str | None = None) -> None:
        query: dict[str, Any] = {"account": username}
        if keep is not None:
            query["_id"] = {"$ne": keep}
        try:
            await self._col.delete_many(query)
        except PyMongoError as exc:
            raise SessionsUnavailable(str(exc)) from exc


class InMemorySessions:
    """For an API built without MongoDB (tests): the same contract, in this process."""

    def __init__(self, revocations: Revocations) -> None:
        self.revocations = revocations
        self.sessions: dict[str, StoredSession] = {}

    async def create(
        self, token: str, token_id: str, expires_at: float, account: str | None = None
    ) -> tuple[str, StoredSession]:
        session_id = new_id()
        stored = StoredSession(digest(session_id), token, token_id, new_id(), expires_at, account)
        self.sessions[stored.key] = stored
        return session_id, stored

    async def get(self, session_id: str) -> StoredSession | None:
        stored = self.sessions.get(digest(session_id))
        if stored is None or stored.expires_at <= time.time():
            return None
        return stored

    async def delete(self, session_id: str) -> None:
        self.sessions.pop(digest(session_id), None)

    async def ended(self, sessions: Iterable[StoredSession]) -> set[str]:
        now = time.time()
        over = set()
        for s in sessions:
            kept = self.sessions.get(s.key)
            if kept is None or kept.expires_at <= now:
                over.add(s.key)
                continue
            for revocation_id in revocation_ids(s):
                if await self.revocations.is_revoked(revocation_id):
                    over.add(s.key)
        return over

    async def end_account(self, username: str, keep: str | None = None) -> None:
        for key in [k for k, s in self.sessions.items() if s.account == username and k != keep]:
            del self.sessions[key]


class StreamGuard:
    """Ends the web's event streams promptly: every ``interval`` seconds one query to the store
    checks all open streams of this process (session deleted or expired, token revoked, account
    disabled), reading the store itself rather than the revocation cache. A stream also ends at
    its session's expiry on its own timer. When the store cannot be read for ``stale`` seconds the
    streams end (fail closed); the client reconnects and is checked again."""

    def __init__(self, interval: float, stale: float = 10.0) -> None:
        self.interval = interval
        self.stale = stale
        self.store: SessionStore | None = None
        self._open: dict[int, tuple[StoredSession, asyncio.Event]] = {}
        self._task: asyncio.Task[None] | None = None
        self._checked = time.monotonic()

    def watch(self, store: SessionStore, stored: StoredSession) -> tuple[int, asyncio.Event]:
        self.store = store
        ended = asyncio.Event()
        handle = id(ended)
        self._open[handle] = (stored, ended)
        if self._task is None or self._task.done() or self._task.get_loop() is not asyncio.get_running_loop():
            self._checked = time.monotonic()
            self._task = asyncio.create_task(self._run())
        return handle, ended

    def unwatch(self, handle: int) -> None:
        self._open.pop(handle, None)

    async def _run(self) -> None:
        while self._open:
            await asyncio.sleep(self.interval)
            entries = list(self._open.values())
            if not entries or self.store is None:
                continue
            try:
                over = await self.store.ended(stored for stored, _ in entries)
                self._checked = time.monotonic()
            except Exception:  # any failure to check is handled alike: fail closed once stale
                log.warning("web sessions unreadable while streaming", exc_info=True)
                if time.monotonic() - self._checked <= self.stale:
                    continue
                over = {stored.key for stored, _ in entries}
            for stored, ended in entries:
                if stored.key in over:
                    ended.set()


class ReleasingStream(StreamingResponse):
    """Calls ``release`` once the response is over, however it ends (a generator's ``finally``
    does not run when the client leaves before its first item)."""

    def __init__(self, content: AsyncIterator[str], release: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


@dataclass(frozen=True)
class Session:
    """The session a page is served on: the token it holds, verified for this request. For an
    account's session, ``token`` is one minted for this request (valid ``MINTED_SECONDS``, naming
    the account and the browser's address) and ``principal`` the account's as read now."""

    token: str
    principal: Principal
    stored: StoredSession | None = None  # None on the login page, before a session exists
    account: Account | None = None  # None for a pasted token's session

    @property
    def csrf(self) -> str:
        return self.stored.csrf if self.stored is not None else ""

    @property
    def scopes(self) -> set[str]:
        return {s.value for s in self.principal.scopes}


class LoginThrottle:
    """Failed password logins, counted per username and per address over ``window`` seconds:
    past ``per_username`` failures for a username, or ``per_address`` from one address (higher:
    an office's people share one address behind its router), every password login for it is
    answered 429 until the oldest counted failure is ``window`` seconds old, without checking the
    password (no argon2 work is spent on a throttled guess). A successful login clears its
    username's count.

    Kept in this process's memory: nothing is written per failed login, and a restart forgets
    the counts. Each replica of the API counts on its own, so N replicas allow N times the
    attempts; at 5 per 15 minutes that stays far from guessing any password the account rules
    allow. At most ``max_keys`` usernames and addresses are remembered (the least recently failed
    are forgotten first), so a flood of made-up names cannot fill the memory."""

    def __init__(
        self,
        per_username: int = 5,
        per_address: int = 20,
        window: float = 900.0,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = {"u": per_username, "a": per_address}
        self.window = window
        self.max_keys = max_keys
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}  # insertion order: least recently failed first

    def retry_after(self, username: str, address: str | None) -> int:
        """0 when a login for ``username`` from ``address`` may be tried now, else the seconds
        until it may."""
        now = self.clock()
        waits = [0.0]
        for key in self._keys(username, address):
            failures = self._failures.get(key)
            if failures is not None and len(failures) == failures.maxlen and now - failures[0] < self.window:
                waits.append(failures[0] + self.window - now)
        return math.ceil(max(waits))

    def failed(self, username: str, address: str | None) -> None:
        now = self.clock()
        for key in self._keys(username, address):
            failures = self._failures.pop(key, None) or deque(maxlen=self.limits[key[0]])
            failures.append(now)
            self._failures[key] = failures
        while len(self._failures) > self.max_keys:
            del self._failures[next(iter(self._failures))]

    def succeeded(self, username: str) -> None:
        self._failures.pop(f"u:{username}", None)

    @staticmethod
    def _keys(username: str, address: str | None) -> list[str]:
        return [f"u:{username}"] + ([f"a:{address}"] if address else [])


def client_address(request: Request) -> str | None:
    """The browser's address, as the server saw it (behind a proxy, as uvicorn's proxy headers
    settings make it)."""
    return request.client.host if request.client is not None else None


def cookie_secure(request: Request, settings: ApiSettings) -> bool:
    if settings.web_cookie_secure is not None:
        return settings.web_cookie_secure
    return request.url.scheme == "https" or settings.web_origin.lower().startswith("https:")


def session_response(request: Request, settings: ApiSettings, session_id: str, expires_at: float) -> Response:
    """The answer to a successful login: the session's cookie, the login nonce's removed, and a
    redirect to the pages' start."""
    response = RedirectResponse("/web/", status_code=303)
    response.set_cookie(
        COOKIE,
        session_id,
        max_age=max(int(expires_at - time.time()), 0),
        path="/web",
        httponly=True,
        samesite="strict",
        secure=cookie_secure(request, settings),
    )
    response.delete_cookie(LOGIN_COOKIE, path="/web/login")
    return response


async def open_account_session(web: WebComponents, request: Request, account: Account) -> Response:
    """Opens a session for ``account`` (the password login and the OpenID Connect callback, once
    they have checked who it is), ending one already open in this browser, records the login in
    the audit log, and answers with the cookie and a redirect to /web/. The session lives
    ``SESSION_SECONDS``; each request on it reads the account again (services/api/web/deps.py)."""
    from services.api.web.audit import record  # audit imports the components, which import this

    try:
        await web.sessions.delete(parse_id(request.cookies.get(COOKIE)))
    except BadSession:
        pass
    expires_at = time.time() + SESSION_SECONDS
    session_id, stored = await web.sessions.create("", f"s-{secrets.token_hex(8)}", expires_at, account.username)
    principal = account.principal(stored.token_id, int(expires_at), client_address(request))
    await record(web, request, principal, Action.LOGIN, account.unit, subject=account.username)
    return session_response(request, web.config.settings, session_id, expires_at)
