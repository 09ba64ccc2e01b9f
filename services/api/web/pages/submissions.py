"""The reports sent by the token's unit and the units under it, a page at a time, newest first,
and one report as it was sent (``/web/submissions/view``): each revision's figures, read-only."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.api.web import labels
from services.api.web.access import may_list_submissions
from services.api.web.deps import CurrentSession, Web
from services.api.web.errors import PageError
from services.api.web.forms import shown_figures
from services.api.web.listing import reach_of
from services.api.web.render import page
from services.api.web.views import submission_rows
from shared.domain.auth import Scope
from shared.domain.hierarchy import LEGACY, UnknownTree
from shared.domain.paging import BadCursor

router = APIRouter()


@router.get("/submissions")
async def submissions(request: Request, web: Web, s: CurrentSession, after: str | None = None) -> Response:
    """``after``: the cursor the previous page linked to."""
    if not may_list_submissions(s.principal):
        raise PageError(403, "Mã truy cập này không có quyền xem báo cáo đã gửi.")
    try:
        rows, next_after = await submission_rows(web.submissions, web.tree, web.catalog, s.principal, after)
    except BadCursor as exc:
        raise PageError(422, f"Địa chỉ trang không hợp lệ (after): {exc}") from None
    return page(
        request,
        web,
        "submissions.html",
        s,
        rows=rows,
        can_submit=Scope.SUBMIT in s.principal.scopes,
        next_after=next_after,
        paged=after is not None,
    )


NO_REPORT = "Không có báo cáo này trong phạm vi của mã truy cập."


@router.get("/submissions/view")
async def submission_view(
    request: Request, web: Web, s: CurrentSession, unit: str = "", report_id: str = "", revision: str = ""
) -> Response:
    """One report: its revisions, and the figures of ``revision`` (default the latest kept). A
    report the person may not list is answered as one that does not exist (404)."""
    if not may_list_submissions(s.principal):
        raise PageError(403, "Mã truy cập này không có quyền xem báo cáo đã gửi.")
    stored = await web.submissions.report(unit.strip(), report_id.strip()) if unit and report_id else None
    if stored is None or not stored.within(reach_of(web.tree, s.principal)):
        raise PageError(404, NO_REPORT)
    series, _, tree_id = stored.series.partition("@")
    try:
        tree = web.tree.version_named(tree_id or LEGACY)
    except UnknownTree:
        raise PageError(404, NO_REPORT) from None
    if not s.principal.covers(tree, stored.unit):  # a stored scope that is wrong shows nothing
        raise PageError(404, NO_REPORT)
    shown = max(stored.bodies, default=None)
    if revision.strip():
        if not revision.strip().isdigit() or int(revision) not in stored.revisions:
            raise PageError(422, f"Bản số (revision) phải là một trong các bản đã gửi: {stored.revisions}.")
        shown = int(revision)
    body = stored.bodies.get(shown) if shown is not None else None
    kind, _, indicator = series.partition(".")
    return page(
        request,
        web,
        "submission.html",
        s,
        stored=stored,
        unit_name=tree.get(stored.unit).name if stored.unit in tree else stored.unit,
        tree_id=tree.tree_id,
        series_title=labels.series_title(web.catalog, series) if series in web.catalog.series else series,
        kind=kind,
        indicator=indicator,
        shown=shown,
        sent=body,
        figures=shown_figures(web.catalog, body),
        can_submit=Scope.SUBMIT in s.principal.scopes,
        next_revision=max(stored.revisions, default=0) + 1,
    )
