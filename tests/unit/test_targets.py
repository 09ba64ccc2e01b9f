"""Targets (shared/domain/targets.py): what officials type, the roll-up per exact period (own,
summed, partial, ranges), achievement, and who may set one."""

from decimal import Decimal
from fractions import Fraction

import pytest

from shared.domain.auth import Forbidden, Scope, mint, verify
from shared.domain.catalog import load_catalog
from shared.domain.hierarchy import load_vietnam
from shared.domain.targets import (
    OWN,
    SUMMED,
    RolledTarget,
    Target,
    TargetError,
    achievement,
    parse_target,
    rolled_up,
    set_target,
    target_metric,
)
from tests.conftest import TEST_SECRET

CATALOG = load_catalog()
TREE = load_vietnam(["45"]).for_period("2024")
BEDS = target_metric(CATALOG, "indicator.hospital_beds.value")
MEMBERS = target_metric(CATALOG, "indicator.new_party_members.value")
DOCTORS = target_metric(CATALOG, "indicator.doctors_per_10k.rate")
RATED = target_metric(CATALOG, "member_rating.good_or_better_rate")
SCHOOLS = target_metric(CATALOG, "indicator.schools_national_standard.rate")
GROWTH = target_metric(CATALOG, "indicator.production_growth_rate.value")
COMMUNES = [c.code for c in TREE.children("467")]


@pytest.mark.parametrize(
    ("typed", "metric", "low", "high"),
    [
        ("120", BEDS, "120", "120"),
        ("03–04", BEDS, "3", "4"),
        ("3-4", BEDS, "3", "4"),
        ("450 - 500", MEMBERS, "450", "500"),
        ("6.600", MEMBERS, "6600", "6600"),
        ("9,96", DOCTORS, "9.96", "9.96"),
        ("9.96", DOCTORS, "9.96", "9.96"),
        ("85%", RATED, "0.85", "0.85"),
        ("0,85", RATED, "0.85", "0.85"),
        ("85 % – 90 %", RATED, "0.85", "0.9"),
        ("60%", SCHOOLS, "60", "60"),
        (" 45 ", SCHOOLS, "45", "45"),
    ],
)
def test_what_officials_type(typed, metric, low, high):
    assert parse_target(typed, metric) == (Decimal(low), Decimal(high))


@pytest.mark.parametrize(
    ("typed", "metric", "says"),
    [
        ("", BEDS, "empty"),
        ("4-3", BEDS, "low 4 is above its high 3"),
        ("12,5", BEDS, "whole number"),
        ("85%", BEDS, "not a percentage"),
        ("9%", DOCTORS, "not a percentage"),
        ("-5", BEDS, "not a number"),
        ("many", BEDS, "not a number"),
        ("1-2-3", BEDS, "not a number"),
        ("0,1234567", RATED, "at most 6 decimals"),
        ("1" + "0" * 16, BEDS, "above the largest target"),
    ],
)
def test_what_is_not_a_target_is_refused_naming_the_problem(typed, metric, says):
    with pytest.raises(TargetError, match=says) as refused:
        parse_target(typed, metric)
    assert refused.value.field == "value"


def test_a_metric_is_a_totalled_field_or_a_rate_of_the_catalog():
    assert (BEDS.is_rate, BEDS.adds_up) == (False, True)
    assert (DOCTORS.rate_scale, DOCTORS.adds_up) == (10000, False)
    assert GROWTH.adds_up is False  # combine none: kept at the reporting unit
    with pytest.raises(TargetError, match="unknown series") as e:
        target_metric(CATALOG, "indicator.tea.value")
    assert e.value.field == "metric"
    with pytest.raises(TargetError, match="has no field or rate 'resolution'"):
        target_metric(CATALOG, "study_session.resolution")  # text, not totalled


def at(unit, metric, low, high=None, period="2024"):
    path = (*TREE.path(unit), "VN")
    return Target(unit, metric.key, period, Decimal(low), Decimal(high or low), path=path)


def test_an_own_target_wins_over_what_its_children_add_up():
    targets = [at("467", MEMBERS, "90", "100"), at(COMMUNES[0], MEMBERS, "10")]
    rolled = rolled_up(targets, "467", CATALOG, "2024")
    assert rolled == {MEMBERS.key: RolledTarget(MEMBERS.key, Decimal(90), Decimal(100), OWN, 1)}
    assert rolled_up(targets, COMMUNES[0], CATALOG, "2024")[MEMBERS.key].low == 10


def test_a_partial_sum_of_ranges_says_from_how_many_units_it_came():
    targets = [at(COMMUNES[0], MEMBERS, "6", "8"), at(COMMUNES[1], MEMBERS, "10"), at(COMMUNES[2], MEMBERS, "7", "9")]
    district = rolled_up(targets, "467", CATALOG, "2024")[MEMBERS.key]
    assert district == RolledTarget(MEMBERS.key, Decimal(23), Decimal(27), SUMMED, 3)
    # the province: the district has no own target, so the communes' sum goes up unchanged
    assert rolled_up(targets, "45", CATALOG, "2024")[MEMBERS.key] == district
    assert rolled_up(targets, "VN", CATALOG, "2024")[MEMBERS.key] == district


def test_a_district_target_stands_for_its_communes_above_it():
    other = next(d.code for d in TREE.children("45") if d.code != "467")
    targets = [
        at("467", MEMBERS, "90", "100"),
        at(COMMUNES[0], MEMBERS, "10"),  # under 467's own target: not counted again at the province
        at(TREE.children(other)[0].code, MEMBERS, "5"),
    ]
    province = rolled_up(targets, "45", CATALOG, "2024")[MEMBERS.key]
    assert province == RolledTarget(MEMBERS.key, Decimal(95), Decimal(105), SUMMED, 2)


def test_rates_and_fields_kept_at_the_unit_do_not_add_up_and_periods_do_not_mix():
    targets = [
        at(COMMUNES[0], RATED, "0.85"),
        at(COMMUNES[0], GROWTH, "140"),
        at(COMMUNES[0], MEMBERS, "10", period="2023"),
        at(COMMUNES[1], MEMBERS, "10", period="2020-2025"),
    ]
    assert rolled_up(targets, "467", CATALOG, "2024") == {}
    assert set(rolled_up(targets, COMMUNES[0], CATALOG, "2024")) == {RATED.key, GROWTH.key}


def test_achievement_is_exact_against_the_low_and_says_met_and_above():
    beds = RolledTarget(BEDS.key, Decimal(120), Decimal(120), OWN, 1)
    got = achievement(beds, Fraction(102))
    assert (got.achievement, got.met, got.above) == (0.85, False, False)
    members = RolledTarget(MEMBERS.key, Decimal(90), Decimal(100), OWN, 1)
    assert (achievement(members, Fraction(90)).met, achievement(members, Fraction(90)).above) == (True, False)
    assert achievement(members, Fraction(101)).above is True
    assert achievement(members, Fraction(101)).achievement == 1.1222  # 101/90
    # 43 doctors for 43,500 people: 43 x 10,000 / 43,500 = 9.8850..., against 9.96 -> 0.99247...
    doctors = RolledTarget(DOCTORS.key, Decimal("9.96"), Decimal("9.96"), OWN, 1)
    assert achievement(doctors, Fraction(43 * 10000, 43500)).achievement == 0.9925
    assert achievement(doctors, None).met is None
    zero = achievement(RolledTarget(BEDS.key, Decimal(0), Decimal(2), OWN, 1), Fraction(1))
    assert (zero.achievement, zero.met, zero.above) == (None, True, False)


def principal(unit, *scopes):
    return verify(TEST_SECRET, mint(TEST_SECRET, unit, scopes, 3600, token_id=f"t{unit}"))


def test_who_may_set_a_target():
    made = set_target(principal("467", Scope.SUBMIT), TREE, COMMUNES[0], MEMBERS, "2024", "9-10", 1.0)
    assert (made.set_by, made.path) == ("token:t467", (COMMUNES[0], "467", "45", "VN"))
    assert set_target(principal("45", Scope.APPROVE), TREE, "467", BEDS, "2024", "120", 1.0).low == 120
    with pytest.raises(Forbidden, match="lacks the 'submit' or 'approve' scope"):
        set_target(principal("467", Scope.READ), TREE, "467", BEDS, "2024", "120", 1.0)
    with pytest.raises(Forbidden, match=f"unit 467 is outside this token's unit {COMMUNES[0]}"):
        set_target(principal(COMMUNES[0], Scope.SUBMIT), TREE, "467", BEDS, "2024", "120", 1.0)
    with pytest.raises(Forbidden, match="outside"):
        set_target(principal(COMMUNES[1], Scope.SUBMIT), TREE, COMMUNES[0], BEDS, "2024", "1", 1.0)


def test_the_demo_sets_seed_004s_targets_for_dakrong_where_the_catalog_has_the_metric():
    from tools import demo

    targets = {(t.metric, t.period): t for t in demo.seed_004_targets(load_vietnam(["45"]), 1.0)}
    assert {t.unit for t in targets.values()} == {"467"}
    assert all(t.path == ("467", "45", "VN") for t in targets.values())
    term = {m: (t.low, t.high) for (m, p), t in targets.items() if p == "2020-2025"}
    assert term == {
        BEDS.key: (120, 120),
        DOCTORS.key: (Decimal("9.96"), Decimal("9.96")),
        "indicator.new_rural_communes.value": (3, 4),
        MEMBERS.key: (450, 500),
    }
    assert (targets[(MEMBERS.key, "2023")].low, targets[(MEMBERS.key, "2023")].high) == (90, 100)
    assert targets[(RATED.key, "2023")].low == Decimal("0.85")
