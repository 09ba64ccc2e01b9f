"""Reports from a file: the page, blank templates to fill in, checking a file's rows (nothing
sent), then sending the checked reports to ingest in one batch."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import UploadFile

from services.api.web.access import need
from services.api.web.deps import CurrentSession, Web, current_session
from services.api.web.errors import PageError
from services.api.web.forms import body_fields
from services.api.web.render import page
from services.api.web.sheets import SheetError, template_csv, template_xlsx
from services.api.web.uploads import UploadsBusy, row_answers
from shared.domain.auth import Scope

router = APIRouter()
MAX_UPLOAD_BYTES = 4 * 1024 * 1024
MAX_BATCH = 1000  # reports per batch, as ingest's batch route takes them
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def refused(detail: str, status: int, **extra: Any) -> JSONResponse:
    return JSONResponse({"detail": detail, **extra}, status_code=status)


def no_submit() -> JSONResponse:
    return refused("Mã truy cập này không có quyền gửi báo cáo.", 403)


def too_large() -> JSONResponse:
    return refused("Tệp lớn hơn 4 MB.", 413)


@router.get("/upload")
async def upload_page(request: Request, web: Web, s: CurrentSession, kind: str = "study_session") -> Response:
    need(s.principal, Scope.SUBMIT)
    if kind not in web.catalog.kinds:
        raise PageError(404, "Không có loại báo cáo này.")
    return page(request, web, "upload.html", s, kind=kind, columns=body_fields(web.catalog, kind))


@router.get("/templates/{kind}.{fmt}", dependencies=[Depends(current_session)])
async def template(web: Web, kind: str, fmt: str) -> Response:
    if kind not in web.catalog.kinds or fmt not in ("csv", "xlsx"):
        raise PageError(404, "Không có mẫu này.")
    headers = {"Content-Disposition": f'attachment; filename="mau-{kind}.{fmt}"'}
    if fmt == "csv":
        return Response(template_csv(web.catalog, kind), media_type="text/csv; charset=utf-8", headers=headers)
    return Response(template_xlsx(web.catalog, kind), media_type=XLSX, headers=headers)


@router.post("/upload/check")
async def upload_check(request: Request, web: Web, s: CurrentSession) -> Response:
    """Reads the file and checks every row; sends nothing."""
    if Scope.SUBMIT not in s.principal.scopes:
        return no_submit()
    length = request.headers.get("content-length", "")
    if not length.isdigit() or int(length) > MAX_UPLOAD_BYTES + 64 * 1024:  # decided before reading the body
        return too_large()
    async with request.form() as form:  # closes the spooled file
        kind = str(form.get("kind") or "")
        upload = form.get("file")
        if kind not in web.catalog.kinds or not isinstance(upload, UploadFile):
            return refused("Chọn loại báo cáo và tệp.", 422)
        filename = upload.filename or ""
        data = await upload.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        return too_large()
    now = datetime.now(UTC)  # one stamp for the file: sending its checked rows again is a duplicate
    try:
        rows = await web.config.uploads.check(kind, filename, data, web.config.upload_limits, now)
    except SheetError as exc:  # past a limit: 413 and which one; a file that is not a table: 422
        if exc.limit:
            return refused(str(exc), 413, limit=exc.limit)
        return refused(str(exc), 422)
    except UploadsBusy:
        busy = "Máy chủ đang đọc nhiều tệp khác; hãy thử lại sau ít giây."
        return JSONResponse({"detail": busy}, status_code=503, headers={"Retry-After": "5"})
    return JSONResponse({"rows": row_answers(rows, web.tree, s.principal)})


@router.post("/upload/send")
async def upload_send(request: Request, web: Web, s: CurrentSession) -> Response:
    """Sends checked reports (at most 1,000) to ingest in one batch; one result per report."""
    if Scope.SUBMIT not in s.principal.scopes:
        return no_submit()
    try:
        reports = (await request.json())["reports"]
    except RecursionError:
        return refused("JSON không hợp lệ: lồng quá sâu.", 400)
    except ValueError as exc:
        return refused(f"JSON không hợp lệ: {exc}", 400)
    except (KeyError, TypeError):
        reports = None
    if not isinstance(reports, list) or not 0 < len(reports) <= MAX_BATCH:
        return refused("Yêu cầu không hợp lệ.", 400)
    sent = await web.ingest.send_batch(s.token, reports)
    return JSONResponse(sent.body, status_code=sent.status)
