"""The approvals as the read API shows them: one approval (``ApprovalOut``), completeness with
the approved units counted (``MissingApprovedOut``), and totals and drill-downs with each unit's
approvals (``ApprovedTotalsOut``, ``ApprovedChildrenTotalsOut``)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from pydantic import BaseModel, Field
from pydantic_core import from_json, to_json

from services.api.listings import Listings
from services.api.views import ChildrenTotalsOut, MissingOut, UnitTotalsOut
from shared.adapters.approvals import ApprovalStore
from shared.domain.approvals import Approval
from shared.domain.catalog import Catalog
from shared.domain.hierarchy import OrgTree
from shared.domain.periods import parse_period

# the approvals of a subtree and period, kept a few seconds for the read path
ApprovalListings = Listings[Approval]


class ApprovalOut(BaseModel):
    unit: str
    series: str
    period: str
    level: str = Field(description="the approver's unit: only it or a unit above it may unapprove")
    approver: str = Field(description="an account's username, or token:<id> for a machine token")
    at: str = Field(description="when, ISO 8601 in UTC")


class MissingApprovedOut(MissingOut):
    units_approved: int = Field(description="expected units of the subtree whose figures of the period are approved")
    approved: list[ApprovalOut] = Field(
        description="the approvals of the series and period in the subtree: a unit listed here is approved"
    )


def approval_out(approval: Approval) -> ApprovalOut:
    return ApprovalOut(
        unit=approval.unit,
        series=approval.series,
        period=approval.period,
        level=approval.level,
        approver=approval.approver,
        at=datetime.fromtimestamp(approval.at, UTC).isoformat(),
    )


async def with_approvals(
    missing: MissingOut, store: ApprovalStore, catalog: Catalog, tree: OrgTree
) -> MissingApprovedOut:
    """``missing`` (completeness of a subtree) with the approvals of its series and period, and
    the number of expected units (the series' levels, open on the period's last day) approved."""
    approvals = [a for a in await store.listing(missing.unit.code, missing.period) if a.series == missing.series]
    levels = catalog.series[missing.series].expected_levels
    last_day = parse_period(missing.period).end
    expected = [
        a for a in approvals if a.unit in tree and tree.get(a.unit).level in levels and tree.open_on(a.unit, last_day)
    ]
    return MissingApprovedOut(
        **missing.model_dump(), units_approved=len(expected), approved=[approval_out(a) for a in approvals]
    )


class SeriesApprovalOut(BaseModel):
    by: str = Field(description="an account's username, or token:<id> for a machine token")
    level: str = Field(description="the approver's unit: only it or a unit above it may unapprove")
    at: str = Field(description="when, ISO 8601 in UTC")


APPROVALS_FIELD = Field(description="per series: the approval of the unit's figures of the period; {} when none")


class ApprovedTotalsOut(UnitTotalsOut):
    approvals: dict[str, SeriesApprovalOut] = APPROVALS_FIELD


class ApprovedChildrenTotalsOut(ChildrenTotalsOut):
    children: list[ApprovedTotalsOut]  # type: ignore[assignment]


def by_unit(approvals: Iterable[Approval]) -> dict[str, dict[str, dict[str, str]]]:
    """unit -> series -> the approval as a totals answer shows it (``SeriesApprovalOut``)."""
    shown: dict[str, dict[str, dict[str, str]]] = {}
    for a in approvals:
        at = datetime.fromtimestamp(a.at, UTC).isoformat()
        shown.setdefault(a.unit, {})[a.series] = {"by": a.approver, "level": a.level, "at": at}
    return shown


async def totals_with_approvals(body: bytes, store: ApprovalListings, code: str, period: str) -> bytes:
    """A unit's totals answer (JSON of ``UnitTotalsOut``, possibly from the cache) with the
    unit's approvals of the period (``ApprovedTotalsOut``). Approvals are not cached with the
    figures (an approval changes no figure, so the stream never says) but in ``store``'s
    listings, for a few seconds."""
    mine = [a for a in await store.listing(code, period) if a.unit == code]
    # the answer is one JSON object: the field goes in before its closing brace
    return body[: body.rindex(b"}")] + b',"approvals":' + to_json(by_unit(mine).get(code, {})) + b"}"


async def children_with_approvals(body: bytes, store: ApprovalListings, code: str, period: str) -> bytes:
    """A drill-down answer (JSON of ``ChildrenTotalsOut``) with each child's approvals of the
    period (``ApprovedChildrenTotalsOut``): one listing of ``code``'s subtree for all children."""
    shown = by_unit(await store.listing(code, period))
    answer = from_json(body)
    for child in answer["children"]:
        child["approvals"] = shown.get(child["unit"]["code"], {})
    return to_json(answer)
