"""The 2025 reform, end to end: the communes of the former Bá Thước district report for 2025-Q4
under the new Thanh Hóa 38 (no district between), Thị trấn Cành Nàng (the old 14923) reports June
2025 in the old tree, a district reporting after the reform is refused naming the unit, and the
country's total and the unit search answer through the running services."""

import pytest

from shared.domain.hierarchy import conversion_2025, load_vietnam
from tools import demo

pytestmark = pytest.mark.e2e


def test_post_reform_communes_report_under_the_new_province_and_the_old_tree_stays_apart(system):
    tree = load_vietnam()
    reports = demo.reform_2025_study_sessions(tree)
    q4 = [r for r in reports if r["period"] == "2025-Q4"]
    [june] = [r for r in reports if r["period"] == "2025-06"]
    assert (june["unit"], june["body"]["members_attended"]) == ("14923", 402)
    assert [r["unit"] for r in q4] == demo.BA_THUOC_AREA_2025
    with system.client(system.ingest.url) as http:
        answers = http.post("/v1/reports/batch", json=reports).json()
        assert answers["accepted"] == len(reports), answers
        refused = http.post("/v1/reports", json={**q4[0], "report_id": "district-after", "unit": "386"})
    assert refused.status_code == 422
    [error] = refused.json()["detail"]
    assert error["loc"] == ["body", "unit"] and "tree 2025" in error["msg"]

    attended = sum(r["body"]["members_attended"] for r in q4)
    total = sum(r["body"]["members_total"] for r in q4)
    assert (attended, total) == (6512, 7040)
    province = system.wait_for_metric("38", "2025-Q4", "study_session.members_attended", attended)
    assert province["metrics"]["study_session.members_total"] == total
    assert province["metrics"]["study_session.participation_rate"] == 0.925
    study = province["completeness"]["study_session"]
    assert (study["units_reported"], study["units_expected"]) == (8, len(tree.for_period("2025-Q4").children("38")))
    # the year 2025 ends in the new tree: it holds Q4, not June's report of the old tree
    year = system.wait_for_metric("38", "2025", "study_session.members_attended", attended)
    assert year["completeness"]["study_session"]["reports"] == 8

    # June 2025, the old tree: Thị trấn Cành Nàng under Bá Thước district 386
    old = system.wait_for_metric("386", "2025-H1", "study_session.members_attended", 402)
    assert old["unit"]["name"] == "Huyện Bá Thước"
    assert system.totals("38", "2025-06")["metrics"]["study_session.members_attended"] == 402

    with system.client(system.api.url) as http:
        commune = http.get("/v1/units/14923/totals", params={"period": "2025-Q4"}).json()
        assert commune["unit"]["name"] == "Xã Bá Thước"
        assert commune["metrics"]["study_session.members_attended"] == q4[0]["body"]["members_attended"]
        then = http.get("/v1/units/14923/totals", params={"period": "2025-06"}).json()
        assert (then["unit"]["name"], then["metrics"]["study_session.members_attended"]) == ("Thị trấn Cành Nàng", 402)
        rows = http.get("/v1/units/38/children/totals", params={"period": "2025-Q4"}).json()["children"]
        assert {r["unit"]["level"] for r in rows} == {"commune"}
        assert sorted(r["unit"]["code"] for r in rows if r["metrics"]) == sorted(demo.BA_THUOC_AREA_2025)
        country = http.get("/v1/units/VN/totals", params={"period": "2025-Q4"}).json()
        assert country["metrics"]["study_session.members_attended"] == attended
        found = http.get("/v1/units", params={"q": "ba thuoc", "tree": "2025"}).json()["units"]
        assert [(u["code"], u["parent"]["code"]) for u in found] == [("14923", "38")]


def test_the_old_history_is_shown_on_the_new_units(system):
    """Seed 000 (December 2020, the old tree) seen from the 2025 tree: new Thanh Hóa 38 took over
    the old province whole; Xã Bá Thước shows the old communes whose primary successor it is."""
    tree = load_vietnam()
    reports = [r for r in demo.seed_000_study_sessions(tree) if r["unit"] != demo.BA_THUOC]
    with system.client(system.ingest.url) as http:
        assert http.post("/v1/reports/batch", json=reports).json()["accepted"] == 21
    system.wait_for_metric("38", "2020-12", "study_session.members_attended", 5962)
    primary = conversion_2025().by_primary["14923"]
    mine = sum(r["body"]["members_attended"] for r in reports if r["unit"] in primary)
    with system.client(system.api.url) as http:
        province = http.get("/v1/units/38/remapped/totals", params={"period": "2020-12"}).json()
        commune = http.get("/v1/units/14923/remapped/totals", params={"period": "2020-12"}).json()
        refused = http.get("/v1/units/14923/remapped/totals", params={"period": "2025-Q4"})
    assert province["metrics"]["study_session.members_attended"] == 5962
    assert [s["code"] for s in province["sources"]] == ["38"]
    assert commune["unit"]["name"] == "Xã Bá Thước" and commune["period_tree"] == "legacy"
    assert sorted(s["code"] for s in commune["sources"]) == sorted(primary)
    assert commune["metrics"]["study_session.members_attended"] == mine > 0
    assert refused.status_code == 422
