"""Reminders before a report kind's deadline: which (series, period) are due soon, on which day a
unit is reminded, and who is expected.

A series is reminded about the periods of its catalog cadence (``SeriesSpec.reminder_every``:
the months of a monthly kind, the years of a yearly one). A period is *due* on a day when it has
begun and its deadline (shared/domain/periods.deadline) falls on that day or within the next
days asked for. ``days_left`` counts whole days in Vietnam time: 0 on the deadline's own day.

The reminder *step* of a due period on a day is the smallest of the catalog's ``days_before``
that is at least ``days_left``: with [7, 3, 1], step 7 from seven days before the deadline, 3 from
three days before, 1 on the last day and the day before it. A unit is reminded once per (unit,
series, period, step), so a job that missed a day still sends the step it missed, once, and one
that runs twice sends nothing twice.

Expected units are those the completeness read counts (services/api/views.missing_units): units
of the catalog's ``expected_levels`` in the subtree, in the tree of the period, open on its last
day.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from shared.domain.catalog import SeriesSpec
from shared.domain.hierarchy import Level, OrgTree, Unit
from shared.domain.periods import (
    MAX_YEAR,
    MIN_YEAR,
    VIETNAM_TZ,
    Granularity,
    Period,
    deadline,
    parse_period,
    term_of_year,
)

# the longest look-ahead a listing may ask for: a little over a quarter
MAX_WITHIN_DAYS = 100
TERM_YEARS_AHEAD = 6  # a term's deadline is at most this many years after a day inside it


@dataclass(frozen=True)
class Due:
    """A (series, period) whose deadline is near on ``today``."""

    series: str
    period: str
    deadline: datetime  # the last instant that counts as on time, Vietnam time
    days_left: int  # whole days from today to the deadline's day (0: today is the last day)
    step: int | None  # the reminder step due today (one of the catalog's days_before), None: none yet


def vietnam_day(now: datetime) -> date:
    """The calendar day in Vietnam at the instant ``now`` (an aware datetime)."""
    if now.tzinfo is None:
        raise ValueError("now must carry its time zone")
    return now.astimezone(VIETNAM_TZ).date()


def step_on(days_before: Iterable[int], days_left: int) -> int | None:
    """The reminder step due when ``days_left`` days remain: the smallest of ``days_before`` that
    is at least ``days_left``; None before the first step or after the deadline."""
    if days_left < 0:
        return None
    reached = [d for d in days_before if d >= days_left]
    return min(reached) if reached else None


def _labels(every: Granularity, year: int) -> list[str]:
    if every == Granularity.MONTH:
        return [f"{year}-{m:02d}" for m in range(1, 13)]
    if every == Granularity.QUARTER:
        return [f"{year}-Q{q}" for q in range(1, 5)]
    if every == Granularity.HALF:
        return [f"{year}-H1", f"{year}-H2"]
    if every == Granularity.YEAR:
        return [str(year)]
    return [term_of_year(year)]


def periods_of(every: Granularity, first_end: date, last_end: date) -> list[Period]:
    """The periods of granularity ``every`` whose last day is in [first_end, last_end], in order."""
    years = range(max(MIN_YEAR, first_end.year - TERM_YEARS_AHEAD), min(MAX_YEAR, last_end.year) + 1)
    found = {p.label: p for y in years for p in map(parse_period, _labels(every, y)) if first_end <= p.end <= last_end}
    return sorted(found.values(), key=lambda p: p.end)


def check_day(day: date) -> date:
    """``day`` when its year is one periods may have; ValueError naming the years otherwise."""
    if not MIN_YEAR <= day.year <= MAX_YEAR:
        raise ValueError(f"the day must be in the years {MIN_YEAR} to {MAX_YEAR}, got {day.isoformat()}")
    return day


def due(spec: SeriesSpec, today: date, within_days: int) -> list[Due]:
    """The periods of ``spec`` that have begun by ``today`` and whose deadline day is today or in
    the next ``within_days`` days, earliest deadline first."""
    check_day(today)
    if not 0 <= within_days <= MAX_WITHIN_DAYS:
        raise ValueError(f"within_days must be between 0 and {MAX_WITHIN_DAYS}, got {within_days}")
    lag = timedelta(days=spec.days_after_end)
    candidates = periods_of(spec.reminder_every, today - lag, today + timedelta(days=within_days) - lag)
    out = []
    for p in candidates:
        if p.start > today:
            continue
        last = deadline(p, spec.days_after_end)
        days_left = (last.date() - today).days
        out.append(Due(spec.key, p.label, last, days_left, step_on(spec.reminder_days, days_left)))
    return out


def collecting(spec: SeriesSpec, today: date) -> Due:
    """The period of ``spec`` being collected on ``today``: of those that have begun, the one with
    the earliest deadline not yet past."""
    check_day(today)
    lag = timedelta(days=spec.days_after_end)
    horizon = timedelta(days=366 * TERM_YEARS_AHEAD)
    for p in periods_of(spec.reminder_every, today - lag, today + horizon):
        if p.start <= today:
            last = deadline(p, spec.days_after_end)
            days_left = (last.date() - today).days
            return Due(spec.key, p.label, last, days_left, step_on(spec.reminder_days, days_left))
    raise ValueError(f"no period of {spec.key} is being collected on {today}")  # past MAX_YEAR only


def expected_units(tree: OrgTree, code: str, spec: SeriesSpec, period: str) -> list[Unit]:
    """The units under ``code`` (itself included) that must send ``spec`` for ``period``: the
    catalog's expected levels, open on the period's last day, in ``tree`` (the period's tree)."""
    levels = {Level(x) for x in spec.expected_levels}
    last_day = parse_period(period).end
    return [u for u in tree.subtree(code) if u.level in levels and tree.open_on(u.code, last_day)]


def reminder_key(tree_id: str, unit: str, series: str, period: str, step: int) -> str:
    """The identity of one reminder: a unit is reminded once per key."""
    return f"{tree_id}:{unit}|{series}|{period}|{step}"


@dataclass(frozen=True)
class Message:
    subject: str
    body: str


def message(unit: Unit, series_title: str, item: Due) -> Message:
    """The reminder a unit's clerks read, in Vietnamese."""
    when = f"{item.deadline:%d/%m/%Y}"
    left = "hôm nay là ngày cuối" if item.days_left == 0 else f"còn {item.days_left} ngày"
    subject = f"[baocao] Nhắc nộp báo cáo {series_title} kỳ {item.period}: hạn {when} ({left})"
    body = (
        f"Kính gửi {unit.name} (mã {unit.code}),\n\n"
        f"Hệ thống chưa nhận được báo cáo «{series_title}» kỳ {item.period} của đơn vị.\n"
        f"Hạn nộp: hết ngày {when} (giờ Việt Nam), {left}.\n\n"
        "Xin gửi báo cáo qua trang /web/submit hoặc hệ thống của đơn vị. "
        "Nếu đã gửi, xin bỏ qua thư này: báo cáo đến sau khi thư được gửi đi.\n\n"
        "Thư tự động từ hệ thống baocao; xin đừng trả lời thư này.\n"
    )
    return Message(subject, body)
