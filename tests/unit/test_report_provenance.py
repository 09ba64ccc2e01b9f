"""What the aggregator accepts on ``reports``, by where a message comes from (decode.py,
shared/domain/stamps.py): ingest's stamped envelopes, or bare reports with a valid token of the
report's subtree and the broker's timestamp; everything else is a dead letter with a reason."""

import json
from datetime import UTC, datetime

import pytest

from services.aggregate.decode import Origin, Rejected, Trust, decode
from shared.domain.auth import Scope, account_key, mint, verify
from shared.domain.catalog import load_catalog
from shared.domain.hierarchy import load_vietnam
from shared.domain.rollup import Report
from shared.domain.stamps import STAMP_HEADER, TOKEN_HEADER, stamp, stamp_key
from tests.conftest import TEST_SECRET

CATALOG = load_catalog()
TREE = load_vietnam(["38"])
TRUST = Trust.from_secret(TEST_SECRET)
APPENDED = datetime(2021, 11, 20, 3, 0, tzinfo=UTC)  # when the broker appended the message
APPENDED_MS = int(APPENDED.timestamp() * 1000)
ISSUED = APPENDED.timestamp() - 60  # a minute before


def report(unit="14923", rid="r1"):
    return {
        "report_id": rid,
        "revision": 1,
        "unit": unit,
        "kind": "study_session",
        "period": "2021-11",
        "submitted_at": "2021-11-06T09:00:00+07:00",
        "body": {
            "resolution": "NQ",
            "held_on": "2021-11-05",
            "format": "online",
            "bridge_points": 0,
            "delegates": 0,
            "members_attended": 5,
            "members_total": 10,
        },
    }


def token(unit="14923", scopes=(Scope.SUBMIT,), ttl=3600, issued=ISSUED, secret=TEST_SECRET):
    return mint(secret, unit, scopes, ttl, now=issued)


def direct(value, tok=None, log_append_time=True, timestamp_ms=APPENDED_MS):
    headers = ((TOKEN_HEADER, tok.encode()),) if tok is not None else ()
    return decode(json.dumps(value).encode(), timestamp_ms, CATALOG, TREE, Origin(headers, log_append_time), TRUST)


def test_a_bare_report_with_its_units_token_counts_at_the_brokers_time():
    got = direct(report(), token())
    assert isinstance(got, Report)
    assert got.received_at == APPENDED


def test_a_token_of_a_parent_unit_may_send_for_the_units_under_it():
    assert isinstance(direct(report("14923"), token("386")), Report)
    assert isinstance(direct(report("14923"), token("VN")), Report)


@pytest.mark.parametrize(
    ("tok", "reason", "says"),
    [
        (None, "no_token", "baocao-token header"),
        (token(secret="another-secret-" + "z" * 40), "invalid_token", "bad signature"),
        (token(issued=APPENDED.timestamp() - 7200, ttl=3600), "invalid_token", "token expired"),
        ("bcv1.not-a-token", "invalid_token", "malformed"),
        (token(scopes=(Scope.READ, Scope.STREAM)), "forbidden_scope", "'submit' scope"),
        (token("14926"), "forbidden_unit", "a token of unit 14926 may not submit for unit 14923"),
        (token("388"), "forbidden_unit", "a token of unit 388 may not submit for unit 14923"),
    ],
)
def test_a_bare_report_without_a_valid_token_of_its_subtree_is_refused(tok, reason, says):
    got = direct(report(), tok)
    assert isinstance(got, Rejected)
    assert got.reason == reason
    assert says in got.detail


def test_a_token_is_judged_valid_or_expired_when_the_broker_appended_the_message():
    # valid when appended, expired by the time a backlog is read: still counts
    tok = token(issued=APPENDED.timestamp() - 60, ttl=120)
    assert isinstance(direct(report(), tok), Report)
    late = direct(report(), tok, timestamp_ms=APPENDED_MS + 3_600_000)
    assert isinstance(late, Rejected) and late.detail.endswith("token expired")


def test_a_timestamp_set_by_the_producer_is_not_a_receipt_time():
    got = direct(report(), token(), log_append_time=False)
    assert isinstance(got, Rejected) and got.reason == "producer_time"


def test_an_envelope_without_ingests_stamp_cannot_choose_its_receipt_time():
    envelope = {"report": report(), "received_at": "2021-11-10T00:00:00+00:00"}
    got = direct(envelope, token())
    assert isinstance(got, Rejected) and got.reason == "unsigned_envelope"


def test_a_stamped_envelope_is_trusted_with_ingests_receipt_time():
    value = json.dumps({"report": report(), "received_at": "2021-11-10T00:00:00+00:00"}).encode()
    good = ((STAMP_HEADER, stamp(stamp_key(TEST_SECRET), value)),)
    got = decode(value, APPENDED_MS, CATALOG, TREE, Origin(good, True), TRUST)
    assert isinstance(got, Report)
    assert got.received_at == datetime(2021, 11, 10, tzinfo=UTC)


def test_a_stamp_of_another_value_or_key_is_no_stamp():
    value = json.dumps({"report": report(), "received_at": "2021-11-10T00:00:00+00:00"}).encode()
    other_value = stamp(stamp_key(TEST_SECRET), value.replace(b"14923", b"14926"))
    other_key = stamp(stamp_key("another-secret-" + "z" * 40), value)
    for given in (other_value, other_key, b"", b"0" * 64):
        got = decode(value, APPENDED_MS, CATALOG, TREE, Origin(((STAMP_HEADER, given),), True), TRUST)
        assert isinstance(got, Rejected) and got.reason == "unsigned_envelope"


def test_a_revoked_token_counts_nothing():
    tok = token()
    trust = Trust.from_secret(TEST_SECRET)
    value = json.dumps(report()).encode()
    origin = Origin(((TOKEN_HEADER, tok.encode()),), True)
    assert isinstance(decode(value, APPENDED_MS, CATALOG, TREE, origin, trust), Report)
    trust.revoked = frozenset({verify(TEST_SECRET, tok, now=APPENDED.timestamp()).token_id})
    got = decode(value, APPENDED_MS, CATALOG, TREE, origin, trust)
    assert isinstance(got, Rejected) and (got.reason, got.detail) == ("invalid_token", "baocao-token: token revoked")


def test_a_token_minted_for_a_disabled_account_counts_nothing():
    tok = mint(TEST_SECRET, "14923", [Scope.SUBMIT], 300, now=ISSUED, account="clerk.a", origin="203.0.113.7")
    other = mint(TEST_SECRET, "14923", [Scope.SUBMIT], 300, now=ISSUED, account="clerk.b")
    trust = Trust.from_secret(TEST_SECRET)
    value = json.dumps(report()).encode()

    def sent_with(t: str) -> Report | Rejected:
        return decode(value, APPENDED_MS, CATALOG, TREE, Origin(((TOKEN_HEADER, t.encode()),), True), trust)

    assert isinstance(sent_with(tok), Report)
    trust.revoked = frozenset({account_key("clerk.a")})  # the account disabled: not this token's id
    got = sent_with(tok)
    assert isinstance(got, Rejected) and (got.reason, got.detail) == ("invalid_token", "baocao-token: token revoked")
    assert isinstance(sent_with(other), Report)  # another account's token still counts
