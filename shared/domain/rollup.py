"""The roll-up: how one report changes the totals of its unit and of every ancestor.

Plain Python, no I/O. A :class:`Rollup` holds, for the provinces one aggregator owns:

* ``entries``: the latest revision of every report, keyed by ``<unit>/<report_id>``. Merging a
  revision into it keeps the highest revision, so duplicates, replays and late lower revisions
  change nothing; this is the state the aggregator makes durable (its changelog);
* ``own``: each unit's own contribution per (series, period), kept as running sums and counts,
  so applying a report costs the same whatever its unit's history;
* ``docs``: the totals of every unit and ancestor, one document per (unit, series, span), the
  span being the period's year (months, quarters, halves, the year) or its congress term.

``own`` and ``docs`` are derived: :meth:`Rollup.restore` rebuilds them from the entries alone.
Applying a report compares the unit's contribution to each affected (series, period) before and
after, and adds the difference to the unit and each ancestor. Corrections, withdrawals, stocks
(latest value) and flows (sums over time) all fall out of that one comparison; rates are computed
at read time from summed numerators and denominators, never averaged.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from operator import add, mul, sub
from typing import Any, Protocol

from shared.domain.catalog import INDICATOR_KIND, Catalog, Combine, OverTime, SeriesSpec
from shared.domain.conferences import organiser
from shared.domain.periods import deadline, parse_period, span_of

# Counters kept per period of a totals document besides the summed fields ("sums.<field>").
REPORTS = "reports"  # active reports in the subtree
UNITS_REPORTED = "units_reported"  # expected units of the subtree with at least one report
UNITS_ON_TIME = "units_on_time"  # ... of which at least one arrived by the deadline
OWN = "own"  # 1 when the unit itself has an active report (only on the unit's own document)
OWN_ON_TIME = "own_on_time"
COUNTERS = (REPORTS, UNITS_REPORTED, UNITS_ON_TIME, OWN, OWN_ON_TIME)


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
    # the organiser's unit of the conference the report's unit joined (catalog ``joins``), if any
    joined: str | None = None


def doc_id(unit: str, series: str, span: str) -> str:
    return f"{unit}|{series}|{span}"


def entry_key(unit: str, report_id: str) -> str:
    return f"{unit}/{report_id}"


@dataclass(frozen=True, slots=True)
class Entry:
    """The latest revision of one report, with where it counts (its unit's path to the province,
    and whether its unit is one that is expected to report this series)."""

    revision: int
    kind: str
    series: str
    period: str
    values: Mapping[str, int]
    withdrawn: bool
    on_time: bool  # decided by the first revision's arrival: a late correction is not a late report
    path: tuple[str, ...]
    expected: bool
    # for a report naming the conference it joined: how many units of ``path`` count its shared
    # figures (shared/domain/conferences.py); 0 for every other report
    shared_depth: int = 0

    @property
    def unit(self) -> str:
        return self.path[0]

    def to_json(self) -> dict[str, Any]:
        return {
            "rev": self.revision,
            "kind": self.kind,
            "series": self.series,
            "period": self.period,
            "values": dict(self.values),
            "withdrawn": self.withdrawn,
            "on_time": self.on_time,
            "path": list(self.path),
            "expected": self.expected,
            **({"shared_depth": self.shared_depth} if self.shared_depth else {}),
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Entry:
        # interned: millions of entries name the same few kinds, periods and paths
        return cls(
            revision=int(doc["rev"]),
            kind=sys.intern(doc["kind"]),
            series=sys.intern(doc["series"]),
            period=sys.intern(doc["period"]),
            values={sys.intern(k): int(v) for k, v in doc["values"].items()},
            withdrawn=bool(doc["withdrawn"]),
            on_time=bool(doc["on_time"]),
            path=_intern_path(doc["path"]),
            expected=bool(doc["expected"]),
            shared_depth=int(doc.get("shared_depth", 0)),
        )


_PATHS: dict[tuple[str, ...], tuple[str, ...]] = {}


def _intern_path(path: Iterable[str]) -> tuple[str, ...]:
    t = tuple(sys.intern(p) for p in path)
    return _PATHS.setdefault(t, t)


@dataclass(frozen=True)
class Applied:
    outcome: Outcome
    entry: Entry | None = None  # the new latest revision, when it changed
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
    joins = catalog.kinds[kind].joins
    joined = body.get(joins.field) if joins is not None and not withdrawn else None
    return Report(
        report_id=payload["report_id"],
        revision=int(payload["revision"]),
        unit=payload["unit"],
        kind=sys.intern(kind),
        series=series.key,
        period=sys.intern(payload["period"]),
        values=values,
        withdrawn=withdrawn,
        received_at=received_at,
        joined=organiser(joined) if joined else None,
    )


def report_from_model(model: Any, received_at: datetime, catalog: Catalog) -> Report:
    """:func:`report_from_input` of a validated ReportIn model, without ``model.model_dump()``
    (dumping it cost a quarter of decoding a message): its fields, and its body's as they are."""
    body = model.body
    payload = {
        "report_id": model.report_id,
        "revision": model.revision,
        "unit": model.unit,
        "kind": model.kind,
        "period": model.period,
        "withdrawn": model.withdrawn,
        "body": body.__dict__ if body is not None else None,
    }
    return report_from_input(payload, received_at, catalog)


def is_on_time(report: Report, spec: SeriesSpec) -> bool:
    due = deadline(parse_period(report.period), spec.days_after_end)
    return report.received_at <= due


@lru_cache(maxsize=4096)
def _period_rank(period: str) -> tuple[int, int]:
    p = parse_period(period)
    return p.end.toordinal(), p.start.toordinal()


Rank = tuple[int, int, str]  # (period end, period start, entry key), compared in that order


def stock_rank(key: str, period: str) -> Rank:
    """Which of a unit's reports gives a stock's value in a period: the one whose own period ends
    last, then starts last (a month's report over its quarter's), then the highest entry key."""
    end, start = _period_rank(period)
    return end, start, key


class StockValues(Protocol):
    """The figures of every active report of a series with a stock field, per own-figures cell
    (``<unit>|<series>|<period>``), so the latest can be found again when it is corrected or
    withdrawn. They grow with the reports, so the worker keeps them on disk (entries.py); this
    in-memory one is the default and the fake, and both pass tests/contract/test_entries_contract.py."""

    def put(self, cell: str, rank: Rank, values: tuple[int, ...]) -> None: ...

    def remove(self, cell: str, rank: Rank) -> None: ...

    def latest(self, cell: str) -> tuple[int, ...] | None:
        """The values of the highest-ranked report of the cell; None when it has none."""
        ...


class InMemoryStockValues:
    def __init__(self) -> None:
        self.cells: dict[str, dict[Rank, tuple[int, ...]]] = {}

    def put(self, cell: str, rank: Rank, values: tuple[int, ...]) -> None:
        self.cells.setdefault(cell, {})[rank] = values

    def remove(self, cell: str, rank: Rank) -> None:
        reports = self.cells.get(cell)
        if reports is not None:
            reports.pop(rank, None)
            if not reports:
                del self.cells[cell]

    def latest(self, cell: str) -> tuple[int, ...] | None:
        reports = self.cells.get(cell)
        return reports[max(reports)] if reports else None


@dataclass(frozen=True)
class _Plan:
    """How one series' figures are laid out in a vector: its totalled fields first, then the
    counters. Figures are kept as lists of ints and added with ``map``: a report changes about
    five periods at three levels, and this is the aggregator's inner loop."""

    names: tuple[str, ...]  # the vector's positions: "sums.<field>"..., then COUNTERS
    flow: tuple[bool, ...]  # per field: summed over time (else a stock: the latest value)
    up: tuple[int, ...]  # per position: 1 if it adds up to ancestors
    has_stock: bool
    shared: tuple[bool, ...]  # per field: a conference's figure (SeriesSpec.shared)

    @property
    def fields(self) -> int:
        return len(self.flow)


_PLANS: dict[str, _Plan] = {}
# positions of the counters after the fields
_REPORTS, _UNITS_REPORTED, _UNITS_ON_TIME, _OWN, _OWN_ON_TIME = range(5)


def _plan(spec: SeriesSpec) -> _Plan:
    plan = _PLANS.get(spec.key)
    if plan is None:
        fields = spec.totalled_fields
        plan = _PLANS[spec.key] = _Plan(
            names=(*(f"sums.{f.name}" for f in fields), *COUNTERS),
            flow=tuple(f.over_time == OverTime.FLOW for f in fields),
            up=(*(int(f.combine == Combine.SUM) for f in fields), 1, 1, 1, 0, 0),
            has_stock=any(f.over_time == OverTime.STOCK for f in fields),
            shared=tuple(f.name in spec.shared for f in fields),
        )
    return plan


def figure_names(spec: SeriesSpec) -> tuple[str, ...]:
    """The names of a series' figures vector: "sums.<field>"..., then the counters."""
    return _plan(spec).names


def _values(spec: SeriesSpec, values: Mapping[str, int]) -> tuple[int, ...]:
    return tuple(values.get(f.name, 0) for f in spec.totalled_fields)


# One unit's own reports in one (series, period), as running figures, in a plain list (there are
# about as many as reports, so they are grouped by (unit, series) with no object around a second
# list, to keep memory down):
# [active reports, active reports on time, latest, *summed fields], ``latest`` being None or, for a
# series with a stock field, the values of the latest active report (StockValues holds the others).
_ACTIVE, _ON_TIME, _LATEST, _SUMS = 0, 1, 2, 3
OwnCell = list[Any]


def _new_cell(fields: int) -> OwnCell:
    return [0, 0, None, *([0] * fields)]


def _cell_add(cell: OwnCell, e: Entry, values: tuple[int, ...], sign: int) -> None:
    cell[_ACTIVE] += sign
    cell[_ON_TIME] += sign * int(e.on_time)
    cell[_SUMS:] = map(add, cell[_SUMS:], values) if sign > 0 else map(sub, cell[_SUMS:], values)


def _contribution(cell: OwnCell, plan: _Plan) -> list[int]:
    """What the unit's own reports put into this (series, period), as a vector laid out by
    ``plan`` (units_reported and units_on_time left at 0: the caller knows if it counts)."""
    if cell[_ACTIVE] <= 0:
        return [0] * (plan.fields + len(COUNTERS))
    sums = cell[_SUMS:]
    latest = cell[_LATEST]
    if latest is not None:
        figures = [s if flow else v for s, v, flow in zip(sums, latest, plan.flow, strict=True)]
    else:
        figures = sums
    return [*figures, cell[_ACTIVE], 0, 0, 1, int(cell[_ON_TIME] > 0)]


@lru_cache(maxsize=4096)
def _buckets(*periods: str) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for period in periods:
        for p in parse_period(period).enclosing:
            seen[p.label] = None
    return tuple(seen)


@lru_cache(maxsize=65536)
def _chain(path: tuple[str, ...], series: str, span: str) -> tuple[str, ...]:
    """The ids of the documents a change of (path[0], series, span) adds to, unit first."""
    return tuple(doc_id(code, series, span) for code in path)


@lru_cache(maxsize=4096)
def _enclosing(period: str) -> frozenset[str]:
    return frozenset(p.label for p in parse_period(period).enclosing)


class TotalsDoc:
    """The totals of one (unit, series, span): per period, a vector of figures laid out by
    ``names`` ("sums.<field>"..., then the counters)."""

    __slots__ = ("names", "parents", "periods", "series", "span", "unit")

    def __init__(self, unit: str, series: str, span: str, parents: tuple[str, ...], names: tuple[str, ...]) -> None:
        self.unit = unit
        self.series = series
        self.span = span
        self.parents = parents  # the unit and its ancestors, for subtree queries
        self.names = names
        self.periods: dict[str, list[int]] = {}

    @property
    def id(self) -> str:
        return doc_id(self.unit, self.series, self.span)

    @property
    def province(self) -> str:
        return self.parents[-1]

    def add(self, period: str, inc: list[int], shrinks: bool) -> None:
        """Add ``inc`` to a period's figures; ``shrinks``: whether it takes reports away (only
        then can the period be left with nothing, as a period with a report is never all zero)."""
        figures = self.periods.get(period)
        if figures is None:
            self.periods[period] = list(inc)
            return
        figures[:] = map(add, figures, inc)
        if shrinks and not any(figures):
            del self.periods[period]

    def figures(self, period: str) -> dict[str, int]:
        """One period's non-zero figures by name ("sums.members_attended", "reports", ...)."""
        return {n: v for n, v in zip(self.names, self.periods.get(period, ()), strict=False) if v}

    def flat(self) -> dict[str, dict[str, int]]:
        return {p: self.figures(p) for p in self.periods}


class Rollup:
    def __init__(
        self,
        catalog: Catalog,
        entries: MutableMapping[str, Entry] | None = None,
        stocks: StockValues | None = None,
    ) -> None:
        self.catalog = catalog
        self.entries: MutableMapping[str, Entry] = entries if entries is not None else {}
        self.stocks: StockValues = stocks if stocks is not None else InMemoryStockValues()
        # each unit's own figures: (unit, series) -> period -> cell (see _new_cell)
        self.own: dict[tuple[str, str], dict[str, OwnCell]] = {}
        self.docs: dict[str, TotalsDoc] = {}
        # ids of the documents changed since the last take_changed()
        self.changed: set[str] = set()

    # ------------------------------------------------------------------ reading

    def total(self, unit: str, series: str, period: str) -> dict[str, int]:
        doc = self.docs.get(doc_id(unit, series, span_of(period)))
        return doc.figures(period) if doc else {}

    def take_changed(self, limit: int | None = None) -> set[str]:
        """The ids of the documents changed since they were last taken (at most ``limit``)."""
        if limit is None or len(self.changed) <= limit:
            changed, self.changed = self.changed, set()
            return changed
        return {self.changed.pop() for _ in range(limit)}

    # ------------------------------------------------------------------ derived state, whole

    def derived(self) -> dict[str, Any]:
        """``own`` and ``docs`` as plain JSON-able data: with the entries (and the stock values)
        they are the whole state, so a snapshot need not derive them again (see
        :meth:`load_derived`)."""
        return {
            "own": [[unit, series, cells] for (unit, series), cells in self.own.items()],
            "docs": [[d.unit, d.series, d.span, d.parents, d.periods] for d in self.docs.values()],
        }

    def load_derived(self, data: Mapping[str, Any]) -> None:
        """Take ``own`` and ``docs`` from :meth:`derived`'s output, for a roll-up whose entries
        (and stock values) are those they were derived from. Nothing is marked changed."""
        own: dict[tuple[str, str], dict[str, OwnCell]] = {}
        for unit, series, cells in data["own"]:
            for cell in cells.values():
                if cell[_LATEST] is not None:
                    cell[_LATEST] = tuple(cell[_LATEST])
            own[(sys.intern(unit), sys.intern(series))] = {sys.intern(b): c for b, c in cells.items()}
        docs: dict[str, TotalsDoc] = {}
        for unit, series, span, parents, periods in data["docs"]:
            doc = TotalsDoc(unit, series, span, _intern_path(parents), figure_names(self.catalog.series[series]))
            doc.periods = {sys.intern(p): figures for p, figures in periods.items()}
            docs[doc.id] = doc
        self.own, self.docs = own, docs
        self.changed = set()

    # ------------------------------------------------------------------ writing

    def apply(self, report: Report, path: Sequence[str], expected: bool, shared_depth: int = 0) -> Applied:
        """Merge ``report`` into the entries and update the totals it changes.

        ``path`` is the report's unit and its ancestors up to the province; ``expected`` whether
        the unit is of a level expected to report this series (it counts in units_reported);
        ``shared_depth``, for a report naming the conference it joined, how many units of the path
        count its shared figures (shared/domain/conferences.shared_depth)."""
        if not path or path[0] != report.unit:
            raise ValueError(f"path {list(path)!r} does not start with the report's unit {report.unit!r}")
        if (report.joined is not None) != (shared_depth > 0) or shared_depth > len(path):
            raise ValueError(f"report {report.report_id}: joined {report.joined!r} with shared depth {shared_depth}")
        key = entry_key(report.unit, report.report_id)
        previous = self.entries.get(key)
        if previous is not None:
            if report.revision == previous.revision:
                return Applied(Outcome.DUPLICATE)
            if report.revision < previous.revision:
                return Applied(Outcome.STALE)
            if (previous.kind, previous.series) != (report.kind, report.series):
                return Applied(
                    Outcome.REJECTED,
                    reason=(
                        f"report {report.report_id} was {previous.series} and cannot become "
                        f"{report.series} in a later revision"
                    ),
                )
            if previous.path != tuple(path):
                # its period moved to another tree (where the unit's code names another unit,
                # under other ancestors, maybe another province counted elsewhere)
                return Applied(
                    Outcome.REJECTED,
                    reason=(
                        f"report {report.report_id} was counted under {'/'.join(previous.path)} "
                        f"(period {previous.period}) and cannot move to {'/'.join(path)} "
                        f"(period {report.period}) in a later revision: send a new report"
                    ),
                )
        spec = self.catalog.series[report.series]
        entry = Entry(
            revision=report.revision,
            kind=report.kind,
            series=report.series,
            period=report.period,
            values=dict(report.values),
            withdrawn=report.withdrawn,
            on_time=previous.on_time if previous is not None else is_on_time(report, spec),
            path=_intern_path(path),
            expected=expected,
            shared_depth=shared_depth,
        )
        self._replace(key, previous, entry, spec)
        if previous is None:
            outcome = Outcome.WITHDRAWN if report.withdrawn else Outcome.APPLIED
        else:
            outcome = Outcome.WITHDRAWN if report.withdrawn else Outcome.CORRECTED
        return Applied(outcome, entry)

    def restore(self, key: str, entry: Entry) -> bool:
        """Merge an entry read back from the changelog: the higher revision wins, so a changelog
        holding a key several times (before compaction, or from two writers) restores the same
        state in any order. Returns whether it changed anything."""
        previous = self.entries.get(key)
        if previous is not None and previous.revision >= entry.revision:
            return False
        self._replace(key, previous, entry, self.catalog.series[entry.series])
        return True

    def _replace(self, key: str, previous: Entry | None, entry: Entry, spec: SeriesSpec) -> None:
        self.entries[key] = entry
        plan = _plan(spec)
        old_parts = _parts(plan, spec, previous) if previous is not None else {}
        new_parts = _parts(plan, spec, entry)
        cells = self.own.get((entry.unit, entry.series))
        if cells is None:
            cells = self.own[(entry.unit, entry.series)] = {}
        # a joined report's shared part first: taking a report away, the main part's change comes
        # last, and it is the one that may leave a period with nothing (TotalsDoc.add)
        old_in = _enclosing(previous.period) if previous is not None and not previous.withdrawn else frozenset()
        new_in = _enclosing(entry.period) if not entry.withdrawn else frozenset()
        for part in sorted(old_parts.keys() | new_parts.keys(), reverse=True):
            old, new = old_parts.get(part), new_parts.get(part)
            change = _Change(
                key,
                previous,
                old or (),
                old_in if old else frozenset(),
                entry,
                new or (),
                new_in if new else frozenset(),
                part,
            )
            for bucket in _buckets(entry.period, *([previous.period] if previous else [])):
                self._replace_cell(cells, bucket, change, plan)
        if not cells:
            del self.own[(entry.unit, entry.series)]

    def _replace_cell(self, cells: dict[str, OwnCell], bucket: str, c: _Change, plan: _Plan) -> None:
        """Take the previous revision's part out of one own cell, put the new one's in, and add the
        difference of the cell's contribution to the totals."""
        previous, entry = c.previous, c.entry
        old_in, new_in = bucket in c.old_in, bucket in c.new_in
        name = f"{bucket}>{c.part}" if c.part else bucket
        cell = cells.get(name)
        if cell is None:
            cell = cells[name] = _new_cell(plan.fields)
        before = _contribution(cell, plan)
        if old_in:
            assert previous is not None
            _cell_add(cell, previous, c.old_values, -1)
        if new_in:
            _cell_add(cell, entry, c.new_values, +1)
        if plan.has_stock and not c.part:
            stock_cell = f"{entry.unit}|{entry.series}|{bucket}"
            if old_in:
                assert previous is not None
                self.stocks.remove(stock_cell, stock_rank(c.key, previous.period))
            if new_in:
                self.stocks.put(stock_cell, stock_rank(c.key, entry.period), c.new_values)
            cell[_LATEST] = self.stocks.latest(stock_cell) if cell[_ACTIVE] > 0 else None
        after = _contribution(cell, plan)
        if cell[_ACTIVE] == 0:
            del cells[name]
        if after != before:
            diff = list(map(sub, after, before))
            if c.part:  # a conference's figures only: the main part counts the report and its unit
                diff[plan.fields :] = [0] * len(COUNTERS)
            self._propagate(entry.path, entry.series, bucket, diff, plan, entry.expected, c.part or len(entry.path))

    def _propagate(
        self,
        path: tuple[str, ...],
        series: str,
        bucket: str,
        own: list[int],
        plan: _Plan,
        expected: bool,
        depth_limit: int,
    ) -> None:
        """Add the change of the unit's own figures to the unit (every field, its own counters)
        and to each ancestor (the fields that add up the tree, the subtree counters), the first
        ``depth_limit`` units of the path only."""
        f = plan.fields
        if expected:  # the unit counts among those reported (and on time) of its whole path
            own[f + _UNITS_REPORTED] = own[f + _OWN]
            own[f + _UNITS_ON_TIME] = own[f + _OWN_ON_TIME]
        up = list(map(mul, own, plan.up))
        span = span_of(bucket)
        shrinks = own[f + _REPORTS] < 0
        docs, changed = self.docs, self.changed
        for depth, did in enumerate(_chain(path, series, span)):
            inc = own if depth == 0 else up
            if depth == depth_limit or (depth and not any(up)):
                break
            doc = docs.get(did)
            if doc is None:
                doc = docs[did] = TotalsDoc(path[depth], series, span, path[depth:], plan.names)
            doc.add(bucket, inc, shrinks)
            changed.add(did)


@dataclass(frozen=True, slots=True)
class _Change:
    """One part of a report's change (``part`` 0: its figures and counts; a depth: a joined
    report's shared figures, counted by that many units of its path): the previous revision's
    values of that part and the periods they count in (none when withdrawn or without that part),
    and the new revision's."""

    key: str
    previous: Entry | None
    old_values: tuple[int, ...]
    old_in: frozenset[str]
    entry: Entry
    new_values: tuple[int, ...]
    new_in: frozenset[str]
    part: int


def _parts(plan: _Plan, spec: SeriesSpec, e: Entry) -> dict[int, tuple[int, ...]]:
    """An entry's values by part: all of them (part 0), or, for a report naming the conference
    it joined, the figures other than the conference's (part 0) and the conference's (part
    ``shared_depth``)."""
    values = _values(spec, e.values)
    if not e.shared_depth:
        return {0: values}
    own = tuple(0 if shared else v for v, shared in zip(values, plan.shared, strict=True))
    conference = tuple(v if shared else 0 for v, shared in zip(values, plan.shared, strict=True))
    return {0: own, e.shared_depth: conference}


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
    scale: int = 10**places
    magnitude = (2 * abs(numerator) * scale + abs(denominator)) // (2 * abs(denominator))
    if (numerator < 0) != (denominator < 0):
        magnitude = -magnitude
    return magnitude / scale
