"""Reporting periods: month, quarter, half-year, year and congress term.

    2025-03     month
    2025-Q1     quarter
    2025-H1     half-year
    2025        year
    2020-2025   congress term (nhiệm kỳ)

A report names the period it covers. Its figures also count in every coarser period that
contains it (a March report counts in 2025-Q1, 2025-H1, 2025 and its term), and it is from these
enclosing periods that totals at any granularity are answered.

Terms: a congress term "A-B" starts with the congresses of year A and ends with those of year B,
both held in the autumn. We assign calendar years A .. B-1 to term "A-B" (so 2025 belongs to
2025-2030), which keeps the periods a tree. Terms are five years long.

Trees: a period belongs to the administrative tree valid at its end (``TREE_CHANGES``; the trees
themselves are in shared/domain/hierarchy.py). A report counts only in the enclosing periods of its own
tree: a June 2025 report (old tree) counts in 2025-06, 2025-Q2 and 2025-H1, not in the year 2025
nor the term 2025-2030, which end in the new tree and whose units are not the old ones. Its
document (:func:`span_of`) is then the part of the year before the change, ``2025-H1``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from enum import StrEnum
from functools import lru_cache

VIETNAM_TZ = timezone(timedelta(hours=7), "ICT")
TERM_YEARS = 5
FIRST_TERM_START = 2000  # provincial and district congresses: …, 2015, 2020, 2025, …
MIN_YEAR, MAX_YEAR = 2000, 2100
# The days the administrative tree changed: Resolution 202/2025/QH15 (34 provinces, no districts)
# from 1 July 2025. Each starts a tree version in shared/domain/hierarchy.py (TREE_VERSIONS).
TREE_CHANGES: tuple[date, ...] = (date(2025, 7, 1),)

ACCEPTED_FORMS = (
    "YYYY-MM (month), YYYY-Qn (quarter), YYYY-Hn (half-year), YYYY (year), YYYY-YYYY (congress term, e.g. 2020-2025)"
)

_PATTERNS = [
    (re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$"), "month"),
    (re.compile(r"^(\d{4})-Q([1-4])$"), "quarter"),
    (re.compile(r"^(\d{4})-H([12])$"), "half"),
    (re.compile(r"^(\d{4})$"), "year"),
    (re.compile(r"^(\d{4})-(\d{4})$"), "term"),
]


class Granularity(StrEnum):
    MONTH = "month"
    QUARTER = "quarter"
    HALF = "half"
    YEAR = "year"
    TERM = "term"


class PeriodError(ValueError):
    """A period string that is not one of the accepted forms."""


@dataclass(frozen=True, order=True)
class Period:
    """A calendar span with its canonical label. Months in [first_month, last_month] of ``year``,
    except terms, which span whole years."""

    start: date
    end: date  # inclusive
    granularity: Granularity
    label: str

    def __str__(self) -> str:
        return self.label

    @property
    def enclosing(self) -> tuple[Period, ...]:
        """This period and every coarser one that contains it, finest first."""
        return _enclosing(self.label)

    def contains(self, day: date) -> bool:
        return self.start <= day <= self.end

    @property
    def era(self) -> int:
        """Which tree the period belongs to: the number of tree changes on or before its end."""
        return era_of(self.end)


def era_of(day: date) -> int:
    """The number of tree changes on or before ``day`` (0: the oldest tree)."""
    return sum(1 for change in TREE_CHANGES if change <= day)


def _month_end(year: int, month: int) -> date:
    if month == 12:
        return date(year, 12, 31)
    return date(year, month + 1, 1) - timedelta(days=1)


def _check_year(year: int, text: str) -> None:
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise PeriodError(f"period {text!r}: year must be between {MIN_YEAR} and {MAX_YEAR}")


@lru_cache(maxsize=4096)
def parse_period(text: str) -> Period:
    """Parse a period label; raise PeriodError naming the accepted forms."""
    if not isinstance(text, str):
        raise PeriodError(f"period must be a string in one of the forms {ACCEPTED_FORMS}")
    for pattern, kind in _PATTERNS:
        m = pattern.match(text)
        if not m:
            continue
        year = int(m.group(1))
        _check_year(year, text)
        if kind == "month":
            month = int(m.group(2))
            return Period(date(year, month, 1), _month_end(year, month), Granularity.MONTH, text)
        if kind == "quarter":
            q = int(m.group(2))
            return Period(date(year, 3 * q - 2, 1), _month_end(year, 3 * q), Granularity.QUARTER, text)
        if kind == "half":
            h = int(m.group(2))
            return Period(date(year, 6 * h - 5, 1), _month_end(year, 6 * h), Granularity.HALF, text)
        if kind == "year":
            return Period(date(year, 1, 1), date(year, 12, 31), Granularity.YEAR, text)
        end_year = int(m.group(2))
        if end_year - year != TERM_YEARS or (year - FIRST_TERM_START) % TERM_YEARS:
            raise PeriodError(
                f"period {text!r}: a congress term spans {TERM_YEARS} years from a congress year "
                f"(…, 2015-2020, 2020-2025, 2025-2030, …)"
            )
        return Period(date(year, 1, 1), date(end_year - 1, 12, 31), Granularity.TERM, text)
    raise PeriodError(f"period {text!r} is not valid; accepted forms: {ACCEPTED_FORMS}")


def term_of_year(year: int) -> str:
    start = year - (year - FIRST_TERM_START) % TERM_YEARS
    return f"{start}-{start + TERM_YEARS}"


@lru_cache(maxsize=4096)
def _enclosing(label: str) -> tuple[Period, ...]:
    p = parse_period(label)
    y = p.start.year
    chain: list[str] = [label]
    if p.granularity == Granularity.MONTH:
        m = p.start.month
        chain += [f"{y}-Q{(m - 1) // 3 + 1}", f"{y}-H{(m - 1) // 6 + 1}", str(y)]
    elif p.granularity == Granularity.QUARTER:
        q = (p.start.month - 1) // 3 + 1
        chain += [f"{y}-H{(q - 1) // 2 + 1}", str(y)]
    elif p.granularity == Granularity.HALF:
        chain += [str(y)]
    if p.granularity != Granularity.TERM:
        chain.append(term_of_year(y))
    # only the periods of the same tree: a coarser period ending after a tree change holds other units
    return tuple(q for q in (parse_period(x) for x in chain) if q.era == p.era)


def deadline(period: Period, days_after_end: int) -> datetime:
    """The last instant a report for ``period`` counts as on time: the end of the day
    ``days_after_end`` days after the period's last day, in Vietnam time (so 15 for 2025-03 is
    2025-04-15 23:59:59.999999 ICT; 0 is the end of the period itself).

    Decree 09/2019/NĐ-CP's 14th is the data cut-off, which decides the period a fact belongs to;
    the sending deadline comes after the period closes and is set per report kind (catalog
    ``deadline.days_after_end``), as DHIS2 counts a report timely within N days of its period's end.
    """
    if days_after_end < 0:
        raise ValueError(f"days_after_end must not be negative, got {days_after_end}")
    day = period.end + timedelta(days=days_after_end)
    return datetime(day.year, day.month, day.day, 23, 59, 59, 999999, VIETNAM_TZ)


def has_begun(period: Period, at: datetime) -> bool:
    """Whether ``period`` has begun at the instant ``at``: its first day has started in Vietnam."""
    return datetime(period.start.year, period.start.month, period.start.day, tzinfo=VIETNAM_TZ) <= at


@lru_cache(maxsize=4096)
def span_of(label: str) -> str:
    """The stored document a period's totals live in: its calendar year for months, quarters,
    half-years and the year itself; the term for a congress term. So a report touches two
    documents per unit (its year's and its term's), however many periods enclose it.

    A year cut by a tree change keeps the periods before the change in a document of their own,
    named by the coarsest of them (``2025-H1`` for 2025-06), so no document mixes two trees (whose
    units share codes: 14923 was Thị trấn Cành Nàng and is now Xã Bá Thước)."""
    p = parse_period(label)
    if p.granularity == Granularity.TERM:
        return p.label
    year = str(p.start.year)
    if p.era == parse_period(year).era:
        return year
    return p.enclosing[-1].label
