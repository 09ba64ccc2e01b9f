"""The audit log, read: ``GET /v1/audit`` (JSON, a page at a time, newest first) and
``GET /v1/audit.csv`` (every entry the same filters select, streamed, for a spreadsheet).

Who reads what (shared/domain/audit.py): the ``read`` scope lists the entries about reports and
agencies, ``admin`` those about accounts, tokens and logins, each within the token's subtree; a
unit outside it is a 403, as everywhere in the API. A unit is named in every tree that holds it
(the listing of province 38 holds its entries of both trees; an old district's, the old tree's),
unless ``tree`` names one: codes are reused across trees, so ``unit=14923`` is Thị trấn Cành Nàng
in the old tree and Xã Bá Thước in the 2025 tree, and ``tree`` says which.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field

from services.api.deps import CODE_OR_COUNTRY_PATTERN, Components, CurrentPrincipal, query_error, valid_period
from shared.adapters.audit import AuditLog
from shared.domain.audit import Action, AuditEntry, AuditQuery, readable_actions, reader_scopes
from shared.domain.auth import Principal, Scope
from shared.domain.hierarchy import COUNTRY, OrgTree
from shared.domain.periods import VIETNAM_TZ
from shared.http.base import error

router = APIRouter()

CURSOR = re.compile(r"^[0-9a-f]{16}-[0-9a-f]{8}$")  # an entry id (shared/adapters/audit.py)
CSV_PAGE = 500  # entries read per round trip while streaming the CSV
CSV_COLUMNS = ["at", "actor", "action", "unit", "period", "subject", "origin", "detail", "before", "after", "id"]


class AuditEntryOut(BaseModel):
    id: str
    at: str = Field(description="when, ISO 8601 in Vietnam's time (+07:00)")
    actor: str = Field(description="an account's username, or token:<id> for a machine token")
    action: str
    unit: str
    origin: str | None = None
    period: str | None = None
    subject: str | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    detail: str | None = None


class AuditPageOut(BaseModel):
    items: list[AuditEntryOut]
    next: str | None = Field(description="pass as `after` for the next (older) page; null on the last")


def when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).astimezone(VIETNAM_TZ).isoformat(timespec="seconds")


def entry_out(entry: AuditEntry) -> AuditEntryOut:
    return AuditEntryOut(
        id=entry.entry_id,
        at=when(entry.at),
        actor=entry.actor,
        action=entry.action.value,
        unit=entry.unit,
        origin=entry.origin,
        period=entry.period,
        subject=entry.subject,
        before=entry.before,
        after=entry.after,
        detail=entry.detail,
    )


def audit_query(
    org: OrgTree,
    principal: Principal,
    unit: str | None,
    period: str | None,
    action: str | None,
    tree: str | None = None,
) -> AuditQuery | None:
    """The query of a reader's filters: 422 naming a bad one, 403 for a unit outside the token's
    subtree or an action it may not read; None when nothing can match (a unit in no tree)."""
    can_read, can_admin = Scope.READ in principal.scopes, Scope.ADMIN in principal.scopes
    if not (can_read or can_admin):
        raise HTTPException(403, "this token lacks the 'read' scope")
    wanted: Action | None = None
    if action is not None:
        try:
            wanted = Action(action)
        except ValueError:
            raise query_error(
                "action", f"not an action; one of: {', '.join(a.value for a in Action)}", "action"
            ) from None
    actions = readable_actions(can_read, can_admin, wanted)
    if actions is not None and not actions:
        raise HTTPException(403, f"this token may not read {action} entries: they need the 'admin' scope")
    code = unit or principal.unit
    if not principal.may_see(org, code):
        raise HTTPException(403, f"unit {code} is outside this token's unit {principal.unit}")
    if period is not None:
        valid_period(period)
    scopes = reader_scopes(org, code)
    if tree is not None:
        if tree not in {t.tree_id for t in org.versions}:
            known = ", ".join(t.tree_id for t in org.versions)
            raise query_error("tree", f"unknown tree {tree!r}; the trees are {known}", "tree")
        scopes = tuple(s for s in scopes if s.partition(":")[0] == tree) if code != COUNTRY else scopes
    if not scopes:
        if code == COUNTRY or any(code in t for t in org.versions):
            return None
        raise HTTPException(404, detail=f"unit {code} is in no tree")
    return AuditQuery(scopes[0], period=period, actions=actions, also=scopes[1:])


def checked_cursor(after: str | None) -> str | None:
    if after is not None and not CURSOR.match(after):
        raise query_error("after", "not a cursor this API gave: pass the `next` of the page before", "cursor")
    return after


Unit = Annotated[
    str | None, Query(pattern=CODE_OR_COUNTRY_PATTERN, description="the unit (and its subtree); default the token's")
]
PeriodFilter = Annotated[str | None, Query(max_length=32, description="only entries about reports of this period")]
ActionFilter = Annotated[str | None, Query(max_length=40, description="only this action, e.g. report.revise")]
TreeFilter = Annotated[
    str | None, Query(max_length=16, description="legacy or 2025: the unit in this tree only (default: every tree)")
]


@router.get(
    "/v1/audit",
    response_model=AuditPageOut,
    summary="Who did what, newest first: submissions, revisions, agency, account and token changes",
    responses={403: error("A unit outside the token's subtree, or entries that need the 'admin' scope")},
)
async def read_audit(
    components: Components,
    principal: CurrentPrincipal,
    unit: Unit = None,
    period: PeriodFilter = None,
    action: ActionFilter = None,
    tree: TreeFilter = None,
    after: Annotated[str | None, Query(max_length=40, description="the `next` of the page before")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Response:
    query = audit_query(components.tree, principal, unit, period, action, tree)
    cursor = checked_cursor(after)
    if query is None:
        return Response(AuditPageOut(items=[], next=None).model_dump_json(), media_type="application/json")
    page = await components.audit.page(query, cursor, limit)
    out = AuditPageOut(items=[entry_out(e) for e in page.items], next=page.next)
    return Response(out.model_dump_json(), media_type="application/json")


def csv_row(entry: AuditEntry) -> list[str]:
    def figures(value: dict[str, Any] | None) -> str:
        return "" if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)

    return [
        when(entry.at),
        entry.actor,
        entry.action.value,
        entry.unit,
        entry.period or "",
        entry.subject or "",
        entry.origin or "",
        entry.detail or "",
        figures(entry.before),
        figures(entry.after),
        entry.entry_id,
    ]


async def csv_lines(log: AuditLog, query: AuditQuery | None) -> AsyncIterator[bytes]:
    """The CSV, a page of entries at a time: a byte-order mark first, so a spreadsheet reads the
    file as UTF-8 (Vietnamese names and units), then the header."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    yield codecs.BOM_UTF8 + buffer.getvalue().encode()
    after: str | None = None
    while query is not None:
        page = await log.page(query, after, CSV_PAGE)
        buffer.seek(0)
        buffer.truncate()
        writer.writerows(csv_row(e) for e in page.items)
        yield buffer.getvalue().encode()
        if page.next is None:
            return
        after = page.next


@router.get(
    "/v1/audit.csv",
    summary="The audit entries /v1/audit selects, all of them, as CSV (UTF-8 with a byte-order mark)",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/csv": {}}, "description": "one entry a row, newest first"},
        403: error("A unit outside the token's subtree, or entries that need the 'admin' scope"),
    },
)
async def audit_csv(
    components: Components,
    principal: CurrentPrincipal,
    unit: Unit = None,
    period: PeriodFilter = None,
    action: ActionFilter = None,
    tree: TreeFilter = None,
) -> StreamingResponse:
    query = audit_query(components.tree, principal, unit, period, action, tree)
    name = f"audit-{unit or principal.unit}{'-' + period if period else ''}.csv"
    return StreamingResponse(
        csv_lines(components.audit, query),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
