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
from shared.hierarchy import Level, OrgTree, Unit
from shared.rollup import REPORTS, UNITS_ON_TIME, UNITS_REPORTED, TotalKey, rates, round_rate


class UnitRef(BaseModel):
    code: str
    name: str
    level: Level


class UnitOut(UnitRef):
    parent: UnitRef | None
    children: list[UnitRef]


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
    return CompletenessOut.model_validate(_completeness(tree.count(code, spec.expected_levels), doc or {}))


def _completeness(expected: int, doc: dict[str, Any]) -> dict[str, Any]:
    reported = int(doc.get(UNITS_REPORTED, 0))
    on_time = int(doc.get(UNITS_ON_TIME, 0))
    return {
        "units_expected": expected,
        "units_reported": reported,
        "units_on_time": on_time,
        "reports": int(doc.get(REPORTS, 0)),
        "completeness": round_rate(reported, expected),
        "timeliness": round_rate(on_time, expected),
    }


# The totals and drill-down answers are built as plain dicts shaped like UnitTotalsOut and
# ChildrenTotalsOut and serialized by pydantic-core as they are: a province's drill-down is 26
# rows x 11 series, and validating ~500 models took a third of its 3.5 ms (the models stay the
# routes' schema; tests/unit/test_api_app.py checks the dicts against them).


def totals_row(
    catalog: Catalog, tree: OrgTree, code: str, period: str, docs: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """One unit's totals for ``period`` from the views ``docs`` (by total id), as UnitTotalsOut."""
    metrics: dict[str, int | float | None] = {}
    rate_out: dict[str, dict[str, Any]] = {}
    comp: dict[str, dict[str, Any]] = {}
    for key, spec in catalog.series.items():
        doc = docs.get(f"{code}|{key}|{period}")  # TotalKey(code, key, period).id
        expected = tree.count(code, spec.expected_levels)
        if doc is None:
            if expected == 0:
                continue
            doc = {}
        else:
            sums = doc.get("sums", {})
            for f in spec.totalled_fields:
                if f.name in sums:
                    metrics[f"{key}.{f.name}"] = int(sums[f.name])
            for name, r in rates(spec, sums).items():
                metrics[f"{key}.{name}"] = r["value"]
                rate_out[f"{key}.{name}"] = r
        comp[key] = _completeness(expected, doc)
    return {
        "unit": _unit_ref(tree.get(code)),
        "period": period,
        "metrics": metrics,
        "rates": rate_out,
        "completeness": comp,
    }


def _unit_ref(unit: Unit) -> dict[str, Any]:
    return {"code": unit.code, "name": unit.name, "level": unit.level.value}


async def unit_totals_data(
    reader: TotalsReader, catalog: Catalog, tree: OrgTree, code: str, period: str
) -> dict[str, Any]:
    """A unit's totals as UnitTotalsOut's JSON shape."""
    ids = [TotalKey(code, s, period).id for s in catalog.series]
    return totals_row(catalog, tree, code, period, await reader.get_many(ids))


async def children_totals_data(
    reader: TotalsReader, catalog: Catalog, tree: OrgTree, code: str, period: str
) -> dict[str, Any]:
    """One row of totals per child as ChildrenTotalsOut's JSON shape."""
    children = tree.children(code)
    ids = [TotalKey(c.code, s, period).id for c in children for s in catalog.series]
    docs = await reader.get_many(ids)
    return {
        "unit": _unit_ref(tree.get(code)),
        "period": period,
        "children": [totals_row(catalog, tree, c.code, period, docs) for c in children],
    }


async def unit_totals(reader: TotalsReader, catalog: Catalog, tree: OrgTree, code: str, period: str) -> UnitTotalsOut:
    return UnitTotalsOut.model_validate(await unit_totals_data(reader, catalog, tree, code, period))


async def children_totals(
    reader: TotalsReader, catalog: Catalog, tree: OrgTree, code: str, period: str
) -> ChildrenTotalsOut:
    return ChildrenTotalsOut.model_validate(await children_totals_data(reader, catalog, tree, code, period))


async def missing_units(
    reader: TotalsReader, catalog: Catalog, tree: OrgTree, code: str, series: str, period: str
) -> MissingOut:
    spec = catalog.series[series]
    docs = await reader.get_many([TotalKey(code, series, period).id])
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
