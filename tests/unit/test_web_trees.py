"""The pages in the tree of each period: the report form's units and scope check, the submissions
page, level labels and the pages' default tree (the one in force today), over HTTP with the API's
in-memory reader (nothing here reaches ingest: a form that passes the page's own checks fails to
reach the unused ingest address and comes back 503)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.api.app import create_app
from services.api.repository import InMemoryTotalsReader
from services.api.settings import ApiSettings
from services.api.web import labels
from services.api.web.listing import EVERYTHING, NOTHING, InMemorySubmissionListing, Reach, reach_of
from services.ingest.submissions import scope_of, series_tree
from shared.adapters.revocations import InMemoryRevocations
from shared.domain.auth import Scope, mint, verify
from shared.domain.hierarchy import LEGACY, TREE_2025, load_vietnam
from tests.conftest import TEST_SECRET
from tests.unit.test_api_app import DOCS

TREE = load_vietnam(["02", "08", "38"])
OLD, NEW = TREE.version_named(LEGACY), TREE.version_named(TREE_2025)
FORMER_HA_GIANG = [u.code for u in NEW.children("08") if u.code in OLD and OLD.path(u.code)[-1] == "02"]
NEW_BA_THUOC = "14923"  # Xã Bá Thước (2025 tree, under province 38); Thị trấn Cành Nàng (district 386) before
WARD = "14758"  # Phường Hàm Rồng, Thanh Hóa (2025 tree)


@pytest.fixture
def client():
    settings = ApiSettings(
        kafka_bootstrap_servers="unused:9092",
        mongodb_uri="mongodb://unused",
        auth_secret=TEST_SECRET,
        ingest_url="http://127.0.0.1:9",
    )
    app = create_app(
        settings,
        reader=InMemoryTotalsReader(DOCS),
        tree=load_vietnam(["02", "08", "38"]),
        revocations=InMemoryRevocations(),
    )
    with TestClient(app, follow_redirects=False) as c:
        yield c


ORIGIN = {"Origin": "http://testserver"}  # the site's own origin, as a browser sends it


def login(client: TestClient, unit: str, *scopes: Scope) -> str:
    """A fresh session for a token of ``unit``, as the login form makes it (with its proof field
    when the form has one); later posts carry the page's CSRF token (:func:`guarded`)."""
    client.cookies.clear()
    token = mint(TEST_SECRET, unit, scopes or (Scope.READ,), 3600)
    form = client.get("/web/login").text
    proof = re.search(r'name="csrf" value="([^"]+)"', form)
    data = {"token": token, **({"csrf": proof.group(1)} if proof else {})}
    assert client.post("/web/login", data=data, headers=ORIGIN).status_code == 303
    return token


def guarded(client: TestClient) -> dict[str, str]:
    """The headers a page's own script sends with a post: the origin and the session's CSRF token."""
    meta = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/web/submissions").text)
    return {**ORIGIN, **({"X-CSRF-Token": meta.group(1)} if meta else {})}


def options(html: str) -> list[str]:
    return re.findall(r'<option value="([^"]*)"', html.split('id="f-unit"')[1].split("</select>")[0])


def test_the_2025_tree_has_the_former_ha_giang_communes_under_tuyen_quang():
    assert len(FORMER_HA_GIANG) == 73 and "00691" in FORMER_HA_GIANG
    assert OLD.path("00691") == ["00691", "024", "02"] and NEW.path("00691") == ["00691", "08"]


def test_level_labels_come_from_each_units_own_kind():
    assert labels.level_label("commune", "Phường Hàm Rồng") == "Phường"
    assert labels.level_label("commune", "Đặc khu Côn Đảo") == "Đặc khu"
    assert labels.level_label("commune", "Thị trấn Cành Nàng") == "Thị trấn"
    assert labels.level_label("commune", "Xã Bá Thước") == "Xã"
    assert labels.level_label("district", "Thành Phố Bà Rịa") == "Thành phố"
    assert labels.level_label("province", "Thành phố Hà Nội") == "Thành phố"
    assert labels.level_label("agency", "Phường đội") == "Cơ quan"
    assert labels.level_label("commune", "Bản Lầu") == "Xã"  # no kind in the name: the level's word
    assert labels.whole_label("commune", "Phường Hàm Rồng") == "Toàn phường"
    assert labels.whole_label("province", "Tỉnh Thanh Hóa") == "Toàn tỉnh"
    assert labels.whole_label("country", "Việt Nam") == "Toàn quốc"


def test_a_wards_page_calls_it_a_ward(client):
    login(client, "38")
    page = client.get(f"/web/units/{WARD}", params={"period": "2025-Q4"})
    assert page.status_code == 200
    assert "Phường · mã 14758" in page.text and ">Toàn phường<" in page.text
    assert "· Xã" not in page.text and "Toàn xã" not in page.text
    province = client.get("/web/units/38", params={"period": "2025-Q4"}).text
    assert ">Toàn tỉnh<" in province and f'href="/web/units/{WARD}?period=2025-Q4' in province


def test_a_wards_export_calls_it_a_ward(client):
    login(client, "38")
    csv = client.get(f"/web/units/{WARD}/export.csv", params={"period": "2025-Q4"})
    assert csv.status_code == 200
    assert f"{WARD},Phường Hàm Rồng,Phường," in csv.content.decode("utf-8-sig")


def test_the_form_lists_the_units_of_the_tree_of_the_period_reported(client):
    login(client, "08", Scope.SUBMIT)
    today = options(client.get("/web/submit").text)  # the current period: the 2025 tree
    assert set(FORMER_HA_GIANG) <= set(today) and len(today) == 1 + len(NEW.children("08"))
    assert not {"070", "071", "076"} & set(today)
    old = options(client.get("/web/submit", params={"tree": "legacy"}).text)
    assert {"070", "076"} <= set(old) and "00691" not in old
    by_period = client.post(
        "/web/submit", data={"kind": "study_session", "unit": "08", "period": "2020-12"}, headers=guarded(client)
    )
    assert by_period.status_code == 422 and "070" in options(by_period.text)


def test_the_form_tells_an_old_districts_staff_which_periods_they_can_send(client):
    login(client, "386", Scope.SUBMIT)
    form = client.get("/web/submit").text  # the current period: the 2025 tree, without 386
    assert '<input id="f-unit" name="unit"' in form  # a code to type: no list of the 2025 tree's units
    assert "không còn trong danh mục từ 1/7/2025" in form
    assert "không còn" not in client.get("/web/submit", params={"tree": "legacy"}).text
    login(client, "38", Scope.SUBMIT)
    assert "không còn" not in client.get("/web/submit").text


def test_a_revision_link_of_a_2025_report_opens_the_form(client):
    login(client, "08", Scope.SUBMIT)
    for params in ({"kind": "study_session@2025"}, {"kind": "study_session", "tree": "2025"}):
        form = client.get("/web/submit", params={**params, "report_id": "r1", "revision": "2", "unit": "00691"})
        assert form.status_code == 200, params
        assert '<option value="00691" selected>' in form.text and 'name="tree" value="2025"' in form.text
    assert client.get("/web/submit", params={"kind": "nothing@2025"}).status_code == 404


def post(client: TestClient, unit: str, period: str) -> Any:
    body = {"held_on": f"{period}-05", "format": "in_person", "bridge_points": "1", "delegates": "10"}
    body |= {"resolution": "NQ", "members_attended": "5", "members_total": "10"}
    data = {"kind": "study_session", "unit": unit, "period": period, **body}
    return client.post("/web/submit", data=data, headers=guarded(client))


def test_the_forms_scope_check_is_made_in_the_tree_of_the_reports_period(client):
    login(client, "08", Scope.SUBMIT)
    allowed = post(client, "00691", "2026-01")  # passes the page's checks, then ingest is unreachable
    assert allowed.status_code == 503 and "nằm ngoài phạm vi" not in allowed.text
    assert "nằm ngoài phạm vi" in post(client, "00691", "2020-12").text  # Hà Giang's before July 2025
    login(client, "02", Scope.SUBMIT)
    assert "nằm ngoài phạm vi" in post(client, "00691", "2026-01").text
    assert post(client, "00691", "2020-12").status_code == 503
    login(client, "386", Scope.SUBMIT)
    assert "nằm ngoài phạm vi" in post(client, NEW_BA_THUOC, "2026-01").text
    closed = post(client, "386", "2026-01")
    assert closed.status_code == 422 and "không có trong cây đơn vị của kỳ 2026-01" in closed.text
    assert post(client, NEW_BA_THUOC, "2020-12").status_code == 503


def check_rows(client: TestClient, units: list[str], period: str) -> list[dict]:
    header = client.get("/web/templates/study_session.csv").content
    rows = [f",,{u},{period},,{period}-01,online,1,0,10,20" for u in units]
    answer = client.post(
        "/web/upload/check",
        data={"kind": "study_session"},
        files={"file": ("a.csv", header + "\r\n".join(rows).encode())},
        headers=guarded(client),
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["rows"]


def test_every_2025_commune_of_a_province_passes_and_none_for_an_old_district_or_merged_province(client):
    communes = [u.code for u in NEW.children("08")]
    login(client, "08", Scope.SUBMIT)
    assert [r["errors"] for r in check_rows(client, communes, "2025-10") if r["errors"]] == []
    for old_unit in ("02", "386"):
        login(client, old_unit, Scope.SUBMIT)
        rows = check_rows(
            client, [u.code for u in NEW.children("08")] + [u.code for u in NEW.children("38")], "2025-10"
        )
        assert all("nằm ngoài phạm vi" in r["errors"].get("Mã đơn vị", "") for r in rows), old_unit


def doc(unit: str, report_id: str, series: str, scope: list[str] | None = None) -> tuple[str, str, str, list[str]]:
    """A report as ingest records it, its scope that of ``unit`` in the tree ``series`` names."""
    return (
        unit,
        report_id,
        series,
        scope if scope is not None else scope_of(TREE.version_named(series_tree(series)), unit),
    )


LOG = [
    doc("00691", "hg2-2025-10", "study_session@2025"),
    doc("00691", "tranphu-2020-12", "study_session"),  # Phường Trần Phú, Hà Giang, before July 2025
    doc("14923", "bathuoc-2025-10", "study_session@2025"),
    doc("14923", "canhnang-2020-12", "study_session"),
    doc("14923", "ind-2025", "indicator.hospital_beds@2025"),
    # a scope that does not match its series' tree (Hà Giang's 00691 is in no tree under 386): the
    # page's own check of each row keeps it from district 386's listing all the same
    doc("00691", "wrong-scope", "study_session@2025", ["legacy:14923", "legacy:386", "legacy:38"]),
]
RECORDED = datetime(2026, 12, 1, tzinfo=UTC)


def listing_of(docs: list[tuple[str, str, str, list[str]]]) -> InMemorySubmissionListing:
    """The reports of ``docs``, the first the newest."""
    listing = InMemorySubmissionListing()
    for i, (unit, report_id, series, scope) in enumerate(docs):
        listing.add(unit, report_id, series, [1], RECORDED - timedelta(seconds=i), scope)
    return listing


@pytest.fixture
def logged(client):
    """The submissions listing holds ``LOG``."""
    client.app.state.web.submissions = listing_of(LOG)
    return client


def listed(client: TestClient) -> list[tuple[str, str]]:
    page = client.get("/web/submissions")
    assert page.status_code == 200
    return re.findall(r'<tr data-report="([^"]+)"><td><code>[^<]+</code></td><td>([^<]+)</td>', page.text)


def test_the_submissions_page_lists_each_report_in_the_tree_of_its_period(logged):
    login(logged, "08", Scope.SUBMIT)
    assert listed(logged) == [("hg2-2025-10", "Phường Hà Giang 2 (00691)")]
    page = logged.get("/web/submissions").text
    assert "/web/submit?kind=study_session&amp;tree=2025&amp;report_id=hg2-2025-10&amp;revision=2" in page
    login(logged, "02", Scope.READ)
    assert listed(logged) == [("tranphu-2020-12", "Phường Trần Phú (00691)")]
    login(logged, "386", Scope.SUBMIT)
    assert listed(logged) == [("canhnang-2020-12", "Thị trấn Cành Nàng (14923)")]
    assert "tree=legacy" in logged.get("/web/submissions").text
    login(logged, "38", Scope.SUBMIT)
    assert listed(logged) == [  # the old Bá Thước district was Thanh Hóa's too
        ("bathuoc-2025-10", "Xã Bá Thước (14923)"),
        ("canhnang-2020-12", "Thị trấn Cành Nàng (14923)"),
        ("ind-2025", "Xã Bá Thước (14923)"),
    ]
    assert "kind=indicator&amp;tree=2025" in logged.get("/web/submissions").text
    login(logged, "VN", Scope.READ)
    assert dict(listed(logged)) == {
        "hg2-2025-10": "Phường Hà Giang 2 (00691)",
        "tranphu-2020-12": "Phường Trần Phú (00691)",
        "bathuoc-2025-10": "Xã Bá Thước (14923)",
        "canhnang-2020-12": "Thị trấn Cành Nàng (14923)",
        "ind-2025": "Xã Bá Thước (14923)",
        "wrong-scope": "Phường Hà Giang 2 (00691)",
    }


def token(unit: str) -> Any:
    return verify(TEST_SECRET, mint(TEST_SECRET, unit, [Scope.READ], 60))


def test_what_a_token_lists_is_its_unit_in_each_tree_that_holds_it():
    # one scope per tree that holds the token's unit, the code named with its tree
    assert reach_of(TREE, token("386")) == Reach(("legacy:386",))  # the old tree only
    assert reach_of(TREE, token("08")) == Reach(("legacy:08", "2025:08"))
    assert reach_of(TREE, token("VN")) == EVERYTHING
    assert reach_of(TREE, token("99999")) == NOTHING  # a unit of no tree lists nothing


async def test_a_code_in_two_trees_lists_the_reports_of_each_tree_under_its_own_province():
    # Hà Giang's 00691 is under province 02 in the old tree and 08 in the 2025 tree
    old, new = doc("00691", "a", "study_session"), doc("00691", "b", "study_session@2025")
    assert old[3] == ["legacy:00691", "legacy:024", "legacy:02"] and new[3] == ["2025:00691", "2025:08"]
    listing = listing_of([old, new])

    async def ids(unit: str) -> list[str]:
        return [r.report_id for r in (await listing.page(reach_of(TREE, token(unit)))).items]

    assert await ids("08") == ["b"] and await ids("02") == ["a"]


def test_pages_without_a_period_use_the_tree_in_force_today(client):
    login(client, "VN")
    country = client.get("/web/").text
    assert 'href="/web/units/08"' in country and 'href="/web/units/02"' not in country  # 2 of 34 loaded here
    before = client.get("/web/", params={"period": "2020-12"}).text
    assert 'href="/web/units/02?period=2020-12"' in before
    old_province = client.get("/web/units/02", params={"period": "2020-12"}).text  # back up: the same tree
    assert 'href="/web/?period=2020-12">Toàn quốc<' in old_province
    login(client, NEW_BA_THUOC)
    page = client.get(f"/web/units/{NEW_BA_THUOC}").text
    assert 'class="who">Xã Bá Thước<' in page and "Thị trấn Cành Nàng" not in page
    login(client, "386")
    district = client.get("/web/units/386")  # no longer a unit: its last month in the old tree
    assert district.status_code == 200 and 'value="2025-06"' in district.text
    assert 'class="who">Huyện Bá Thước<' in district.text


def test_live_updates_are_allowed_in_the_tree_of_the_pages_period(client):
    login(client, "386", Scope.READ, Scope.STREAM)
    assert client.get(f"/web/units/{NEW_BA_THUOC}/events").status_code == 403  # Xã Bá Thước, province 38
    assert client.get(f"/web/units/{NEW_BA_THUOC}/events", params={"period": "2026-01"}).status_code == 403
    page = client.get("/web/units/386", params={"period": "2020-12"}).text
    assert 'data-events="/web/units/386/events?period=2020-12"' in page
    login(client, "02", Scope.READ, Scope.STREAM)
    assert client.get("/web/units/00691/events").status_code == 403
