"""Signing in through a province's OpenID Connect provider: the authorization code flow with PKCE
(OpenID Connect Core 1.0 §3.1, RFC 7636), as a confidential client.

``/web/oidc/start`` keeps a fresh state, nonce and PKCE verifier in a short-lived cookie and sends
the browser to the provider; ``/web/oidc/callback`` checks the state against that cookie, redeems
the code at the token endpoint with the verifier and the client secret, and verifies the ID token
(``verify_id_token``): signed RS256 by a key of the provider's JWKS, issued by the configured
issuer, for this client, not expired, and carrying the nonce of this attempt. The identity is
``"<issuer> <sub>"`` (``sub`` is unique only within its issuer, Core §2), which is what an account's
``oidc_subject`` links to. Nothing from the provider is trusted before the ID token verifies; the
access token is never used.

The provider's discovery document is fetched once and kept; its keys too, fetched again once when
a token names a key id they lack (the provider rotated its keys).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from pydantic import SecretStr

from services.api.settings import ApiSettings

ALGORITHMS = ["RS256"]
LEEWAY_SECONDS = 60  # clocks of the provider and of this server may differ by this much
HTTP_TIMEOUT = httpx.Timeout(10.0)
SCOPE = "openid profile email"
PENDING_SECONDS = 600  # the person has this long at the provider before the attempt is forgotten
_TOKEN = 43  # 32 random bytes, unpadded base64url: state, nonce and verifier alike


class OidcError(Exception):
    """A sign-in that cannot go on: ``message`` is shown (Vietnamese), ``reason`` is logged."""

    def __init__(self, status: int, message: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.message = message
        self.reason = reason


@dataclass(frozen=True)
class OidcConfig:
    issuer: str
    client_id: str
    client_secret: SecretStr
    name: str  # shown on the login page's button: "Đăng nhập bằng <name>"

    @classmethod
    def of(cls, settings: ApiSettings) -> OidcConfig | None:
        """None when no provider is configured (the settings check that one is configured whole)."""
        if not settings.oidc_issuer:
            return None
        return cls(
            settings.oidc_issuer.rstrip("/"),
            settings.oidc_client_id,
            settings.oidc_client_secret,
            settings.oidc_name or "OpenID Connect",
        )


@dataclass(frozen=True)
class Discovery:
    """What this client reads of the provider's discovery document (Discovery 1.0 §3)."""

    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    auth_methods: tuple[str, ...]

    @classmethod
    def parse(cls, issuer: str, doc: Any) -> Discovery:
        if not isinstance(doc, dict):
            raise ValueError("the discovery document is not a JSON object")
        if str(doc.get("issuer", "")).rstrip("/") != issuer:
            raise ValueError(f"the discovery document names issuer {doc.get('issuer')!r}, not {issuer!r}")
        urls = {}
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            value = doc.get(name)
            if not isinstance(value, str) or not value.startswith(("https://", "http://")):
                raise ValueError(f"the discovery document has no usable {name}")
            urls[name] = value
        methods = doc.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        return cls(auth_methods=tuple(str(m) for m in methods), **urls)


@dataclass(frozen=True)
class Pending:
    """One sign-in attempt, kept in the browser's cookie until the provider sends it back."""

    state: str
    nonce: str
    verifier: str

    @classmethod
    def new(cls) -> Pending:
        return cls(_random(), _random(), _random())

    def cookie(self) -> str:
        return f"{self.state}.{self.nonce}.{self.verifier}"

    @classmethod
    def from_cookie(cls, value: str | None) -> Pending | None:
        parts = (value or "").split(".")
        if len(parts) != 3 or any(len(p) != _TOKEN for p in parts):
            return None
        return cls(*parts)

    @property
    def challenge(self) -> str:
        """RFC 7636 §4.2, S256."""
        digest = hashlib.sha256(self.verifier.encode("ascii")).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _random() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Identity:
    issuer: str
    sub: str
    name: str  # what the provider calls the person (name, else preferred_username, else sub)

    @property
    def subject(self) -> str:
        """How an account links to this identity: ``Account.oidc_subject``."""
        return f"{self.issuer} {self.sub}"


def verify_id_token(
    token: str, keys: KeySet, issuer: str, client_id: str, nonce: str, now: float | None = None
) -> Identity:
    """The identity an ID token asserts, after the checks of Core §3.1.3.7; OidcError otherwise.
    Only RS256 is accepted, so an unsigned token ("alg": "none") or one MAC'd with the public key
    as a secret is refused before any claim is read."""
    try:
        decoded = jwt.decode(token, keys, algorithms=ALGORITHMS)
    except (JoseError, ValueError) as exc:
        raise bad_token(f"the ID token does not verify: {exc}") from exc
    claims = decoded.claims
    registry = jwt.JWTClaimsRegistry(
        now=int(now if now is not None else time.time()),
        leeway=LEEWAY_SECONDS,
        iss={"essential": True, "value": issuer},
        sub={"essential": True},
        aud={"essential": True, "value": client_id},
        exp={"essential": True},
        iat={"essential": True},
        nonce={"essential": True, "value": nonce},
    )
    try:
        registry.validate(claims)
    except JoseError as exc:
        raise bad_token(f"the ID token's claims are refused: {exc}") from exc
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if len(audiences) > 1 and claims.get("azp") != client_id:
        raise bad_token("the ID token has several audiences and is not authorized for this client (azp)")
    sub = claims["sub"]
    if not isinstance(sub, str) or not sub or len(sub) > 255:
        raise bad_token("the ID token's sub is not a string of 1-255 characters")
    name = next((str(claims[k]) for k in ("name", "preferred_username") if claims.get(k)), sub)
    return Identity(issuer, sub, name[:120])


def bad_token(reason: str) -> OidcError:
    return OidcError(401, "Nhà cung cấp định danh trả về thông tin đăng nhập không hợp lệ; hãy thử lại.", reason)


class OidcClient:
    """The provider as this server talks to it: discovery and keys kept, the code redeemed."""

    def __init__(self, config: OidcConfig, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = config
        self._transport = transport  # tests give one; None: the network
        self._discovery: Discovery | None = None
        self._keys: KeySet | None = None
        self._lock = asyncio.Lock()

    def unreachable(self, reason: str) -> OidcError:
        return OidcError(
            502, f"Không kết nối được tới {self.config.name} lúc này; hãy thử lại sau hoặc đăng nhập bằng mã.", reason
        )

    async def _get_json(self, url: str) -> Any:
        try:
            async with httpx.AsyncClient(timeout=HTTP_TIMEOUT, transport=self._transport) as http:
                answer = await http.get(url, headers={"Accept": "application/json"})
                answer.raise_for_status()
                return answer.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise self.unreachable(f"GET {url}: {exc!r}") from exc

    async def discovery(self) -> Discovery:
        if self._discovery is None:
            async with self._lock:
                if self._discovery is None:
                    url = f"{self.config.issuer}/.well-known/openid-configuration"
                    try:
                        self._discovery = Discovery.parse(self.config.issuer, await self._get_json(url))
                    except ValueError as exc:
                        raise self.unreachable(str(exc)) from exc
        return self._discovery

    async def keys(self, kid: str | None) -> KeySet:
        """The provider's signing keys; fetched again when they lack ``kid``."""
        keys = self._keys
        if keys is None or (kid is not None and all(k.kid != kid for k in keys.keys)):
            doc = await self._get_json((await self.discovery()).jwks_uri)
            try:
                keys = KeySet.import_key_set(doc)
            except (JoseError, ValueError, TypeError, KeyError) as exc:
                raise self.unreachable(f"the provider's JWKS is unusable: {exc!r}") from exc
            self._keys = keys
        return keys

    async def authorization_url(self, pending: Pending, redirect_uri: str) -> str:
        endpoint = (await self.discovery()).authorization_endpoint
        query = {
            "response_type": "code",
            "client_id": self.config.client_id,
            "redirect_uri": redirect_uri,
            "scope": SCOPE,
            "state": pending.state,
            "nonce": pending.nonce,
            "code_challenge": pending.challenge,
            "code_challenge_method": "S256",
        }
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{urlencode(query)}"

    async def redeem(self, code: str, pending: Pending, redirect_uri: str) -> Identity:
        """Exchanges ``code`` for an ID token and verifies it for this attempt."""
        discovery = await self.discovery()
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        form["code_verifier"] = pending.verifier
        secret = self.config.client_secret.get_secret_value()
        headers = {"Accept": "application/json"}
        if "client_secret_basic" in discovery.auth_methods or "client_secret_post" not in discovery.auth_methods:
            pair = f"{_form_encode(self.config.client_id)}:{_form_encode(secret)}"  # RFC 6749 §2.3.1
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            form |= {"client_id": self.config.client_id, "client_secret": secret}
        try:
            async with httpx.AsyncClient(timeout=HTTP_TIMEOUT, transport=self._transport) as http:
                answer = await http.post(discovery.token_endpoint, data=form, headers=headers)
        except httpx.HTTPError as exc:
            raise self.unreachable(f"POST {discovery.token_endpoint}: {exc!r}") from exc
        body = _json_or_none(answer)
        if answer.status_code != 200 or not isinstance(body, dict) or not isinstance(body.get("id_token"), str):
            error = body.get("error") if isinstance(body, dict) else None
            raise OidcError(
                401 if answer.status_code < 500 else 502,
                f"{self.config.name} không xác nhận lần đăng nhập này; hãy thử lại từ trang đăng nhập.",
                f"token endpoint answered {answer.status_code} ({error or 'no id_token'})",
            )
        token: str = body["id_token"]
        keys = await self.keys(_kid(token))
        return verify_id_token(token, keys, self.config.issuer, self.config.client_id, pending.nonce)


def _form_encode(value: str) -> str:
    """Client credentials in HTTP Basic are form-encoded first (RFC 6749 §2.3.1)."""
    return urlencode({"": value})[1:]


def _json_or_none(answer: httpx.Response) -> Any:
    try:
        return answer.json()
    except ValueError:
        return None


def _kid(token: str) -> str | None:
    """The key id in a JWS's header, unverified: only to pick which key verifies it."""
    try:
        kid = jws.extract_compact(token.encode()).headers().get("kid")
    except (JoseError, ValueError):  # a malformed token fails verification just after, with its reason
        return None
    return kid if isinstance(kid, str) else None
