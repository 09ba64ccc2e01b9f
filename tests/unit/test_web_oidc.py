"""Signing in through OpenID Connect without sockets: the ID token's verification (each check
shown refusing), the attempt's cookie and PKCE, and the client against the tests' provider
(tests/e2e/oidc_provider.py) through an in-process transport."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from pydantic import SecretStr, ValidationError

from services.api.settings import ApiSettings
from services.api.web.oidc import LEEWAY_SECONDS, OidcClient, OidcConfig, OidcError, Pending, verify_id_token
from tests.e2e.oidc_provider import Provider, User

ISSUER = "https://id.thanhhoa.example.vn"
CLIENT = "baocao"
NONCE = "n-0S6_WzA2Mj"
NOW = 1_780_000_000
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig"})
KEYS = KeySet([RSAKey.import_key(KEY.as_dict(private=False))])


def claims(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "248289761001",
        "aud": CLIENT,
        "iat": NOW,
        "exp": NOW + 300,
        "nonce": NONCE,
        "name": "Lê Thị Hoa",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def signed(body: dict[str, Any], key: Any = KEY, alg: str = "RS256") -> str:
    return jwt.encode({"alg": alg, "kid": "k1"}, body, key, algorithms=[alg])


def verify(token: str, now: float = NOW) -> Any:
    return verify_id_token(token, KEYS, ISSUER, CLIENT, NONCE, now=now)


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def test_a_good_id_token_names_the_identity_by_issuer_and_subject():
    identity = verify(signed(claims()))
    assert identity.subject == f"{ISSUER} 248289761001"
    assert identity.name == "Lê Thị Hoa"


def test_a_token_signed_by_another_key_is_refused():
    other = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    with pytest.raises(OidcError, match="does not verify") as caught:
        verify(signed(claims(), key=other))
    assert caught.value.status == 401


def test_a_token_whose_payload_was_changed_after_signing_is_refused():
    header, _, signature = signed(claims()).split(".")
    forged = f"{header}.{b64(claims(sub='admin'))}.{signature}"
    with pytest.raises(OidcError, match="does not verify"):
        verify(forged)


def test_alg_none_is_refused():
    with pytest.raises(OidcError, match="does not verify"):
        verify(f"{b64({'alg': 'none', 'kid': 'k1'})}.{b64(claims())}.")


def test_a_token_macd_with_the_public_key_is_refused():
    signing_input = f"{b64({'alg': 'HS256', 'kid': 'k1'})}.{b64(claims())}"
    mac = hmac.new(KEY.as_pem(private=False), signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"
    with pytest.raises(OidcError, match="does not verify"):
        verify(token)


@pytest.mark.parametrize(
    ("changes", "claim"),
    [
        ({"aud": "another-client"}, "aud"),
        ({"iss": "https://id.other.example.vn"}, "iss"),
        ({"nonce": "an-older-attempt"}, "nonce"),
        ({"nonce": None}, "nonce"),
        ({"sub": None}, "sub"),
        ({"exp": None}, "exp"),
    ],
)
def test_each_claim_is_checked(changes, claim):
    with pytest.raises(OidcError, match=claim) as caught:
        verify(signed(claims(**changes)))
    assert caught.value.status == 401


def test_an_expired_token_is_refused_past_the_leeway_only():
    token = signed(claims(exp=NOW + 300))
    assert verify(token, now=NOW + 300 + LEEWAY_SECONDS - 1).sub == "248289761001"
    with pytest.raises(OidcError, match="exp"):
        verify(token, now=NOW + 300 + LEEWAY_SECONDS + 1)


def test_several_audiences_need_this_client_as_the_authorized_party():
    with pytest.raises(OidcError, match="azp"):
        verify(signed(claims(aud=[CLIENT, "another"])))
    assert verify(signed(claims(aud=[CLIENT, "another"], azp=CLIENT))).sub == "248289761001"


def test_the_attempt_cookie_round_trips_and_refuses_anything_else():
    pending = Pending.new()
    assert Pending.from_cookie(pending.cookie()) == pending
    for bad in (None, "", "a.b.c", pending.cookie() + ".x", pending.cookie()[1:]):
        assert Pending.from_cookie(bad) is None


def test_the_pkce_challenge_is_rfc_7636_s256():
    # RFC 7636, Appendix B
    pending = Pending("s" * 43, "n" * 43, "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
    assert pending.challenge == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


# --- the client against the tests' provider, in process ---

HOA = User("248289761001", "hoa.le", "Lê Thị Hoa", "hoa@thanhhoa.example.vn")
REDIRECT = "http://127.0.0.1:8002/web/oidc/callback"


def provider_and_client() -> tuple[Provider, OidcClient]:
    provider = Provider("baocao", "s3cret", HOA, redirect_uris={REDIRECT}, port=8999)
    config = OidcConfig(provider.issuer, "baocao", SecretStr("s3cret"), "SSO Thanh Hóa")
    return provider, OidcClient(config, transport=httpx.ASGITransport(app=provider.app()))


async def sign_in(provider: Provider, client: OidcClient, pending: Pending) -> str:
    """The browser's part: to the provider and back with a code."""
    url = await client.authorization_url(pending, REDIRECT)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=provider.app())) as browser:
        answer = await browser.get(url)
    assert answer.status_code == 302
    back = parse_qs(urlsplit(answer.headers["location"]).query)
    assert back["state"] == [pending.state]
    return back["code"][0]


def test_the_code_is_redeemed_with_the_verifier_and_the_identity_verified():
    async def run() -> None:
        provider, client = provider_and_client()
        pending = Pending.new()
        code = await sign_in(provider, client, pending)
        identity = await client.redeem(code, pending, REDIRECT)
        assert identity.subject == f"{provider.issuer} {HOA.sub}"
        with pytest.raises(OidcError) as again:  # a code is good once
            await client.redeem(code, pending, REDIRECT)
        assert again.value.status == 401

    asyncio.run(run())


def test_a_code_redeemed_without_its_verifier_is_refused():
    async def run() -> None:
        provider, client = provider_and_client()
        pending = Pending.new()
        code = await sign_in(provider, client, pending)
        stolen = Pending(pending.state, pending.nonce, Pending.new().verifier)
        with pytest.raises(OidcError, match="invalid_grant"):
            await client.redeem(code, stolen, REDIRECT)

    asyncio.run(run())


def test_a_wrong_client_secret_is_refused_by_the_provider():
    async def run() -> None:
        provider, client = provider_and_client()
        pending = Pending.new()
        code = await sign_in(provider, client, pending)
        config = OidcConfig(provider.issuer, "baocao", SecretStr("guessed"), "SSO")
        wrong = OidcClient(config, transport=httpx.ASGITransport(app=provider.app()))
        with pytest.raises(OidcError, match="invalid_client"):
            await wrong.redeem(code, pending, REDIRECT)

    asyncio.run(run())


def test_a_provider_that_cannot_be_reached_is_a_clear_502():
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async def run() -> None:
        config = OidcConfig("https://id.example.vn", "baocao", SecretStr("s"), "SSO Thanh Hóa")
        client = OidcClient(config, transport=httpx.MockTransport(down))
        with pytest.raises(OidcError) as caught:
            await client.authorization_url(Pending.new(), REDIRECT)
        assert caught.value.status == 502
        assert "SSO Thanh Hóa" in caught.value.message

    asyncio.run(run())


def test_a_discovery_document_of_another_issuer_is_refused():
    def lying(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"issuer": "https://evil.example"})

    async def run() -> None:
        config = OidcConfig("https://id.example.vn", "baocao", SecretStr("s"), "SSO")
        client = OidcClient(config, transport=httpx.MockTransport(lying))
        with pytest.raises(OidcError, match="names issuer"):
            await client.discovery()

    asyncio.run(run())


# --- the settings ---

SETTINGS = {"kafka_bootstrap_servers": "unused:9092", "mongodb_uri": "mongodb://unused", "auth_secret": "x" * 64}


def test_no_provider_configured_means_no_client():
    assert OidcConfig.of(ApiSettings(**SETTINGS)) is None


def test_a_provider_is_configured_whole_or_refused_naming_the_missing_setting():
    with pytest.raises(ValidationError, match="BAOCAO_OIDC_CLIENT_SECRET is empty"):
        ApiSettings(**SETTINGS, oidc_issuer="https://id.example.vn", oidc_client_id="baocao")
    with pytest.raises(ValidationError, match="BAOCAO_OIDC_ISSUER is empty"):
        ApiSettings(**SETTINGS, oidc_client_id="baocao", oidc_client_secret="s")


@pytest.mark.parametrize("issuer", ["http://id.example.vn", "id.example.vn", "https://id.example.vn/?tenant=1"])
def test_an_issuer_that_is_not_https_is_refused(issuer):
    with pytest.raises(ValidationError, match="BAOCAO_OIDC_ISSUER must be an https:// URL"):
        ApiSettings(**SETTINGS, oidc_issuer=issuer, oidc_client_id="baocao", oidc_client_secret="s")


def test_a_configured_provider_has_a_name_for_its_button():
    settings = ApiSettings(
        **SETTINGS, oidc_issuer="http://localhost:9000/", oidc_client_id="baocao", oidc_client_secret="s"
    )
    config = OidcConfig.of(settings)
    assert config is not None and config.issuer == "http://localhost:9000" and config.name == "OpenID Connect"
