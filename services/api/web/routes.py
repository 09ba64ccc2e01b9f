"""The pages, under /web/. Each one reads its session, checks the token's scope and subtree as the
HTTP API does (a page outside the subtree is a 403 page, never data), calls the same read
models as the API (``services.api.views``) and renders a template; reports go to ingest over
HTTP with the session's token."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.datastructures import UploadFile

from services.api.settings import ApiSettings
from services.api.views import children_totals, missing_units, unit_totals
from services.api.web import labels
from services.api.web.chart import Point, bar_chart, chart_periods
from services.api.web.deadlines import deadline_of, deadline_rule
from services.api.web.forms import body_fields, build_report, schema_errors
from services.api.web.security import SAFE_METHODS, OriginGuard, refused_message
from services.api.web.session import (
    COOKIE,
    LOGIN_COOKIE,
    LOGIN_NONCE_SECONDS,
    BadSession,
    InMemorySessions,
    MongoSessions,
    ReleasingStream,
    SessionStore,
    SessionsUnavailable,
    StoredSession,
    StreamGuard,
    lifetime,
    login_proof,
    login_proof_ok,
    new_id,
    parse_id,
    session_key,
)
from services.api.web.sheets import (
    SheetError,
    UploadLimits,
    table_csv,
    table_xlsx,
    template_csv,
    template_xlsx,
    totals_table,
)
from services.api.web.uploads import UploadParser, UploadsBusy
from services.ingest.submissions import BadCursor, MongoSubmissionLog, SubmissionLog, scope_code, submission_key
from shared.adapters.revocations import RevocationsUnavailable
from shared.domain.auth import COUNTRY, InvalidToken, Placement, Principal, Scope, verify
from shared.domain.catalog import Catalog, load_catalog
from shared.domain.hierarchy import LEGACY, OrgTree, UnknownTree
from shared.domain.periods import VIETNAM_TZ, PeriodError, parse_period

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
MAX_UPLOAD_BYTES = 4 * 1024 * 1024
MAX_SELECT_UNITS = 400  # more units than this: a code to type, not a list to scroll
SCOPES_VI = {
    Scope.READ: "xem số liệu",
    Scope.SUBMIT: "gửi báo cáo",
    Scope.STREAM: "nhận cập nhật trực tiếp",
    Scope.ADMIN: "quản trị",
}


class LoginRequired(Exception):
    """No session, or one whose token is no longer valid: back to the login page."""


class CsrfRefused(Exception):
    """A state-changing request without this session's CSRF token: 403, the session kept."""


# answered in JSON, not as a page: what the pages' script calls
JSON_PATHS = ("/events", "/upload/check", "/upload/send")


class PageError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Session:
    token: str
    principal: Principal
    stored: StoredSession | None = None

    @property
    def csrf(self) -> str:
        return self.stored.csrf if self.stored is not None else ""

    @property
    def scopes(self) -> set[str]:
        return {s.value for s in self.principal.scopes}


def this_month() -> str:
    return datetime.now(VIETNAM_TZ).strftime("%Y-%m")


def mount_web(app: FastAPI, settings: ApiSettings) -> None:
    """Adds the pages (kept out of the OpenAPI schema) and their static files to the API."""
    uploads = UploadParser(settings.upload_workers, settings.upload_queue)
    app.include_router(web_router(settings, uploads))
    app.router.lifespan_context = uploads.closing(app.router.lifespan_context)
    app.mount("/web/static", StaticFiles(directory=HERE / "static"), name="web-static")

    async def refuse(request: Request, reason: str) -> Response:
        message = refused_message(reason)
        if request.url.path.endswith(JSON_PATHS):
            return JSONResponse({"detail": message}, status_code=403)
        return TEMPLATES.TemplateResponse(
            request, "error.html", {"message": message, "status": 403, "session": None}, status_code=403
        )

    app.add_middleware(OriginGuard, configured_origin=settings.web_origin, refuse=refuse)

    async def csrf_refused(request: Request, exc: Exception) -> Response:
        return await refuse(request, "this page's form token (CSRF) is missing or wrong")

    async def sessions_unavailable(request: Request, exc: Exception) -> Response:
        message = "Không kiểm tra được phiên đăng nhập lúc này; hãy thử lại sau ít giây."
        if request.url.path.endswith(JSON_PATHS):
            return JSONResponse({"detail": message}, status_code=503, headers={"Retry-After": "5"})
        return TEMPLATES.TemplateResponse(
            request, "error.html", {"message": message, "status": 503, "session": None}, status_code=503
        )

    async def login_required(request: Request, exc: Exception) -> Response:
        if request.url.path.endswith(("/events", "/upload/check", "/upload/send")):
            return JSONResponse({"detail": "Phiên đăng nhập đã hết hạn."}, status_code=401)
        response = RedirectResponse("/web/login", status_code=303)
        response.delete_cookie(COOKIE, path="/web")
        return response

    async def page_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PageError)
        return TEMPLATES.TemplateResponse(
            request, "error.html", {"message": exc.message, "status": exc.status}, status_code=exc.status
        )

    app.add_exception_handler(LoginRequired, login_required)
    app.add_exception_handler(CsrfRefused, csrf_refused)
    app.add_exception_handler(SessionsUnavailable, sessions_unavailable)
    app.add_exception_handler(PageError, page_error)


TEMPLATES = Jinja2Templates(directory=HERE / "templates")
TEMPLATES.env.globals.update(
    deadline_of=deadline_of,
    deadline_rule=deadline_rule,
    fmt_int=labels.fmt_int,
    fmt_rate=labels.fmt_rate,
    fmt_share=labels.fmt_share,
    fmt_fraction=labels.fmt_fraction,
    level_label=labels.level_label,
    whole_label=labels.whole_label,
    levels=labels.LEVELS,
    statuses=labels.STATUSES,
)


def submissions_query(org: OrgTree, principal: Principal) -> dict[str, Any] | None:
    """The submission log's documents ``principal`` may list: for each tree that holds the token's
    unit, the reports of that tree's periods whose scope (the unit and its ancestors, named with
    the tree) holds it, so an old district's token lists nothing of the 2025 tree, where 14923 is
    a commune of province 38; None: nothing."""
    if principal.unit == COUNTRY:
        return {}
    branches = [{"scope": scope_code(tree.tree_id, principal.unit)} for tree in org.versions if principal.unit in tree]
    return {"$or": branches} if branches else None


def web_router(settings: ApiSettings, uploads: UploadParser) -> APIRouter:
    router = APIRouter(prefix="/web", include_in_schema=False)
    secret = settings.auth_secret.get_secret_value()
    key = session_key(secret)
    catalog: Catalog = load_catalog()
    series_choices = [(s, labels.series_title(catalog, s)) for s in catalog.series]
    kind_choices = [(k, labels.kind_title(catalog, k)) for k in catalog.kinds]
    upload_limits = UploadLimits(
        max_rows=settings.upload_max_rows,
        max_columns=settings.upload_max_columns,
        max_cells=settings.upload_max_cells,
        max_cell_chars=settings.upload_max_cell_chars,
        max_zip_members=settings.upload_max_zip_members,
        max_member_bytes=settings.upload_max_part_bytes,
        max_unzipped_bytes=settings.upload_max_unzipped_bytes,
    )
    # ``uploads``: the worker processes files are parsed in, never on the event loop (services/api/web/uploads.py)

    def components(request: Request) -> dict[str, Any]:
        return request.app.state.components  # type: ignore[no-any-return]

    async def principal_of(request: Request, token: str) -> Principal:
        try:
            principal = verify(secret, token)
        except InvalidToken:
            raise LoginRequired from None
        try:
            revoked = await components(request)["auth"].revocations.is_revoked(principal.token_id)
        except RevocationsUnavailable:
            raise PageError(503, "Không kiểm tra được mã truy cập lúc này; hãy thử lại sau ít giây.") from None
        if revoked:
            raise LoginRequired
        return principal

    def sessions(request: Request) -> SessionStore:
        c = components(request)
        if "web_sessions" not in c:
            mongo = c.get("mongo")
            c["web_sessions"] = (
                MongoSessions(mongo, settings.mongodb_database)
                if mongo is not None
                else InMemorySessions(c["auth"].revocations)
            )
        return c["web_sessions"]  # type: ignore[no-any-return]

    async def csrf_given(request: Request) -> str | None:
        """The CSRF token a request carries: the X-CSRF-Token header (the pages' script), or the
        ``csrf`` field of a urlencoded form (a form sent without script)."""
        if header := request.headers.get("x-csrf-token"):
            return header
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media == "application/x-www-form-urlencoded":
            field = (await request.form()).get("csrf")
            return field if isinstance(field, str) else None
        return None

    async def session(request: Request) -> Session:
        try:
            session_id = parse_id(request.cookies.get(COOKIE))
        except BadSession:
            raise LoginRequired from None
        stored = await sessions(request).get(session_id)
        if stored is None:
            raise LoginRequired
        if request.method not in SAFE_METHODS and not stored.csrf_ok(await csrf_given(request)):
            raise CsrfRefused
        principal = await principal_of(request, stored.token)
        return Session(stored.token, principal, stored)

    def secure_cookie(request: Request) -> bool:
        if settings.web_cookie_secure is not None:
            return settings.web_cookie_secure
        return request.url.scheme == "https" or settings.web_origin.lower().startswith("https:")

    def allow(s: Session, tree: OrgTree, scope: Scope, code: str) -> None:
        # 404 only for a code the token could see if it existed: no probing for other units
        if scope not in s.principal.scopes:
            raise PageError(403, f"Mã truy cập này không có quyền {SCOPES_VI[scope]}.")
        if not s.principal.may_see(tree, code):
            raise PageError(403, f"Đơn vị {code} nằm ngoài phạm vi của mã truy cập này.")
        if code not in tree:
            raise PageError(404, f"Không có đơn vị mã {code}.")

    def in_force(request: Request) -> OrgTree:
        """The tree of a page that names neither a period nor a tree: the one in force today."""
        return components(request)["tree"].in_force()  # type: ignore[no-any-return]

    def named(request: Request, code: str) -> Any:
        """``code`` as the tree in force today names it, else as the newest tree holding it (an
        abolished district); None when no tree holds it."""
        tree = in_force(request)
        holder = tree if code in tree else next((t for t in reversed(tree.versions) if code in t), None)
        return None if holder is None else holder.get(code)

    def page(request: Request, name: str, s: Session | None, status: int = 200, **context: Any) -> Response:
        me = named(request, s.principal.unit) if s is not None else None
        return TEMPLATES.TemplateResponse(
            request,
            name,
            {
                "session": s,
                "me": me,
                "csrf": s.csrf if s is not None else "",
                "series_choices": series_choices,
                "kind_choices": kind_choices,
                **context,
            },
            status_code=status,
        )

    def checked_period(period: str | None) -> str:
        text = (period or "").strip() or this_month()
        try:
            parse_period(text)
        except PeriodError:
            raise PageError(422, "Kỳ không hợp lệ: dùng dạng 2025-03, 2025-Q1, 2025-H1, 2025 hoặc 2020-2025.") from None
        return text

    def page_period(request: Request, code: str, period: str | None) -> str:
        """The period a unit's page shows: the one chosen; else this month when the tree in force
        today holds the unit; else the last month of the newest tree that holds it (an abolished
        district's pages open on June 2025, not on a month it cannot have figures for)."""
        if (period or "").strip():
            return checked_period(period)
        tree = in_force(request)
        holder = next((t for t in reversed(tree.versions) if code in t), None)
        if code in tree or holder is None or holder.valid_to is None:
            return this_month()
        return (holder.valid_to - timedelta(days=1)).strftime("%Y-%m")

    def checked_series(series: str | None) -> str:
        series = series or "study_session"
        if series not in catalog.series:
            raise PageError(422, "Không có loại số liệu này.")
        return series

    @router.get("/")
    async def home(request: Request, period: str | None = None) -> Response:
        s = await session(request)
        if s.principal.unit != COUNTRY:
            return RedirectResponse(f"/web/units/{s.principal.unit}", status_code=303)
        # the provinces of the period's tree when one is chosen, else of the tree in force today
        chosen = checked_period(period) if period else None
        tree = components(request)["tree"].for_period(chosen) if chosen else in_force(request)
        provinces = sorted(tree.provinces(), key=lambda u: u.code)
        return page(request, "country.html", s, provinces=provinces, period=chosen)

    def login_page(request: Request, status: int = 200, **context: Any) -> Response:
        """The login form, with its CSRF field: the HMAC of a nonce kept in a cookie of its own
        (reused while valid, so two open login tabs both work)."""
        try:
            nonce = parse_id(request.cookies.get(LOGIN_COOKIE))
        except BadSession:
            nonce = new_id()
        response = page(request, "login.html", None, status, csrf=login_proof(key, nonce), **context)
        response.set_cookie(
            LOGIN_COOKIE,
            nonce,
            max_age=LOGIN_NONCE_SECONDS,
            path="/web/login",
            httponly=True,
            samesite="strict",
            secure=secure_cookie(request),
        )
        response.headers["Cache-Control"] = "no-store"
        return response

    @router.get("/login")
    async def login_form(request: Request) -> Response:
        return login_page(request)

    @router.post("/login")
    async def login(request: Request) -> Response:
        form = await request.form()
        proof = form.get("csrf")
        if not login_proof_ok(key, request.cookies.get(LOGIN_COOKIE), proof if isinstance(proof, str) else None):
            raise CsrfRefused
        token = str(form.get("token") or "").strip()
        try:
            principal = await principal_of(request, token)
        except LoginRequired:
            return login_page(request, 401, error="Mã truy cập không hợp lệ, đã hết hạn hoặc đã bị thu hồi.")
        store = sessions(request)
        try:  # a session already open in this browser ends: a login always starts a new one
            await store.delete(parse_id(request.cookies.get(COOKIE)))
        except BadSession:
            pass
        expires_at = lifetime(principal.expires_at)
        session_id, _ = await store.create(token, principal.token_id, expires_at)
        response = RedirectResponse("/web/", status_code=303)
        response.set_cookie(
            COOKIE,
            session_id,
            max_age=max(int(expires_at - time.time()), 0),
            path="/web",
            httponly=True,
            samesite="strict",
            secure=secure_cookie(request),
        )
        response.delete_cookie(LOGIN_COOKIE, path="/web/login")
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        """Ends the session on the server: its cookie, kept or replayed, opens nothing after."""
        try:
            session_id = parse_id(request.cookies.get(COOKIE))
        except BadSession:
            session_id = None
        if session_id is not None and (stored := await sessions(request).get(session_id)) is not None:
            if not stored.csrf_ok(await csrf_given(request)):
                raise CsrfRefused
            await sessions(request).delete(session_id)
        response = RedirectResponse("/web/login", status_code=303)
        response.delete_cookie(COOKIE, path="/web")
        return response

    async def table_of(request: Request, code: str, period: str, series: str) -> Any:
        c = components(request)
        tree: OrgTree = c["tree"].holding(code, period)  # the tree of the period (codes are reused)
        totals = (await unit_totals(c["reader"], catalog, tree, code, period)).model_dump(mode="json")
        children = None
        if tree.children(code):
            rows = await children_totals(c["reader"], catalog, tree, code, period)
            children = [r.model_dump(mode="json") for r in rows.children]
        return totals_table(catalog, series, totals, children)

    @router.get("/units/{code}")
    async def unit_page(
        request: Request, code: str, period: str | None = None, series: str | None = None, metric: str | None = None
    ) -> Response:
        s = await session(request)
        c = components(request)
        period, series = page_period(request, code, period), checked_series(series)
        tree: OrgTree = c["tree"].holding(code, period)  # the tree of the period (codes are reused)
        allow(s, tree, Scope.READ, code)
        table = await table_of(request, code, period, series)
        keys = [col.key for col in table.columns]
        rate_keys = [col.key for col in table.columns if col.scale]
        metric = metric if metric in keys else (rate_keys or keys or [None])[0]
        chart = None
        if metric is not None:
            column = next(col for col in table.columns if col.key == metric)
            periods = chart_periods(period)
            answers = await asyncio.gather(*(unit_totals(c["reader"], catalog, tree, code, p) for p in periods))
            points = []
            for p, answer in zip(periods, answers, strict=True):
                value = answer.metrics.get(metric)
                text = labels.fmt_rate(value, column.scale) if column.scale else labels.fmt_int(value)  # type: ignore[arg-type]
                points.append(Point(p, None if value is None else float(value), text))
            chart = {
                "svg": bar_chart(points, f"{column.label} theo kỳ — {tree.get(code).name}", period),
                "points": points,
                "label": column.label,
            }
        crumbs = [tree.get(u) for u in reversed(tree.path(code)) if s.principal.covers(tree, u)]
        context = {
            "unit": tree.get(code),
            "crumbs": crumbs,
            "period": period,
            "series": series,
            "metric": metric,
            "table": table,
            "chart": chart,
            "live": Scope.STREAM in s.principal.scopes,
        }
        if request.headers.get("x-partial") == "live":
            return page(request, "unit_live.html", s, **context)
        return page(request, "unit.html", s, **context)

    @router.get("/units/{code}/export.{fmt}")
    async def export(
        request: Request, code: str, fmt: str, period: str | None = None, series: str | None = None
    ) -> Response:
        s = await session(request)
        period, series = page_period(request, code, period), checked_series(series)
        allow(s, components(request)["tree"].holding(code, period), Scope.READ, code)
        if fmt not in ("csv", "xlsx"):
            raise PageError(404, "Chỉ xuất được CSV hoặc Excel (.xlsx).")
        table = await table_of(request, code, period, series)
        name = f"baocao-{code}-{series}-{period}.{fmt}"
        headers = {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}
        if fmt == "csv":
            return Response(table_csv(table), media_type="text/csv; charset=utf-8", headers=headers)
        xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        return Response(table_xlsx(table), media_type=xlsx, headers=headers)

    @router.get("/units/{code}/missing")
    async def missing_page(
        request: Request, code: str, period: str | None = None, series: str | None = None
    ) -> Response:
        s = await session(request)
        c = components(request)
        period, series = page_period(request, code, period), checked_series(series)
        tree: OrgTree = c["tree"].holding(code, period)  # the tree of the period (codes are reused)
        allow(s, tree, Scope.READ, code)
        missing = await missing_units(c["reader"], catalog, tree, code, series, period)
        crumbs = [tree.get(u) for u in reversed(tree.path(code)) if s.principal.covers(tree, u)]
        return page(
            request,
            "missing.html",
            s,
            unit=tree.get(code),
            crumbs=crumbs,
            period=period,
            series=series,
            series_title=labels.series_title(catalog, series),
            missing=missing.model_dump(mode="json"),
        )

    @router.get("/units/{code}/events")
    async def events(request: Request, code: str, period: str | None = None) -> Response:
        s = await session(request)
        try:  # the tree of the page's period, as the page itself decided
            tree: OrgTree = components(request)["tree"].holding(code, page_period(request, code, period))
        except PageError:
            return JSONResponse({"detail": "Kỳ không hợp lệ."}, status_code=422)
        if code not in tree or Scope.STREAM not in s.principal.scopes or not s.principal.covers(tree, code):
            return JSONResponse({"detail": "Không có quyền nhận cập nhật của đơn vị này."}, status_code=403)
        c = components(request)
        broadcaster = c["broadcaster"]
        stored, token_id = s.stored, s.principal.token_id
        assert stored is not None
        # the streams a session holds, and those its token holds (shared with the API's streams)
        per_session: dict[str, int] = c.setdefault("web_streams", {})
        per_token: dict[str, int] = c.setdefault("streams", {})
        held = per_session.get(stored.key, 0)
        if held >= settings.web_max_streams_per_session or per_token.get(token_id, 0) >= settings.max_streams_per_token:
            return JSONResponse(
                {
                    "detail": f"Phiên này đã mở {held} luồng cập nhật trực tiếp, nhiều nhất được phép; hãy đóng "
                    "bớt một trang. / This session already holds the most live-update streams allowed "
                    "(BAOCAO_API_WEB_MAX_STREAMS_PER_SESSION, BAOCAO_API_MAX_STREAMS_PER_TOKEN); close one first."
                },
                status_code=429,
                headers={"Retry-After": "5"},
            )
        per_session[stored.key] = held + 1
        per_token[token_id] = per_token.get(token_id, 0) + 1

        def release() -> None:
            for counts, name in ((per_session, stored.key), (per_token, token_id)):
                left = counts.pop(name, 1) - 1
                if left > 0:
                    counts[name] = left

        guard: StreamGuard = c.setdefault("web_stream_guard", StreamGuard(settings.web_stream_recheck_seconds))
        store = sessions(request)
        deadline = min(stored.expires_at, float(s.principal.expires_at))

        async def stream() -> AsyncIterator[str]:
            handle, ended = guard.watch(store, stored)
            ender = asyncio.ensure_future(ended.wait())
            getter: asyncio.Future[Any] | None = None
            try:
                async with broadcaster.subscribe(code) as sub:
                    yield ": connected\n\n"
                    while True:
                        left = deadline - time.time()
                        if left <= 0:
                            reason = "Phiên đăng nhập đã hết hạn."
                            break
                        if getter is None:
                            getter = asyncio.ensure_future(sub.queue.get())
                        done, _ = await asyncio.wait(
                            {getter, ender}, timeout=min(left, 15), return_when=asyncio.FIRST_COMPLETED
                        )
                        if ender in done:
                            reason = "Phiên đăng nhập đã kết thúc (đăng xuất hoặc mã truy cập bị thu hồi)."
                            break
                        if getter in done:
                            message, getter = getter.result(), None
                            change = {"series": message.get("series"), "periods": sorted(message.get("periods") or {})}
                            yield f"event: total\ndata: {json.dumps(change)}\n\n"
                        elif time.time() < deadline:
                            yield ": keep-alive\n\n"
                    yield f"event: end\ndata: {json.dumps({'reason': reason}, ensure_ascii=False)}\n\n"
            finally:
                for task in (getter, ender):
                    if task is not None:
                        task.cancel()
                guard.unwatch(handle)

        return ReleasingStream(stream(), release, media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    def form_tree(request: Request, values: dict[str, Any]) -> OrgTree:
        """The tree a report form is about: its period's when a valid period is filled in, else
        the one its ``tree`` field names (a revision of a report of the old tree), else the tree in
        force today (a report of the current period)."""
        org: OrgTree = components(request)["tree"]
        period = str(values.get("period") or "").strip()
        if period:
            try:
                return org.for_period(period)
            except PeriodError:
                pass
        try:
            return org.version_named(str(values.get("tree") or ""))
        except UnknownTree:
            return in_force(request)

    def submit_units(s: Session, tree: OrgTree, chosen: str) -> list[Any] | None:
        """The units of ``tree`` a form offers, or None when a code is typed instead: too many to
        list, the token's unit not in this tree, or a chosen unit the list does not hold."""
        if s.principal.unit not in tree:
            return None
        units = []
        for u in tree.subtree(s.principal.unit):
            units.append(u)
            if len(units) > MAX_SELECT_UNITS:
                return None
        if chosen and chosen not in {u.code for u in units}:
            return None
        return units

    def unit_error(request: Request, s: Session, unit: str, period: str) -> str | None:
        """Why the token may not send a report of ``period`` for ``unit``, decided in the tree of
        the period (codes are reused across trees); None when it may, or when the period itself is
        not valid (its own error says so)."""
        org: OrgTree = components(request)["tree"]
        try:
            placement = s.principal.may_report(org, unit, period)
        except PeriodError:
            return None
        if placement is Placement.ALLOWED:
            return None
        if placement is Placement.CLOSED:
            own = org.for_period(period)
            return (
                f"Đơn vị {unit} không có trong cây đơn vị của kỳ {period} "
                f"({'trước' if own.tree_id == LEGACY else 'từ'} 1/7/2025): chọn đơn vị hoặc kỳ khác."
            )
        return "Đơn vị này không có hoặc nằm ngoài phạm vi của mã truy cập."

    def form_page(request: Request, s: Session, kind: str, values: dict[str, Any], **extra: Any) -> Response:
        tree = form_tree(request, values)
        return page(
            request,
            "submit.html",
            s,
            extra.pop("status", 200),
            kind=kind,
            kind_title=labels.kind_title(catalog, kind),
            fields=body_fields(catalog, kind),
            values=values,
            units=submit_units(s, tree, str(values.get("unit") or "").strip()),
            tree_id=tree.tree_id,
            own_in_tree=s.principal.unit == COUNTRY or s.principal.unit in tree,
            labels_of={**labels.FIELDS, "unit": "Đơn vị báo cáo"},
            errors=extra.pop("errors", {}),
            **extra,
        )

    def need_submit(request: Request, s: Session) -> None:
        if Scope.SUBMIT not in s.principal.scopes:
            raise PageError(403, f"Mã truy cập này không có quyền {SCOPES_VI[Scope.SUBMIT]}.")

    @router.get("/submit")
    async def submit_form(request: Request, kind: str = "study_session") -> Response:
        s = await session(request)
        need_submit(request, s)
        # "study_session@2025": a series as the submission log names it, the tree after the "@"
        kind, _, tree_id = kind.partition("@")
        if kind not in catalog.kinds:
            raise PageError(404, "Không có loại báo cáo này.")
        values = {k: v for k, v in request.query_params.items() if k != "kind"}
        if tree_id:
            values.setdefault("tree", tree_id)
        values.setdefault("unit", s.principal.unit if s.principal.unit != COUNTRY else "")
        # stamped once, when the form is drawn: the same form sent twice (a retry) is then the
        # same report, which ingest answers as a duplicate
        values["submitted_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        return form_page(request, s, kind, values)

    async def send(token: str, path: str, payload: Any) -> httpx.Response:
        async with httpx.AsyncClient(base_url=settings.ingest_url, timeout=60) as http:
            return await http.post(path, json=payload, headers={"Authorization": f"Bearer {token}"})

    def stamped(text: str | None) -> datetime:
        try:
            when = datetime.fromisoformat(text or "")
        except ValueError:
            return datetime.now(UTC)
        return when if when.tzinfo is not None else datetime.now(UTC)

    @router.post("/submit")
    async def submit(request: Request) -> Response:
        s = await session(request)
        need_submit(request, s)
        form = await request.form()
        values = {k: str(v) for k, v in form.items() if isinstance(v, str)}
        kind = values.pop("kind", "")
        if kind not in catalog.kinds:
            raise PageError(404, "Không có loại báo cáo này.")
        unit = values.get("unit", "").strip()
        refused = unit_error(request, s, unit, values.get("period", "").strip()) if unit else None
        if refused:
            return form_page(request, s, kind, values, errors={"unit": refused}, status=422)
        checked = build_report(catalog, kind, values, stamped(values.get("submitted_at")))
        if checked.report is None:
            return form_page(request, s, kind, values, errors=checked.errors, status=422)
        report = checked.report
        try:
            answer = await send(s.token, "/v1/reports", report)
        except httpx.HTTPError:
            log.warning("ingest unreachable from the web front end", exc_info=True)
            return form_page(request, s, kind, values, errors={"_form": labels.STATUSES["unavailable"]}, status=503)
        if answer.status_code in (200, 202):
            status = answer.json().get("status", "accepted")
            return page(
                request, "submitted.html", s, report=report, outcome=status, kind_title=labels.kind_title(catalog, kind)
            )
        if answer.status_code == 422:
            errors = schema_errors(answer.json().get("detail") or [])
        elif answer.status_code == 409:
            errors = {
                "revision": f"Báo cáo {report['report_id']} đã có bản {report['revision']} với nội dung khác. "
                "Để sửa số liệu, gửi bản số lớn hơn."
            }
        elif answer.status_code == 403:
            errors = {"unit": labels.STATUSES["forbidden"]}
        else:
            errors = {"_form": labels.STATUSES["unavailable"]}
        return form_page(request, s, kind, values, errors=errors, status=422 if answer.status_code < 500 else 503)

    @router.get("/submissions")
    async def submissions(request: Request, after: str | None = None) -> Response:
        s = await session(request)
        if not s.principal.scopes & {Scope.SUBMIT, Scope.READ}:
            raise PageError(403, "Mã truy cập này không có quyền xem báo cáo đã gửi.")
        c = components(request)
        org: OrgTree = c["tree"]
        rows: list[dict[str, Any]] = []
        mongo = c.get("mongo")
        query = submissions_query(org, s.principal)
        next_after = None
        # the ingest's submission log (a test may set another); a page at a time, newest first,
        # ``after`` being the cursor the previous page linked to
        listed: SubmissionLog | None = c.get("submission_log") or (
            MongoSubmissionLog(mongo, settings.mongodb_database) if mongo is not None else None
        )
        if listed is not None and query is not None:
            try:
                listing = await listed.page(query, after)
            except BadCursor as exc:
                raise PageError(422, f"Địa chỉ trang không hợp lệ (after): {exc}") from None
            next_after = listing.next
            docs = [{"_id": submission_key(i.unit, i.report_id), **vars(i)} for i in listing.items]
            for doc in docs:
                revisions = sorted(int(r) for r in (doc.get("revisions") or {}))
                # the log names a report's series with the tree of its period ("study_session@2025";
                # none for the old tree): the report's unit is the unit of that tree
                series, _, tree_id = str(doc.get("series", "")).partition("@")
                try:
                    tree = org.version_named(tree_id or LEGACY)
                except UnknownTree:
                    continue
                unit = doc.get("unit")
                if unit is None or not s.principal.covers(tree, unit):
                    continue
                kind, _, indicator = series.partition(".")
                rows.append(
                    {
                        "report_id": doc.get("report_id", doc["_id"]),  # _id: <unit>/<report_id>
                        "unit": unit,
                        "unit_name": tree.get(unit).name if unit in tree else "",
                        "tree": tree.tree_id,
                        "kind": kind,
                        "indicator": indicator,
                        "series_title": labels.series_title(catalog, series) if series in catalog.series else series,
                        "revisions": revisions,
                        "next": (revisions[-1] + 1) if revisions else 1,
                    }
                )
        return page(
            request,
            "submissions.html",
            s,
            rows=rows,
            can_submit=Scope.SUBMIT in s.principal.scopes,
            next_after=next_after,
            paged=after is not None,
        )

    @router.get("/upload")
    async def upload_page(request: Request, kind: str = "study_session") -> Response:
        s = await session(request)
        need_submit(request, s)
        if kind not in catalog.kinds:
            raise PageError(404, "Không có loại báo cáo này.")
        return page(request, "upload.html", s, kind=kind, columns=body_fields(catalog, kind))

    @router.get("/templates/{kind}.{fmt}")
    async def template(request: Request, kind: str, fmt: str) -> Response:
        await session(request)
        if kind not in catalog.kinds or fmt not in ("csv", "xlsx"):
            raise PageError(404, "Không có mẫu này.")
        headers = {"Content-Disposition": f'attachment; filename="mau-{kind}.{fmt}"'}
        if fmt == "csv":
            return Response(template_csv(catalog, kind), media_type="text/csv; charset=utf-8", headers=headers)
        xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        return Response(template_xlsx(catalog, kind), media_type=xlsx, headers=headers)

    @router.post("/upload/check")
    async def upload_check(request: Request) -> Response:
        """Reads the file and checks every row; sends nothing."""
        s = await session(request)
        if Scope.SUBMIT not in s.principal.scopes:
            return JSONResponse({"detail": "Mã truy cập này không có quyền gửi báo cáo."}, status_code=403)
        length = request.headers.get("content-length", "")
        if not length.isdigit() or int(length) > MAX_UPLOAD_BYTES + 64 * 1024:  # decided before reading the body
            return JSONResponse({"detail": "Tệp lớn hơn 4 MB."}, status_code=413)
        async with request.form() as form:  # closes the spooled file
            kind = str(form.get("kind") or "")
            upload = form.get("file")
            if kind not in catalog.kinds or not isinstance(upload, UploadFile):
                return JSONResponse({"detail": "Chọn loại báo cáo và tệp."}, status_code=422)
            filename = upload.filename or ""
            data = await upload.read(MAX_UPLOAD_BYTES + 1)
        if len(data) > MAX_UPLOAD_BYTES:
            return JSONResponse({"detail": "Tệp lớn hơn 4 MB."}, status_code=413)
        now = datetime.now(UTC)  # one stamp for the file: sending its checked rows again is a duplicate
        try:
            rows = await uploads.check(kind, filename, data, upload_limits, now)
        except SheetError as exc:  # past a limit: 413 and which one; a file that is not a table: 422
            if exc.limit:
                return JSONResponse({"detail": str(exc), "limit": exc.limit}, status_code=413)
            return JSONResponse({"detail": str(exc)}, status_code=422)
        except UploadsBusy:
            return JSONResponse(
                {"detail": "Máy chủ đang đọc nhiều tệp khác; hãy thử lại sau ít giây."},
                status_code=503,
                headers={"Retry-After": "5"},
            )
        out = []
        for number, unit, period, report, errors in rows:
            refused = unit_error(request, s, unit, period) if unit else None
            if refused and "unit" not in errors:
                errors["unit"] = refused
            out.append(
                {
                    "row": number,
                    "unit": unit,
                    "report": report if not errors else None,
                    "errors": {labels.field_label(k) if k != "_form" else "": v for k, v in errors.items()},
                }
            )
        return JSONResponse({"rows": out})

    @router.post("/upload/send")
    async def upload_send(request: Request) -> Response:
        """Sends checked reports (at most 1,000) to ingest in one batch; one result per report."""
        s = await session(request)
        if Scope.SUBMIT not in s.principal.scopes:
            return JSONResponse({"detail": "Mã truy cập này không có quyền gửi báo cáo."}, status_code=403)
        try:
            reports = (await request.json())["reports"]
        except RecursionError:
            return JSONResponse({"detail": "JSON không hợp lệ: lồng quá sâu."}, status_code=400)
        except ValueError as exc:
            return JSONResponse({"detail": f"JSON không hợp lệ: {exc}"}, status_code=400)
        except (KeyError, TypeError):
            reports = None
        if not isinstance(reports, list) or not 0 < len(reports) <= 1000:
            return JSONResponse({"detail": "Yêu cầu không hợp lệ."}, status_code=400)
        try:
            answer = await send(s.token, "/v1/reports/batch", reports)
        except httpx.HTTPError:
            return JSONResponse({"detail": labels.STATUSES["unavailable"]}, status_code=503)
        if answer.status_code not in (200, 503):
            return JSONResponse({"detail": labels.STATUSES.get("invalid", "")}, status_code=answer.status_code)
        results = []
        for item in answer.json().get("results", []):
            errors = schema_errors(item.get("errors") or []) if item.get("errors") else {}
            message = "; ".join(f"{labels.field_label(k)}: {v}" if k != "_form" else v for k, v in errors.items())
            results.append(
                {
                    "index": item.get("index"),
                    "status": item.get("status"),
                    "text": labels.STATUSES.get(str(item.get("status")), str(item.get("status"))),
                    "message": message,
                }
            )
        return JSONResponse({"results": results})

    return router
