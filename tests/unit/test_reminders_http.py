"""GET /v1/reminders/due and the page /web/reminders over HTTP, with the in-memory totals reader, in
both trees: the old district 386 before July 2025 and the 2025 province 38 after."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from services.api.app import create_app
from services.api.repository import InMemoryTotalsReader
from services.api.settings import ApiSettings
from shared.domain.auth import Scope, mint
from shared.domain.hierarchy import load_vietnam
from shared.domain.totals_docs import stored_from_views
from tests.conftest import TEST_SECRET


def _view(unit: str, parents: list[str], period: str, own: int) -> dict[str, Any]:
    return {
        "unit": unit,
        "series": "study_session",
        "period": period,
        "parents": parents,
        "sums": {"members_attended": 10, "members_total": 12},
        "reports": 1,
        "units_reported": 1,
        "units_on_time": 1,
        "own": own,
    }


# 2025-03 (legacy tree): Thị trấn Cành Nàng 14923 under district 386 has reported; 2025-09 (2025
# tree): Phường Hàm Rồng 14758 under province 38 has
DOCS = stored_from_views(
    [
        _view("14923", ["14923", "386", "38"], "2025-03", 1),
        _view("386", ["386", "38"], "2025-03", 0),
        _view("38", ["38"], "2025-03", 0),
        _view("14758", ["14758", "38"], "2025-09", 1),
        _view("38", ["38"], "2025-09", 0),
    ]
)
TREE = load_vietnam(["38"])
ORIGIN = "http://testserver"  # as a browser does, every request names the site's own origin


def login(client: TestClient, unit: str) -> None:
    """A read session, opened through the login form with its CSRF proof."""
    proof = re.search(r'name="csrf" value="([^"]+)"', client.get("/web/login").text)
    assert proof, "no CSRF proof on the login form"
    token = mint(TEST_SECRET, unit, (Scope.READ,), 3600)
    answer = client.post("/web/login", data={"token": token, "csrf": proof.group(1)})
    assert answer.status_code == 303, answer.text


def _settings() -> ApiSettings:
    return ApiSettings(
        kafka_bootstrap_servers="unused:9092",
        mongodb_uri="mongodb://unused",
        auth_secret=SecretStr(TEST_SECRET),
        ingest_url="http://127.0.0.1:9",
    )


@pytest.fixture
def client() -> Iterator[TestClient]:
    app = create_app(_settings(), reader=InMemoryTotalsReader(DOCS), tree=TREE)
    with TestClient(app, follow_redirects=False, headers={"Origin": ORIGIN}) as c:
        yield c


def auth(unit: str, scopes: tuple[Scope, ...] = (Scope.READ,)) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint(TEST_SECRET, unit, scopes, 3600)}"}


def _study(body: dict[str, Any]) -> dict[str, Any]:
    [item] = [d for d in body["due"] if d["series"] == "study_session"]
    assert isinstance(item, dict)
    return item


def test_old_district_before_its_deadline(client: TestClient) -> None:
    answer = client.get(
        "/v1/reminders/due", params={"unit": "386", "within_days": 7, "on": "2025-04-10"}, headers=auth("386")
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["unit"], body["on"], body["within_days"]) == ("386", "2025-04-10", 7)
    item = _study(body)
    assert item["period"] == "2025-03" and item["tree"] == "legacy"
    assert item["deadline"] == "2025-04-15T23:59:59.999999+07:00"
    assert (item["days_left"], item["reminder_step"]) == (5, 7)
    assert item["completeness"]["units_expected"] == 21 and item["completeness"]["units_reported"] == 1
    codes = [u["code"] for u in item["not_reported"]]
    assert len(codes) == 20 and "14923" not in codes and "14926" in codes
    # every series due that day, earliest deadline first: the kinds and indicators of 2025-03
    assert {d["period"] for d in body["due"]} == {"2025-03"}
    assert "action_program" in {d["series"] for d in body["due"]}


def test_province_in_the_2025_tree(client: TestClient) -> None:
    body = client.get(
        "/v1/reminders/due", params={"unit": "38", "within_days": 3, "on": "2025-10-13"}, headers=auth("38")
    ).json()
    item = _study(body)
    assert (item["period"], item["tree"], item["days_left"], item["reminder_step"]) == ("2025-09", "2025", 2, 3)
    assert item["completeness"]["units_expected"] == 166
    codes = {u["code"] for u in item["not_reported"]}
    assert len(codes) == 165 and "14758" not in codes


def test_a_window_across_the_reform_holds_periods_of_both_trees(client: TestClient) -> None:
    # on 10 July 2025: June (the old tree, due 15 July) and July (the new tree, due 15 August)
    body = client.get(
        "/v1/reminders/due", params={"unit": "38", "within_days": 40, "on": "2025-07-10"}, headers=auth("38")
    ).json()
    study = [
        (d["period"], d["tree"], d["completeness"]["units_expected"])
        for d in body["due"]
        if d["series"] == "study_session"
    ]
    old_communes = TREE.version_named("legacy").count("38", ["commune", "agency"])
    assert study == [("2025-06", "legacy", old_communes), ("2025-07", "2025", 166)]
    # district 386 is only in the old tree: June alone
    body = client.get(
        "/v1/reminders/due", params={"unit": "386", "within_days": 40, "on": "2025-07-10"}, headers=auth("386")
    ).json()
    assert {d["period"] for d in body["due"]} == {"2025-06"}


def test_nothing_due_outside_the_window(client: TestClient) -> None:
    body = client.get(
        "/v1/reminders/due", params={"unit": "38", "within_days": 2, "on": "2025-10-01"}, headers=auth("38")
    ).json()
    assert body["due"] == []


def test_an_old_district_after_the_reform_has_nothing_due(client: TestClient) -> None:
    # district 386 exists only before July 2025: a day in 2026 lists nothing for it, and no 404
    answer = client.get("/v1/reminders/due", params={"unit": "386", "on": "2026-12-07"}, headers=auth("386"))
    assert answer.status_code == 200 and answer.json()["due"] == []


@pytest.mark.parametrize(
    ("token_unit", "unit", "status"),
    [("14926", "386", 403), ("388", "386", 403), ("38", "386", 200), ("VN", "99999", 404), ("386", "99999", 403)],
)
def test_the_token_sees_only_its_subtree(client: TestClient, token_unit: str, unit: str, status: int) -> None:
    answer = client.get("/v1/reminders/due", params={"unit": unit, "on": "2025-04-10"}, headers=auth(token_unit))
    assert answer.status_code == status, answer.text


def test_read_scope_and_parameters_are_checked(client: TestClient) -> None:
    submit_only = auth("386", (Scope.SUBMIT,))
    assert client.get("/v1/reminders/due", params={"unit": "386"}, headers=submit_only).status_code == 403
    bad = client.get("/v1/reminders/due", params={"unit": "386", "within_days": 101}, headers=auth("386"))
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "within_days"]
    bad = client.get("/v1/reminders/due", params={"unit": "386", "on": "2025-13-01"}, headers=auth("386"))
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "on"]
    for day in ("0001-01-01", "9999-12-31"):
        bad = client.get("/v1/reminders/due", params={"unit": "VN", "on": day}, headers=auth("VN"))
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "on"]
    assert client.get("/v1/reminders/due", params={"unit": "386"}).status_code == 401


def _section(html: str, key: str) -> str:
    found = re.search(rf'<section class="due" id="due-{key}">(.*?)</section>', html, re.S)
    assert found, f"no section {key}"
    return found.group(1)


def test_the_page_in_both_trees(client: TestClient) -> None:
    login(client, "38")
    old = client.get("/web/reminders", params={"unit": "386", "on": "2025-04-10", "within_days": "7"})
    assert old.status_code == 200, old.text
    assert "Chưa báo cáo, sắp đến hạn" in old.text and "kỳ 2025-03" in old.text
    assert "hết ngày 15/04/2025 (giờ Việt Nam)" in old.text and "còn 5 ngày" in old.text
    study = _section(old.text, "study_session-2025-03")
    assert "Xã Điền Thượng" in study and "Thị trấn Cành Nàng" not in study
    assert "Thị trấn Cành Nàng" in _section(old.text, "action_program-2025-03")  # reported study sessions only
    new = client.get("/web/reminders", params={"on": "2025-10-15", "within_days": "0"})
    assert new.status_code == 200 and "kỳ 2025-09" in new.text and "hôm nay là ngày cuối" in new.text
    study = _section(new.text, "study_session-2025-09")
    assert "Phường Hàm Rồng" not in study and "Phường Hạc Thành" in study
    assert "Không có báo cáo nào đến hạn" in client.get("/web/reminders", params={"on": "2025-10-01"}).text


def test_the_page_refuses_outside_the_subtree_and_bad_input(client: TestClient) -> None:
    login(client, "14926")
    assert client.get("/web/reminders", params={"unit": "386", "on": "2025-04-10"}).status_code == 403
    assert client.get("/web/reminders", params={"on": "10/04/2025"}).status_code == 422
    assert client.get("/web/reminders", params={"on": "0001-01-01"}).status_code == 422
    assert client.get("/web/reminders", params={"within_days": "365"}).status_code == 422
    mine = client.get("/web/reminders", params={"on": "2025-04-10"})
    assert mine.status_code == 200 and "Xã Điền Thượng (mã 14926)" in mine.text
