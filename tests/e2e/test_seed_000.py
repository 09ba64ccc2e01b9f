"""Seed 000, end to end: Bá Thước's communes report their conference of 25 December 2020 over
HTTP; the district and the province show exactly what the news report says."""

import pytest

from shared.domain.hierarchy import load_vietnam
from tools import demo

pytestmark = pytest.mark.e2e


def test_ba_thuoc_conference_adds_up_to_5962_of_6600_members(system):
    reports = [r for r in demo.seed_000_study_sessions(load_vietnam()) if r["unit"] != demo.BA_THUOC]
    assert len(reports) == 21
    with system.client(system.ingest.url) as http:
        answers = [http.post("/v1/reports", json=r) for r in reports]
    assert [a.status_code for a in answers] == [202] * 21
    assert {a.json()["status"] for a in answers} == {"accepted"}

    district = system.wait_for_metric("386", "2020-12", "study_session.members_attended", 5962)
    assert district["metrics"]["study_session.members_total"] == 6600
    assert district["metrics"]["study_session.participation_rate"] == 0.9033
    assert district["completeness"]["study_session"]["units_reported"] == 21
    # the 313 study points were points of the province's conference: the district shows them...
    assert district["metrics"]["study_session.bridge_points"] == 313

    province = system.wait_for_metric("38", "2020-12", "study_session.members_attended", 5962)
    assert province["metrics"]["study_session.members_total"] == 6600
    assert province["metrics"]["study_session.participation_rate"] == 0.9033
    # ... and the province, which holds the organiser, does not add them to its own conference
    assert province["metrics"].get("study_session.bridge_points", 0) == 0
    quarter = system.totals("38", "2020-Q4")
    assert quarter["metrics"]["study_session.members_attended"] == 5962

    # A unit retries after a bad connection: the same report again is a duplicate, not a double count.
    with system.client(system.ingest.url) as http:
        again = http.post("/v1/reports", json=reports[0])
    assert (again.status_code, again.json()["status"]) == (200, "duplicate")

    # A correction from one commune moves every level by exactly the difference.
    corrected = {
        **reports[0],
        "revision": 2,
        "body": {**reports[0]["body"], "members_attended": reports[0]["body"]["members_attended"] - 10},
    }
    with system.client(system.ingest.url) as http:
        assert http.post("/v1/reports", json=corrected).status_code == 202
    system.wait_for_metric("38", "2020-12", "study_session.members_attended", 5952)
    assert system.totals("386", "2020")["metrics"]["study_session.members_attended"] == 5952


def test_children_totals_and_missing_units_drill_down(system):
    tree = load_vietnam()
    reports = [r for r in demo.seed_000_study_sessions(tree) if r["unit"] != demo.BA_THUOC][:5]
    with system.client(system.ingest.url) as http:
        r = http.post("/v1/reports/batch", json=reports)
    assert r.status_code == 200 and r.json()["accepted"] == 5
    expected = sum(x["body"]["members_attended"] for x in reports)
    system.wait_for_metric("38", "2020-12", "study_session.members_attended", expected)
    with system.client(system.api.url) as http:
        rows = http.get("/v1/units/386/children/totals", params={"period": "2020-12"}).json()["children"]
        missing = http.get("/v1/units/386/completeness", params={"period": "2020-12", "series": "study_session"}).json()
    reported = {row["unit"]["code"] for row in rows if row["metrics"]}
    assert reported == {x["unit"] for x in reports}
    assert missing["completeness"]["units_reported"] == 5
    assert len(missing["not_reported"]) == 21 - 5
    assert not {m["code"] for m in missing["not_reported"]} & reported


def test_seed_001_the_hospital_was_one_point_of_the_provinces_conference(system):
    organiser, hospital = demo.seed_001_hospital_conference()
    with system.client(system.api.url) as http:
        agency = {"code": "38-bvdk", "name": "Đảng bộ Bệnh viện Đa khoa tỉnh Thanh Hóa", "parent": "38"}
        assert http.post("/v1/admin/agencies", json=agency).status_code == 201
    with system.client(system.ingest.url) as http:
        # a unit cannot have joined a conference of its own: the field is named
        own = {**organiser, "report_id": "38-own", "body": {**organiser["body"], "joined": "38/x"}}
        refused = http.post("/v1/reports", json=own)
        assert refused.status_code == 422 and "body.joined" in refused.text and "itself" in refused.text
        assert [http.post("/v1/reports", json=r).status_code for r in (hospital, organiser)] == [202, 202]
    province = system.wait_for_metric("38", "2021-11", "study_session.bridge_points", 827)
    assert province["metrics"]["study_session.delegates"] == 32637  # not 827 + 1 points, 32,637 + 60 delegates
    assert province["completeness"]["study_session"]["reports"] == 2
    own = system.totals("38-bvdk", "2021-11")["metrics"]
    assert (own["study_session.bridge_points"], own["study_session.delegates"]) == (1, 60)
