""" "Not reported, deadline in N days": for a unit's subtree, every (series, period) whose deadline
falls within the next days (shared/domain/reminders.py), with who has not reported it yet.

Each period is read in its own tree (a code names a unit only within its tree: district 386 exists
before July 2025, province 38 in both), so a listing may hold periods of two trees around a tree
change; periods of a tree that does not hold the unit are left out. The API route and the web page
both answer from here, after checking the token against every tree in ``trees_of``.
"""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field

from services.api.repository import TotalsReader
from services.api.views import CompletenessOut, UnitRef, missing_units
from shared.domain.catalog import Catalog
from shared.domain.hierarchy import OrgTree
from shared.domain.reminders import Due, due


class DueOut(BaseModel):
    series: str
    title: str
    period: str
    tree: str = Field(description="legacy (before 2025-07-01) or 2025: the tree the period's units are in")
    deadline: datetime = Field(description="the last instant a report counts as on time, Vietnam time")
    days_left: int = Field(description="whole days from `on` to the deadline's day (0: `on` is the last day)")
    reminder_step: int | None = Field(
        description="the catalog's reminders.days_before step due on `on` (null: no reminder due yet)"
    )
    completeness: CompletenessOut
    not_reported: list[UnitRef]


class RemindersDueOut(BaseModel):
    unit: str
    on: date = Field(description="the day asked about, in Vietnam")
    within_days: int
    due: list[DueOut] = Field(description="earliest deadline first")


def due_on(catalog: Catalog, on: date, within_days: int) -> list[Due]:
    """Every series' periods due on ``on`` within ``within_days``, earliest deadline first
    (ValueError for a ``within_days`` out of range)."""
    items = [d for spec in catalog.series.values() for d in due(spec, on, within_days)]
    return sorted(items, key=lambda d: (d.deadline, d.series))


def trees_of(trees: OrgTree, code: str, items: list[Due], on: date) -> list[OrgTree]:
    """The trees the token is checked against for ``code``: those of the due periods that hold
    it; without any, every tree that holds it (nothing of it is due); without any, the tree of
    ``on`` (where an unknown code is answered 403 or 404)."""
    found: list[OrgTree] = []
    for item in items:
        tree = trees.for_period(item.period)
        if tree.has(code) and tree not in found:
            found.append(tree)
    return found or [t for t in trees.versions if t.has(code)] or [trees.at(on)]


async def reminders_due(
    reader: TotalsReader, catalog: Catalog, trees: OrgTree, code: str, on: date, within_days: int, items: list[Due]
) -> RemindersDueOut:
    """The listing of ``items`` (from :func:`due_on`) for ``code``'s subtree."""
    out = []
    for item in items:
        tree = trees.for_period(item.period)
        if not tree.has(code):
            continue
        missing = await missing_units(reader, catalog, tree, code, item.series, item.period)
        out.append(
            DueOut(
                series=item.series,
                title=catalog.series[item.series].title,
                period=item.period,
                tree=tree.tree_id,
                deadline=item.deadline,
                days_left=item.days_left,
                reminder_step=item.step,
                completeness=missing.completeness,
                not_reported=missing.not_reported,
            )
        )
    return RemindersDueOut(unit=code, on=on, within_days=within_days, due=out)
