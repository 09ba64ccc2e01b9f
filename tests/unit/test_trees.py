"""Two administrative trees side by side: the one before 1 July 2025 (with districts) and the one
of Resolution 202/2025/QH15 (34 provinces, 3,321 communes, no districts). A report belongs to the
tree valid at its period's end; a code names a unit only within its tree (14923 was Thị trấn Cành
Nàng under Bá Thước district, and is Xã Bá Thước under Thanh Hóa since)."""

import json
import sqlite3
from datetime import UTC, date, datetime
from importlib import resources, util
from pathlib import Path

import pytest

from services.aggregate.decode import decode
from shared.domain.catalog import load_catalog
from shared.domain.hierarchy import LEGACY, TREE_2025, Level, UnknownTree, load_vietnam
from shared.domain.periods import span_of
from shared.domain.rollup import Outcome, Rollup, report_from_input
from tests.e2e.oracle import expected_totals
from tests.unit.test_rollup import where

CATALOG = load_catalog()
VIETNAM = load_vietnam()
NEW = VIETNAM.version_named(TREE_2025)
AT = datetime(2026, 2, 1, tzinfo=UTC)  # after every deadline below (2025-Q4: 15 January 2026): all late


def session(rid, unit, period, attended, total, rev=1):
    month = period if len(period) == 7 and period[5] != "Q" else {"2025-Q4": "2025-11", "2025-Q2": "2025-05"}[period]
    return {
        "report_id": rid,
        "revision": rev,
        "unit": unit,
        "kind": "study_session",
        "period": period,
        "submitted_at": "2025-12-20T09:00:00+07:00",
        "body": {
            "resolution": "NQ",
            "held_on": f"{month}-05",
            "format": "in_person",
            "bridge_points": 1,
            "delegates": 0,
            "members_attended": attended,
            "members_total": total,
        },
    }


def roll_up(messages):
    rollup = Rollup(CATALOG)
    outcomes = []
    for m in messages:
        report = report_from_input(m, AT, CATALOG)
        outcomes.append(rollup.apply(report, *where(report, VIETNAM, CATALOG)).outcome)
    return rollup, outcomes


def flat(rollup):
    return {f"{d.unit}|{d.series}|{p}": f for d in rollup.docs.values() for p, f in d.flat().items() if f}


def test_both_trees_are_loaded_with_their_validity_and_the_counts_of_their_sources():
    legacy = VIETNAM.version_named(LEGACY)
    assert [t.tree_id for t in VIETNAM.versions] == [LEGACY, TREE_2025]
    assert (legacy.valid_from, legacy.valid_to) == (None, date(2025, 7, 1))
    assert (NEW.valid_from, NEW.valid_to) == (date(2025, 7, 1), None)
    # counted straight from the packages' data files, not through the loader
    nested = json.loads(
        resources.files("vietnam_provinces").joinpath("data/nested-divisions.json").read_text(encoding="utf-8")
    )
    old_communes = sum(len(d["wards"]) for p in nested for d in p["districts"])
    spec = util.find_spec("vietnamadminunits")
    assert spec is not None and spec.submodule_search_locations
    db = Path(next(iter(spec.submodule_search_locations))) / "data" / "dataset.db"
    with sqlite3.connect(db) as conn:
        new_provinces, new_communes = conn.execute(
            "SELECT COUNT(DISTINCT provinceCode), COUNT(*) FROM admin_units"
        ).fetchone()
    legacy_levels = [legacy.get(c).level for c in legacy._units]
    assert legacy_levels.count(Level.PROVINCE) == len(nested) == 63
    assert legacy_levels.count(Level.DISTRICT) == 696
    assert legacy_levels.count(Level.COMMUNE) == old_communes == 10051
    new_levels = [NEW.get(c).level for c in NEW._units]
    assert new_levels.count(Level.PROVINCE) == new_provinces == 34
    assert new_levels.count(Level.COMMUNE) == new_communes == 3321
    assert Level.DISTRICT not in new_levels


def test_a_code_names_a_different_unit_in_each_tree():
    legacy = VIETNAM.version_named(LEGACY)
    assert (legacy.get("14923").name, legacy.path("14923")) == ("Thị trấn Cành Nàng", ["14923", "386", "38"])
    assert (NEW.get("14923").name, NEW.path("14923")) == ("Xã Bá Thước", ["14923", "38"])
    assert "386" not in NEW


@pytest.mark.parametrize(
    ("period", "tree"),
    [
        ("2025-06", LEGACY),
        ("2025-Q2", LEGACY),
        ("2025-H1", LEGACY),
        ("2020-2025", LEGACY),  # the term's last year is 2024
        ("2025-07", TREE_2025),
        ("2025-Q3", TREE_2025),
        ("2025", TREE_2025),  # the straddling year ends in the new tree
        ("2025-2030", TREE_2025),
        ("2020-12", LEGACY),
    ],
)
def test_a_period_belongs_to_the_tree_valid_at_its_end(period, tree):
    assert VIETNAM.for_period(period).tree_id == tree


def test_asking_for_a_tree_that_does_not_exist_names_the_trees():
    with pytest.raises(UnknownTree, match="legacy, 2025"):
        VIETNAM.version_named("1976")


def test_a_straddling_year_counts_each_report_in_its_own_tree_and_never_across():
    june = session("june", "14923", "2025-06", 200, 250)  # Thị trấn Cành Nàng, Bá Thước district
    q4 = session("q4", "14923", "2025-11", 900, 1000)  # Xã Bá Thước, Thanh Hóa
    neighbour = session("n", "15031", "2025-11", 40, 50)  # another commune of new Thanh Hóa
    rollup, outcomes = roll_up([june, q4, neighbour])
    assert outcomes == [Outcome.APPLIED] * 3
    got = flat(rollup)
    # the old tree: the month, its quarter and half, up through district 386 to old Thanh Hóa
    for period in ("2025-06", "2025-Q2", "2025-H1"):
        for unit in ("14923", "386", "38"):
            assert got[f"{unit}|study_session|{period}"]["sums.members_attended"] == 200
    # the new tree: Q4, H2 and the year at the commune and new Thanh Hóa (no district between)
    for period in ("2025-11", "2025-Q4", "2025-H2", "2025", "2025-2030"):
        assert got[f"14923|study_session|{period}"]["sums.members_attended"] == 900
        assert got[f"38|study_session|{period}"]["sums.members_attended"] == 940
        assert got[f"38|study_session|{period}"]["units_reported"] == 2
        assert f"386|study_session|{period}" not in got
    # June's report does not reach the year 2025 nor the term 2025-2030 (the new tree's periods)
    assert got["38|study_session|2025"]["reports"] == 2
    # two documents per unit for 2025: its first half (old tree) and the year (new tree)
    assert {d for d in rollup.docs if d.startswith("14923|")} == {
        "14923|study_session|2025-H1",
        "14923|study_session|2025",
        "14923|study_session|2025-2030",
    }
    assert (span_of("2025-06"), span_of("2025-Q4")) == ("2025-H1", "2025")
    # and an independent recomputation (tests/e2e/oracle.py) agrees with every figure
    assert got == expected_totals([june, q4, neighbour], VIETNAM, AT)


def test_completeness_counts_the_communes_of_the_tree_of_the_period():
    spec = CATALOG.series["study_session"]
    legacy = VIETNAM.for_period("2025-06")
    assert legacy.count("38", spec.expected_levels) == sum(
        1 for d in legacy.children("38") for _ in legacy.children(d.code)
    )
    assert legacy.count("386", spec.expected_levels) == 21  # seed 003: Bá Thước's 21 communes
    new = VIETNAM.for_period("2025-Q4")
    assert new.count("38", spec.expected_levels) == len(new.children("38")) == 166
    assert legacy.count("38", spec.expected_levels) != new.count("38", spec.expected_levels)


def test_a_revision_that_moves_a_report_to_the_other_tree_is_refused_not_counted_twice():
    rollup, outcomes = roll_up(
        [session("r", "14923", "2025-06", 200, 250), session("r", "14923", "2025-Q4", 1, 2, rev=2)]
    )
    assert outcomes == [Outcome.APPLIED, Outcome.REJECTED]
    got = flat(rollup)
    assert got["386|study_session|2025-06"]["sums.members_attended"] == 200
    assert "38|study_session|2025-Q4" not in got


def _message(unit, period):
    return json.dumps(session("x", unit, period, 1, 2)).encode()


def _decode(unit, period):
    """As a province's own system would send it straight to Kafka: with its token, at the broker's time."""
    from services.aggregate.decode import Origin, Trust
    from shared.domain.auth import Scope, mint
    from shared.domain.stamps import TOKEN_HEADER
    from tests.conftest import TEST_SECRET

    appended = 1_767_225_600  # 2026-01-01 UTC
    tok = mint(TEST_SECRET, "38", (Scope.SUBMIT,), 3600, now=appended - 60)
    origin = Origin(((TOKEN_HEADER, tok.encode()),), True)
    return decode(_message(unit, period), appended * 1000, CATALOG, VIETNAM, origin, Trust.from_secret(TEST_SECRET))


def test_the_aggregator_refuses_a_district_for_a_period_after_the_reform_saying_why():
    rejected = _decode("386", "2025-Q4")
    assert rejected.reason == "unknown_unit"  # type: ignore[union-attr]
    detail = rejected.detail  # type: ignore[union-attr]
    assert "tree 2025" in detail and "2025-07-01" in detail and "district 'Huyện Bá Thước'" in detail
    assert _decode("386", "2025-06").unit == "386"  # type: ignore[union-attr]
    assert _decode("14923", "2025-Q4").unit == "14923"  # type: ignore[union-attr]


def test_a_unit_search_ignores_accents_and_case_and_can_list_a_parents_children():
    assert [(u.code, u.name) for u in NEW.search("ba thuoc")] == [("14923", "Xã Bá Thước")]
    assert [u.code for u in VIETNAM.version_named(LEGACY).search("BÁ THƯỚC")] == ["386"]
    assert [u.code for u in NEW.search("", parent="38", limit=1000)] == sorted(c.code for c in NEW.children("38"))
    assert {u.level for u in NEW.search("", parent="VN", limit=100)} == {Level.PROVINCE}
    assert len(NEW.search("", parent="VN", limit=100)) == 34


def test_a_tokens_right_to_report_is_decided_in_the_tree_of_the_period():
    from shared.domain.auth import Placement, Principal, Scope

    def token(unit):
        return Principal("t", unit, frozenset({Scope.SUBMIT}), 2**40)

    everything = load_vietnam(["02", "08", "38"])
    # 00691 was a Hà Giang (02) commune; since July 2025 it is under Tuyên Quang 08
    assert token("08").may_report(everything, "00691", "2025-Q4") is Placement.ALLOWED
    assert token("08").may_report(everything, "00691", "2025-06") is Placement.OUTSIDE
    assert token("02").may_report(everything, "00691", "2025-06") is Placement.ALLOWED
    assert token("02").may_report(everything, "00691", "2025-Q4") is Placement.OUTSIDE
    # 14923 is under district 386 before July 2025 and under Thanh Hóa 38 after
    assert token("386").may_report(everything, "14923", "2025-Q4") is Placement.OUTSIDE
    assert token("386").may_report(everything, "14923", "2020-12") is Placement.ALLOWED
    assert token("38").may_report(everything, "14923", "2025-Q4") is Placement.ALLOWED
    # a district after the reform: its own token learns why; anyone else's is outside
    assert token("386").may_report(everything, "386", "2025-Q4") is Placement.CLOSED
    assert token("08").may_report(everything, "386", "2025-Q4") is Placement.OUTSIDE
    assert token("VN").may_report(everything, "386", "2025-Q4") is Placement.CLOSED


def test_the_tree_in_force_is_the_one_of_today_in_vietnam():
    assert VIETNAM.in_force(datetime(2025, 6, 30, 16, 59, tzinfo=UTC)).tree_id == LEGACY
    assert VIETNAM.in_force(datetime(2025, 6, 30, 17, 0, tzinfo=UTC)).tree_id == TREE_2025  # 00:00 ICT
    assert VIETNAM.in_force().tree_id == TREE_2025


def test_an_agency_is_registered_only_in_the_trees_named():
    trees = load_vietnam(["38"])
    old, new = trees.version_named(LEGACY), trees.version_named(TREE_2025)
    trees.add_agency("14923-htx", "Hợp tác xã", "14923", [LEGACY])
    assert "14923-htx" in old and "14923-htx" not in new
    trees.add_agency("14923-bv", "Bệnh viện", "14923")  # no trees named: every version holding the parent
    assert "14923-bv" in old and "14923-bv" in new
    with pytest.raises(KeyError):
        trees.add_agency("386-x", "X", "386", [TREE_2025])  # 386 is no unit of the 2025 tree
