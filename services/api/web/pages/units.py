"""A unit's pages: the country's list of provinces, a unit's totals with a chart, its export, who
has not reported, and the live updates of its page."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from services.api.views import missing_units
from services.api.web import labels
from services.api.web.access import allow, crumbs, may_stream
from services.api.web.deps import CurrentSession, Web
from services.api.web.errors import PageError
from services.api.web.live import SessionFull
from services.api.web.render import page
from services.api.web.session import ReleasingStream
from services.api.web.sheets import table_csv, table_xlsx
from services.api.web.trees import checked_period, checked_series, page_period
from services.api.web.views import chosen_metric, unit_chart, unit_table
from shared.domain.auth import Scope
from shared.domain.hierarchy import COUNTRY

router = APIRouter()
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
TOO_MANY_STREAMS = (
    "Phiên này đã mở {held} luồng cập nhật trực tiếp, nhiều nhất được phép; hãy đóng bớt một trang. / This "
    "session already holds the most live-update streams allowed (BAOCAO_API_WEB_MAX_STREAMS_PER_SESSION, "
    "BAOCAO_API_MAX_STREAMS_PER_TOKEN); close one first."
)


@router.get("/")
async def home(request: Request, web: Web, s: CurrentSession, period: str | None = None) -> Response:
    if s.principal.unit != COUNTRY:
        return RedirectResponse(f"/web/units/{s.principal.unit}", status_code=303)
    # the provinces of the period's tree when one is chosen, else of the tree in force today
    chosen = checked_period(period) if period else None
    tree = web.tree.for_period(chosen) if chosen else web.tree.in_force()
    provinces = sorted(tree.provinces(), key=lambda u: u.code)
    return page(request, web, "country.html", s, provinces=provinces, period=chosen)


@router.get("/units/{code}")
async def unit_page(
    request: Request,
    web: Web,
    s: CurrentSession,
    code: str,
    period: str | None = None,
    series: str | None = None,
    metric: str | None = None,
) -> Response:
    period, series = page_period(web.tree, code, period), checked_series(web.catalog, series)
    tree = web.tree.holding(code, period)  # the tree of the period (codes are reused)
    allow(s.principal, tree, Scope.READ, code)
    table = await unit_table(web.api.reader, web.catalog, tree, code, period, series)
    metric = chosen_metric(table, metric)
    chart = None
    if metric is not None:
        column = next(col for col in table.columns if col.key == metric)
        chart = await unit_chart(web.api.reader, web.catalog, tree, code, period, column)
    template = "unit_live.html" if request.headers.get("x-partial") == "live" else "unit.html"
    return page(
        request,
        web,
        template,
        s,
        unit=tree.get(code),
        crumbs=crumbs(s.principal, tree, code),
        period=period,
        series=series,
        metric=metric,
        table=table,
        chart=chart,
        live=Scope.STREAM in s.principal.scopes,
    )


@router.get("/units/{code}/export.{fmt}")
async def export(
    web: Web, s: CurrentSession, code: str, fmt: str, period: str | None = None, series: str | None = None
) -> Response:
    period, series = page_period(web.tree, code, period), checked_series(web.catalog, series)
    tree = web.tree.holding(code, period)
    allow(s.principal, tree, Scope.READ, code)
    if fmt not in ("csv", "xlsx"):
        raise PageError(404, "Chỉ xuất được CSV hoặc Excel (.xlsx).")
    table = await unit_table(web.api.reader, web.catalog, tree, code, period, series)
    name = f"baocao-{code}-{series}-{period}.{fmt}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}
    if fmt == "csv":
        return Response(table_csv(table), media_type="text/csv; charset=utf-8", headers=headers)
    return Response(table_xlsx(table), media_type=XLSX, headers=headers)


@router.get("/units/{code}/missing")
async def missing_page(
    request: Request, web: Web, s: CurrentSession, code: str, period: str | None = None, series: str | None = None
) -> Response:
    period, series = page_period(web.tree, code, period), checked_series(web.catalog, series)
    tree = web.tree.holding(code, period)
    allow(s.principal, tree, Scope.READ, code)
    missing = await missing_units(web.api.reader, web.catalog, tree, code, series, period)
    return page(
        request,
        web,
        "missing.html",
        s,
        unit=tree.get(code),
        crumbs=crumbs(s.principal, tree, code),
        period=period,
        series=series,
        series_title=labels.series_title(web.catalog, series),
        missing=missing.model_dump(mode="json"),
    )


@router.get("/units/{code}/events")
async def events(web: Web, s: CurrentSession, code: str, period: str | None = None) -> Response:
    try:  # the tree of the page's period, as the page itself decided
        tree = web.tree.holding(code, page_period(web.tree, code, period))
    except PageError:
        return JSONResponse({"detail": "Kỳ không hợp lệ."}, status_code=422)
    if not may_stream(s.principal, tree, code):
        return JSONResponse({"detail": "Không có quyền nhận cập nhật của đơn vị này."}, status_code=403)
    stored = s.stored
    assert stored is not None  # a session read from the store, not the login page's
    try:
        release = web.live.take(stored.key, s.principal.token_id)
    except SessionFull as full:
        return JSONResponse(
            {"detail": TOO_MANY_STREAMS.format(held=full.held)}, status_code=429, headers={"Retry-After": "5"}
        )
    deadline = min(stored.expires_at, float(s.principal.expires_at))
    stream = web.live.events(web.api.broadcaster, code, web.sessions, stored, deadline)
    return ReleasingStream(stream, release, media_type="text/event-stream", headers={"Cache-Control": "no-store"})
