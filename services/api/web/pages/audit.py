"""The audit log of a unit's subtree (``/web/audit?unit=&period=``): when, who (the account's
name when known), from where, what, and the figures before and after side by side; and the same
entries as CSV (``/web/audit.csv``), on the session, as ``GET /v1/audit.csv`` answers a token.

What a person reads is what the API lets their token read (services/api/routes/audit.py): with
``read``, the entries about reports and agencies; with ``admin``, those about accounts, tokens
and logins; only within their subtree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from services.api.routes.audit import csv_lines
from services.api.web.components import WebComponents
from services.api.web.deps import CurrentSession, Web
from services.api.web.errors import PageError
from services.api.web.forms import shown_figures
from services.api.web.render import page
from services.api.web.trees import BAD_PERIOD, named
from shared.domain.audit import ACTIONS_VI, AuditEntry, AuditQuery, readable_actions, reader_scopes
from shared.domain.auth import Principal, Scope
from shared.domain.hierarchy import COUNTRY
from shared.domain.periods import VIETNAM_TZ, PeriodError, parse_period

router = APIRouter()

PAGE_SIZE = 50
CURSOR = re.compile(r"^[0-9a-f]{16}-[0-9a-f]{8}$")
REVISION = re.compile(r"^revision (\d+)$")  # ingest's detail of a report's entry, shown in Vietnamese
NO_SCOPE = "Mã truy cập này không có quyền xem nhật ký (cần quyền xem số liệu hoặc quản trị)."


@dataclass(frozen=True)
class Change:
    label: str
    before: str
    after: str
    changed: bool


@dataclass(frozen=True)
class Row:
    entry: AuditEntry
    when: str
    who: str
    action: str
    unit_name: str
    detail: str
    changes: list[Change]


def audit_query(web: WebComponents, principal: Principal, unit: str, period: str) -> AuditQuery:
    """The query of the page's filters, or the PageError that refuses them (in Vietnamese)."""
    actions = readable_actions(Scope.READ in principal.scopes, Scope.ADMIN in principal.scopes)
    if actions is not None and not actions:
        raise PageError(403, NO_SCOPE)
    if not principal.may_see(web.tree, unit):
        raise PageError(403, f"Đơn vị {unit} nằm ngoài phạm vi của mã truy cập này.")
    scopes = reader_scopes(web.tree, unit)
    if not scopes:
        raise PageError(404, f"Không có đơn vị mã {unit}.")
    if period:
        try:
            parse_period(period)
        except PeriodError:
            raise PageError(422, BAD_PERIOD) from None
        # the unit of the period's tree, when that tree holds it (codes are reused across trees)
        own = f"{web.tree.for_period(period).tree_id}:{unit}"
        scopes = (own,) if own in scopes else scopes
    return AuditQuery(scopes[0], period=period or None, actions=actions, also=scopes[1:])


def changes(web: WebComponents, entry: AuditEntry) -> list[Change]:
    """The figures (of a report) or fields (of an account, a token, an agency) before and after,
    one row each, in the order of the report form."""
    if entry.action.value.startswith("report."):
        before = {name: (label, value) for name, label, value in shown_figures(web.catalog, entry.before)}
        after = {name: (label, value) for name, label, value in shown_figures(web.catalog, entry.after)}
    else:
        before = {k: (k, _text(v)) for k, v in (entry.before or {}).items()}
        after = {k: (k, _text(v)) for k, v in (entry.after or {}).items()}
    rows = []
    for name in [*after, *(n for n in before if n not in after)]:
        label = (after.get(name) or before[name])[0]
        old, new = before.get(name, (label, ""))[1], after.get(name, (label, ""))[1]
        rows.append(Change(label, old, new, entry.before is not None and old != new))
    return rows


def _text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


async def rows_of(web: WebComponents, entries: list[AuditEntry]) -> list[Row]:
    names: dict[str, str] = {}
    for actor in {e.actor for e in entries if not e.actor.startswith("token:")}:
        account = await web.accounts.get(actor)
        names[actor] = f"{account.display_name} ({actor})" if account is not None else actor
    out = []
    for e in entries:
        unit = named(web.tree, e.unit)
        out.append(
            Row(
                entry=e,
                when=datetime.fromtimestamp(e.at, UTC).astimezone(VIETNAM_TZ).strftime("%d/%m/%Y %H:%M:%S"),
                who=names.get(e.actor, f"Mã truy cập {e.actor.removeprefix('token:')}"),
                action=ACTIONS_VI.get(e.action, e.action.value),
                unit_name=unit.name if unit is not None else e.unit,
                detail=REVISION.sub(r"bản \1", e.detail or ""),
                changes=changes(web, e),
            )
        )
    return out


@router.get("/audit")
async def audit_page(
    request: Request, web: Web, s: CurrentSession, unit: str = "", period: str = "", after: str = ""
) -> Response:
    code = unit.strip() or s.principal.unit
    query = audit_query(web, s.principal, code, period.strip())
    if after and not CURSOR.match(after):
        raise PageError(422, "Địa chỉ trang không hợp lệ (after).")
    found = await web.api.audit.page(query, after or None, PAGE_SIZE)
    where = named(web.tree, code)
    return page(
        request,
        web,
        "audit.html",
        s,
        unit=code,
        unit_name=where.name if where is not None else ("Toàn quốc" if code == COUNTRY else code),
        period=query.period or "",
        rows=await rows_of(web, found.items),
        next_after=found.next,
        paged=bool(after),
    )


@router.get("/audit.csv")
async def audit_csv(web: Web, s: CurrentSession, unit: str = "", period: str = "") -> StreamingResponse:
    code = unit.strip() or s.principal.unit
    query = audit_query(web, s.principal, code, period.strip())
    name = f"nhat-ky-{code}{'-' + query.period if query.period else ''}.csv"
    return StreamingResponse(
        csv_lines(web.api.audit, query),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
