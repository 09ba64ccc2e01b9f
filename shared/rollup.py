"""The roll-up: how one report changes the totals of its unit and of every ancestor.

Plain Python, no I/O. The aggregator keeps, for each reporting unit, a *ledger*: the latest
revision of each of the unit's reports. Applying a report to the ledger and comparing the unit's
contribution to each affected (series, period) before and after gives exact deltas, which are
then added to the unit and to each of its ancestors. Corrections, withdrawals, stocks (latest
value) and flows (sums over time) all fall out of this one comparison; nothing is ever averaged.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from shared.catalog import INDICATOR_KIND, Catalog, Combine, OverTime, SeriesSpec
from shared.hierarchy import Level, OrgTree
from shared.periods import Period, deadline, parse_period

# Counters kept in every totals document besides the summed fields.
REPORTS = "reports"  # active reports in the subtree
UNITS_REPORTED = "units_reported"  # expected units of the subtree with at least one report
UNITS_ON_TIME = "units_on_time"  # ... of which at least one arrived by the deadline
OWN = "own"  # 1 when the unit itself has an active report (only on the unit's own document)
OWN_ON_TIME = "own_on_time"


class Outcome(StrEnum):
    APPLIED = "applied"  # a new report
    CORRECTED = "corrected"  # a higher revision replaced an earlier one
    WITHDRAWN = "withdrawn"
    DUPLICATE = "duplicate"  # same revision again: ignored
    STALE = "stale"  # a lower revision after a higher one: ignored
    REJECTED = "rejected"  # e.g. the kind changed between revisions


@dataclass(frozen=True)
class Report:
    """A validated report, reduced to what the roll-up needs."""

    report_id: str
    revision: int
    unit: str
    kind: str
    series: str
    period: str
    values: Mapping[str, int]
    withdrawn: bool
    received_at: datetime


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    revision: int
    kind: str
    series: str
    period: str
    values: Mapping[str, int]
    withdrawn: bool
    on_time: bool  # decided by the first revision's arrival: a late correction is not a late report

    def to_doc(self) -> dict[str, Any]:
        return {
            "rev": self.revision,
            "kind": self.kind,
            "series": self.series,
            "period": self.period,
            "values": dict(self.values),
            "withdrawn": self.withdrawn,
            "on_time": self.on_time,
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> LedgerEntry:
        # interned: a ledger holds thousands of entries naming the same few kinds and periods
        return cls(
            revision=int(doc["rev"]),
            kind=sys.intern(doc["kind"]),
            series=sys.intern(doc["series"]),
            period=sys.intern(doc["period"]),
            values={sys.intern(k): v for k, v in doc["values"].items()},
            withdrawn=bool(doc["withdrawn"]),
            on_time=bool(doc["on_time"]),
        )


@dataclass
class UnitLedger:
    unit: str
    entries: dict[str, LedgerEntry] = field(default_factory=dict)


@dataclass(frozen=True)
class TotalKey:
    unit: str
    series: str
    period: str

    @property
    def id(self) -> str:
        return f"{self.unit}|{self.series}|{self.period}"

    @classmethod
    def parse(cls, doc_id: str) -> TotalKey:
        unit, series, period = doc_id.split("|")
        return cls(unit, series, period)


@dataclass(frozen=True)
class Applied:
    outcome: Outcome
    deltas: dict[TotalKey, dict[str, int]]
    changed_entry: LedgerEntry | None = None
    reason: str = ""


def report_from_input(payload: Mapping[str, Any], received_at: datetime, catalog: Catalog) -> Report:
    """Reduce a validated report (a dict of ReportIn) to the roll-up's view."""
    body = payload.get("body") or {}
    kind = payload["kind"]
    withdrawn = bool(payload.get("withdrawn", False))
    if kind == INDICATOR_KIND and not body:
        raise ValueError("a withdrawn indicator report still names body.indicator")
    series = catalog.series_for(kind, body)
    values = {} if withdrawn else {f.name: int(body[f.name]) for f in series.totalled_fields}
    return Report(
        report_id=payload["report_id"],
        revision=int(payload["revision"]),
        unit=payload["unit"],
        kind=sys.intern(kind),  # kept in ledgers: one string per kind and period, not per report
        series=series.key,
        period=sys.intern(payload["period"]),
        values=values,
        withdrawn=withdrawn,
        received_at=received_at,
    )


def _covers(entry: LedgerEntry, bucket: str) -> bool:
    return any(p.label == bucket for p in parse_period(entry.period).enclosing)


def _recency(entry_id: str, entry: LedgerEntry) -> tuple[Any, ...]:
    p: Period = parse_period(entry.period)
    return (p.end, p.start, entry_id)


def contribution(ledger: UnitLedger, spec: SeriesSpec, bucket: str) -> dict[str, int]:
    """What the unit's own reports put into one (series, period): summed fields and counters."""
    active = [
        (rid, e) for rid, e in ledger.entries.items() if e.series == spec.key and not e.withdrawn and _covers(e, bucket)
    ]
    out: dict[str, int] = {}
    if not active:
        return out
    for f in spec.totalled_fields:
        if f.over_time == OverTime.FLOW:
            out[f.name] = sum(e.values.get(f.name, 0) for _, e in active)
        else:
            _, latest = max(active, key=lambda item: _recency(*item))
            out[f.name] = latest.values.get(f.name, 0)
    out[REPORTS] = len(active)
    out[OWN] = 1
    out[OWN_ON_TIME] = int(any(e.on_time for _, e in active))
    return out


def _diff(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    keys = set(before) | set(after)
    return {k: d for k in keys if (d := after.get(k, 0) - before.get(k, 0))}


def _buckets(*periods: str) -> list[str]:
    seen: dict[str, None] = {}
    for period in periods:
        for p in parse_period(period).enclosing:
            seen[p.label] = None
    return list(seen)


def is_on_time(report: Report, spec: SeriesSpec) -> bool:
    due = deadline(parse_period(report.period), spec.closing_day, spec.grace_days)
    return report.received_at <= due


def apply_report(ledger: UnitLedger, report: Report, catalog: Catalog, tree: OrgTree) -> Applied:
    """Apply ``report`` to the unit's ledger (mutating it) and return the totals it changes."""
    if report.unit != ledger.unit:
        raise ValueError(f"report for {report.unit} applied to the ledger of {ledger.unit}")
    spec = catalog.series[report.series]
    previous = ledger.entries.get(report.report_id)
    if previous is not None:
        if report.revision == previous.revision:
            return Applied(Outcome.DUPLICATE, {})
        if report.revision < previous.revision:
            return Applied(Outcome.STALE, {})
        if (previous.kind, previous.series) != (report.kind, report.series):
            return Applied(
                Outcome.REJECTED,
                {},
                reason=(
                    f"report {report.report_id} was {previous.series} and cannot become "
                    f"{report.series} in a later revision"
                ),
            )
    entry = LedgerEntry(
        revision=report.revision,
        kind=report.kind,
        series=report.series,
        period=report.period,
        values=dict(report.values),
        withdrawn=report.withdrawn,
        on_time=previous.on_time if previous is not None else is_on_time(report, spec),
    )
    buckets = _buckets(report.period, *([previous.period] if previous else []))
    before = {b: contribution(ledger, spec, b) for b in buckets}
    ledger.entries[report.report_id] = entry
    after = {b: contribution(ledger, spec, b) for b in buckets}

    deltas: dict[TotalKey, dict[str, int]] = {}
    unit_level = tree.get(report.unit).level
    expected = unit_level in {Level(x) for x in spec.expected_levels}
    path = tree.path(report.unit)
    for bucket in buckets:
        own = _diff(before[bucket], after[bucket])
        if not own:
            continue
        for depth, code in enumerate(path):
            inc: dict[str, int] = {}
            for f in spec.totalled_fields:
                if f.name in own and (depth == 0 or f.combine == Combine.SUM):
                    inc[f"sums.{f.name}"] = own[f.name]
            if REPORTS in own:
                inc[REPORTS] = own[REPORTS]
            if expected and OWN in own:
                inc[UNITS_REPORTED] = own[OWN]
            if expected and OWN_ON_TIME in own:
                inc[UNITS_ON_TIME] = own[OWN_ON_TIME]
            if depth == 0:
                for counter in (OWN, OWN_ON_TIME):
                    if counter in own:
                        inc[counter] = own[counter]
            if inc:
                deltas[TotalKey(code, report.series, bucket)] = inc

    if previous is None:
        outcome = Outcome.WITHDRAWN if report.withdrawn else Outcome.APPLIED
    else:
        outcome = Outcome.WITHDRAWN if report.withdrawn else Outcome.CORRECTED
    return Applied(outcome, deltas, changed_entry=entry)


def merge_deltas(target: dict[TotalKey, dict[str, int]], deltas: Mapping[TotalKey, Mapping[str, int]]) -> None:
    for key, inc in deltas.items():
        acc = target.setdefault(key, {})
        for name, value in inc.items():
            acc[name] = acc.get(name, 0) + value


def without_zeros(inc: Mapping[str, int]) -> dict[str, int]:
    return {k: v for k, v in inc.items() if v}


def rates(spec: SeriesSpec, sums: Mapping[str, int]) -> dict[str, dict[str, Any]]:
    """Derived rates from summed parts: numerator, denominator and value (None when 0/0)."""
    out: dict[str, dict[str, Any]] = {}
    for r in spec.rates:
        num = sum(int(sums.get(f, 0)) for f in r.numerator)
        den = sum(int(sums.get(f, 0)) for f in r.denominator)
        out[r.name] = {
            "numerator": num,
            "denominator": den,
            "scale": r.scale,
            "value": round_rate(num * r.scale, den),
        }
    return out


def round_rate(numerator: int, denominator: int, places: int = 4) -> float | None:
    """numerator/denominator rounded half-up (away from zero) to ``places`` decimals, exactly:
    5962/6600 -> 0.9033. Integer arithmetic only, so no float error before rounding; the last
    division (an integer by a power of ten) is correctly rounded by Python, giving the same float
    as the decimal text "0.9033". The same result as Decimal's ROUND_HALF_UP, at a sixth of its
    cost (the drill-down computes thousands of these per request)."""
    if denominator == 0:
        return None
    scale = 10**places
    magnitude = (2 * abs(numerator) * scale + abs(denominator)) // (2 * abs(denominator))
    if (numerator < 0) != (denominator < 0):
        magnitude = -magnitude
    return magnitude / scale
