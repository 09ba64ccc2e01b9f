"""Properties of the roll-up, checked by hypothesis against the independent oracle."""

import tempfile
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from services.aggregate.entries import DiskEntries
from shared.domain.catalog import load_catalog
from shared.domain.hierarchy import load_vietnam
from shared.domain.rollup import Rollup, report_from_input
from tests.e2e.oracle import expected_totals
from tests.unit.test_rollup import where

CATALOG = load_catalog()
TREE = load_vietnam(["38"])
UNITS = ["14923", "14926", "15031", "386"]
MONTHS = ["2024-07", "2024-08", "2024-12"]  # the tree before July 2025 (386 is a district)
AT = datetime(2024, 11, 22, tzinfo=UTC)


@st.composite
def messages(draw):
    out = []
    for i in range(draw(st.integers(1, 12))):
        unit = draw(st.sampled_from(UNITS))
        kind = "beds" if unit == "386" else "study"
        for rev in range(1, draw(st.integers(1, 3)) + 1):
            month = draw(st.sampled_from(MONTHS))
            if kind == "beds":
                body = {"indicator": "hospital_beds", "value": draw(st.integers(0, 500))}
            else:
                total = draw(st.integers(0, 1000))
                body = {
                    "resolution": "NQ",
                    "held_on": f"{month}-05",
                    "format": "online",
                    "bridge_points": draw(st.integers(0, 9)),
                    "delegates": 0,
                    "members_attended": draw(st.integers(0, total)),
                    "members_total": total,
                }
            msg = {
                "report_id": f"p{i}",
                "revision": rev,
                "unit": unit,
                "kind": "indicator" if kind == "beds" else "study_session",
                "period": month,
                "submitted_at": AT.isoformat(),
                "body": body,
            }
            if draw(st.booleans()) and draw(st.booleans()):
                msg["withdrawn"] = True
            out.append(msg)
            if draw(st.integers(0, 5)) == 0:
                out.append(msg)  # duplicate
    return draw(st.permutations(out))


def roll_up(sent, at=AT, entries=None):
    rollup = Rollup(CATALOG, entries, getattr(entries, "stocks", None))
    for m in sent:
        report = report_from_input(m, at, CATALOG)
        rollup.apply(report, *where(report, TREE, CATALOG))
    return {
        f"{doc.unit}|{doc.series}|{period}": figures
        for doc in rollup.docs.values()
        for period, figures in doc.flat().items()
        if figures
    }


def without_timeliness(totals):
    out = {}
    for total_id, fields in totals.items():
        kept = {k: v for k, v in fields.items() if k not in ("units_on_time", "own_on_time")}
        if kept:
            out[total_id] = kept
    return out


@settings(max_examples=150, deadline=None)
@given(messages())
def test_totals_equal_the_hand_computed_oracle_whatever_the_arrival_order(sent):
    assert roll_up(sent) == expected_totals(sent, TREE, AT)


@settings(max_examples=60, deadline=None)
@given(messages())
def test_entries_and_stock_figures_in_the_worker_s_sqlite_file_give_the_same_totals(sent):
    # hospital beds is a stock: its latest report is found again in the file when corrected or
    # withdrawn
    with tempfile.TemporaryDirectory() as tmp:
        entries = DiskEntries(Path(tmp) / "p0.sqlite", cache_mb=1)
        try:
            assert roll_up(sent, entries=entries) == expected_totals(sent, TREE, AT)
        finally:
            entries.close()


@settings(max_examples=80, deadline=None)
@given(messages(), st.randoms())
def test_totals_do_not_depend_on_arrival_order(sent, rnd):
    shuffled = list(sent)
    rnd.shuffle(shuffled)
    # timeliness is the one thing order decides: a report's first arriving revision sets it
    assert without_timeliness(roll_up(sent)) == without_timeliness(roll_up(shuffled))


@settings(max_examples=80, deadline=None)
@given(messages())
def test_rates_never_exceed_one_where_parts_allow_it(sent):
    totals = roll_up(sent)
    for doc_id, fields in totals.items():
        if "|study_session|" in doc_id:
            assert fields.get("sums.members_attended", 0) <= fields.get("sums.members_total", 0)
