"""The chaos workload and its oracle read no clock of their own: run with a clock before, at and
after a deadline, and years on, the roll-up and the oracle agree, and both kinds of arrival (on
time and late) are in the workload. Issue 12: CI must stay green after 14 December 2026."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from shared.domain.catalog import load_catalog
from shared.domain.hierarchy import load_vietnam
from shared.domain.rollup import Rollup, report_from_input
from tests.e2e.oracle import closes_at, expected_totals
from tests.e2e.test_chaos import MARGIN, make_workload, months_around
from tests.unit.test_rollup import where

CATALOG = load_catalog()
TREE = load_vietnam()  # the chaos workload spans districts of two provinces
ICT = timezone(timedelta(hours=7))
CLOCKS = [
    datetime(2026, 12, 2, 14, 0, tzinfo=UTC),
    datetime(2026, 12, 15, 23, 59, 59, tzinfo=ICT),  # the last second of November's window
    datetime(2026, 12, 16, 0, 0, 1, tzinfo=ICT),  # the first second after it
    datetime(2027, 1, 1, tzinfo=UTC),
    datetime(2031, 6, 30, 12, tzinfo=UTC),
]


def roll_up(messages, at):
    rollup = Rollup(CATALOG)
    for m in messages:
        report = report_from_input(m, at, CATALOG)
        rollup.apply(report, *where(report, TREE, CATALOG))
    return {
        f"{d.unit}|{d.series}|{p}": figures for d in rollup.docs.values() for p, figures in d.flat().items() if figures
    }


@pytest.mark.parametrize("clock", CLOCKS, ids=lambda c: c.isoformat())
def test_the_chaos_oracle_agrees_with_the_roll_up_whatever_the_date(clock):
    messages = make_workload(seed=11, n_reports=250, now=clock)
    expected = expected_totals(messages, TREE, clock)
    assert roll_up(messages, clock) == expected
    own = [v for k, v in expected.items() if v.get("own") and k.split("|")[2] in months_around(clock)]
    assert any(v.get("own_on_time") for v in own), "no report on time: the test would not see a wrong deadline"
    assert any(not v.get("own_on_time") for v in own), "no late report: the test would not see a wrong deadline"


@pytest.mark.parametrize("clock", CLOCKS, ids=lambda c: c.isoformat())
def test_the_workload_months_keep_clear_of_their_deadlines(clock):
    months = months_around(clock)
    assert len(months) == 6
    assert all(abs(closes_at(m) - clock) > MARGIN for m in months)
    assert any(closes_at(m) < clock for m in months) and any(closes_at(m) > clock for m in months)


@pytest.mark.parametrize(
    ("arrival", "on_time"),
    [
        (datetime(2027, 1, 15, 23, 59, 58, tzinfo=ICT), 1),
        (datetime(2027, 1, 15, 23, 59, 59, 999999, tzinfo=ICT), 1),
        (datetime(2027, 1, 16, 0, 0, 0, tzinfo=ICT), 0),
        (datetime(2027, 2, 1, tzinfo=UTC), 0),
    ],
)
def test_on_time_at_the_edge_of_the_deadline_is_the_same_for_the_roll_up_and_the_oracle(arrival, on_time):
    messages = make_workload(seed=3, n_reports=40, now=datetime(2026, 10, 1, tzinfo=UTC))
    for m in messages:
        m["period"] = "2026-12"
        if "held_on" in m["body"]:
            m["body"]["held_on"] = "2026-12-05"
    expected = expected_totals(messages, TREE, arrival)
    assert roll_up(messages, arrival) == expected
    assert {v.get("own_on_time", 0) for k, v in expected.items() if v.get("own") and k.endswith("|2026-12")} == {
        on_time
    }
