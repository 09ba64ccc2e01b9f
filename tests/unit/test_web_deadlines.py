"""The sending deadline ("hạn nộp") on the pages, and ingest's refusals of reports from the
future beside their fields on the report form."""

from services.api.web.forms import schema_errors
from shared.domain.auth import Scope
from tests.unit.test_web_pages import client, login

__all__ = ["client"]


def test_a_units_page_shows_the_deadline_of_the_series_and_period(client):
    login(client, "386")
    page = client.get("/web/units/386", params={"period": "2020-12"})
    assert page.status_code == 200
    assert "<dt>Hạn nộp</dt>" in page.text
    assert ">hết ngày 15/01/2021 (giờ Việt Nam)<" in page.text
    year_end = client.get("/web/units/386", params={"period": "2023", "series": "member_rating"})
    assert ">hết ngày 31/01/2024 (giờ Việt Nam)<" in year_end.text
    partial = client.get("/web/units/386", params={"period": "2020-Q4"}, headers={"X-Partial": "live"})
    assert ">hết ngày 15/01/2021 (giờ Việt Nam)<" in partial.text


def test_the_report_form_states_the_deadline_rule_of_its_kind(client):
    login(client, "14923", Scope.SUBMIT)
    form = client.get("/web/submit", params={"kind": "study_session"})
    assert "Hạn nộp: hết ngày thứ 15 sau ngày cuối của kỳ, giờ Việt Nam (vd. kỳ 2025-03: hết ngày 15/04/2025)" in (
        form.text
    )
    rating = client.get("/web/submit", params={"kind": "member_rating"})
    assert "Hạn nộp: hết ngày thứ 31 sau ngày cuối của kỳ, giờ Việt Nam (vd. kỳ 2025: hết ngày 31/01/2026)" in (
        rating.text
    )


def test_ingests_refusals_of_the_future_come_back_beside_their_fields():
    errors = schema_errors(
        [
            {"loc": ["body", "period"], "msg": "period 2099-03 has not begun: ...", "type": "period_not_begun"},
            {"loc": ["body", "body", "held_on"], "msg": "body.held_on 2099-03-10 ...", "type": "date_in_future"},
        ]
    )
    assert errors == {
        "period": "Kỳ này chưa bắt đầu: chỉ báo cáo kỳ đã bắt đầu.",
        "held_on": "Ngày này chưa đến: nhập ngày đã diễn ra.",
    }
