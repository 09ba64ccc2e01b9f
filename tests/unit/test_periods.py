from datetime import UTC, date, datetime, timedelta

import pytest

from shared.domain.periods import VIETNAM_TZ as ICT
from shared.domain.periods import Granularity, PeriodError, deadline, has_begun, parse_period, term_of_year


@pytest.mark.parametrize(
    ("label", "granularity", "start", "end"),
    [
        ("2025-03", Granularity.MONTH, date(2025, 3, 1), date(2025, 3, 31)),
        ("2024-02", Granularity.MONTH, date(2024, 2, 1), date(2024, 2, 29)),
        ("2025-Q1", Granularity.QUARTER, date(2025, 1, 1), date(2025, 3, 31)),
        ("2025-H2", Granularity.HALF, date(2025, 7, 1), date(2025, 12, 31)),
        ("2025", Granularity.YEAR, date(2025, 1, 1), date(2025, 12, 31)),
        ("2020-2025", Granularity.TERM, date(2020, 1, 1), date(2024, 12, 31)),
    ],
)
def test_each_period_form_parses_to_its_calendar_span(label, granularity, start, end):
    p = parse_period(label)
    assert (p.granularity, p.start, p.end) == (granularity, start, end)


@pytest.mark.parametrize(
    "bad", ["2025-13", "2025-Q5", "2025-H3", "25", "2020-2024", "2021-2026", "2025/03", "", "1900"]
)
def test_invalid_periods_are_refused_with_the_accepted_forms(bad):
    with pytest.raises(PeriodError) as err:
        parse_period(bad)
    assert bad == "" or bad in str(err.value)


def test_a_month_counts_in_its_quarter_half_year_year_and_term():
    assert [p.label for p in parse_period("2026-03").enclosing] == [
        "2026-03",
        "2026-Q1",
        "2026-H1",
        "2026",
        "2025-2030",
    ]
    assert [p.label for p in parse_period("2020-12").enclosing] == [
        "2020-12",
        "2020-Q4",
        "2020-H2",
        "2020",
        "2020-2025",
    ]
    assert [p.label for p in parse_period("2020-2025").enclosing] == ["2020-2025"]


def test_terms_run_in_five_year_steps_from_congress_years():
    assert term_of_year(2020) == "2020-2025"
    assert term_of_year(2024) == "2020-2025"
    assert term_of_year(2025) == "2025-2030"


def test_the_deadline_is_the_end_of_the_nth_day_after_the_period_in_vietnam_time():
    due = deadline(parse_period("2025-03"), 15)
    assert due == datetime(2025, 4, 15, 23, 59, 59, 999999, tzinfo=ICT)
    assert due.utcoffset() == timedelta(hours=7)
    assert deadline(parse_period("2025-03"), 0) == datetime(2025, 3, 31, 23, 59, 59, 999999, tzinfo=ICT)
    assert deadline(parse_period("2024-02"), 15).date() == date(2024, 3, 15)  # after a leap February
    assert deadline(parse_period("2025-Q4"), 15).date() == date(2026, 1, 15)
    assert deadline(parse_period("2025"), 31).date() == date(2026, 1, 31)
    assert deadline(parse_period("2020-2025"), 15).date() == date(2025, 1, 15)


def test_a_negative_number_of_days_after_the_end_is_refused():
    with pytest.raises(ValueError, match="days_after_end"):
        deadline(parse_period("2025-03"), -1)


@pytest.mark.parametrize(
    ("at", "begun"),
    [
        (datetime(2026, 11, 30, 23, 59, 59, tzinfo=ICT), False),
        (datetime(2026, 12, 1, 0, 0, 0, tzinfo=ICT), True),
        (datetime(2026, 11, 30, 17, 0, 0, tzinfo=UTC), True),  # 00:00 on 1 December in Vietnam
        (datetime(2026, 11, 30, 16, 59, 59, tzinfo=UTC), False),
    ],
)
def test_a_period_begins_at_midnight_of_its_first_day_in_vietnam(at, begun):
    assert has_begun(parse_period("2026-12"), at) is begun
