"""The approvals as the read API shows them: one approval (``ApprovalOut``), and completeness
with the approved units counted (``MissingApprovedOut``)."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, Field

from services.api.views import MissingOut
from shared.adapters.approvals import ApprovalStore
from shared.domain.approvals import Approval
from shared.domain.catalog import Catalog
from shared.domain.hierarchy import OrgTree
from shared.domain.periods import parse_period


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
