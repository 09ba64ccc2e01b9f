"""The reports sent by the token's unit and the units under it, a page at a time, newest first."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.api.web.access import may_list_submissions
from services.api.web.deps import CurrentSession, Web
from services.api.web.errors import PageError
from services.api.web.render import page
from services.api.web.views import submission_rows
from shared.domain.auth import Scope
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
