"""The demo's timeliness (issue 24): at the times its units sent them, most demo reports are on
time and some late; none is from the future; seed 000 is on time; this month's reports, sent
now, are on time."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from shared.domain.catalog import load_catalog
from shared.domain.hierarchy import load_vietnam
from shared.domain.reports import REPORT_ADAPTER, future_problems
from shared.domain.rollup import Rollup, is_on_time, report_from_input
from tests.unit.test_rollup import where
from tools import demo

CATALOG = load_catalog()
TREE = load_vietnam()
ICT = timezone(timedelta(hours=7))
NOW = datetime(2026, 11, 20, 10, 0, tzinfo=ICT)  # in the past: submitted_at may not be ahead of the real clock


def on_time(raw, at=None):
    received = at or datetime.fromisoformat(raw["submitted_at"])
    report = report_from_input(raw, received, CATALOG)
    return is_on_time(report, CATALOG.series_for(raw["kind"], raw["body"]))


def test_most_demo_reports_are_on_time_when_sent_and_some_are_late():
    reports = demo.all_reports(TREE, NOW)
    late = [r for r in reports if not on_time(r)]
    assert late, "no late report: the demo would show no lateness"
    assert len(late) / len(reports) < 0.1
    assert {r["unit"] for r in late} == {demo.communes_of(TREE, demo.DAKRONG)[i] for i in demo.LATE_SENDERS}


def test_no_demo_report_is_from_the_future_at_the_time_it_was_sent():
    for raw in demo.all_reports(TREE, NOW):
        at = datetime.fromisoformat(raw["submitted_at"])
        assert future_problems(REPORT_ADAPTER.validate_python(raw), at, CATALOG) == [], raw["report_id"]


def test_seed_000_counts_21_of_21_on_time_at_the_district():
    rollup = Rollup(CATALOG)
    for raw in demo.seed_000_study_sessions(TREE):
        report = report_from_input(raw, datetime.fromisoformat(raw["submitted_at"]), CATALOG)
        rollup.apply(report, *where(report, TREE, CATALOG))
    figures = rollup.total("386", "study_session", "2020-12")
    assert (figures["units_reported"], figures["units_on_time"]) == (21, 21)


@pytest.mark.parametrize(
    "now",
    [
        NOW,
        datetime(2026, 1, 1, 0, 5, tzinfo=ICT),  # just after the month began in Vietnam
        datetime(2025, 12, 31, 17, 5, tzinfo=UTC),  # the same instant: still December in UTC
        datetime(2026, 2, 28, 23, 59, tzinfo=ICT),
    ],
)
def test_this_months_reports_are_sent_now_for_the_month_in_vietnam_and_are_on_time(now):
    current = demo.current_study_sessions(TREE, now)
    local = now.astimezone(ICT)
    assert current and {r["period"] for r in current} == {f"{local.year}-{local.month:02d}"}
    for raw in current:
        assert future_problems(REPORT_ADAPTER.validate_python(raw), now, CATALOG) == []
        assert on_time(raw, now)
