"""Read models: totals documents turned into what officials read.

Metric names are ``<series>.<field>`` (``study_session.members_attended``); derived rates are
``<series>.<rate>`` (``study_session.participation_rate``), computed from the summed numerator
and denominator at the level asked, and rounded half-up to 4 decimals (5962/6600 -> 0.9033).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, Field

from services.api.repository import Figures, TotalsReader
from shared.domain.catalog import Catalog, SeriesSpec
from shared.domain.hierarchy import COUNTRY, LEGACY, TREE_2025, Conversion2025, Level, OrgTree, Unit
from shared.domain.periods import parse_period
from shared.domain.rollup import REPORTS, UNITS_ON_TIME, UNITS_REPORTED, rates, round_rate


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


class SourceOut(UnitRef):
    split: bool = Field(description="split among several new units: all its history is shown on its primary successor")


class RemappedTotalsOut(UnitTotalsOut):
    """A unit of the 2025 tree with the history of the units it took over (the conversion table of
    1 July 2025): each old unit counted once, on its primary successor."""

    tree: str = Field(description="the tree of the unit: 2025")
    period_tree: str = Field(description="the tree of the period whose figures are shown: legacy")
    approximate: bool = Field(
        description="true when a source was split (all its history is here, though part of it went "
        "elsewhere) or when part of a split old unit came here while its history is shown elsewhere"
    )
    sources: list[SourceOut] = Field(description="the old units whose figures are added up here")
    shown_elsewhere: list[SourceOut] = Field(
        description="old units split with a part here, whose history is shown on their primary successor"
    )


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


def completeness(spec: SeriesSpec, tree: OrgTree, code: str, period: str, doc: Figures | None) -> CompletenessOut:
    expected = tree.count(code, spec.expected_levels, on=parse_period(period).end)
    return CompletenessOut.model_validate(_completeness(expected, doc or {}))


def _completeness(expected: int, doc: Figures) -> dict[str, Any]:
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
# ChildrenTotalsOut and serialized by pydantic-core as they are: a drill-down holds a model per
# child and series, and validating them all again would cost more than building them (the models
# stay the routes' schema; tests/unit/test_api_cache.py checks the dicts against them).


def totals_row(
    catalog: Catalog, tree: OrgTree, code: str, period: str, found: Mapping[tuple[str, str], Figures]
) -> dict[str, Any]:
    """One unit's totals for ``period`` from the figures ``found`` (by unit and series), as
    UnitTotalsOut."""
    metrics: dict[str, int | float | None] = {}
    rate_out: dict[str, dict[str, Any]] = {}
    comp: dict[str, dict[str, Any]] = {}
    last_day = parse_period(period).end  # an agency closed on it is not expected
    for key, spec in catalog.series.items():
        doc = found.get((code, key))
        expected = tree.count(code, spec.expected_levels, on=last_day)
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
    """A unit's totals (VN's: its provinces' added up) as UnitTotalsOut's JSON shape."""
    return totals_row(catalog, tree, code, period, await _docs(reader, list(catalog.series), tree, code, period))


async def children_totals_data(
    reader: TotalsReader, catalog: Catalog, tree: OrgTree, code: str, period: str
) -> dict[str, Any]:
    """One row of totals per child as ChildrenTotalsOut's JSON shape."""
    children = tree.children(code)
    found = await reader.figures([c.code for c in children], list(catalog.series), period)
    return {
        "unit": _unit_ref(tree.get(code)),
        "period": period,
        "children": [totals_row(catalog, tree, c.code, period, found) for c in children],
    }


async def _docs(
    reader: TotalsReader, series: list[str], tree: OrgTree, code: str, period: str
) -> dict[tuple[str, str], Figures]:
    """The unit's figures per series; for the whole country (``VN``), the sums of its provinces'
    (every field that adds up the tree does so at the provinces already; counters add up too)."""
    if code != COUNTRY:
        return await reader.figures([code], series, period)
    return await _summed(reader, series, [p.code for p in tree.provinces()], COUNTRY, period)


async def _summed(
    reader: TotalsReader, series: list[str], parts: list[str], code: str, period: str
) -> dict[tuple[str, str], Figures]:
    """The figures of ``parts`` (units with disjoint subtrees) added up, per series, as if they
    were ``code``'s: summed fields and the subtree counters add; ``own`` is 0."""
    found = await reader.figures(parts, series, period)
    out: dict[tuple[str, str], Figures] = {}
    for s in series:
        docs = [d for p in parts if (d := found.get((p, s)))]
        if not docs:
            continue
        sums: dict[str, int] = {}
        for d in docs:
            for name, value in (d.get("sums") or {}).items():
                sums[name] = sums.get(name, 0) + int(value)
        total: dict[str, Any] = {"sums": sums}
        for c in (REPORTS, UNITS_REPORTED, UNITS_ON_TIME):
            total[c] = sum(int(d.get(c, 0)) for d in docs)
        out[(code, s)] = total
    return out


def remapped_sources(
    trees: OrgTree, conversion: Conversion2025, code: str
) -> tuple[list[tuple[Unit, bool]], list[Unit]]:
    """The old units whose history a unit of the 2025 tree shows (each with whether it was split),
    and the split old units with a part in it whose history another successor shows."""
    new, old = trees.version_named(TREE_2025), trees.version_named(LEGACY)
    if code == COUNTRY:
        return [(p, False) for p in old.provinces()], []
    unit = new.get(code)
    if unit.level == Level.PROVINCE:
        return [(p, False) for p in old.provinces() if conversion.provinces.get(p.code) == code], []
    if unit.level == Level.AGENCY:  # registered under a unit whose code both trees have
        return ([(old.get(code), False)] if code in old else []), []
    sources = [(old.get(o), conversion.communes[o].split) for o in conversion.by_primary.get(code, []) if o in old]
    elsewhere = [
        old.get(o) for o in conversion.by_successor.get(code, []) if o in old and conversion.communes[o].primary != code
    ]
    return sources, elsewhere


async def remapped_totals(
    reader: TotalsReader,
    catalog: Catalog,
    trees: OrgTree,
    found: tuple[list[tuple[Unit, bool]], list[Unit]],
    code: str,
    period: str,
) -> RemappedTotalsOut:
    """``found``: what :func:`remapped_sources` gives for ``code`` (the route checks the token
    against those sources first)."""
    new, old = trees.version_named(TREE_2025), trees.version_named(LEGACY)
    sources, elsewhere = found
    docs = await _summed(reader, list(catalog.series), [u.code for u, _ in sources], code, period)
    metrics: dict[str, int | float | None] = {}
    rate_out: dict[str, RateOut] = {}
    comp: dict[str, CompletenessOut] = {}
    last_day = parse_period(period).end
    for key, spec in catalog.series.items():
        doc = docs.get((code, key))
        expected = sum(old.count(u.code, spec.expected_levels, on=last_day) for u, _ in sources)
        if doc is None and expected == 0:
            continue
        sums = (doc or {}).get("sums", {})
        for f in spec.totalled_fields:
            if f.name in sums:
                metrics[f"{key}.{f.name}"] = int(sums[f.name])
        if doc is not None:
            for name, r in rates(spec, sums).items():
                metrics[f"{key}.{name}"] = r["value"]
                rate_out[f"{key}.{name}"] = RateOut(**r)
        reported, on_time = int((doc or {}).get(UNITS_REPORTED, 0)), int((doc or {}).get(UNITS_ON_TIME, 0))
        comp[key] = CompletenessOut(
            units_expected=expected,
            units_reported=reported,
            units_on_time=on_time,
            reports=int((doc or {}).get(REPORTS, 0)),
            completeness=round_rate(reported, expected),
            timeliness=round_rate(on_time, expected),
        )
    return RemappedTotalsOut(
        unit=unit_ref(new.get(code)),
        period=period,
        metrics=metrics,
        rates=rate_out,
        completeness=comp,
        tree=new.tree_id,
        period_tree=old.tree_id,
        approximate=any(split for _, split in sources) or bool(elsewhere),
        sources=[SourceOut(code=u.code, name=u.name, level=u.level, split=split) for u, split in sources],
        shown_elsewhere=[SourceOut(code=u.code, name=u.name, level=u.level, split=True) for u in elsewhere],
    )


def search_units(
    tree: OrgTree,
    query: str,
    parent: str | None,
    limit: int,
    visible: Callable[[str], bool],
    within: str | None = None,
) -> UnitsOut:
    """Units by name or code (accents ignored), under ``parent`` when given, else within the
    subtree of ``within`` (the token's unit); only those ``visible(code)`` allows (the token's
    subtree: the search looks no further than it, so a commune's token never scans the country)."""
    found = [u for u in tree.search(query, parent, limit=limit, within=within) if visible(u.code)]
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
    return UnitTotalsOut.model_validate(await unit_totals_data(reader, catalog, tree, code, period))


async def children_totals(
    reader: TotalsReader, catalog: Catalog, tree: OrgTree, code: str, period: str
) -> ChildrenTotalsOut:
    return ChildrenTotalsOut.model_validate(await children_totals_data(reader, catalog, tree, code, period))


async def missing_units(
    reader: TotalsReader, catalog: Catalog, tree: OrgTree, code: str, series: str, period: str
) -> MissingOut:
    spec = catalog.series[series]
    docs = await _docs(reader, [series], tree, code, period)
    levels = {Level(x) for x in spec.expected_levels}
    last_day = parse_period(period).end
    expected = [u for u in tree.subtree(code) if u.level in levels and tree.open_on(u.code, last_day)]
    reported = await reader.reporting_units([u.code for u in expected], series, period)
    missing = [unit_ref(u) for u in expected if u.code not in reported]
    return MissingOut(
        unit=unit_ref(tree.get(code)),
        series=series,
        period=period,
        completeness=completeness(spec, tree, code, period, docs.get((code, series))),
        not_reported=missing,
    )
