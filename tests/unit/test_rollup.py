"""The roll-up domain: exact deltas up the tree, corrections, withdrawals, flows and stocks."""

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.catalog import load_catalog
from shared.hierarchy import load_vietnam
from shared.rollup import Outcome, Report, TotalKey, UnitLedger, apply_report, merge_deltas, rates, round_rate

CATALOG = load_catalog()
TREE = load_vietnam(["38"])
EARLY = datetime(2020, 12, 26, tzinfo=UTC)
LATE = datetime(2021, 2, 1, tzinfo=UTC)


def session(rid="r1", rev=1, unit="14923", period="2020-12", attended=280, total=300, withdrawn=False, at=EARLY):
    values = (
        {} if withdrawn else {"bridge_points": 1, "delegates": 0, "members_attended": attended, "members_total": total}
    )
    return Report(rid, rev, unit, "study_session", "study_session", period, values, withdrawn, at)


def beds(rid, period, value, unit="386"):
    return Report(rid, 1, unit, "indicator", "indicator.hospital_beds", period, {"value": value}, False, EARLY)


def apply_all(reports):
    ledgers: dict[str, UnitLedger] = {}
    totals: dict[TotalKey, dict[str, int]] = {}
    outcomes = []
    for r in reports:
        applied = apply_report(ledgers.setdefault(r.unit, UnitLedger(r.unit)), r, CATALOG, TREE)
        merge_deltas(totals, applied.deltas)
        outcomes.append(applied.outcome)
    return totals, outcomes


def total(totals, unit, series, period, name):
    return totals.get(TotalKey(unit, series, period), {}).get(name, 0)


def test_a_report_adds_to_its_unit_district_and_province_in_every_enclosing_period():
    totals, _ = apply_all([session()])
    for unit in ("14923", "386", "38"):
        for period in ("2020-12", "2020-Q4", "2020-H2", "2020", "2020-2025"):
            assert total(totals, unit, "study_session", period, "sums.members_attended") == 280
    assert total(totals, "14923", "study_session", "2020-12", "own") == 1
    assert TotalKey("386", "study_session", "2020-12") in totals
    assert total(totals, "386", "study_session", "2020-12", "own") == 0


def test_the_same_revision_twice_counts_once():
    totals, outcomes = apply_all([session(), session()])
    assert outcomes == [Outcome.APPLIED, Outcome.DUPLICATE]
    assert total(totals, "38", "study_session", "2020-12", "sums.members_attended") == 280


def test_a_correction_replaces_the_earlier_figures_everywhere():
    totals, outcomes = apply_all([session(attended=280), session(rev=2, attended=250)])
    assert outcomes == [Outcome.APPLIED, Outcome.CORRECTED]
    assert total(totals, "38", "study_session", "2020", "sums.members_attended") == 250
    assert total(totals, "38", "study_session", "2020", "reports") == 1


def test_a_late_lower_revision_never_overwrites_a_newer_one():
    totals, outcomes = apply_all([session(rev=3, attended=200), session(rev=2, attended=290)])
    assert outcomes == [Outcome.APPLIED, Outcome.STALE]
    assert total(totals, "386", "study_session", "2020-12", "sums.members_attended") == 200


def test_a_withdrawal_takes_the_figures_and_the_unit_out_of_every_total():
    totals, _ = apply_all([session(), session(rev=2, withdrawn=True)])
    key = TotalKey("38", "study_session", "2020-12")
    assert all(v == 0 for v in totals[key].values())


def test_a_correction_that_moves_the_period_leaves_the_old_month():
    totals, _ = apply_all([session(period="2020-11", attended=100), session(rev=2, period="2020-12", attended=100)])
    assert total(totals, "386", "study_session", "2020-11", "sums.members_attended") == 0
    assert total(totals, "386", "study_session", "2020-12", "sums.members_attended") == 100
    assert total(totals, "386", "study_session", "2020-Q4", "sums.members_attended") == 100


def test_flows_sum_over_time():
    totals, _ = apply_all(
        [session("a", period="2020-10", attended=10, total=10), session("b", period="2020-11", attended=20, total=20)]
    )
    assert total(totals, "38", "study_session", "2020-Q4", "sums.members_attended") == 30


def test_stocks_take_the_latest_value_in_the_period_not_a_sum():
    totals, _ = apply_all([beds("b1", "2025-01", 100), beds("b3", "2025-03", 120), beds("b2", "2025-02", 110)])
    assert total(totals, "386", "indicator.hospital_beds", "2025-Q1", "sums.value") == 120
    assert total(totals, "38", "indicator.hospital_beds", "2025", "sums.value") == 120
    assert total(totals, "38", "indicator.hospital_beds", "2025-02", "sums.value") == 110


def test_stocks_of_different_units_add_up():
    totals, _ = apply_all([beds("x", "2025", 100, unit="386"), beds("y", "2025", 50, unit="388")])
    assert total(totals, "38", "indicator.hospital_beds", "2025", "sums.value") == 150


def test_a_growth_rate_is_kept_at_its_unit_and_not_added_above_it():
    r = Report("g", 1, "386", "indicator", "indicator.production_growth_rate", "2025", {"value": 140}, False, EARLY)
    totals, _ = apply_all([r])
    assert total(totals, "386", "indicator.production_growth_rate", "2025", "sums.value") == 140
    assert total(totals, "38", "indicator.production_growth_rate", "2025", "sums.value") == 0


def test_units_reported_counts_expected_units_once_however_many_reports():
    totals, _ = apply_all([session("a"), session("b"), session("c", unit="14926")])
    assert total(totals, "386", "study_session", "2020-12", "units_reported") == 2
    assert total(totals, "386", "study_session", "2020-12", "reports") == 3


def test_a_district_reporting_for_itself_is_not_counted_as_an_expected_unit():
    totals, _ = apply_all([session("d", unit="386")])
    assert total(totals, "386", "study_session", "2020-12", "units_reported") == 0
    assert total(totals, "386", "study_session", "2020-12", "own") == 1


def test_on_time_is_decided_by_the_first_arrival_and_a_late_correction_keeps_it():
    totals, _ = apply_all([session(at=EARLY), session(rev=2, attended=1, at=LATE)])
    assert total(totals, "386", "study_session", "2020-12", "units_on_time") == 0  # 26 Dec is after 14 Dec
    totals, _ = apply_all([session(period="2021-01", at=LATE)])
    assert total(totals, "386", "study_session", "2021-01", "units_on_time") == 0
    early = datetime(2021, 1, 10, tzinfo=UTC)
    totals, _ = apply_all([session(period="2021-01", at=early), session(rev=2, period="2021-01", at=LATE)])
    assert total(totals, "386", "study_session", "2021-01", "units_on_time") == 1


def test_the_kind_of_a_report_cannot_change_between_revisions():
    other = Report(
        "r1",
        2,
        "14923",
        "reflection",
        "reflection",
        "2020-12",
        {"members_submitted": 1, "members_required": 2},
        False,
        EARLY,
    )
    totals, outcomes = apply_all([session(), other])
    assert outcomes[1] == Outcome.REJECTED
    assert total(totals, "38", "reflection", "2020-12", "reports") == 0


def test_rates_are_ratios_of_sums_never_averages():
    spec = CATALOG.series["study_session"]
    # two units: 1/1 (100%) and 99/200 (49.5%): the average would be 74.75%, the truth is 100/201
    assert rates(spec, {"members_attended": 100, "members_total": 201})["participation_rate"]["value"] == 0.4975


@pytest.mark.parametrize(
    ("num", "den", "expected"), [(5962, 6600, 0.9033), (1, 3, 0.3333), (2, 3, 0.6667), (0, 0, None), (1, 8, 0.125)]
)
def test_rates_round_half_up_to_four_places(num, den, expected):
    assert round_rate(num, den) == expected


@given(st.integers(-(10**12), 10**12), st.integers(-(10**9), 10**9).filter(bool), st.integers(0, 6))
def test_round_rate_is_decimal_half_up(num, den, places):
    from decimal import ROUND_HALF_UP, Decimal, localcontext

    with localcontext(prec=60):  # enough digits that the division itself never rounds a tie
        exact = (Decimal(num) / Decimal(den)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    assert round_rate(num, den, places) == float(exact)


@pytest.mark.parametrize(("num", "den", "expected"), [(1, 20000, 0.0001), (-1, 20000, -0.0001), (-5962, 6600, -0.9033)])
def test_round_rate_halves_round_away_from_zero(num, den, expected):
    assert round_rate(num, den) == expected
