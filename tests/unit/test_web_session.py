"""Web sessions on the server: the cookie is a random id spelled one way only, the store ends
sessions at logout, expiry and revocation, and the origin check compares scheme, host and port."""

import asyncio
import time

import pytest

from services.api.web.security import origin_of, refusal
from services.api.web.session import (
    SESSION_SECONDS,
    BadSession,
    InMemorySessions,
    StreamGuard,
    digest,
    lifetime,
    login_proof,
    login_proof_ok,
    new_id,
    parse_id,
    session_key,
)
from shared.adapters.revocations import InMemoryRevocations

KEY = session_key("s" * 40)


def test_a_session_id_is_43_base64url_characters_and_parses_back():
    ids = {new_id() for _ in range(200)}
    assert len(ids) == 200
    for value in ids:
        assert len(value) == 43 and parse_id(value) == value


@pytest.mark.parametrize(
    "mangle",
    [
        lambda v: v + "=",  # padding
        lambda v: v + "A",  # one more character
        lambda v: v[:-1],  # one fewer
        lambda v: " " + v,
        lambda v: v + "\n",
        lambda v: v[:10] + "!" + v[11:],  # outside the alphabet
        lambda v: v[:10] + "+" + v[11:],  # standard base64, not base64url
        lambda v: "bcv1." + v,
    ],
)
def test_a_cookie_that_is_not_exactly_an_id_is_refused(mangle):
    with pytest.raises(BadSession):
        parse_id(mangle(new_id()))


def test_only_the_canonical_spelling_of_the_last_character_is_accepted():
    value = new_id()
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(value[-1])
    assert last % 4 == 0  # 32 bytes leave the last character two unused bits
    with pytest.raises(BadSession):
        parse_id(value[:-1] + alphabet[last + 1])


@pytest.mark.parametrize("value", [None, "", "a.b", "é" * 43, "x" * 5000])
def test_malformed_cookies_are_refused(value):
    with pytest.raises(BadSession):
        parse_id(value)


def test_a_session_never_outlives_its_token_nor_two_hours():
    assert lifetime(10**10, now=1000) == 1000 + SESSION_SECONDS
    assert lifetime(1600, now=1000) == 1600


def test_the_store_keeps_hashes_and_ends_sessions_at_logout_expiry_and_revocation():
    async def scenario():
        revoked = InMemoryRevocations()
        store = InMemorySessions(revoked)
        sid, stored = await store.create("bcv1.a.b", "t1", time.time() + 60)
        assert sid not in store.sessions and digest(sid) in store.sessions  # the id itself is not kept
        assert (await store.get(sid)) == stored and stored.csrf_ok(stored.csrf) and not stored.csrf_ok("x")
        assert await store.ended([stored]) == set()
        await revoked.revoke("t1", "test")
        assert await store.ended([stored]) == {stored.key}
        await store.delete(sid)
        assert await store.get(sid) is None
        old, _ = await store.create("bcv1.a.b", "t2", time.time() - 1)
        assert await store.get(old) is None  # expired: refused on read, whether or not a TTL removed it

    asyncio.run(scenario())


def test_the_guard_signals_a_stream_whose_session_was_deleted():
    async def scenario():
        store = InMemorySessions(InMemoryRevocations())
        sid, stored = await store.create("bcv1.a.b", "t1", time.time() + 60)
        guard = StreamGuard(interval=0.05)
        handle, ended = guard.watch(store, stored)
        await asyncio.sleep(0.15)
        assert not ended.is_set()
        await store.delete(sid)
        await asyncio.wait_for(ended.wait(), timeout=1)
        guard.unwatch(handle)

    asyncio.run(scenario())


def test_the_login_proof_binds_the_form_to_its_nonce_cookie():
    nonce = new_id()
    proof = login_proof(KEY, nonce)
    assert login_proof_ok(KEY, nonce, proof)
    assert not login_proof_ok(KEY, new_id(), proof)
    assert not login_proof_ok(KEY, nonce, proof + "A")
    assert not login_proof_ok(KEY, nonce, None)
    assert not login_proof_ok(KEY, None, proof)
    assert not login_proof_ok(session_key("t" * 40), nonce, proof)


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("http://127.0.0.1:8002/web/x", "http://127.0.0.1:8002"),
        ("HTTPS://Example.VN:443/", "https://example.vn"),
        ("http://example.vn:80", "http://example.vn"),
        ("https://example.vn:8443", "https://example.vn:8443"),
        ("null", None),
        ("ftp://example.vn", None),
        ("http://example.vn:99999", None),
    ],
)
def test_origins_are_compared_by_scheme_host_and_port(url, origin):
    assert origin_of(url) == origin


def scope(headers, scheme="http", host="127.0.0.1:8002"):
    raw = [(b"host", host.encode())] + [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return {"type": "http", "scheme": scheme, "headers": raw, "method": "POST", "path": "/web/submit"}


@pytest.mark.parametrize(
    ("headers", "configured", "refused"),
    [
        ({"Origin": "http://127.0.0.1:8002"}, "", False),
        ({"Origin": "http://127.0.0.1:8003"}, "", True),  # another port of the same host
        ({"Origin": "https://127.0.0.1:8002"}, "", True),  # another scheme
        ({"Origin": "https://evil.example"}, "", True),
        ({"Origin": "null"}, "", True),
        ({}, "", True),  # neither Origin nor Referer
        ({"Referer": "http://127.0.0.1:8002/web/upload"}, "", False),
        ({"Referer": "http://127.0.0.1:8003/"}, "", True),
        ({"Origin": "http://127.0.0.1:8002", "Content-Type": "text/plain"}, "", True),
        ({"Origin": "https://baocao.example.vn"}, "https://baocao.example.vn", False),
        ({"Origin": "http://127.0.0.1:8002"}, "https://baocao.example.vn", True),
    ],
)
def test_the_origin_guard(headers, configured, refused):
    assert (refusal(scope(headers), configured) is not None) is refused
