"""The metric catalog (shared/data/catalog.json) as typed, immutable definitions.

A *series* is what totals are kept for: one per report kind (``study_session``), and one per
indicator (``indicator.hospital_beds``). Metric names are ``<series>.<field>``, e.g.
``study_session.members_attended`` or ``indicator.doctors_per_10k.numerator``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache, cached_property
from pathlib import Path
from typing import Any

from shared.domain.periods import Granularity

CATALOG_PATH = Path(__file__).parent.parent / "data" / "catalog.json"
INDICATOR_KIND = "indicator"
# A report is on time when it arrives by the end of the 15th day after its period ends (a monthly
# report by the 15th of the next month): see the README, "Timeliness".
DEFAULT_DAYS_AFTER_END = 15
# Reminders go out this many days before the deadline (shared/domain/reminders.py), unless the
# kind's catalog entry sets ``reminders.days_before``.
DEFAULT_REMINDER_DAYS: tuple[int, ...] = (7, 3, 1)


class Combine(StrEnum):
    SUM = "sum"  # adds up the tree
    NONE = "none"  # kept at the reporting unit only


class OverTime(StrEnum):
    FLOW = "flow"  # a coarser period sums the finer ones
    STOCK = "stock"  # a coarser period takes the latest value


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: str  # int | text | date | enum | conference
    minimum: int | None = None
    maximum: int | None = None
    max_length: int | None = None
    values: tuple[str, ...] = ()
    within_period: bool = False
    combine: Combine | None = None  # None: not a number that is totalled (text, dates)
    over_time: OverTime = OverTime.FLOW

    @property
    def totalled(self) -> bool:
        return self.combine is not None


@dataclass(frozen=True)
class RateSpec:
    name: str
    numerator: tuple[str, ...]
    denominator: tuple[str, ...]
    scale: int = 1


@dataclass(frozen=True)
class Rule:
    field: str
    at_most: str


@dataclass(frozen=True)
class SeriesSpec:
    """What totals are kept for one series and how its fields combine."""

    key: str
    title: str
    fields: tuple[FieldSpec, ...]
    rates: tuple[RateSpec, ...]
    expected_levels: frozenset[str]
    # the sending deadline: the end of this many days after the period's end (shared/domain/periods.deadline)
    days_after_end: int = DEFAULT_DAYS_AFTER_END
    # reminders: how many days before the deadline (largest first), and the periods they are about
    # (catalog ``reminders.every``; by default the finest period the kind accepts)
    reminder_days: tuple[int, ...] = DEFAULT_REMINDER_DAYS
    reminder_every: Granularity = Granularity.MONTH
    # the figures of a whole conference (bridge points, delegates): a report that names the
    # conference it joined counts them only below the level where the organiser's report counts
    # them (see :class:`Joins` and shared/domain/rollup.py)
    shared: tuple[str, ...] = ()

    @cached_property
    def totalled_fields(self) -> tuple[FieldSpec, ...]:
        # cached: the aggregator asks for it several times per report
        return tuple(f for f in self.fields if f.totalled)


@dataclass(frozen=True)
class Joins:
    """A kind whose reports may name the conference they joined (catalog ``joins``).

    ``field`` holds ``<organiser's unit>/<organiser's report_id>``: the conference is reported
    once, by the unit that organised it, with the figures of all its points (``shared``: 827
    bridge points and 32,637 delegates). A unit that was one of its points reports its own point
    and names the conference; its shared figures count at its own unit and its ancestors up to,
    not including, the first one that also contains the organiser, so every level counts each
    conference once. Its other figures (its members' attendance) count all the way up as usual.
    """

    field: str
    shared: tuple[str, ...]


@dataclass(frozen=True)
class KindSpec:
    name: str
    title: str
    fields: tuple[FieldSpec, ...]
    rules: tuple[Rule, ...]
    periods: frozenset[Granularity]
    series: SeriesSpec | None  # None for the indicator kind: its series come from the indicator
    joins: Joins | None = None


@dataclass(frozen=True)
class IndicatorSpec:
    code: str
    title: str
    combine: str  # sum | ratio | none
    series: SeriesSpec
    minimum: int = 0
    maximum: int = 10**12


@dataclass(frozen=True)
class Catalog:
    kinds: dict[str, KindSpec]
    indicators: dict[str, IndicatorSpec]
    series: dict[str, SeriesSpec] = field(default_factory=dict)

    def series_for(self, kind: str, body: dict[str, Any] | None) -> SeriesSpec:
        if kind == INDICATOR_KIND:
            if not body or "indicator" not in body:
                raise KeyError("an indicator report names its indicator in body.indicator")
            return self.indicators[body["indicator"]].series
        spec = self.kinds[kind].series
        assert spec is not None
        return spec


def _field(name: str, raw: dict[str, Any]) -> FieldSpec:
    return FieldSpec(
        name=name,
        type=raw["type"],
        minimum=raw.get("min"),
        maximum=raw.get("max"),
        max_length=raw.get("max_length"),
        values=tuple(raw.get("values", ())),
        within_period=bool(raw.get("within_period", False)),
        combine=Combine(raw["combine"]) if "combine" in raw else None,
        over_time=OverTime(raw.get("over_time", "flow")),
    )


def _days_after_end(raw: dict[str, Any], where: str) -> int:
    unknown = set(raw) - {"days_after_end"}
    if unknown:
        raise ValueError(f"catalog: {where}.deadline takes only days_after_end, not {sorted(unknown)}")
    days = raw.get("days_after_end", DEFAULT_DAYS_AFTER_END)
    if not isinstance(days, int) or isinstance(days, bool) or days < 0:
        raise ValueError(f"catalog: {where}.deadline.days_after_end must be a whole number of days >= 0, got {days!r}")
    return days


def _reminders(raw: dict[str, Any], where: str, accepted: frozenset[Granularity]) -> dict[str, Any]:
    """SeriesSpec's reminder fields from a catalog entry's ``reminders`` (both optional)."""
    unknown = set(raw) - {"days_before", "every"}
    if unknown:
        raise ValueError(f"catalog: {where}.reminders takes only days_before and every, not {sorted(unknown)}")
    days = raw.get("days_before", list(DEFAULT_REMINDER_DAYS))
    if (
        not isinstance(days, list)
        or not days
        or any(not isinstance(d, int) or isinstance(d, bool) or d < 0 for d in days)
        or len(set(days)) != len(days)
    ):
        raise ValueError(
            f"catalog: {where}.reminders.days_before must be distinct whole numbers of days >= 0, got {days!r}"
        )
    finest = min(accepted, key=list(Granularity).index)
    every = raw.get("every", finest.value)
    if every not in {g.value for g in accepted}:
        raise ValueError(
            f"catalog: {where}.reminders.every must be a period the kind accepts ({sorted(accepted)}), got {every!r}"
        )
    return {"reminder_days": tuple(sorted(days, reverse=True)), "reminder_every": Granularity(every)}


def _joins(raw: dict[str, Any] | None, kind: str, fields: tuple[FieldSpec, ...]) -> Joins | None:
    if raw is None:
        return None
    by_name = {f.name: f for f in fields}
    name, shared = raw.get("field"), tuple(raw.get("shared", ()))
    if set(raw) - {"field", "shared"} or name not in by_name or by_name[name].type != "conference":
        raise ValueError(f"catalog: {kind}.joins names its conference field (type conference) and its shared fields")
    for f in shared:
        spec = by_name.get(f)
        if spec is None or spec.combine != Combine.SUM or spec.over_time != OverTime.FLOW:
            raise ValueError(f"catalog: {kind}.joins.shared: {f!r} must be a field that adds up (sum, flow)")
    return Joins(name, shared)


def _indicator(code: str, raw: dict[str, Any]) -> IndicatorSpec:
    over_time = OverTime(raw["over_time"])
    lo, hi = int(raw.get("min", 0)), int(raw["max"])
    key = f"{INDICATOR_KIND}.{code}"
    fields: tuple[FieldSpec, ...]
    rates: tuple[RateSpec, ...]
    if raw["combine"] == "ratio":
        fields = (
            FieldSpec("numerator", "int", lo, hi, combine=Combine.SUM, over_time=over_time),
            FieldSpec("denominator", "int", 0, hi, combine=Combine.SUM, over_time=over_time),
        )
        rates = (RateSpec("rate", ("numerator",), ("denominator",), int(raw.get("scale", 1))),)
    else:
        combine = Combine.SUM if raw["combine"] == "sum" else Combine.NONE
        fields = (FieldSpec("value", "int", lo, hi, combine=combine, over_time=over_time),)
        rates = ()
    series = SeriesSpec(
        key=key,
        title=raw["title"],
        fields=fields,
        rates=rates,
        expected_levels=frozenset(raw.get("expected_levels", ())),
        days_after_end=_days_after_end(raw.get("deadline", {}), key),
        **_reminders(raw.get("reminders", {}), key, frozenset(Granularity)),
    )
    return IndicatorSpec(code, raw["title"], raw["combine"], series, lo, hi)


def parse_catalog(raw: dict[str, Any]) -> Catalog:
    kinds: dict[str, KindSpec] = {}
    series: dict[str, SeriesSpec] = {}
    for name, k in raw["kinds"].items():
        fields = tuple(_field(fname, f) for fname, f in k["fields"].items())
        periods = frozenset(Granularity(p) for p in k.get("periods", list(Granularity)))
        joins = _joins(k.get("joins"), name, fields)
        spec = SeriesSpec(
            key=name,
            title=k["title"],
            fields=fields,
            rates=tuple(
                RateSpec(rname, tuple(r["numerator"]), tuple(r["denominator"]), int(r.get("scale", 1)))
                for rname, r in k.get("rates", {}).items()
            ),
            expected_levels=frozenset(k.get("expected_levels", ())),
            days_after_end=_days_after_end(k.get("deadline", {}), name),
            **_reminders(k.get("reminders", {}), name, periods),
            shared=joins.shared if joins else (),
        )
        kinds[name] = KindSpec(
            name=name,
            title=k["title"],
            fields=fields,
            rules=tuple(Rule(r["field"], r["at_most"]) for r in k.get("rules", ())),
            periods=periods,
            series=spec,
            joins=joins,
        )
        series[name] = spec
    indicators = {code: _indicator(code, i) for code, i in raw.get("indicators", {}).items() if code != "_doc"}
    for ind in indicators.values():
        series[ind.series.key] = ind.series
    indicator_fields = (
        FieldSpec("indicator", "enum", values=tuple(indicators)),
        FieldSpec("value", "int"),
        FieldSpec("numerator", "int"),
        FieldSpec("denominator", "int"),
        FieldSpec("note", "text", max_length=500),
    )
    kinds[INDICATOR_KIND] = KindSpec(
        name=INDICATOR_KIND,
        title="Tiến độ chỉ tiêu (progress on a numeric target)",
        fields=indicator_fields,
        rules=(),
        periods=frozenset(Granularity),
        series=None,
    )
    return Catalog(kinds=kinds, indicators=indicators, series=series)


@cache
def load_catalog(path: Path = CATALOG_PATH) -> Catalog:
    return parse_catalog(json.loads(path.read_text(encoding="utf-8")))
