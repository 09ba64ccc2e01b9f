"""What the pages show, read through the same read models as the HTTP API (services/api/views.py)
and the submissions listing (services/api/web/listing.py)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from markupsafe import Markup

from services.api.repository import TotalsReader
from services.api.views import children_totals, unit_totals
from services.api.web import labels
from services.api.web.chart import Point, bar_chart, chart_periods
from services.api.web.listing import ListingPage, SubmissionListing, reach_of
from services.api.web.sheets import Column, Table, totals_table
from shared.domain.auth import Principal
from shared.domain.catalog import Catalog
from shared.domain.hierarchy import LEGACY, OrgTree, UnknownTree


async def unit_table(
    reader: TotalsReader, catalog: Catalog, tree: OrgTree, code: str, period: str, series: str
) -> Table:
    """The unit's totals of ``series``, with a row per child when it has children."""
    totals = (await unit_totals(reader, catalog, tree, code, period)).model_dump(mode="json")
    children = None
    if tree.children(code):
        rows = await children_totals(reader, catalog, tree, code, period)
        children = [r.model_dump(mode="json") for r in rows.children]
    return totals_table(catalog, series, totals, children)


def chosen_metric(table: Table, metric: str | None) -> str | None:
    """The column the chart shows: the one asked for, else the first rate, else the first column."""
    keys = [col.key for col in table.columns]
    if metric in keys:
        return metric
    rate_keys = [col.key for col in table.columns if col.scale]
    return next(iter(rate_keys or keys), None)


@dataclass(frozen=True)
class Chart:
    svg: Markup
    points: list[Point]
    label: str


async def unit_chart(
    reader: TotalsReader, catalog: Catalog, tree: OrgTree, code: str, period: str, column: Column
) -> Chart:
    """``column`` of the unit over the periods around ``period`` (chart_periods), one bar each."""
    periods = chart_periods(period)
    answers = await asyncio.gather(*(unit_totals(reader, catalog, tree, code, p) for p in periods))
    points = []
    for p, answer in zip(periods, answers, strict=True):
        value = answer.metrics.get(column.key)
        text = labels.fmt_rate(value, column.scale) if column.scale else labels.fmt_int(value)
        points.append(Point(p, None if value is None else float(value), text))
    svg = bar_chart(points, f"{column.label} theo kỳ — {tree.get(code).name}", period)
    return Chart(svg, points, column.label)


@dataclass(frozen=True)
class SubmissionRow:
    report_id: str
    unit: str
    unit_name: str
    tree: str  # the tree of the report's period
    kind: str
    indicator: str
    series_title: str
    revisions: tuple[int, ...]
    next: int  # the revision a correction is sent as


async def submission_rows(
    listing: SubmissionListing, org: OrgTree, catalog: Catalog, principal: Principal, after: str | None
) -> tuple[list[SubmissionRow], str | None]:
    """A page of the reports ``principal`` may list, newest first, and the cursor of the next
    page. Each report is checked again in the tree its series names: a report whose stored scope
    is wrong never shows outside its unit's subtree."""
    listed: ListingPage = await listing.page(reach_of(org, principal), after)
    rows = []
    for item in listed.items:
        # the log names a report's series with the tree of its period ("study_session@2025"; none
        # for the old tree): the report's unit is the unit of that tree
        series, _, tree_id = item.series.partition("@")
        try:
            tree = org.version_named(tree_id or LEGACY)
        except UnknownTree:
            continue
        if not principal.covers(tree, item.unit):
            continue
        kind, _, indicator = series.partition(".")
        rows.append(
            SubmissionRow(
                report_id=item.report_id,
                unit=item.unit,
                unit_name=tree.get(item.unit).name if item.unit in tree else "",
                tree=tree.tree_id,
                kind=kind,
                indicator=indicator,
                series_title=labels.series_title(catalog, series) if series in catalog.series else series,
                revisions=item.revisions,
                next=(item.revisions[-1] + 1) if item.revisions else 1,
            )
        )
    return rows, listed.next
