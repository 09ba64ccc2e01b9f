"""Targets on the unit page, with fakes: the form sets and removes one (audited), the page shows
the target and the achievement beside the figure, a read-only session gets no form, and the CSV
and .xlsx exports gain "Chỉ tiêu" and "Đạt" columns."""

import csv
import io
import re

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from services.api.app import create_app
from services.api.repository import InMemoryTotalsReader
from services.api.settings import ApiSettings
from shared.adapters.revocations import InMemoryRevocations
from shared.adapters.targets import InMemoryTargetStore
from shared.domain.auth import Scope
from shared.domain.totals_docs import stored_from_views
from tests.conftest import TEST_SECRET
from tests.unit.test_api_targets import COMMUNES, MEMBERS, TREE, VIEWS
from tests.unit.test_web_trees import guarded, login

PAGE = "/web/units/467"
QUERY = {"period": "2024", "series": "indicator.new_party_members"}


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
        reader=InMemoryTotalsReader(stored_from_views(VIEWS)),
        tree=TREE,
        revocations=InMemoryRevocations(),
        target_store=InMemoryTargetStore(),
    )
    with TestClient(app, follow_redirects=False) as c:
        yield c


def set_target(client, unit, value, do="set"):
    form = {"unit": unit, "metric": MEMBERS, "value": value, "do": do, **QUERY}
    return client.post(f"{PAGE}/targets", data=form, headers=guarded(client))


def text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_the_form_sets_a_target_and_the_page_shows_it_with_the_achievement(client):
    login(client, "467", Scope.READ, Scope.SUBMIT)
    assert 'id="target-form"' in client.get(PAGE, params=QUERY).text
    assert set_target(client, COMMUNES[0], "10").status_code == 303
    assert set_target(client, COMMUNES[1], "09–12").status_code == 303
    page = text(client.get(PAGE, params=QUERY).text)
    assert "Chỉ tiêu 19–22 · đạt 0,8947 (tổng của 2 đơn vị)" in page  # 17 of 19
    assert "10 · đạt 0,8000" in page and "9–12 · đạt 1,0000" in page
    entries = client.app.state.components.audit.entries
    assert [(e.action.value, e.unit) for e in entries if e.action.value.startswith("target.")] == [
        ("target.set", COMMUNES[0]),
        ("target.set", COMMUNES[1]),
    ]
    assert set_target(client, COMMUNES[0], "", do="remove").status_code == 303
    assert "0,8000" not in client.get(PAGE, params=QUERY).text


def test_the_form_says_what_is_wrong_and_who_may_not(client):
    login(client, "467", Scope.READ, Scope.SUBMIT)
    wrong = set_target(client, COMMUNES[0], "12,5")
    assert wrong.status_code == 422 and "Chỉ tiêu không hợp lệ (value)" in wrong.text
    assert set_target(client, "45", "5").status_code == 422  # not this page's unit nor a child
    login(client, "467", Scope.READ)
    assert 'id="target-form"' not in client.get(PAGE, params=QUERY).text
    assert set_target(client, COMMUNES[0], "10").status_code == 403


def test_the_exports_gain_the_target_and_achievement_columns(client):
    login(client, "467", Scope.READ, Scope.SUBMIT)
    set_target(client, "467", "90-100")
    set_target(client, COMMUNES[0], "10")
    answer = client.get(f"{PAGE}/export.csv", params=QUERY)
    rows = list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig"))))
    assert rows[0][-2:] == [f"Chỉ tiêu ({MEMBERS})", f"Đạt ({MEMBERS})"]
    by_unit = {row[0]: row[-2:] for row in rows[1:]}
    assert by_unit["467"] == ["90–100", "0.1889"]  # 17/90
    assert by_unit[COMMUNES[0]] == ["10", "0.8"]
    assert by_unit[COMMUNES[1]] == ["", ""]
    book = load_workbook(io.BytesIO(client.get(f"{PAGE}/export.xlsx", params=QUERY).content))
    sheet = [list(r) for r in book.active.iter_rows(values_only=True)]
    assert sheet[1][-2:] == [f"Chỉ tiêu ({MEMBERS})", f"Đạt ({MEMBERS})"]
    assert sheet[3][-2:] == [10, 0.8] and sheet[3][0] == COMMUNES[0]
