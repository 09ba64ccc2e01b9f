"""The web session cookie: it carries a token, signed, and expires."""

import pytest

from services.web.session import SESSION_SECONDS, BadSession, seal, session_key, unseal

KEY = session_key("s" * 40)


def test_a_sealed_token_comes_back_until_the_session_expires():
    value, max_age = seal(KEY, "bcv1.a.b", token_expires_at=10**10, now=1000)
    assert max_age == SESSION_SECONDS
    assert unseal(KEY, value, now=1000 + SESSION_SECONDS - 1) == "bcv1.a.b"
    with pytest.raises(BadSession, match="expired"):
        unseal(KEY, value, now=1000 + SESSION_SECONDS + 1)


def test_a_session_never_outlives_its_token():
    value, max_age = seal(KEY, "bcv1.a.b", token_expires_at=1600, now=1000)
    assert max_age == 600
    with pytest.raises(BadSession):
        unseal(KEY, value, now=1601)


@pytest.mark.parametrize("value", ["", "abc", "a.b", "é.é", "x" * 5000])
def test_malformed_cookies_are_refused(value):
    with pytest.raises(BadSession):
        unseal(KEY, value, now=1000)


def test_a_tampered_cookie_or_another_secret_is_refused():
    value, _ = seal(KEY, "bcv1.a.b", token_expires_at=10**10, now=1000)
    body, sig = value.split(".")
    forged, _ = seal(session_key("t" * 40), "bcv1.a.b", token_expires_at=10**10, now=1000)
    for bad in (f"{body}x.{sig}", f"{body}.{sig[:-2]}AA", forged):
        with pytest.raises(BadSession):
            unseal(KEY, bad, now=1000)
