"""Read models: totals documents turned into what officials read.

Metric names are ``<series>.<field>`` (``study_session.members_attended``); derived rates are
``<series>.<rate>`` (``study_session.participation_rate``), computed from the summed numerator
and denominator at the level asked, and rounded half-up to 4 decimals (5962/6600 -> 0.9033).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from services.api.repository import TotalsReader
from shared.catalog import Catalog, SeriesSpec
from shared.hierarchy import COUNTRY, Level, OrgTree, Unit
from shared.rollup import COUNTERS, REPORTS, UNITS_ON_TIME, UNITS_REPORTED, TotalKey, rates, round_rate


class UnitRef(BaseModel):
    code: str
    name: str
    level: Level


class UnitOut(UnitRef):
    parent: UnitRef | None
    children: list[UnitRef]


class UnitFoundOut(UnitRef):
    parent: UnitRef | None


class UnitsOut(BaseModel):
    tree: str = Field(description="legacy (before 2025-07-01) or 2025 (from 2025-07-01)")
    units: list[UnitFoundOut]


class RateOut(BaseModel):
    numerator: int
    denominator: int
    scale: int
    value: float | None = Field(description="numerator/denominator x scale, 4 decimals; null when 0/0")


class CompletenessOut(BaseModel):
    units_expected: int
    units_reported: int
    units_on_time: int
    reports: int
    completeness: float | None = Field(description="units_reported / units_expected")
    timeliness: float | None = Field(description="units_on_time / units_expected")


class UnitTotalsOut(BaseModel):
    unit: UnitRef
    period: str
    metrics: dict[str, int | float | None] = Field(description="summed fields and derived rates")
    rates: dict[str, RateOut]
    completeness: dict[str, CompletenessOut] = Field(description="per series")


class ChildrenTotalsOut(BaseModel):
    unit: UnitRef
    period: str
    children: list[UnitTotalsOut]


class MissingOut(BaseModel):
    unit: UnitRef
    series: str
    period: str
    completeness: CompletenessOut
    not_reported: list[UnitRef]


def unit_ref(unit: Unit) -> UnitRef:
    return UnitRef(code=unit.code, name=unit.name, level=unit.level)


def unit_out(tree: OrgTree, code: str) -> UnitOut:
    unit = tree.get(code)
    return UnitOut(
        code=unit.code,
        name=unit.name,
        level=unit.level,
        parent=unit_ref(tree.get(unit.parent)) if unit.parent else None,
        children=[unit_ref(c) for c in tree.children(code)],
    )


def completeness(spec: SeriesSpec, tree: OrgTree, code: str, doc: dict[str, Any] | None) -> CompletenessOut:
    expected = tree.count(code, spec.expected_levels)
    doc = doc or {}
    reported = int(doc.get(UNITS_REPORTED, 0))
    on_time = int(doc.get(UNITS_ON_TIME, 0))
    return CompletenessOut(
        units_expected=expected,
        units_reported=reported,
        units_on_time=on_time,
        reports=int(doc.get(REPORTS, 0)),
        completeness=round_rate(reported, expected),
        timeliness=round_rate(on_time, expected),
    )


def totals_from_docs(
    catalog: Catalog, tree: OrgTree, code: str, period: str, docs: dict[str, dict[str, Any]]
) -> UnitTotalsOut:
    metrics: dict[str, int | float | None] = {}
    rate_out: dict[str, RateOut] = {}
    comp: dict[str, CompletenessOut] = {}
    for key, spec in catalog.series.items():
        doc = docs.get(TotalKey(code, key, period).id)
        if doc is None and tree.count(code, spec.expected_levels) == 0:
            continue
        sums = (doc or {}).get("sums", {})
        if doc is not None:
            for f in spec.totalled_fields:
                if f.name in sums:
                    metrics[f"{key}.{f.name}"] = int(sums[f.name])
            for name, r in rates(spec, sums).items():
                metrics[f"{key}.{name}"] = r["value"]
                rate_out[f"{key}.{name}"] = RateOut(**r)
        comp[key] = completeness(spec, tree, code, doc)
    return UnitTotalsOut(
        unit=unit_ref(tree.get(code)), period=period, metrics=metrics, rates=rate_out, completeness=comp
    )


async def _docs(
    reader: TotalsReader, series: list[str], tree: OrgTree, code: str, period: str
) -> dict[str, dict[str, Any]]:
    """The unit's totals per series; for the whole country (``VN``), the sums of its provinces'
    (every field that adds up the tree does so at the provinces already; counters add up too)."""
    if code != COUNTRY:
        return await reader.get_many([TotalKey(code, s, period).id for s in series])
    provinces = [p.code for p in tree.provinces()]
    found = await reader.get_many([TotalKey(p, s, period).id for p in provinces for s in series])
    out: dict[str, dict[str, Any]] = {}
    for s in series:
        parts = [d for p in provinces if (d := found.get(TotalKey(p, s, period).id))]
        if not parts:
            continue
        sums: dict[str, int] = {}
        for d in parts:
            for name, value in (d.get("sums") or {}).items():
                sums[name] = sums.get(name, 0) + int(value)
        total: dict[str, Any] = {"unit": COUNTRY, "series": s, "period": period, "sums": sums}
        for c in COUNTERS:
            total[c] = sum(int(d.get(c, 0)) for d in parts) if c in (REPORTS, UNITS_REPORTED, UNITS_ON_TIME) else 0
        out[TotalKey(COUNTRY, s, period).id] = total
    return out


def search_units(tree: OrgTree, query: str, parent: str | None, limit: int, visible: Any) -> UnitsOut:
    """Units by name or code (accents ignored), under ``parent`` when given; only those
    ``visible(code)`` allows (the token's subtree)."""
    found = [u for u in tree.search(query, parent, limit=len(tree) + 1) if visible(u.code)][:limit]
    return UnitsOut(
        tree=tree.tree_id,
        units=[
            UnitFoundOut(
                code=u.code,
                name=u.name,
                level=u.level,
                parent=unit_ref(tree.get(u.parent)) if u.parent else None,
            )
            for u in found
        ],
    )


async def unit_totals(reader: TotalsReader, catalog: Catalog, tree: OrgTree, code: str, period: str) -> UnitTotalsOut:
    docs = await _docs(reader, list(catalog.series), tree, code, period)
    return totals_from_docs(catalog, tree, code, period, docs)


async def children_totals(
    reader: TotalsReader, catalog: Catalog, tree: OrgTree, code: str, period: str
) -> ChildrenTotalsOut:
    children = tree.children(code)
    ids = [TotalKey(c.code, s, period).id for c in children for s in catalog.series]
    docs = await reader.get_many(ids)
    return ChildrenTotalsOut(
        unit=unit_ref(tree.get(code)),
        period=period,
        children=[totals_from_docs(catalog, tree, c.code, period, docs) for c in children],
    )


async def missing_units(
    reader: TotalsReader, catalog: Catalog, tree: OrgTree, code: str, series: str, period: str
) -> MissingOut:
    spec = catalog.series[series]
    docs = await _docs(reader, [series], tree, code, period)
    levels = {Level(x) for x in spec.expected_levels}
    expected = [u for u in tree.subtree(code) if u.level in levels]
    reported = await reader.reporting_units([u.code for u in expected], series, period)
    missing = [unit_ref(u) for u in expected if u.code not in reported]
    return MissingOut(
        unit=unit_ref(tree.get(code)),
        series=series,
        period=period,
        completeness=completeness(spec, tree, code, docs.get(TotalKey(code, series, period).id)),
        not_reported=missing,
    )
