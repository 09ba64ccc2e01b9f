"""The read API over HTTP, with the in-memory totals reader."""

import concurrent.futures
import time

import pytest
from fastapi.testclient import TestClient

from services.api.app import create_app
from services.api.repository import InMemoryTotalsReader
from services.api.settings import ApiSettings
from shared.domain.auth import Scope, mint, verify
from shared.domain.hierarchy import load_vietnam
from shared.domain.totals_docs import stored_from_views
from tests.conftest import TEST_SECRET

VIEWS = {
    "386|study_session|2020-12": {
        "_id": "386|study_session|2020-12",
        "unit": "386",
        "series": "study_session",
        "period": "2020-12",
        "parents": ["386", "38"],
        "sums": {"members_attended": 5962, "members_total": 6600},
        "reports": 21,
        "units_reported": 21,
        "units_on_time": 0,
    },
    "14923|study_session|2020-12": {
        "_id": "14923|study_session|2020-12",
        "unit": "14923",
        "series": "study_session",
        "period": "2020-12",
        "parents": ["14923", "386", "38"],
        "sums": {"members_attended": 300, "members_total": 320},
        "reports": 1,
        "units_reported": 1,
        "own": 1,
    },
}
DOCS = stored_from_views(list(VIEWS.values()))


@pytest.fixture
def client():
    settings = ApiSettings(
        kafka_bootstrap_servers="unused:9092", mongodb_uri="mongodb://unused", auth_secret=TEST_SECRET
    )
    with TestClient(create_app(settings, reader=InMemoryTotalsReader(DOCS), tree=load_vietnam(["38"]))) as c:
        yield c


def auth(unit, scopes=(Scope.READ,)):
    return {"Authorization": f"Bearer {mint(TEST_SECRET, unit, scopes, 3600)}"}


def test_totals_show_sums_and_rates_from_summed_parts(client):
    body = client.get("/v1/units/386/totals", params={"period": "2020-12"}, headers=auth("386")).json()
    assert body["metrics"]["study_session.members_attended"] == 5962
    assert body["metrics"]["study_session.participation_rate"] == 0.9033
    assert body["rates"]["study_session.participation_rate"] == {
        "numerator": 5962,
        "denominator": 6600,
        "scale": 1,
        "value": 0.9033,
    }
    assert body["completeness"]["study_session"]["units_expected"] == 21


@pytest.mark.parametrize(
    ("token_unit", "target", "status"),
    [
        ("386", "386", 200),  # itself
        ("38", "386", 200),  # its parent province
        ("388", "386", 403),  # a sibling district
        ("14923", "386", 403),  # a child commune reading up
        ("14923", "14923", 200),
        ("14926", "14923", 403),  # a sibling commune
        ("VN", "14923", 200),
    ],
)
@pytest.mark.parametrize(
    "route",
    [
        "/v1/units/{c}?tree=legacy",
        "/v1/units/{c}/totals?period=2020-12",
        "/v1/units/{c}/children/totals?period=2020-12",
        "/v1/units/{c}/completeness?period=2020-12&series=study_session",
    ],
)
def test_every_route_serves_only_the_tokens_subtree(client, token_unit, target, status, route):
    r = client.get(route.format(c=target), headers=auth(token_unit))
    assert r.status_code == status
    if status == 403:
        assert "5962" not in r.text and "members" not in r.text


def test_a_submit_only_token_cannot_read(client):
    assert client.get("/v1/units/386", headers=auth("386", (Scope.SUBMIT,))).status_code == 403


def test_no_token_no_data(client):
    assert client.get("/v1/units/386/totals", params={"period": "2020-12"}).status_code == 401


@pytest.mark.parametrize("period", ["2020-13", "Q1", "2020-Q0", "$gt", "2020-12'; drop"])
def test_invalid_periods_get_422_saying_what_is_accepted(client, period):
    r = client.get("/v1/units/386/totals", params={"period": period}, headers=auth("VN"))
    assert r.status_code == 422
    assert "YYYY-Qn" in r.text


@pytest.mark.parametrize("code", ["$ne", "386.x", '{"$gt":""}', "38-", "1234567"])
def test_unit_codes_that_are_not_codes_get_422_or_404(client, code):
    assert client.get(f"/v1/units/{code}", headers=auth("VN")).status_code in (404, 422)


def test_unknown_units_get_404(client):
    assert client.get("/v1/units/99999", headers=auth("VN")).status_code == 404


def test_unknown_series_get_422(client):
    r = client.get("/v1/units/386/completeness", params={"period": "2020-12", "series": "$where"}, headers=auth("VN"))
    assert r.status_code == 422


def test_completeness_lists_who_has_not_reported(client):
    body = client.get(
        "/v1/units/386/completeness", params={"period": "2020-12", "series": "study_session"}, headers=auth("386")
    ).json()
    missing = {u["code"] for u in body["not_reported"]}
    assert "14923" not in missing and len(missing) == 20


def test_latency_is_measured_by_route_template_not_raw_path(client):
    client.get("/v1/units/386", headers=auth("VN"))
    client.get("/v1/units/388", headers=auth("VN"))
    text = client.get("/metrics").text
    assert 'route="/v1/units/{code}"' in text and 'route="/v1/units/386"' not in text


def small_body_client(limit):
    settings = ApiSettings(
        kafka_bootstrap_servers="unused:9092",
        mongodb_uri="mongodb://unused",
        auth_secret=TEST_SECRET,
        max_body_bytes=limit,
    )
    return TestClient(create_app(settings, reader=InMemoryTotalsReader(DOCS), tree=load_vietnam(["38"])))


def test_the_api_answers_413_to_a_body_over_its_limit_before_checking_the_token():
    with small_body_client(10_000) as c:
        r = c.post("/v1/admin/agencies", content=b"x" * 10_001, headers={"content-type": "application/json"})
        assert r.status_code == 413
        assert r.json()["detail"] == "request body larger than 10000 bytes"


def test_the_api_answers_413_to_a_chunked_body_over_its_limit_and_401_unread_without_a_token():
    sent = [0]

    def chunks():
        for _ in range(100):
            sent[0] += 1
            yield b"x" * 5_000

    with small_body_client(10_000) as c:
        headers = {**auth("38", (Scope.ADMIN,)), "content-type": "application/json"}
        assert c.post("/v1/admin/agencies", content=chunks(), headers=headers).status_code == 413
        sent[0] = 0
        r = c.post("/v1/admin/agencies", content=chunks(), headers={"content-type": "application/json"})
        assert (r.status_code, r.json()["detail"], sent[0]) == (401, "missing bearer token", 0)


def test_the_api_default_limit_leaves_room_for_the_web_upload_of_4_mb():
    settings = ApiSettings(
        kafka_bootstrap_servers="unused:9092", mongodb_uri="mongodb://unused", auth_secret=TEST_SECRET
    )
    assert settings.max_body_bytes > 4 * 1024 * 1024


class FakeAgencyRegistry:
    """The registry's part the API uses, without MongoDB."""

    def __init__(self, tree):
        self.tree = tree

    async def register(self, code, name, parent, trees=None):
        if code in self.tree:
            return False
        self.tree.add_agency(code, name, parent, trees)
        return True


@pytest.fixture
def admin_client():
    tree = load_vietnam(["38"])
    tree.add_agency("386-a", "Agency A", "386")
    tree.add_agency("386-b", "Agency B", "386")
    settings = ApiSettings(
        kafka_bootstrap_servers="unused:9092",
        mongodb_uri="mongodb://unused",
        auth_secret=TEST_SECRET,
        max_agencies_per_unit=2,
    )
    app = create_app(settings, reader=InMemoryTotalsReader(DOCS), tree=tree, registry=FakeAgencyRegistry(tree))
    with TestClient(app) as c:
        yield c


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("Bệnh viện\x00", "control characters (U+0000 at position 9)"),
        ("Bệnh\nviện", "control characters (U+000A at position 4)"),
        ("Bệnh viện \u202egnóh", "bidirectional control characters (U+202E at position 10)"),
        ("\u2066Bệnh viện", "bidirectional control characters (U+2066 at position 0)"),
        ("<script>alert(1)</script>", "'<' or '>' (at position 0)"),
        ("Bệnh\u2028viện", "line separators (U+2028 at position 4)"),
        ("Bệnh\u2029viện", "paragraph separators (U+2029 at position 4)"),
        ("Bệnh viện\u200f 1", "bidirectional control characters (U+200F at position 9)"),
        ("Bệnh viện\u061c 1", "bidirectional control characters (U+061C at position 9)"),
        ("Bệnh\ufeffviện", "invisible format characters (U+FEFF at position 4)"),
        ("Bệnh viện\U000e0041\U000e007f", "invisible format characters (U+E0041 at position 9)"),
        ("Bệnh\u200dviện", "invisible format characters (U+200D at position 4)"),
        ("Bệnh\ue000viện", "private-use characters (U+E000 at position 4)"),
        ("Bệnh\U000e0080viện", "unassigned code points (U+E0080 at position 4)"),
        ("\u200b", "invisible format characters (U+200B at position 0)"),
        ("- . -", "at least one letter or digit"),
        ("\u0301\u0301", "at least one letter or digit"),
    ],
)
def test_agency_names_refuse_control_and_bidi_characters_and_markup(admin_client, name, problem):
    r = admin_client.post(
        "/v1/admin/agencies",
        json={"code": "38-bv", "name": name, "parent": "38"},
        headers=auth("38", (Scope.ADMIN,)),
    )
    assert r.status_code == 422
    (error,) = r.json()["detail"]
    assert error["loc"] == ["body", "name"] and problem in error["msg"]


def test_a_unit_takes_at_most_the_configured_number_of_agencies(admin_client):
    admin = auth("38", (Scope.ADMIN,))
    legacy = {"tree": "legacy"}  # district 386 is a unit of the tree before July 2025 only
    r = admin_client.post(
        "/v1/admin/agencies", json={"code": "386-c", "name": "C", "parent": "386"}, params=legacy, headers=admin
    )
    assert r.status_code == 409
    assert "unit 386 already has 2 agencies" in r.json()["detail"]
    assert "BAOCAO_API_MAX_AGENCIES_PER_UNIT=2" in r.json()["detail"]
    # registering an existing one again is still answered; another unit has room
    again = {"code": "386-a", "name": "Agency A", "parent": "386"}
    assert admin_client.post("/v1/admin/agencies", json=again, params=legacy, headers=admin).status_code == 200
    other = {"code": "38-bv", "name": "Bệnh viện Đa khoa tỉnh", "parent": "38"}
    assert admin_client.post("/v1/admin/agencies", json=other, headers=admin).status_code == 201


@pytest.mark.parametrize("route", ["/v1/units/{}", "/v1/units/{}/totals?period=2020-12"])
def test_a_token_cannot_tell_an_unknown_unit_from_one_outside_its_subtree(client, route):
    neighbour = client.get(route.format("14926"), headers=auth("14923"))
    unknown = client.get(route.format("99999"), headers=auth("14923"))
    unknown_agency_elsewhere = client.get(route.format("14926-khong_co"), headers=auth("14923"))
    assert neighbour.status_code == unknown.status_code == unknown_agency_elsewhere.status_code == 403
    assert neighbour.json()["detail"] == "unit 14926 is outside this token's unit 14923"
    assert unknown.json()["detail"] == "unit 99999 is outside this token's unit 14923"
    # 404 only where the unit would be visible if it existed
    assert client.get(route.format("14923-khong_co"), headers=auth("14923")).status_code == 404
    assert client.get(route.format("99999"), headers=auth("VN")).status_code == 404


def test_registering_under_an_unknown_parent_outside_the_subtree_is_403_like_a_neighbour(admin_client):
    admin = auth("386", (Scope.ADMIN,))
    for parent in ("388", "99999"):
        r = admin_client.post(
            "/v1/admin/agencies", json={"code": f"{parent}-x", "name": "X", "parent": parent}, headers=admin
        )
        assert r.status_code == 403
        assert r.json()["detail"] == f"unit {parent} is outside this token's unit 386"


class RevokedAfterFirstCheck:
    """Revocations that revoke a token once it has been checked ``checks`` times, or on demand."""

    def __init__(self, checks=10**9):
        self.checks = checks
        self.seen = {}
        self.revoked = set()

    async def is_revoked(self, token_id):
        self.seen[token_id] = self.seen.get(token_id, 0) + 1
        return token_id in self.revoked or self.seen[token_id] > self.checks

    async def revoke(self, token_id, reason):
        self.revoked.add(token_id)


def stream_client(revocations, **overrides):
    settings = ApiSettings(
        kafka_bootstrap_servers="unused:9092",
        mongodb_uri="mongodb://unused",
        auth_secret=TEST_SECRET,
        stream_recheck_seconds=0.02,
        **overrides,
    )
    app = create_app(settings, reader=InMemoryTotalsReader(DOCS), tree=load_vietnam(["38"]), revocations=revocations)
    return app, TestClient(app)


@pytest.mark.timeout(20)  # a stream that never ends fails here rather than hangs
def test_a_stream_ends_when_its_token_is_revoked():
    app, c = stream_client(RevokedAfterFirstCheck(checks=1))  # the request's own check passes
    with c:
        r = c.get("/v1/units/386/stream?tree=legacy", headers=auth("386", (Scope.STREAM,)))
        assert r.status_code == 200
        assert r.text.startswith(": connected")
        assert r.text.endswith('event: end\ndata: {"reason": "token revoked"}\n\n')
        assert len(app.state.components.streams) == 0  # every stream given back


@pytest.mark.timeout(20)  # a stream that never ends fails here rather than hangs
def test_a_stream_ends_when_its_token_expires():
    _, c = stream_client(RevokedAfterFirstCheck())
    token = mint(TEST_SECRET, "386", [Scope.STREAM], 3)  # valid when asked, expired within four seconds
    with c:
        r = c.get("/v1/units/386/stream?tree=legacy", headers={"Authorization": f"Bearer {token}"})
        assert r.text.endswith('event: end\ndata: {"reason": "token expired"}\n\n')


@pytest.mark.timeout(20)  # a stream that never ends fails here rather than hangs
def test_a_token_holds_at_most_the_configured_number_of_streams():
    revocations = RevokedAfterFirstCheck()
    app, c = stream_client(revocations, max_streams_per_token=1)
    token = mint(TEST_SECRET, "386", [Scope.STREAM], 3600)
    token_id = verify(TEST_SECRET, token).token_id
    headers = {"Authorization": f"Bearer {token}"}
    with c:
        first = concurrent.futures.ThreadPoolExecutor(1).submit(
            c.get, "/v1/units/386/stream?tree=legacy", headers=headers
        )
        deadline = time.monotonic() + 10
        while app.state.components.streams.held(token_id) != 1:  # the first stream is open
            assert time.monotonic() < deadline and not first.done()
            time.sleep(0.01)
        second = c.get("/v1/units/386/stream?tree=legacy", headers=headers)
        assert second.status_code == 429 and second.headers["retry-after"] == "5"
        assert "already has 1 open streams" in second.json()["detail"]
        assert "BAOCAO_API_MAX_STREAMS_PER_TOKEN=1" in second.json()["detail"]
        revocations.revoked.add(token_id)  # ends the first stream at its next check
        assert first.result(timeout=10).text.endswith('"token revoked"}\n\n')
        assert len(app.state.components.streams) == 0  # every stream given back


@pytest.mark.parametrize("name", ["Đảng bộ Bệnh viện Đa khoa tỉnh", "Trường THCS số 2", "  Chi bộ 3  ", "Xã Ia Rsai"])
def test_agency_names_in_plain_vietnamese_are_accepted(admin_client, name):
    r = admin_client.post(
        "/v1/admin/agencies",
        json={"code": "38-plain", "name": name, "parent": "38"},
        headers=auth("38", (Scope.ADMIN,)),
    )
    assert r.status_code == 201, r.text
    assert r.json()["name"] == name.strip()


def test_searches_past_a_tokens_rate_get_429_with_retry_after_and_its_totals_and_others_still_answer():
    settings = ApiSettings(
        kafka_bootstrap_servers="unused:9092",
        mongodb_uri="mongodb://unused",
        auth_secret=TEST_SECRET,
        expensive_reads_per_second=0.01,
        expensive_reads_burst=3,
    )
    with TestClient(create_app(settings, reader=InMemoryTotalsReader(DOCS), tree=load_vietnam(["38"]))) as c:
        greedy, other = auth("14923"), auth("14926")
        search = {"q": "zz", "tree": "legacy"}
        answers = [c.get("/v1/units", params=search, headers=greedy) for _ in range(4)]
        assert [r.status_code for r in answers] == [200, 200, 200, 429]
        assert int(answers[-1].headers["Retry-After"]) >= 1
        assert "BAOCAO_API_EXPENSIVE_READS_PER_SECOND" in answers[-1].json()["detail"]
        completeness = {"period": "2020-12", "series": "study_session", "tree": "legacy"}
        assert c.get("/v1/units/14923/completeness", params=completeness, headers=greedy).status_code == 429
        assert c.get("/v1/units/14923/totals", params={"period": "2020-12"}, headers=greedy).status_code == 200
        assert c.get("/v1/units", params=search, headers=other).status_code == 200
        # a token's unit that is not in the tree asked about has nothing there to find
        assert c.get("/v1/units", params={"q": "", "tree": "2025"}, headers=auth("386")).json()["units"] == []


def test_a_search_looks_only_in_the_tokens_subtree_and_finds_what_the_whole_tree_search_finds(client):
    tree = load_vietnam(["38"]).version_named("legacy")
    everything = {u.code for u in tree.search("xa", limit=len(tree))}
    mine = client.get("/v1/units", params={"q": "xa", "limit": 1000, "tree": "legacy"}, headers=auth("386")).json()
    assert {u["code"] for u in mine["units"]} == {u.code for u in tree.subtree("386") if u.code in everything}
    assert len(mine["units"]) > 1


def test_a_search_query_longer_than_a_unit_name_gets_422_naming_q(client):
    r = client.get("/v1/units", params={"q": "z" * 41}, headers=auth("386"))
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "q"]


def test_a_search_finds_an_agency_added_after_the_names_were_indexed():
    tree = load_vietnam(["38"]).version_named("legacy")
    assert tree.search("benh vien zeta") == []
    tree.add_agency("386-zeta", "Bệnh viện Zeta", "386")
    assert [u.code for u in tree.search("benh vien zeta")] == ["386-zeta"]
    assert [u.code for u in tree.search("zeta", within="386")] == ["386-zeta"]
    assert tree.search("zeta", within="388") == []
