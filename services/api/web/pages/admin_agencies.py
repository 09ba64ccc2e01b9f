"""/web/admin/agencies: the agencies under the admin's unit; register one, rename one, close
one from a date or reopen it (services/api/agencies.py decides what is allowed, as for the
API's /v1/admin/agencies routes). Every change is written to the audit log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from services.api.agencies import (
    AgencyChange,
    AgencyConflict,
    AgencyIn,
    RegistryUnavailable,
    TooManyAgencies,
    audited_changes,
    state_of,
)
from services.api.web.audit import record
from services.api.web.components import WebComponents
from services.api.web.deps import CurrentSession, Web
from services.api.web.errors import PageError
from services.api.web.pages.admin_access import admin_of, check_covers, form_of, holder
from services.api.web.render import page
from services.api.web.session import Session
from shared.domain.audit import Action
from shared.domain.hierarchy import COUNTRY, Level, OrgTree

router = APIRouter()

UNAVAILABLE = "Sổ đăng ký cơ quan chưa sẵn sàng; hãy thử lại sau ít giây."
FIELDS_VI = {"code": "Mã cơ quan", "name": "Tên", "parent": "Đơn vị cấp trên", "closed_from": "Đóng từ ngày"}


@dataclass(frozen=True)
class AgencyRow:
    code: str
    name: str
    parent: str
    parent_name: str
    closed_from: date | None


def agency_rows(org: OrgTree, unit: str) -> list[AgencyRow]:
    """The agencies under ``unit`` (``VN``: all) in any version of the tree, by code."""
    rows: dict[str, AgencyRow] = {}
    for tree in org.versions:
        if unit != COUNTRY and unit not in tree:
            continue
        tops = [p.code for p in tree.provinces()] if unit == COUNTRY else [unit]
        for top in tops:
            for u in tree.subtree(top):
                if u.level == Level.AGENCY and u.code not in rows and u.parent is not None:
                    parent = tree.get(u.parent)
                    rows[u.code] = AgencyRow(u.code, u.name, parent.code, parent.name, tree.closed_from(u.code))
    return [rows[c] for c in sorted(rows)]


def field_errors(exc: ValidationError) -> dict[str, str]:
    errors: dict[str, str] = {}
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else "_form"
        errors.setdefault(name, f"{FIELDS_VI.get(name, name)} ({name}): {error['msg']}")
    return errors


def render(request: Request, web: WebComponents, s: Session, status: int = 200, **context: Any) -> Response:
    context.setdefault("errors", {})
    context.setdefault("values", {})
    return page(
        request,
        web,
        "admin_agencies.html",
        s,
        status,
        agencies=agency_rows(web.tree, s.principal.unit),
        fields=FIELDS_VI,
        **context,
    )


@router.get("/admin/agencies")
async def agencies(request: Request, web: Web, s: CurrentSession, saved: str | None = None) -> Response:
    admin_of(s.principal)
    return render(request, web, s, saved=saved)


@router.post("/admin/agencies")
async def register(request: Request, web: Web, s: CurrentSession) -> Response:
    principal = admin_of(s.principal)
    values, _ = await form_of(request)
    try:
        agency = AgencyIn.model_validate({k: values.get(k, "") for k in ("code", "name", "parent")})
    except ValidationError as exc:
        return render(request, web, s, 422, errors=field_errors(exc), values=values)
    if not web.tree.known_anywhere(agency.parent):
        errors = {"parent": f"{FIELDS_VI['parent']} (parent): không có đơn vị {agency.parent!r}"}
        return render(request, web, s, 422, errors=errors, values=values)
    check_covers(web.tree, principal, agency.parent)
    tree = holder(web.tree, agency.parent)
    try:
        created = await web.api.agencies.register(agency, tree, principal)
    except (TooManyAgencies, AgencyConflict) as exc:
        return render(request, web, s, 409, errors={"code": f"Mã cơ quan (code): {exc}"}, values=values)
    except RegistryUnavailable:
        raise PageError(503, UNAVAILABLE) from None
    if created:
        after = {"name": agency.name, "parent": agency.parent}
        await record(web, request, principal, Action.AGENCY_REGISTER, agency.code, subject=agency.code, after=after)
    return RedirectResponse(f"/web/admin/agencies?saved={agency.code}", status_code=303)


@router.post("/admin/agencies/{code}")
async def change(request: Request, web: Web, s: CurrentSession, code: str) -> Response:
    """The form's ``do``: rename (with ``name``), close (with ``closed_from``) or reopen."""
    principal = admin_of(s.principal)
    tree = holder(web.tree, code)
    unit = tree.get(code)
    if unit.level != Level.AGENCY or unit.parent is None:
        raise PageError(404, f"{code} không phải là một cơ quan đã đăng ký.")
    check_covers(web.tree, principal, unit.parent)
    values, _ = await form_of(request)
    choices: dict[str, dict[str, Any]] = {
        "rename": {"name": values.get("name", "")},
        "close": {"closed_from": values.get("closed_from", "")},
        "reopen": {"closed_from": None},
    }
    wanted = choices.get(values.get("do", ""))
    if wanted is None:
        raise PageError(422, "Thao tác không hợp lệ (do): rename, close hoặc reopen.")
    try:
        asked = AgencyChange.model_validate(wanted)
    except ValidationError as exc:
        return render(request, web, s, 422, errors=field_errors(exc), values={**values, "code": code}, editing=code)
    before = state_of(tree, code)
    try:
        await web.api.agencies.change(code, asked, tree)
    except RegistryUnavailable:
        raise PageError(503, UNAVAILABLE) from None
    for action, old, new in audited_changes(before, state_of(tree, code)):
        await record(web, request, principal, action, code, subject=code, before=dict(old), after=dict(new))
    return RedirectResponse(f"/web/admin/agencies?saved={code}", status_code=303)
