"""The web pages over HTTP, with the API's in-memory totals reader: sessions, subtrees and
scopes, the numbers on a page, form errors and file checks (nothing here reaches ingest)."""

import re

import pytest
from fastapi.testclient import TestClient

from services.api.app import create_app
from services.api.repository import InMemoryTotalsReader
from services.api.settings import ApiSettings
from shared.adapters.revocations import InMemoryRevocations, RevocationsUnavailable
from shared.domain.auth import Scope, mint, verify
from shared.domain.hierarchy import load_vietnam
from tests.conftest import TEST_SECRET
from tests.unit.test_api_app import DOCS

REVOKED = InMemoryRevocations()
NEIGHBOUR = load_vietnam(["38"]).children("386")[1].code  # a commune of Bá Thước beside 14923


@pytest.fixture
def client():
    settings = ApiSettings(
        kafka_bootstrap_servers="unused:9092",
        mongodb_uri="mongodb://unused",
        auth_secret=TEST_SECRET,
        ingest_url="http://127.0.0.1:9",
    )
    app = create_app(settings, reader=InMemoryTotalsReader(DOCS), tree=load_vietnam(["38"]), revocations=REVOKED)
    # as a browser does, every request names the site's own origin
    with TestClient(app, follow_redirects=False, headers={"Origin": ORIGIN}) as c:
        yield c


ORIGIN = "http://testserver"


def login_form(client):
    """The login form's fields beside the token: its CSRF proof (set with its nonce cookie)."""
    proof = re.search(r'name="csrf" value="([^"]+)"', client.get("/web/login").text)
    return {"csrf": proof.group(1)} if proof else {}


def login(client, unit, *scopes):
    """A session as the login form opens one; later posts carry its CSRF token, as the pages'
    script sends it."""
    client.headers.pop("X-CSRF-Token", None)
    token = mint(TEST_SECRET, unit, scopes or (Scope.READ,), 3600)
    answer = client.post("/web/login", data={"token": token, **login_form(client)})
    assert answer.status_code == 303, answer.text
    meta = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/web/submissions").text)
    assert meta, "no CSRF token on the page"
    client.headers["X-CSRF-Token"] = meta.group(1)
    return token, answer


def test_login_sets_a_signed_httponly_strict_cookie_and_keeps_the_token_out_of_urls(client):
    token, answer = login(client, "386")
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/web" in cookie
    max_age = int(cookie.split("Max-Age=")[1].split(";")[0])
    assert 0 < max_age <= 2 * 3600
    assert answer.headers["location"] == "/web/"
    home = client.get("/web/")
    assert home.headers["location"] == "/web/units/386"
    assert token not in home.headers["location"]


def test_without_a_session_every_page_goes_to_login(client):
    for path in ("/web/", "/web/units/386", "/web/submit", "/web/upload", "/web/submissions"):
        answer = client.get(path)
        assert (answer.status_code, answer.headers["location"]) == (303, "/web/login"), path
    assert client.get("/web/units/386/events").status_code == 401
    client.cookies.set("baocao_session", "e30.forged", path="/web")
    assert client.get("/web/units/386").headers["location"] == "/web/login"


def test_a_bad_token_is_refused_and_a_revoked_one_ends_the_session(client):
    refused = client.post("/web/login", data={"token": "bcv1.x.y", **login_form(client)})
    assert refused.status_code == 401 and "không hợp lệ" in refused.text
    token, _ = login(client, "386")
    assert client.get("/web/units/386", params={"period": "2020-12"}).status_code == 200
    REVOKED.revoked[verify(TEST_SECRET, token).token_id] = "test"
    assert client.get("/web/units/386").headers["location"] == "/web/login"


def test_the_district_page_shows_the_apis_figures(client):
    login(client, "386")
    page = client.get("/web/units/386", params={"period": "2020-12"})
    assert page.status_code == 200 and '<html lang="vi">' in page.text
    assert ">5.962<" in page.text and ">6.600<" in page.text and ">90,33 %<" in page.text
    assert "/web/units/14923?period=2020-12" in page.text  # drill-down to a commune
    partial = client.get("/web/units/386", params={"period": "2020-12"}, headers={"X-Partial": "live"})
    assert "<html" not in partial.text and ">5.962<" in partial.text


def test_a_commune_sees_itself_but_not_its_neighbour_nor_its_district(client):
    login(client, "14923", Scope.READ, Scope.SUBMIT)
    assert client.get("/web/units/14923", params={"period": "2020-12"}).status_code == 200
    for path in (
        f"/web/units/{NEIGHBOUR}",
        "/web/units/386",
        "/web/units/386/missing",
        f"/web/units/{NEIGHBOUR}/export.csv",
    ):
        answer = client.get(path, params={"period": "2020-12"})
        assert answer.status_code == 403, path
        assert "5.962" not in answer.text and "nằm ngoài phạm vi" in answer.text
    # an unknown code answers like a neighbour's unit, unless it would lie under the token's unit
    unknown = client.get("/web/units/99999")
    assert unknown.status_code == 403 and "nằm ngoài phạm vi" in unknown.text
    assert client.get("/web/units/14923-chua_co").status_code == 404


def test_scopes_decide_what_a_page_offers(client):
    login(client, "386", Scope.READ)
    assert client.get("/web/submit").status_code == 403
    assert client.get("/web/units/386/events").status_code == 403
    assert 'data-live="off"' in client.get("/web/units/386", params={"period": "2020-12"}).text
    login(client, "14923", Scope.SUBMIT)
    assert client.get("/web/units/14923").status_code == 403  # no read scope
    assert client.get("/web/submit").status_code == 200


def test_a_form_with_mistakes_comes_back_with_each_error_beside_its_field(client):
    login(client, "14923", Scope.SUBMIT)
    form = client.get("/web/submit", params={"kind": "study_session"})
    assert 'id="f-members_attended"' in form.text and 'for="f-members_attended"' in form.text
    answer = client.post(
        "/web/submit",
        data={
            "kind": "study_session",
            "unit": "14923",
            "period": "2020-12",
            "members_attended": "500",
            "members_total": "400",
        },
    )
    assert answer.status_code == 422
    assert 'id="err-members_attended">Không được lớn hơn tổng số đảng viên (400).' in answer.text
    assert 'aria-describedby="err-members_attended"' in answer.text
    assert 'value="500"' in answer.text
    outside = client.post("/web/submit", data={"kind": "study_session", "unit": NEIGHBOUR, "period": "2020-12"})
    assert outside.status_code == 422 and "nằm ngoài phạm vi" in outside.text


def test_an_uploaded_file_is_checked_row_by_row_before_anything_is_sent(client):
    login(client, "14923", Scope.SUBMIT)
    header = client.get("/web/templates/study_session.csv").content
    rows = [
        ",,14923,2020-12,,2020-12-25,online,1,0,10,20",
        f",,{NEIGHBOUR},2020-12,,2020-12-25,online,1,0,10,20",
        ",,14923,2020-12,,2020-12-25,online,1,0,30,20",
    ]
    body = header + "\r\n".join(rows).encode()
    answer = client.post("/web/upload/check", data={"kind": "study_session"}, files={"file": ("a.csv", body)})
    rows = answer.json()["rows"]
    assert [r["row"] for r in rows] == [2, 3, 4]
    assert rows[0]["report"]["body"]["members_attended"] == 10 and rows[0]["errors"] == {}
    assert rows[1]["report"] is None and "nằm ngoài phạm vi" in rows[1]["errors"]["Mã đơn vị"]
    assert rows[2]["errors"] == {"Số đảng viên tham dự": "Không được lớn hơn tổng số đảng viên (20)."}
    bad = client.post("/web/upload/check", data={"kind": "study_session"}, files={"file": ("a.txt", b"x")})
    assert bad.status_code == 422 and bad.json()["detail"] == "Chỉ nhận tệp .csv hoặc .xlsx."


def test_the_pages_stay_out_of_the_openapi_schema(client):
    assert not [p for p in client.get("/openapi.json").json()["paths"] if p.startswith("/web")]
    assert client.get("/web/static/app.js").status_code == 200


def test_what_a_user_typed_is_escaped_when_the_form_comes_back(client):
    login(client, "14923", Scope.SUBMIT)
    answer = client.post(
        "/web/submit",
        data={
            "kind": "study_session",
            "unit": "14923",
            "period": "2020-12",
            "resolution": '"><script>alert(1)</script>',
        },
    )
    assert answer.status_code == 422
    assert "<script>alert(1)</script>" not in answer.text
    assert "&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in answer.text


def test_a_country_token_chooses_a_province_and_logout_ends_the_session(client):
    login(client, "VN", Scope.READ)
    home = client.get("/web/")
    assert home.status_code == 200 and 'href="/web/units/38"' in home.text
    cookie = client.cookies["baocao_session"]
    out = client.post("/web/logout")
    assert out.headers["location"] == "/web/login" and 'baocao_session=""' in out.headers["set-cookie"]
    client.cookies.clear()
    assert client.get("/web/").headers["location"] == "/web/login"
    client.cookies.set("baocao_session", cookie, path="/web")  # the old cookie, replayed
    assert client.get("/web/").headers["location"] == "/web/login"


class RevocationsDown:
    async def is_revoked(self, token_id: str) -> bool:
        raise RevocationsUnavailable("the database is away")


def test_when_revocations_cannot_be_checked_login_says_to_retry_and_lets_no_one_in():
    settings = ApiSettings(
        kafka_bootstrap_servers="unused:9092", mongodb_uri="mongodb://unused", auth_secret=TEST_SECRET
    )
    app = create_app(
        settings, reader=InMemoryTotalsReader(DOCS), tree=load_vietnam(["38"]), revocations=RevocationsDown()
    )
    with TestClient(app, follow_redirects=False, headers={"Origin": ORIGIN}) as client:
        token = mint(TEST_SECRET, "386", [Scope.READ], 3600)
        answer = client.post("/web/login", data={"token": token, **login_form(client)})
    assert answer.status_code == 503 and "thử lại" in answer.text
    assert "set-cookie" not in answer.headers


def test_a_page_for_a_period_after_the_2025_reform_shows_the_new_tree(client):
    login(client, "38")
    after = client.get("/web/units/38", params={"period": "2025-Q4"})
    assert after.status_code == 200
    assert "Xã Bá Thước" in after.text and "Huyện Bá Thước" not in after.text  # communes, no districts
    before = client.get("/web/units/38", params={"period": "2025-06"})
    assert "Huyện Bá Thước" in before.text and "Xã Bá Thước" not in before.text
    assert "Xã Bá Thước" in client.get("/web/units/14923", params={"period": "2025-Q4"}).text
    assert "Thị trấn Cành Nàng" in client.get("/web/units/14923", params={"period": "2025-06"}).text


def test_the_cookie_is_an_opaque_session_id_the_api_refuses(client):
    token, answer = login(client, "386")
    cookie = client.cookies["baocao_session"]
    assert len(cookie) == 43 and token not in answer.headers["set-cookie"]
    assert client.get("/v1/units/386", headers={"Authorization": f"Bearer {cookie}"}).status_code == 401
    for bad in (cookie + "=", cookie + "A", cookie[:-1], cookie.swapcase()):
        client.cookies.set("baocao_session", bad, path="/web")
        assert client.get("/web/units/386").headers["location"] == "/web/login", bad


@pytest.mark.parametrize("origin", ["https://evil.example", "http://testserver:8080", "null", None])
def test_posts_from_another_origin_are_refused_with_a_clear_403(client, origin):
    token = mint(TEST_SECRET, "14923", [Scope.READ, Scope.SUBMIT], 3600)
    fields = login_form(client)
    headers = {"Origin": origin} if origin else {}
    if origin is None:
        client.headers.pop("Origin")
    try:
        answer = client.post("/web/login", data={"token": token, **fields}, headers=headers)
        assert answer.status_code == 403 and "set-cookie" not in answer.headers
        assert "Yêu cầu bị từ chối" in answer.text and "Request refused" in answer.text
    finally:
        client.headers["Origin"] = ORIGIN
    login(client, "14923", Scope.READ, Scope.SUBMIT)
    for path, kwargs in (
        ("/web/submit", {"data": {"kind": "study_session", "unit": "14923"}}),
        ("/web/upload/send", {"content": b'{"reports": [{}]}'}),
        ("/web/logout", {}),
    ):
        if origin is None:
            client.headers.pop("Origin")
        try:
            sent = client.post(path, **kwargs, headers={"Content-Type": "application/json", **headers})
        finally:
            client.headers["Origin"] = ORIGIN
        assert sent.status_code == 403, (path, sent.text)
    assert client.get("/web/units/14923", params={"period": "2020-12"}).status_code == 200  # session kept


def test_a_post_without_the_sessions_csrf_token_or_as_text_plain_is_refused(client):
    login(client, "14923", Scope.READ, Scope.SUBMIT)
    csrf = client.headers.pop("X-CSRF-Token")
    assert client.post("/web/submit", data={"kind": "study_session"}).status_code == 403
    assert client.post("/web/submit", data={"kind": "study_session", "csrf": "x" * 43}).status_code == 403
    refused = client.post("/web/upload/send", json={"reports": [{}]})
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    plain = client.post(
        "/web/upload/send", content=b'{"reports": [{}]}', headers={"Content-Type": "text/plain", "X-CSRF-Token": csrf}
    )
    assert plain.status_code == 403 and "text/plain" in plain.json()["detail"]
    # the form's own field works without script
    ok = client.post("/web/submit", data={"kind": "study_session", "unit": "14923", "csrf": csrf})
    assert ok.status_code == 422  # through the token check, stopped by the form's own errors


def test_a_login_form_from_another_page_lacks_the_nonce_and_is_refused(client):
    token = mint(TEST_SECRET, "386", [Scope.READ], 3600)
    client.get("/web/login")  # the nonce cookie, but no proof: a form another site wrote
    answer = client.post("/web/login", data={"token": token})
    assert answer.status_code == 403 and "set-cookie" not in answer.headers


def test_every_answer_carries_the_security_headers(client):
    login(client, "386")
    for path in ("/web/login", "/web/units/386", "/web/units/99999", "/web/static/app.js", "/v1/units/386", "/healthz"):
        headers = client.get(path).headers
        csp = headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
        assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "same-origin"


def test_a_session_holds_at_most_three_streams(client):
    login(client, "386", Scope.READ, Scope.STREAM)
    app = client.app
    # the route decides before streaming: an open stream is counted, a fourth is refused
    key = next(iter(app.state.web.sessions.sessions))
    app.state.web.live.session_streams[key] = 3
    refused = client.get("/web/units/386/events")
    assert refused.status_code == 429 and refused.headers["retry-after"] == "5"
    assert "BAOCAO_API_WEB_MAX_STREAMS_PER_SESSION" in refused.json()["detail"]
    assert app.state.web.live.session_streams[key] == 3 and len(app.state.components.streams) == 0


def test_a_conference_series_says_that_each_conference_is_counted_once_where_it_was_organised(client):
    login(client, "386")
    sessions = client.get("/web/units/386", params={"period": "2020-12", "series": "study_session"}).text
    assert 'id="conference-note"' in sessions and "được tính một lần" in sessions
    programmes = client.get("/web/units/386", params={"period": "2020-12", "series": "action_program"}).text
    assert 'id="conference-note"' not in programmes
