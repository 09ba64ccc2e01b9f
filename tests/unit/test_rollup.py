"""The roll-up domain: exact deltas up the tree, corrections, withdrawals, flows and stocks."""

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.domain.catalog import CATALOG_PATH, DEFAULT_DAYS_AFTER_END, Catalog, load_catalog, parse_catalog
from shared.domain.conferences import shared_depth
from shared.domain.hierarchy import Level, OrgTree, load_vietnam
from shared.domain.rollup import Outcome, Report, Rollup, is_on_time, rates, report_from_input, round_rate
from tools import demo

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


def where(report: Report, tree: OrgTree = TREE, catalog: Catalog = CATALOG) -> tuple[list[str], bool, int]:
    """What the aggregator passes to Rollup.apply with a report: its path, whether its unit is
    expected to report the series, and for a joined conference the depth its shared figures reach."""
    levels = {Level(x) for x in catalog.series[report.series].expected_levels}
    tree = tree.for_period(report.period)  # the tree valid at the period's end
    path = tree.path(report.unit)
    depth = shared_depth(path, tree.path(report.joined)) if report.joined else 0
    return path, tree.get(report.unit).level in levels, depth


def apply_all(reports):
    rollup = Rollup(CATALOG)
    outcomes = [rollup.apply(r, *where(r)).outcome for r in reports]
    return rollup, outcomes


def total(rollup, unit, series, period, name):
    return rollup.total(unit, series, period).get(name, 0)


def test_a_report_adds_to_its_unit_district_and_province_in_every_enclosing_period():
    totals, _ = apply_all([session()])
    for unit in ("14923", "386", "38"):
        for period in ("2020-12", "2020-Q4", "2020-H2", "2020", "2020-2025"):
            assert total(totals, unit, "study_session", period, "sums.members_attended") == 280
    assert total(totals, "14923", "study_session", "2020-12", "own") == 1
    assert total(totals, "386", "study_session", "2020-12", "reports") == 1
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
    for unit in ("14923", "386", "38"):
        assert totals.total(unit, "study_session", "2020-12") == {}
        assert totals.total(unit, "study_session", "2020-2025") == {}


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
    totals, _ = apply_all([beds("b1", "2024-01", 100), beds("b3", "2024-03", 120), beds("b2", "2024-02", 110)])
    assert total(totals, "386", "indicator.hospital_beds", "2024-Q1", "sums.value") == 120
    assert total(totals, "38", "indicator.hospital_beds", "2024", "sums.value") == 120
    assert total(totals, "38", "indicator.hospital_beds", "2024-02", "sums.value") == 110


def test_stocks_of_different_units_add_up():
    totals, _ = apply_all([beds("x", "2024", 100, unit="386"), beds("y", "2024", 50, unit="388")])
    assert total(totals, "38", "indicator.hospital_beds", "2024", "sums.value") == 150


def test_a_growth_rate_is_kept_at_its_unit_and_not_added_above_it():
    r = Report("g", 1, "386", "indicator", "indicator.production_growth_rate", "2024", {"value": 140}, False, EARLY)
    totals, _ = apply_all([r])
    assert total(totals, "386", "indicator.production_growth_rate", "2024", "sums.value") == 140
    assert total(totals, "38", "indicator.production_growth_rate", "2024", "sums.value") == 0


def test_units_reported_counts_expected_units_once_however_many_reports():
    totals, _ = apply_all([session("a"), session("b"), session("c", unit="14926")])
    assert total(totals, "386", "study_session", "2020-12", "units_reported") == 2
    assert total(totals, "386", "study_session", "2020-12", "reports") == 3


def test_a_district_reporting_for_itself_is_not_counted_as_an_expected_unit():
    totals, _ = apply_all([session("d", unit="386")])
    assert total(totals, "386", "study_session", "2020-12", "units_reported") == 0
    assert total(totals, "386", "study_session", "2020-12", "own") == 1


def test_on_time_is_decided_by_the_first_arrival_and_a_late_correction_keeps_it():
    # 2020-12 is due by the end of 15 January 2021 (Vietnam time); LATE is 1 February
    totals, _ = apply_all([session(at=EARLY), session(rev=2, attended=1, at=LATE)])
    assert total(totals, "386", "study_session", "2020-12", "units_on_time") == 1
    totals, _ = apply_all([session(at=LATE)])
    assert total(totals, "386", "study_session", "2020-12", "units_on_time") == 0
    totals, _ = apply_all([session(at=LATE), session(rev=2, attended=1, at=EARLY)])
    assert total(totals, "386", "study_session", "2020-12", "units_on_time") == 0


ICT = timezone(timedelta(hours=7))
DUE_2020_12 = datetime(2021, 1, 15, 23, 59, 59, 999999, tzinfo=ICT)  # 15 days after 31 December


@pytest.mark.parametrize(
    ("arrival", "on_time"),
    [
        (DUE_2020_12 - timedelta(seconds=1), 1),
        (DUE_2020_12, 1),
        (DUE_2020_12 + timedelta(seconds=1), 0),
        (DUE_2020_12 + timedelta(microseconds=1), 0),  # 00:00 on 16 January in Vietnam
        (datetime(2021, 1, 15, 16, 59, 59, tzinfo=UTC), 1),  # 23:59:59 on 15 January in Vietnam
        (datetime(2021, 1, 15, 17, 0, 0, tzinfo=UTC), 0),  # still the 15th in UTC, the 16th in Vietnam
    ],
)
def test_on_time_at_the_edge_of_the_deadline(arrival, on_time):
    totals, _ = apply_all([session(at=arrival)])
    assert total(totals, "386", "study_session", "2020-12", "units_reported") == 1
    assert total(totals, "386", "study_session", "2020-12", "units_on_time") == on_time
    assert total(totals, "14923", "study_session", "2020-12", "own_on_time") == on_time


def test_the_deadline_comes_from_the_kind_in_the_catalog():
    raw = json.loads(CATALOG_PATH.read_text(encoding="utf-8"))
    raw["kinds"]["study_session"]["deadline"] = {"days_after_end": 3}
    catalog = parse_catalog(raw)
    spec = catalog.series["study_session"]
    assert spec.days_after_end == 3
    assert is_on_time(session(at=datetime(2021, 1, 3, 23, 59, 59, tzinfo=ICT)), spec)
    assert not is_on_time(session(at=datetime(2021, 1, 4, 0, 0, 0, tzinfo=ICT)), spec)
    assert CATALOG.series["study_session"].days_after_end == DEFAULT_DAYS_AFTER_END
    assert CATALOG.series["member_rating"].days_after_end == 31  # year-end ratings: by 31 January


@pytest.mark.parametrize("bad", [{"closing_day": 14}, {"days_after_end": -1}, {"days_after_end": "15"}])
def test_a_deadline_the_catalog_cannot_mean_is_refused_when_it_loads(bad):
    raw = json.loads(CATALOG_PATH.read_text(encoding="utf-8"))
    raw["kinds"]["study_session"]["deadline"] = bad
    with pytest.raises(ValueError, match=r"study_session\.deadline"):
        parse_catalog(raw)


def test_seed_000s_conference_sent_two_days_later_counts_on_time():
    """Held 25 December 2020, sent 27 December (demo.seed_000_study_sessions): 21 of 21 communes
    on time, at the district and the province."""
    rollup = Rollup(CATALOG)
    reports = [r for r in demo.seed_000_study_sessions(TREE) if r["unit"] != demo.BA_THUOC]
    for r in reports:
        report = report_from_input(r, datetime.fromisoformat(r["submitted_at"]), CATALOG)
        rollup.apply(report, *where(report))
    for unit in ("386", "38"):
        assert total(rollup, unit, "study_session", "2020-12", "units_reported") == 21
        assert total(rollup, unit, "study_session", "2020-12", "units_on_time") == 21


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


def test_a_report_touches_two_documents_per_level_whatever_the_periods_enclosing_it():
    rollup, _ = apply_all([session()])
    assert sorted(rollup.docs) == sorted(
        f"{u}|study_session|{span}" for u in ("14923", "386", "38") for span in ("2020", "2020-2025")
    )
    assert sorted(rollup.docs["38|study_session|2020"].periods) == ["2020", "2020-12", "2020-H2", "2020-Q4"]


def test_a_units_history_does_not_change_what_one_more_report_costs():
    """The unit's own figures are running sums: applying the 1,001st report of a commune
    touches the same cells as applying its first (no scan of its earlier reports)."""
    rollup = Rollup(CATALOG)
    for i in range(1000):
        r = session(rid=f"h{i}", attended=1, total=1)
        rollup.apply(r, *where(r))
    rollup.take_changed()
    r = session(rid="last", attended=1, total=1)
    rollup.apply(r, *where(r))
    assert len(rollup.take_changed()) == 3 * 2  # 3 levels x (the year's document, the term's)
    assert total(rollup, "38", "study_session", "2020", "sums.members_attended") == 1001


def test_restoring_the_entries_alone_rebuilds_the_same_totals_in_any_order():
    reports = [
        session("a", attended=10),
        session("a", rev=2, attended=12, period="2020-11"),
        session("b", unit="14926", attended=7),
        session("c", withdrawn=True),
        beds("x", "2025-01", 100),
        beds("y", "2025-03", 90),
    ]
    live, _ = apply_all(reports)
    entries = list(live.entries.items())
    for order in (entries, entries[::-1]):
        restored = Rollup(CATALOG)
        for key, entry in order:
            restored.restore(key, entry)
        # a record read twice, and an older revision read after a newer one, change nothing
        key, newest = entries[0]
        assert not restored.restore(key, newest)
        assert not restored.restore(key, replace(newest, revision=1, values={"members_attended": 999}))
        assert {i: d.flat() for i, d in restored.docs.items() if d.periods} == {
            i: d.flat() for i, d in live.docs.items() if d.periods
        }
