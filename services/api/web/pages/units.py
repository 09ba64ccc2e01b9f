"""A unit's pages: the country's list of provinces, a unit's totals with a chart, its export, who
has not reported, and the live updates of its page."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from services.api.routes.approvals import ChangedMeanwhile, NotApproved, approvals_of, make_approval, undo_approval
from services.api.routes.targets import drop_target, put_target, target_listings_of
from services.api.views import missing_units
from services.api.web import labels
from services.api.web.access import allow, crumbs, may_stream
from services.api.web.deps import CurrentSession, Web
from services.api.web.errors import PageError
from services.api.web.live import SessionFull
from services.api.web.pages.admin_access import form_of
from services.api.web.render import page
from services.api.web.session import ReleasingStream
from services.api.web.sheets import mark_approved, mark_targets, table_csv, table_xlsx
from services.api.web.trees import checked_period, checked_series, page_period
from services.api.web.views import chosen_metric, unit_chart, unit_table
from shared.domain.approvals import AlreadyApproved, check_unapprove
from shared.domain.auth import Forbidden, Principal, Scope
from shared.domain.hierarchy import COUNTRY, OrgTree
from shared.domain.targets import SETTERS, TargetError

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
    mark_targets(table, web.catalog, await target_listings_of(request).listing(code, period))
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
        # a conference's points and delegates are counted once, where its organiser is (catalog joins)
        conference_note=bool(web.catalog.series[series].shared),
        # approval and lock: each child's approval, and whether this session may approve
        approvals=await approval_rows(request, s.principal, tree, code, period, series),
        may_approve=Scope.APPROVE in s.principal.scopes,
        # targets: the form to set or remove one, for a session that may (shared/domain/targets.py)
        may_set_targets=any(scope in s.principal.scopes for scope in SETTERS),
    )


async def approval_rows(
    request: Request, principal: Principal, tree: OrgTree, code: str, period: str, series: str
) -> dict[str, dict[str, object]]:
    """The approvals of ``series`` in ``period`` under ``code``, by unit: who, when, and whether
    ``principal`` may unapprove (the level that approved or above)."""
    rows: dict[str, dict[str, object]] = {}
    for approval in await approvals_of(request).listing(code, period):
        if approval.series != series:
            continue
        try:
            check_unapprove(principal, tree, approval)
            undo = True
        except Forbidden:
            undo = False
        rows[approval.unit] = {"by": approval.approver, "when": approval.when, "undo": undo}
    return rows


@router.post("/units/{code}/approvals")
async def approval_form(request: Request, web: Web, s: CurrentSession, code: str) -> Response:
    """The unit page's "Duyệt" and "Bỏ duyệt" buttons (``do``: approve or unapprove) for a child
    ``unit`` of ``code``, then back to the page."""
    values, _ = await form_of(request)
    period = page_period(web.tree, code, values.get("period"))
    series = checked_series(web.catalog, values.get("series"))
    tree = web.tree.holding(code, period)
    allow(s.principal, tree, Scope.APPROVE, code)
    unit = values.get("unit", "")
    if unit not in tree or not s.principal.covers(tree, unit):
        raise PageError(403, "Đơn vị này không có hoặc nằm ngoài phạm vi duyệt của bạn.")
    try:
        if values.get("do") == "approve":
            await make_approval(request, s.principal, tree, unit, series, period)
        elif values.get("do") == "unapprove":
            await undo_approval(request, s.principal, tree, unit, series, period)
        else:
            raise PageError(422, "Thao tác không hợp lệ (do): approve hoặc unapprove.")
    except (AlreadyApproved, ChangedMeanwhile) as exc:
        raise PageError(409, f"Không thực hiện được: {exc}") from None
    except NotApproved as exc:
        raise PageError(404, f"Chưa được duyệt: {exc}") from None
    except Forbidden as exc:
        raise PageError(403, f"Không có quyền: {exc}") from None
    return RedirectResponse(f"/web/units/{code}?period={period}&series={series}", status_code=303)


@router.post("/units/{code}/targets")
async def target_form(request: Request, web: Web, s: CurrentSession, code: str) -> Response:
    """The unit page's "Đặt chỉ tiêu" and "Bỏ chỉ tiêu" (``do``: set or remove) for ``unit`` (the
    page's unit or one of its children) and ``metric``, then back to the page."""
    values, _ = await form_of(request)
    period = page_period(web.tree, code, values.get("period"))
    series = checked_series(web.catalog, values.get("series"))
    tree = web.tree.holding(code, period)
    allow(s.principal, tree, Scope.READ, code)
    unit = values.get("unit", "")
    if unit != code and unit not in {c.code for c in tree.children(code)}:
        raise PageError(422, "Đơn vị (unit) phải là đơn vị này hoặc một đơn vị trực thuộc.")
    metric = values.get("metric", "")
    try:
        if values.get("do") == "set":
            await put_target(request, s.principal, tree, unit, metric, period, values.get("value", ""))
        elif values.get("do") == "remove":
            if await drop_target(request, s.principal, tree, unit, metric, period) is None:
                raise PageError(404, f"Chưa đặt chỉ tiêu {metric} cho đơn vị {unit} kỳ {period}.")
        else:
            raise PageError(422, "Thao tác không hợp lệ (do): set hoặc remove.")
    except TargetError as exc:
        label = {"value": "Chỉ tiêu", "metric": "Số liệu"}.get(exc.field, exc.field)
        raise PageError(422, f"{label} không hợp lệ ({exc.field}): {exc}") from None
    except Forbidden as exc:
        raise PageError(403, f"Không có quyền đặt chỉ tiêu: {exc}") from None
    return RedirectResponse(f"/web/units/{code}?period={period}&series={series}", status_code=303)


@router.get("/units/{code}/export.{fmt}")
async def export(
    request: Request,
    web: Web,
    s: CurrentSession,
    code: str,
    fmt: str,
    period: str | None = None,
    series: str | None = None,
) -> Response:
    period, series = page_period(web.tree, code, period), checked_series(web.catalog, series)
    tree = web.tree.holding(code, period)
    allow(s.principal, tree, Scope.READ, code)
    if fmt not in ("csv", "xlsx"):
        raise PageError(404, "Chỉ xuất được CSV hoặc Excel (.xlsx).")
    table = await unit_table(web.api.reader, web.catalog, tree, code, period, series)
    mark_approved(table, await approvals_of(request).listing(code, period))
    mark_targets(table, web.catalog, await target_listings_of(request).listing(code, period))
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
