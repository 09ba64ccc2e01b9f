"""Form input to a report, with an error in Vietnamese next to each wrong field."""

from datetime import UTC, date, datetime

import pytest

from services.api.web.forms import body_fields, build_report, default_report_id, parse_date, parse_int, schema_errors
from shared.domain.catalog import load_catalog
from shared.domain.reports import REPORT_ADAPTER

CATALOG = load_catalog()
NOW = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)
SESSION = {
    "unit": "14923",
    "period": "2020-12",
    "held_on": "25/12/2020",
    "format": "online",
    "bridge_points": "15",
    "delegates": "0",
    "members_attended": "284",
    "members_total": "6.600",
}


@pytest.mark.parametrize(
    ("text", "value"),
    [("6600", 6600), ("6.600", 6600), ("6,600", 6600), ("1 234 567", 1234567), (" -5 ", -5), (7.0, 7)],
)
def test_integers_are_read_as_people_write_them(text, value):
    assert parse_int(text) == value


@pytest.mark.parametrize("text", ["12.5", "6.60", "abc", "", "1e3", 2.5, True])
def test_what_is_not_an_integer_is_refused(text):
    with pytest.raises(ValueError):
        parse_int(text)


def test_dates_in_either_form_or_from_a_spreadsheet():
    assert parse_date("25/12/2020") == parse_date("2020-12-25") == date(2020, 12, 25)
    assert parse_date(datetime(2020, 12, 25, 0, 0)) == date(2020, 12, 25)


def test_a_valid_form_gives_a_report_the_schema_accepts():
    checked = build_report(CATALOG, "study_session", SESSION, NOW)
    assert checked.errors == {}
    report = checked.report
    assert (
        report["report_id"] == "14923-study_session-2020-12" == default_report_id("14923", "study_session", "2020-12")
    )
    assert report["revision"] == 1
    assert report["body"]["members_total"] == 6600 and report["body"]["held_on"] == "2020-12-25"
    assert report["submitted_at"] == NOW.isoformat()
    REPORT_ADAPTER.validate_python(report)


def test_each_wrong_field_gets_its_own_message_in_vietnamese():
    values = {**SESSION, "held_on": "2020-11-30", "members_attended": "7000", "bridge_points": "x", "format": ""}
    errors = build_report(CATALOG, "study_session", values, NOW).errors
    assert errors == {
        "held_on": "Ngày phải nằm trong kỳ 2020-12 (01/12/2020 – 31/12/2020).",
        "members_attended": "Không được lớn hơn tổng số đảng viên (6.600).",
        "bridge_points": "Phải là số nguyên (vd. 6600 hoặc 6.600).",
        "format": "Bắt buộc chọn.",
    }


def test_periods_and_bounds_follow_the_catalog():
    errors = build_report(CATALOG, "member_rating", {"unit": "14923", "period": "2020-12"}, NOW).errors
    assert errors["period"] == "Loại báo cáo này chỉ báo cáo theo năm (2025)."
    errors = build_report(CATALOG, "study_session", {**SESSION, "period": "2020-13"}, NOW).errors
    assert errors["period"].startswith("Kỳ không hợp lệ")
    errors = build_report(CATALOG, "study_session", {**SESSION, "delegates": "-1"}, NOW).errors
    assert errors == {"delegates": "Không được nhỏ hơn 0."}
    errors = build_report(CATALOG, "study_session", {**SESSION, "unit": "", "revision": "0"}, NOW).errors
    assert set(errors) == {"unit", "revision"}


def test_an_indicator_asks_for_the_figures_its_kind_uses():
    ratio = {"unit": "386", "period": "2020", "indicator": "doctors_per_10k", "value": "9"}
    errors = build_report(CATALOG, "indicator", ratio, NOW).errors
    assert set(errors) == {"numerator", "denominator", "value"}
    ok = build_report(CATALOG, "indicator", {**ratio, "value": "", "numerator": "120", "denominator": "120.000"}, NOW)
    assert ok.errors == {}
    assert ok.report["report_id"] == "386-indicator-doctors_per_10k-2020"
    assert ok.report["body"] == {"indicator": "doctors_per_10k", "numerator": 120, "denominator": 120000}
    assert [f.name for f in body_fields(CATALOG, "indicator")] == [
        "indicator",
        "value",
        "numerator",
        "denominator",
        "note",
    ]


def test_ingest_errors_are_put_next_to_their_field():
    errors = schema_errors(
        [
            {
                "loc": ["body", "study_session", "body", "members_total"],
                "msg": "...",
                "type": "less_than_equal",
                "ctx": {"le": 10},
            },
            {"loc": ["body", "study_session"], "msg": "Value error, something", "type": "value_error"},
        ]
    )
    assert errors == {"members_total": "Không được lớn hơn 10.", "_form": "Không hợp lệ: Value error, something"}
