"""Seed 002's report kinds, declared in the catalog: training courses a unit held
(``training_course``) and the year-end rating of grassroots party organisations
(``organisation_rating``). Schema, roll-up, reminders, the report form and a unit's page."""

from datetime import UTC, date, datetime

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from services.api.app import create_app
from services.api.repository import InMemoryTotalsReader
from services.api.settings import ApiSettings
from services.api.web.forms import build_report
from shared.domain.auth import Scope
from shared.domain.catalog import load_catalog
from shared.domain.hierarchy import Level, load_vietnam
from shared.domain.reminders import due, expected_units
from shared.domain.reports import REPORT_ADAPTER
from shared.domain.rollup import Report, Rollup, rates, report_from_input
from shared.domain.totals_docs import to_stored
from tests.conftest import TEST_SECRET
from tests.unit.test_rollup import where
from tests.unit.test_web_pages import ORIGIN, REVOKED, login
from tools import demo

CATALOG = load_catalog()
TREE = load_vietnam(["38"])
SENT = datetime(2024, 4, 2, tzinfo=UTC)
COURSE = {
    "title": "Lớp bồi dưỡng nghiệp vụ công tác Đảng",
    "topic": "Nghiệp vụ công tác Đảng",
    "started_on": "2024-03-26",
    "ended_on": "2024-03-27",
    "days": 2,
    "learners_enrolled": 77,
    "learners_completed": 75,
}
RATING = {"excellent": 8, "good": 29, "completed": 5, "not_completed": 1}


def payload(kind, body, period="2024-03", unit="388"):
    return {
        "report_id": "r-1",
        "revision": 1,
        "unit": unit,
        "kind": kind,
        "period": period,
        "submitted_at": "2024-03-29T09:00:00+07:00",
        "body": body,
    }


def errors_of(raw):
    with pytest.raises(ValidationError) as err:
        REPORT_ADAPTER.validate_python(raw)
    return {".".join(str(x) for x in e["loc"]): e["msg"] for e in err.value.errors()}


# --- the schema -------------------------------------------------------------------------------


def test_seed_002s_course_and_a_year_end_rating_are_accepted():
    course = REPORT_ADAPTER.validate_python(payload("training_course", COURSE))
    assert (course.body.started_on, course.body.learners_completed) == (date(2024, 3, 26), 75)
    rating = REPORT_ADAPTER.validate_python(payload("organisation_rating", RATING, period="2023", unit="386"))
    assert rating.body.good == 29


def test_more_learners_completing_than_enrolled_is_refused_naming_both_fields():
    errors = errors_of(payload("training_course", {**COURSE, "learners_completed": 78}))
    assert list(errors) == ["training_course.body"]
    assert "learners_completed (78) must not exceed learners_enrolled (77)" in errors["training_course.body"]


def test_a_course_ending_before_it_starts_is_refused_naming_both_dates():
    errors = errors_of(payload("training_course", {**COURSE, "started_on": "2024-03-28"}))
    assert "started_on (2024-03-28) must not exceed ended_on (2024-03-27)" in errors["training_course.body"]


@pytest.mark.parametrize(("name", "day"), [("started_on", "2024-02-29"), ("ended_on", "2024-04-01")])
def test_course_dates_must_fall_inside_the_period(name, day):
    errors = errors_of(payload("training_course", {**COURSE, name: day}))
    assert any(f"body.{name} {day} is outside period 2024-03" in m for m in errors.values())


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"days": 0}, "training_course.body.days"),
        ({"learners_enrolled": -1}, "training_course.body.learners_enrolled"),
        ({"learners_completed": "75"}, "training_course.body.learners_completed"),
        ({"learners": 77}, "training_course.body.learners"),
    ],
)
def test_a_wrong_course_field_is_named(change, loc):
    assert loc in errors_of(payload("training_course", {**COURSE, **change}))


def test_an_organisation_rating_is_yearly_and_its_counts_are_named():
    errors = errors_of(payload("organisation_rating", RATING, period="2023-12", unit="386"))
    assert any("organisation_rating report covers a year" in m for m in errors.values())
    errors = errors_of(payload("organisation_rating", {**RATING, "not_completed": -1}, period="2023", unit="386"))
    assert "organisation_rating.body.not_completed" in errors
    # the organisations rated are the four categories' sum, never a fifth figure that could disagree
    errors = errors_of(payload("organisation_rating", {**RATING, "total": 43}, period="2023", unit="386"))
    assert "organisation_rating.body.total" in errors


# --- the roll-up ------------------------------------------------------------------------------


def course(rid, unit, period, enrolled, completed, days=2, rev=1, at=SENT):
    values = {"days": days, "learners_enrolled": enrolled, "learners_completed": completed}
    return Report(rid, rev, unit, "training_course", "training_course", period, values, False, at)


def rating(rid, unit, counts, rev=1, period="2023"):
    at = datetime(2024, 1, 20, tzinfo=UTC)
    return Report(rid, rev, unit, "organisation_rating", "organisation_rating", period, counts, False, at)


def rolled(reports):
    rollup = Rollup(CATALOG)
    for r in reports:
        rollup.apply(r, *where(r))
    return rollup


def test_courses_add_up_the_tree_and_over_time_and_the_completion_rate_is_a_ratio_of_sums():
    rollup = rolled(
        [
            course("a", "388", "2024-03", 77, 75),  # Lang Chánh: 97.40 %
            course("b", "386", "2024-02", 10, 5, days=1),  # Bá Thước: 50 %
            course("c", "386", "2024-03", 40, 40, days=3),
            course("d", "14923", "2024-03", 3, 0, days=1),  # a commune may hold one too
            course("e", "38", "2024-01", 120, 118, days=5),  # the province's own course
        ]
    )
    march = rollup.total("38", "training_course", "2024-03")
    assert march["sums.learners_enrolled"] == 77 + 40 + 3
    assert march["sums.learners_completed"] == 75 + 40 + 0
    assert march["sums.days"] == 2 + 3 + 1
    assert march["reports"] == 3
    quarter = rollup.total("38", "training_course", "2024-Q1")
    assert (quarter["sums.learners_enrolled"], quarter["sums.learners_completed"]) == (250, 238)
    assert quarter["reports"] == 5
    # expected of districts and the province: the commune's course counts in the sums, not as a unit
    assert quarter["units_reported"] == 3
    assert rollup.total("386", "training_course", "2024-Q1")["units_reported"] == 1
    spec = CATALOG.series["training_course"]
    sums = {name.removeprefix("sums."): v for name, v in quarter.items() if name.startswith("sums.")}
    # 238/250 = 0.952; the mean of the five courses' rates would be 0.6848
    assert rates(spec, sums)["completion_rate"] == {
        "numerator": 238,
        "denominator": 250,
        "scale": 1,
        "value": 0.952,
    }


def test_a_corrected_course_replaces_its_learners_everywhere():
    rollup = rolled([course("a", "388", "2024-03", 77, 75), course("a", "388", "2024-03", 80, 79, rev=2)])
    for unit in ("388", "38"):
        figures = rollup.total(unit, "training_course", "2024")
        assert (figures["sums.learners_enrolled"], figures["sums.learners_completed"], figures["reports"]) == (
            80,
            79,
            1,
        )


def test_organisation_ratings_sum_up_the_tree_take_the_latest_and_give_good_or_better_from_sums():
    rollup = rolled(
        [
            rating("ba-thuoc", "386", RATING),  # 37 of 43 good or better
            rating("lang-chanh", "388", {"excellent": 2, "good": 10, "completed": 3, "not_completed": 0}),
            rating("lang-chanh", "388", {"excellent": 3, "good": 11, "completed": 1, "not_completed": 0}, rev=2),
            rating("province", "38", {"excellent": 1, "good": 1, "completed": 0, "not_completed": 2}),
        ]
    )
    figures = rollup.total("38", "organisation_rating", "2023")
    sums = {name.removeprefix("sums."): v for name, v in figures.items() if name.startswith("sums.")}
    assert sums == {"excellent": 12, "good": 41, "completed": 6, "not_completed": 3}
    assert figures["units_reported"] == 3  # two districts and the province itself
    spec = CATALOG.series["organisation_rating"]
    assert rates(spec, sums)["good_or_better_rate"] == {"numerator": 53, "denominator": 62, "scale": 1, "value": 0.8548}
    assert rates(spec, sums)["excellent_rate"]["value"] == 0.1935  # 12/62
    # a stock: the term holds the year's latest figures, not a sum over years
    later = rating(
        "ba-thuoc-2024", "386", {"excellent": 9, "good": 30, "completed": 4, "not_completed": 0}, period="2024"
    )
    rollup.apply(later, *where(later))
    term = rollup.total("386", "organisation_rating", "2020-2025")
    assert (term["sums.excellent"], term["sums.good"], term.get("sums.not_completed", 0)) == (9, 30, 0)


def test_seed_002s_course_from_the_demo_counts_at_lang_chanh_and_thanh_hoa():
    rollup = Rollup(CATALOG)
    for raw in demo.seed_002_training_course():
        REPORT_ADAPTER.validate_python(raw)
        report = report_from_input(raw, datetime.fromisoformat(raw["submitted_at"]), CATALOG)
        rollup.apply(report, *where(report))
    assert TREE.get(demo.LANG_CHANH).name == "Huyện Lang Chánh"
    for unit in (demo.LANG_CHANH, "38"):
        figures = rollup.total(unit, "training_course", "2024-03")
        assert (figures["sums.learners_enrolled"], figures["units_reported"], figures["units_on_time"]) == (77, 1, 1)


# --- reminders --------------------------------------------------------------------------------


def test_districts_and_the_province_are_reminded_of_courses_once_a_year_not_every_month():
    spec = CATALOG.series["training_course"]
    assert due(spec, date(2024, 4, 8), 10) == []  # March's deadline is near, but courses are yearly
    [year] = due(spec, date(2025, 1, 8), 7)  # 2024's deadline: the end of 15 January 2025
    assert (year.period, year.days_left, year.step) == ("2024", 7, 7)
    expected = expected_units(TREE, "38", spec, "2024")
    assert {u.level for u in expected} == {Level.PROVINCE, Level.DISTRICT}
    assert len(expected) == 1 + 26


def test_organisation_ratings_are_due_31_days_after_the_year_reminded_from_14_days_before():
    [year] = due(CATALOG.series["organisation_rating"], date(2024, 1, 17), 14)
    assert (year.period, year.deadline.date(), year.days_left, year.step) == ("2023", date(2024, 1, 31), 14, 14)


# --- the pages --------------------------------------------------------------------------------


def page_client(docs):
    settings = ApiSettings(
        kafka_bootstrap_servers="unused:9092",
        mongodb_uri="mongodb://unused",
        auth_secret=TEST_SECRET,
        ingest_url="http://127.0.0.1:9",
    )
    app = create_app(settings, reader=InMemoryTotalsReader(docs), tree=TREE, revocations=REVOKED)
    return TestClient(app, follow_redirects=False, headers={"Origin": ORIGIN})


@pytest.mark.parametrize(
    ("kind", "labels", "rule"),
    [
        (
            "training_course",
            ["Tên lớp", "Ngày khai giảng", "Ngày bế giảng", "Số ngày học", "Số học viên hoàn thành"],
            "Hạn nộp: hết ngày thứ 15 sau ngày cuối của kỳ",
        ),
        (
            "organisation_rating",
            ["Xếp loại tổ chức cơ sở đảng cuối năm", "Hoàn thành xuất sắc nhiệm vụ", "Không hoàn thành nhiệm vụ"],
            "Hạn nộp: hết ngày thứ 31 sau ngày cuối của kỳ",
        ),
    ],
)
def test_the_report_form_renders_each_kind_with_its_vietnamese_labels(kind, labels, rule):
    with page_client({}) as client:
        login(client, "388", Scope.SUBMIT)
        form = client.get("/web/submit", params={"kind": kind})
    assert form.status_code == 200
    for name in CATALOG.kinds[kind].fields:
        assert f'for="f-{name.name}"' in form.text
    for label in [*labels, rule]:
        assert label in form.text


def test_the_form_puts_the_learners_rule_beside_its_field():
    values = {
        "unit": "388",
        "period": "2024-03",
        "started_on": "26/03/2024",
        "ended_on": "27/03/2024",
        "days": "2",
        "learners_enrolled": "77",
        "learners_completed": "78",
    }
    now = datetime(2024, 3, 29, 2, 0, tzinfo=UTC)
    assert build_report(CATALOG, "training_course", values, now).errors == {
        "learners_completed": "Không được lớn hơn số học viên (77)."
    }
    ok = build_report(CATALOG, "training_course", {**values, "learners_completed": "75"}, now)
    assert ok.errors == {}
    REPORT_ADAPTER.validate_python(ok.report)


def test_a_districts_page_shows_the_course_and_its_completion_rate():
    rollup = Rollup(CATALOG)
    for raw in demo.seed_002_training_course():
        report = report_from_input(raw, datetime.fromisoformat(raw["submitted_at"]), CATALOG)
        rollup.apply(report, *where(report))
    docs = {d.id: to_stored(d, 1, 0, SENT) for d in rollup.docs.values()}
    with page_client(docs) as client:
        login(client, "388")
        page = client.get("/web/units/388", params={"period": "2024-03", "series": "training_course"})
    assert page.status_code == 200
    assert "Lớp bồi dưỡng, tập huấn" in page.text
    assert "Tỷ lệ học viên hoàn thành" in page.text
    assert "97,40 %" in page.text  # 75/77
