"""A conference counted once (shared/domain/conferences.py): the organiser reports it, each of
its points names it, and every level counts its bridge points and delegates once."""

from collections import defaultdict
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.domain.catalog import load_catalog, parse_catalog
from shared.domain.conferences import joined_problem, joined_problem_of, organiser, shared_depth
from shared.domain.hierarchy import Level, load_vietnam
from shared.domain.reports import REPORT_ADAPTER
from shared.domain.rollup import Entry, Outcome, Report, Rollup, report_from_input
from tools import demo

CATALOG = load_catalog()
TREE = load_vietnam(["38"])
TREE.add("38-bvdk", "Đảng bộ Bệnh viện Đa khoa tỉnh Thanh Hóa", Level.AGENCY, "38")
AT = datetime(2021, 11, 6, tzinfo=UTC)
CONFERENCE = "38/38-hn-2021-11-05"
BA_THUOC_COMMUNES = demo.communes_of(TREE, demo.BA_THUOC)


def payload(rid, unit, points, delegates, joined=None, rev=1, attended=0, total=0, period="2021-11", withdrawn=False):
    body = {
        "resolution": "NQ XIX",
        "held_on": "2021-11-05",
        "format": "online",
        "bridge_points": points,
        "delegates": delegates,
        "members_attended": attended,
        "members_total": total,
        **({"joined": joined} if joined else {}),
    }
    return {
        "report_id": rid,
        "revision": rev,
        "unit": unit,
        "kind": "study_session",
        "period": period,
        "submitted_at": AT.isoformat(),
        "withdrawn": withdrawn,
        "body": None if withdrawn else body,
    }


def apply(rollup: Rollup, p: dict) -> Outcome:
    report = report_from_input(p, AT, CATALOG)
    path = TREE.path(report.unit)
    depth = shared_depth(path, TREE.path(report.joined)) if report.joined else 0
    return rollup.apply(report, path, TREE.get(report.unit).level in {"commune", "agency"}, depth).outcome


def sums(rollup: Rollup, unit: str, period: str = "2021-11") -> dict[str, int]:
    figures = rollup.total(unit, "study_session", period)
    return {k[5:]: v for k, v in figures.items() if k.startswith("sums.")}


def test_seed_001_the_hospital_was_one_point_of_the_provinces_conference_counted_once():
    rollup = Rollup(CATALOG)
    apply(rollup, payload("38-hn-2021-11-05", "38", 827, 32637))  # the provincial committee, the organiser
    apply(rollup, payload("38-bvdk-hn", "38-bvdk", 1, 45, joined=CONFERENCE, attended=120, total=130))
    assert sums(rollup, "38-bvdk") == {
        "bridge_points": 1,
        "delegates": 45,
        "members_attended": 120,
        "members_total": 130,
    }
    # the province: the conference once (not 828 points), and the hospital's members who attended
    assert sums(rollup, "38") == {
        "bridge_points": 827,
        "delegates": 32637,
        "members_attended": 120,
        "members_total": 130,
    }
    assert rollup.total("38", "study_session", "2021-11")["reports"] == 2


def test_seed_000_ba_thuoc_shows_its_points_and_the_province_does_not_add_them_again():
    rollup = Rollup(CATALOG)
    points = demo.split(313, len(BA_THUOC_COMMUNES))
    for i, code in enumerate(BA_THUOC_COMMUNES):
        apply(rollup, payload(f"{code}-hn", code, points[i], 0, joined=CONFERENCE, attended=10, total=11))
    apply(rollup, payload("386-hn", "386", 1, 110, joined=CONFERENCE))
    district = sums(rollup, demo.BA_THUOC)
    assert (district["bridge_points"], district["delegates"]) == (314, 110)
    assert "bridge_points" not in sums(rollup, "38")  # the organiser has not reported: nothing counted twice
    assert sums(rollup, "38")["members_attended"] == 10 * len(BA_THUOC_COMMUNES)
    apply(rollup, payload("38-hn-2021-11-05", "38", 827, 32637))
    assert (sums(rollup, "38")["bridge_points"], sums(rollup, "38")["delegates"]) == (827, 32637)
    assert sums(rollup, demo.BA_THUOC)["bridge_points"] == 314


def test_a_revision_that_stops_naming_the_conference_counts_its_points_everywhere_again():
    rollup = Rollup(CATALOG)
    commune = BA_THUOC_COMMUNES[0]
    apply(rollup, payload("c-hn", commune, 3, 20, joined=CONFERENCE, attended=5, total=6))
    assert sums(rollup, "38") == {"members_attended": 5, "members_total": 6}
    assert apply(rollup, payload("c-hn", commune, 3, 20, rev=2, attended=5, total=6)) == Outcome.CORRECTED
    assert sums(rollup, "38") == {"bridge_points": 3, "delegates": 20, "members_attended": 5, "members_total": 6}
    # joining the district's conference instead: counted at the commune only
    apply(rollup, payload("c-hn", commune, 3, 20, rev=3, joined="386/386-hn", attended=5, total=6))
    assert sums(rollup, commune)["bridge_points"] == 3
    assert "bridge_points" not in sums(rollup, demo.BA_THUOC)
    assert apply(rollup, payload("c-hn", commune, 0, 0, rev=4, withdrawn=True)) == Outcome.WITHDRAWN
    assert rollup.docs == {} or all(not d.periods for d in rollup.docs.values())
    assert rollup.own == {}


def test_the_depth_stops_at_the_first_unit_that_holds_the_organiser():
    commune = BA_THUOC_COMMUNES[0]
    assert shared_depth(TREE.path(commune), TREE.path("38")) == 2  # the commune and Bá Thước
    assert shared_depth(TREE.path(commune), TREE.path("386")) == 1  # the commune only
    assert shared_depth(TREE.path(commune), TREE.path(BA_THUOC_COMMUNES[1])) == 1
    assert shared_depth(TREE.path(commune), ["01"]) == 3  # an organiser in another province
    assert organiser("38-bvdk/a/b") == "38-bvdk"


def test_a_unit_cannot_join_its_own_conference_nor_one_of_a_unit_under_it_nor_an_unknown_one():
    assert joined_problem(TREE, "386", "2021-11", "joined", "38/x") is None
    own = joined_problem(TREE, "386", "2021-11", "joined", "386/x")
    assert own is not None and own["loc"] == ["body", "joined"] and "itself" in own["msg"]
    below = joined_problem(TREE, "386", "2021-11", "joined", f"{BA_THUOC_COMMUNES[0]}/x")
    assert below is not None and "a unit under it" in below["msg"]
    unknown = joined_problem(TREE, "386", "2021-11", "joined", "99999/x")
    assert unknown is not None and "'99999'" in unknown["msg"] and "period 2021-11" in unknown["msg"]
    model = REPORT_ADAPTER.validate_python(payload("r", "386", 1, 1, joined="386/x"))
    assert joined_problem_of(model, TREE, CATALOG) == own


def test_the_schema_names_the_field_when_the_reference_is_malformed():
    with pytest.raises(ValueError, match=r"body\.study_session\.joined|joined"):
        REPORT_ADAPTER.validate_python(payload("r", "386", 1, 1, joined="not a reference"))


def test_an_entry_keeps_its_depth_through_the_changelog():
    rollup = Rollup(CATALOG)
    apply(rollup, payload("c-hn", BA_THUOC_COMMUNES[0], 3, 20, joined=CONFERENCE))
    entry = next(iter(rollup.entries.values()))
    assert entry.shared_depth == 2 and Entry.from_json(entry.to_json()) == entry
    assert "shared_depth" not in Entry.from_json({**entry.to_json(), "shared_depth": 0}).to_json()


def test_a_joined_report_without_its_depth_is_refused_rather_than_counted_twice():
    report = report_from_input(payload("c", BA_THUOC_COMMUNES[0], 3, 20, joined=CONFERENCE), AT, CATALOG)
    assert isinstance(report, Report) and report.joined == "38"
    with pytest.raises(ValueError, match="shared depth 0"):
        Rollup(CATALOG).apply(report, TREE.path(report.unit), True)


def test_the_catalog_refuses_shared_figures_that_do_not_add_up():
    raw = {
        "kinds": {
            "k": {
                "title": "k",
                "fields": {"n": {"type": "int", "combine": "none"}, "j": {"type": "conference"}},
                "joins": {"field": "j", "shared": ["n"]},
            }
        }
    }
    with pytest.raises(ValueError, match="must be a field that adds up"):
        parse_catalog(raw)


# --- any order, any revisions: the totals a person gets by hand --------------------------------

UNITS = ["38", "386", BA_THUOC_COMMUNES[0], BA_THUOC_COMMUNES[1], "38-bvdk"]
ORGANISERS = [None, "38", "386", BA_THUOC_COMMUNES[1]]


def by_hand(final: dict[str, dict]) -> dict[str, dict[str, int]]:
    """unit -> summed fields of 2021-11, from the last revision of each report, written apart
    from the roll-up: shared figures stop at the first unit of the path holding the organiser."""
    out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for p in final.values():
        if p["withdrawn"]:
            continue
        body, path = p["body"], TREE.path(p["unit"])
        holding = set(TREE.path(body["joined"].split("/")[0])) if "joined" in body else set()
        stopped = False
        for code in path:
            stopped = stopped or code in holding
            for name in ("bridge_points", "delegates", "members_attended", "members_total"):
                if name in ("bridge_points", "delegates") and stopped:
                    continue
                out[code][name] += body[name]
    return {u: {k: v for k, v in d.items() if v} for u, d in out.items()}


def counted_by_hand(final: dict[str, dict]) -> dict[str, dict[str, int]]:
    """unit -> reports, units_reported and own of 2021-11: a joined report counts as a report
    of its unit all the way up, like any other."""
    out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    reporting = {p["unit"] for p in final.values() if not p["withdrawn"]}
    for p in final.values():
        if not p["withdrawn"]:
            for code in TREE.path(p["unit"]):
                out[code]["reports"] += 1
    for unit in reporting:
        out[unit]["own"] = 1
        if TREE.get(unit).level in {"commune", "agency"}:
            for code in TREE.path(unit):
                out[code]["units_reported"] += 1
    return {u: dict(d) for u, d in out.items()}


sends = st.lists(
    st.tuples(
        st.integers(0, 3),  # report
        st.integers(1, 4),  # revision
        st.sampled_from(ORGANISERS),
        st.integers(0, 9),
        st.booleans(),  # withdrawn
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(sends)
def test_in_any_order_with_any_revisions_the_totals_are_the_hand_computed_ones(messages):
    rollup, final = Rollup(CATALOG), {}
    for rid, rev, org, n, withdrawn in messages:
        unit = UNITS[rid]
        if org is not None and unit in TREE.path(org):
            org = None  # a unit never joins its own conference or one below it (refused at the door)
        p = payload(f"r{rid}", unit, n, 10 * n, joined=f"{org}/conf" if org else None, rev=rev, attended=n, total=n + 1)
        p["withdrawn"], p["body"] = withdrawn, (None if withdrawn else p["body"])
        apply(rollup, p)
        if f"r{rid}" not in final or rev > final[f"r{rid}"]["revision"]:
            final[f"r{rid}"] = p
    expected, counted = by_hand(final), counted_by_hand(final)
    for unit in {u for code in UNITS for u in TREE.path(code)}:
        assert sums(rollup, unit) == expected.get(unit, {}), unit
        figures = rollup.total(unit, "study_session", "2021-11")
        assert {k: figures.get(k, 0) for k in ("reports", "units_reported", "own")} == {
            k: counted.get(unit, {}).get(k, 0) for k in ("reports", "units_reported", "own")
        }, unit
    # restored from its entries alone, the state is the same
    again = Rollup(CATALOG)
    for key, entry in rollup.entries.items():
        again.restore(key, entry)
    assert {i: d.flat() for i, d in again.docs.items()} == {i: d.flat() for i, d in rollup.docs.items() if d.periods}
