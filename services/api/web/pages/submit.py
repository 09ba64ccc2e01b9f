"""The report form: drawn for a kind of report, checked here, then sent to ingest.

A correction ("Sửa" on the list of reports sent) opens the form with the report's unit and id
and ``from=latest``: the form then starts from the figures of the latest revision the
submission log kept, numbered as the next revision, for a report the person may list."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.api.web import labels
from services.api.web.access import need, own_in_tree, submit_units, unit_error
from services.api.web.components import WebComponents
from services.api.web.deps import CurrentSession, Web
from services.api.web.errors import PageError
from services.api.web.forms import body_fields, build_report, form_values
from services.api.web.listing import reach_of
from services.api.web.render import page
from services.api.web.session import Session
from services.api.web.trees import form_tree
from shared.domain.auth import Scope
from shared.domain.hierarchy import COUNTRY

router = APIRouter()
NO_KIND = "Không có loại báo cáo này."


def form_page(
    request: Request,
    web: WebComponents,
    s: Session,
    kind: str,
    values: dict[str, Any],
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    tree = form_tree(web.tree, values)
    return page(
        request,
        web,
        "submit.html",
        s,
        status,
        kind=kind,
        kind_title=labels.kind_title(web.catalog, kind),
        fields=body_fields(web.catalog, kind),
        values=values,
        units=submit_units(s.principal, tree, str(values.get("unit") or "").strip()),
        tree_id=tree.tree_id,
        own_in_tree=own_in_tree(s.principal, tree),
        labels_of={**labels.FIELDS, "unit": "Đơn vị báo cáo"},
        errors=errors or {},
    )


async def latest_values(web: WebComponents, s: Session, unit: str, report_id: str) -> dict[str, str]:
    """The form's values for the next revision of ``report_id`` of ``unit``: the latest kept
    revision's figures, and its number plus one. A 404 for a report the person may not list,
    as for one that does not exist; nothing but the number for a report whose figures were
    sent before the log kept them."""
    stored = await web.submissions.report(unit.strip(), report_id.strip()) if unit and report_id else None
    if stored is None or not stored.within(reach_of(web.tree, s.principal)):
        raise PageError(404, "Không có báo cáo này trong phạm vi của mã truy cập.")
    values = {"revision": str(max(stored.revisions, default=0) + 1)}
    if stored.bodies:
        values = form_values(stored.bodies[max(stored.bodies)]) | values
    return values


def stamped(text: str | None) -> datetime:
    """The time the form was drawn, as its hidden field carries it; now when that is not a time."""
    try:
        when = datetime.fromisoformat(text or "")
    except ValueError:
        return datetime.now(UTC)
    return when if when.tzinfo is not None else datetime.now(UTC)


@router.get("/submit")
async def submit_form(request: Request, web: Web, s: CurrentSession, kind: str = "study_session") -> Response:
    need(s.principal, Scope.SUBMIT)
    # "study_session@2025": a series as the submission log names it, the tree after the "@"
    kind, _, tree_id = kind.partition("@")
    if kind not in web.catalog.kinds:
        raise PageError(404, NO_KIND)
    values = {k: v for k, v in request.query_params.items() if k != "kind"}
    if tree_id:
        values.setdefault("tree", tree_id)
    if values.pop("from", "") == "latest":
        values |= await latest_values(web, s, values.get("unit", ""), values.get("report_id", ""))
    values.setdefault("unit", s.principal.unit if s.principal.unit != COUNTRY else "")
    # stamped once, when the form is drawn: the same form sent twice (a retry) is then the
    # same report, which ingest answers as a duplicate
    values["submitted_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    return form_page(request, web, s, kind, values)


@router.post("/submit")
async def submit(request: Request, web: Web, s: CurrentSession) -> Response:
    need(s.principal, Scope.SUBMIT)
    form = await request.form()
    values = {k: str(v) for k, v in form.items() if isinstance(v, str)}
    kind = values.pop("kind", "")
    if kind not in web.catalog.kinds:
        raise PageError(404, NO_KIND)
    unit = values.get("unit", "").strip()
    refused = unit_error(web.tree, s.principal, unit, values.get("period", "").strip()) if unit else None
    if refused:
        return form_page(request, web, s, kind, values, {"unit": refused}, 422)
    checked = build_report(web.catalog, kind, values, stamped(values.get("submitted_at")))
    if checked.report is None:
        return form_page(request, web, s, kind, values, checked.errors, 422)
    sent = await web.ingest.send_report(s.token, checked.report)
    if sent.outcome is None:
        return form_page(request, web, s, kind, values, sent.errors, sent.status)
    kind_title = labels.kind_title(web.catalog, kind)
    return page(request, web, "submitted.html", s, report=checked.report, outcome=sent.outcome, kind_title=kind_title)
