"""The targets as the read API shows them (shared/domain/targets.py): one target as set
(``TargetOut``), and totals and drill-downs with each unit's targets, rolled up, and the
achievement against them (``TargetedTotalsOut``, ``TargetedChildrenTotalsOut``)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

from pydantic import BaseModel, Field
from pydantic_core import from_json, to_json

from services.api.approval_views import ApprovedChildrenTotalsOut, ApprovedTotalsOut
from services.api.listings import Listings
from shared.domain.catalog import Catalog
from shared.domain.rollup import round_rate
from shared.domain.targets import (
    RolledTarget,
    Target,
    TargetError,
    achievement,
    by_child,
    decimal_out,
    rolled_up,
    target_metric,
)

# the targets of a subtree and period, kept a few seconds for the read path
TargetListings = Listings[Target]


class TargetOut(BaseModel):
    unit: str
    metric: str = Field(description="<series>.<field> or <series>.<rate>")
    period: str
    low: int | float = Field(description="a field's target is a whole number; a rate's is in the rate's unit")
    high: int | float = Field(description="equal to low for a single number")
    text: str = Field(description="as the pages write it: 120, 3–4, 9,96")
    set_by: str = Field(description="an account's username, or token:<id> for a machine token")
    at: str = Field(description="when, ISO 8601 in UTC")


def target_out(target: Target) -> TargetOut:
    return TargetOut(
        unit=target.unit,
        metric=target.metric,
        period=target.period,
        low=decimal_out(target.low),
        high=decimal_out(target.high),
        text=target.text,
        set_by=target.set_by,
        at=datetime.fromtimestamp(target.at, UTC).isoformat(),
    )


class UnitTargetOut(BaseModel):
    low: int | float
    high: int | float = Field(description="equal to low for a single number")
    actual: int | float | None = Field(description="the metric's value in this answer; null when nothing is reported")
    achievement: float | None = Field(description="actual / low, 4 decimals; null without an actual or when low is 0")
    met: bool | None = Field(description="actual >= low")
    above: bool | None = Field(description="actual > high")
    source: str = Field(description="own: set at this unit; summed: the sum of the targets set under it")
    units: int = Field(description="how many units' own targets it holds: fewer than expected is a partial sum")


TARGETS_FIELD = Field(description="per metric with a target for the unit and period, rolled up; {} when none")


class TargetedTotalsOut(ApprovedTotalsOut):
    targets: dict[str, UnitTargetOut] = TARGETS_FIELD


class TargetedChildrenTotalsOut(ApprovedChildrenTotalsOut):
    children: list[TargetedTotalsOut]  # type: ignore[assignment]


def actual_of(row: Mapping[str, Any], catalog: Catalog, metric: str) -> Fraction | None:
    """The exact value of ``metric`` in a totals row (UnitTotalsOut's JSON): a field's sum (0 when
    the series has reports but the field summed to nothing), a rate's numerator × scale /
    denominator; None when nothing was reported."""
    spec = target_metric(catalog, metric)
    if spec.is_rate:
        rate = row.get("rates", {}).get(metric)
        if not rate or not rate["denominator"]:
            return None
        return Fraction(int(rate["numerator"]) * int(rate["scale"]), int(rate["denominator"]))
    value = row.get("metrics", {}).get(metric)
    if value is not None:
        return Fraction(int(value))
    reported = (row.get("completeness", {}).get(spec.series) or {}).get("units_reported", 0)
    return Fraction(0) if reported else None


def _shown(actual: Fraction | None) -> int | float | None:
    if actual is None:
        return None
    if actual.denominator == 1:
        return actual.numerator
    return round_rate(actual.numerator, actual.denominator)


def unit_targets(row: Mapping[str, Any], catalog: Catalog, targets: list[Target], period: str) -> dict[str, Any]:
    """The ``targets`` field of one totals row: its unit's rolled-up targets (from ``targets``,
    a listing of a subtree holding the unit) with the achievement of the row's figures."""
    shown: dict[str, Any] = {}
    for metric, rolled in rolled_up(targets, row["unit"]["code"], catalog, period).items():
        try:
            actual = actual_of(row, catalog, metric)
        except TargetError:  # a metric the catalog no longer has
            continue
        shown[metric] = _target_row(rolled, actual)
    return shown


def _target_row(rolled: RolledTarget, actual: Fraction | None) -> dict[str, Any]:
    got = achievement(rolled, actual)
    return {
        "low": decimal_out(rolled.low),
        "high": decimal_out(rolled.high),
        "actual": _shown(actual),
        "achievement": got.achievement,
        "met": got.met,
        "above": got.above,
        "source": rolled.source,
        "units": rolled.units,
    }


async def totals_with_targets(body: bytes, listings: TargetListings, catalog: Catalog, code: str, period: str) -> bytes:
    """A unit's totals answer (JSON of ``ApprovedTotalsOut``) with its targets of the period,
    rolled up from one listing of its subtree (``TargetedTotalsOut``)."""
    targets = await listings.listing(code, period)
    if not targets:  # the common case: the answer is one JSON object, the field goes before its brace
        return body[: body.rindex(b"}")] + b',"targets":{}}'
    answer = from_json(body)
    answer["targets"] = unit_targets(answer, catalog, targets, period)
    return to_json(answer)


async def children_with_targets(
    body: bytes, listings: TargetListings, catalog: Catalog, code: str, period: str
) -> bytes:
    """A drill-down answer (JSON of ``ApprovedChildrenTotalsOut``) with each child's targets:
    one listing of ``code``'s subtree for all children."""
    groups = by_child(await listings.listing(code, period), code)
    answer = from_json(body)
    for child in answer["children"]:
        child["targets"] = unit_targets(child, catalog, groups.get(child["unit"]["code"], []), period)
    return to_json(answer)
