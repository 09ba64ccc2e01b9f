"""The reminder rule (shared/domain/reminders.py) and the catalog's ``reminders`` field."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from shared.domain.catalog import DEFAULT_REMINDER_DAYS, load_catalog, parse_catalog
from shared.domain.hierarchy import LEGACY, TREE_2025, Level, OrgTree
from shared.domain.periods import Granularity
from shared.domain.reminders import (
    collecting,
    due,
    expected_units,
    message,
    periods_of,
    reminder_key,
    step_on,
    vietnam_day,
)

CATALOG = load_catalog()
STUDY = CATALOG.series["study_session"]  # monthly, 15 days after the period, reminders 7, 3, 1
RATING = CATALOG.series["member_rating"]  # yearly, 31 days after, reminders 14, 7, 1


def test_catalog_defaults_and_the_yearly_kind() -> None:
    assert STUDY.reminder_days == DEFAULT_REMINDER_DAYS == (7, 3, 1)
    assert STUDY.reminder_every == Granularity.MONTH
    assert RATING.reminder_days == (14, 7, 1)
    assert RATING.reminder_every == Granularity.YEAR
    assert CATALOG.series["indicator.hospital_beds"].reminder_every == Granularity.MONTH


def _kind(**reminders: object) -> dict[str, object]:
    return {
        "kinds": {
            "k": {
                "title": "K",
                "periods": ["quarter", "year"],
                "fields": {"n": {"type": "int", "combine": "sum"}},
                "reminders": reminders,
            }
        }
    }


def test_catalog_reminders_field() -> None:
    spec = parse_catalog(_kind(days_before=[1, 10, 5])).series["k"]
    assert spec.reminder_days == (10, 5, 1)
    assert spec.reminder_every == Granularity.QUARTER  # the finest the kind accepts
    assert parse_catalog(_kind(every="year")).series["k"].reminder_every == Granularity.YEAR


@pytest.mark.parametrize(
    ("reminders", "names"),
    [
        ({"days_before": []}, "k.reminders.days_before"),
        ({"days_before": [3, 3]}, "k.reminders.days_before"),
        ({"days_before": [-1]}, "k.reminders.days_before"),
        ({"days_before": ["7"]}, "k.reminders.days_before"),
        ({"every": "month"}, "k.reminders.every"),
        ({"days": [7]}, "k.reminders takes only"),
    ],
)
def test_catalog_refuses_a_bad_reminders_field_naming_it(reminders: dict[str, object], names: str) -> None:
    with pytest.raises(ValueError, match=names):
        parse_catalog(_kind(**reminders))


@pytest.mark.parametrize(("days_left", "step"), [(8, None), (7, 7), (4, 7), (3, 3), (2, 3), (1, 1), (0, 1), (-1, None)])
def test_step_is_the_last_threshold_reached(days_left: int, step: int | None) -> None:
    assert step_on((7, 3, 1), days_left) == step


def test_deadline_day_itself_with_a_zero_step() -> None:
    assert step_on((3, 0), 0) == 0
    assert step_on((3, 0), 1) == 3


def test_due_within_days() -> None:
    # 2025-03 is due by the end of 2025-04-15 (15 days after its end), Vietnam time
    [item] = due(STUDY, date(2025, 4, 8), 7)
    assert (item.series, item.period, item.days_left, item.step) == ("study_session", "2025-03", 7, 7)
    assert item.deadline.isoformat() == "2025-04-15T23:59:59.999999+07:00"
    assert due(STUDY, date(2025, 4, 7), 7) == []  # 8 days left: outside the window
    assert [d.period for d in due(STUDY, date(2025, 4, 15), 0)] == ["2025-03"]
    assert due(STUDY, date(2025, 4, 16), 28) == []  # 2025-03 is past; 2025-04 is due on 15 May
    assert [d.period for d in due(STUDY, date(2025, 4, 16), 29)] == ["2025-04"]


def test_due_lists_two_periods_in_a_long_window() -> None:
    items = due(STUDY, date(2025, 4, 1), 45)
    assert [(d.period, d.days_left, d.step) for d in items] == [("2025-03", 14, None), ("2025-04", 44, None)]


def test_a_period_not_begun_is_not_due() -> None:
    # a kind due the day its period ends: on 2025-03-31 with 40 days ahead, April ends within the
    # window but has not begun
    spec = parse_catalog(
        {"kinds": {"k": {"title": "K", "fields": {}, "deadline": {"days_after_end": 0}, "periods": ["month"]}}}
    ).series["k"]
    assert [d.period for d in due(spec, date(2025, 3, 31), 40)] == ["2025-03"]


def test_yearly_kind() -> None:
    # 2025 is due by 2026-01-31; 14 days before is 2026-01-17
    [item] = due(RATING, date(2026, 1, 17), 14)
    assert (item.period, item.days_left, item.step) == ("2025", 14, 14)
    assert due(RATING, date(2026, 1, 16), 14) == []


def test_the_day_is_within_the_years_of_periods() -> None:
    with pytest.raises(ValueError, match="years 2000 to 2100"):
        due(STUDY, date(1, 1, 1), 7)
    with pytest.raises(ValueError, match="years 2000 to 2100"):
        collecting(STUDY, date(9999, 12, 31))


def test_within_days_is_bounded() -> None:
    with pytest.raises(ValueError, match="within_days"):
        due(STUDY, date(2025, 4, 1), 101)
    with pytest.raises(ValueError, match="within_days"):
        due(STUDY, date(2025, 4, 1), -1)


def test_collecting_is_the_earliest_open_deadline() -> None:
    now = collecting(STUDY, date(2026, 12, 7))
    assert (now.period, now.days_left, now.step) == ("2026-11", 8, None)
    assert collecting(STUDY, date(2026, 12, 15)).period == "2026-11"
    assert collecting(STUDY, date(2026, 12, 16)).period == "2026-12"
    assert collecting(RATING, date(2026, 12, 7)).period == "2026"
    assert collecting(RATING, date(2027, 1, 31)).period == "2026"


def test_periods_of_every_granularity() -> None:
    first, last = date(2025, 1, 1), date(2025, 12, 31)
    assert len(periods_of(Granularity.MONTH, first, last)) == 12
    assert [p.label for p in periods_of(Granularity.QUARTER, first, last)] == [f"2025-Q{q}" for q in range(1, 5)]
    assert [p.label for p in periods_of(Granularity.HALF, first, last)] == ["2025-H1", "2025-H2"]
    assert [p.label for p in periods_of(Granularity.TERM, date(2024, 1, 1), date(2029, 12, 31))] == [
        "2020-2025",
        "2025-2030",
    ]


def test_vietnam_day() -> None:
    assert vietnam_day(datetime(2025, 4, 14, 17, 0, tzinfo=UTC)) == date(2025, 4, 15)
    with pytest.raises(ValueError, match="time zone"):
        vietnam_day(datetime(2025, 4, 14))


def _tree() -> OrgTree:
    tree = OrgTree(LEGACY)
    tree.add("38", "Tỉnh Thanh Hóa", Level.PROVINCE, None)
    tree.add("386", "Huyện Thọ Xuân", Level.DISTRICT, "38")
    for code in ("15001", "15002"):
        tree.add(code, f"Xã {code}", Level.COMMUNE, "386")
    tree.add_agency("386-bv", "Bệnh viện", "386")
    tree.add_agency("386-tr", "Trường", "386")
    tree.close_agency("386-tr", date(2025, 3, 1))
    return tree


def test_expected_units_follow_the_levels_and_closing() -> None:
    tree = _tree()
    codes = [u.code for u in expected_units(tree, "38", STUDY, "2025-03")]
    assert sorted(codes) == ["15001", "15002", "386-bv"]  # the agency closed before 31 March is not
    assert sorted(u.code for u in expected_units(tree, "38", STUDY, "2025-02")) == [
        "15001",
        "15002",
        "386-bv",
        "386-tr",
    ]
    hospital_beds = CATALOG.series["indicator.hospital_beds"]  # expected of districts
    assert [u.code for u in expected_units(tree, "38", hospital_beds, "2025-03")] == ["386"]


def test_reminder_key_names_the_tree() -> None:
    assert reminder_key(TREE_2025, "14923", "study_session", "2025-09", 3) == "2025:14923|study_session|2025-09|3"
    assert reminder_key(LEGACY, "14923", "study_session", "2025-03", 3) != reminder_key(
        TREE_2025, "14923", "study_session", "2025-03", 3
    )


def test_message_is_vietnamese_and_names_the_deadline() -> None:
    tree = _tree()
    [item] = due(STUDY, date(2025, 4, 12), 7)
    text = message(tree.get("15001"), STUDY.title, item)
    assert "kỳ 2025-03" in text.subject and "hạn 15/04/2025" in text.subject and "còn 3 ngày" in text.subject
    assert "Xã 15001 (mã 15001)" in text.body and "hết ngày 15/04/2025 (giờ Việt Nam)" in text.body
    [last] = due(STUDY, date(2025, 4, 15), 0)
    assert "hôm nay là ngày cuối" in message(tree.get("15001"), STUDY.title, last).subject
