from datetime import date

import pytest

from shared.periods import Granularity, PeriodError, deadline, parse_period, term_of_year


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


def test_monthly_data_closes_on_the_14th_in_vietnam_time():
    due = deadline(parse_period("2025-03"))
    assert (due.year, due.month, due.day, due.hour) == (2025, 3, 14, 23)
    assert due.utcoffset().total_seconds() == 7 * 3600
    assert deadline(parse_period("2025")).date() == date(2025, 12, 14)
    assert deadline(parse_period("2025-03"), grace_days=3).date() == date(2025, 3, 17)
