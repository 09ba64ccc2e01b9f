"""How the pages join the read API: ``mount_web`` adds their routes (services/api/web/pages),
their static files, their components (built with the app's lifespan), the origin guard and the
pages that stand for errors."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pymongo.errors import PyMongoError

from services.api.settings import ApiSettings
from services.api.web.components import WebConfig, with_web
from services.api.web.errors import CsrfRefused, LoginRequired, PageError
from services.api.web.pages import web_router
from services.api.web.render import HERE, error_page
from services.api.web.security import OriginGuard, refused_message
from services.api.web.session import COOKIE, SessionsUnavailable
from shared.http.base import database_unavailable as api_database_unavailable

# answered in JSON, not as a page: what the pages' script calls
JSON_PATHS = ("/events", "/upload/check", "/upload/send")
SESSIONS_DOWN = "Không kiểm tra được phiên đăng nhập lúc này; hãy thử lại sau ít giây."
DATABASE_DOWN = "Cơ sở dữ liệu tạm thời không trả lời; hãy thử lại sau ít giây."


def mount_web(app: FastAPI, settings: ApiSettings) -> None:
    """Adds the pages (kept out of the OpenAPI schema) and their static files to the API. Their
    components are built when the app starts, after the API's own (``with_web``)."""
    config = WebConfig.of(settings)
    app.include_router(web_router())
    app.router.lifespan_context = config.uploads.closing(with_web(config, app.router.lifespan_context))
    app.mount("/web/static", StaticFiles(directory=HERE / "static"), name="web-static")
    app.add_middleware(OriginGuard, configured_origin=settings.web_origin, refuse=refuse)
    app.add_exception_handler(LoginRequired, login_required)
    app.add_exception_handler(CsrfRefused, csrf_refused)
    app.add_exception_handler(SessionsUnavailable, sessions_unavailable)
    app.add_exception_handler(PageError, page_error)
    app.add_exception_handler(PyMongoError, database_unavailable)


def wants_json(request: Request) -> bool:
    return request.url.path.endswith(JSON_PATHS)


async def refuse(request: Request, reason: str) -> Response:
    """A request from another origin, or without this session's CSRF token: 403."""
    message = refused_message(reason)
    if wants_json(request):
        return JSONResponse({"detail": message}, status_code=403)
    return error_page(request, message, 403, session=None)


async def csrf_refused(request: Request, exc: Exception) -> Response:
    return await refuse(request, "this page's form token (CSRF) is missing or wrong")


async def sessions_unavailable(request: Request, exc: Exception) -> Response:
    if wants_json(request):
        return JSONResponse({"detail": SESSIONS_DOWN}, status_code=503, headers={"Retry-After": "5"})
    return error_page(request, SESSIONS_DOWN, 503, session=None)


async def database_unavailable(request: Request, exc: Exception) -> Response:
    """The database did not answer a page's read or write: a 503 page (the API's own routes keep
    their JSON answer, shared/http/base.py)."""
    if not request.url.path.startswith("/web"):
        return await api_database_unavailable(request, exc)
    if wants_json(request):
        return JSONResponse({"detail": DATABASE_DOWN}, status_code=503, headers={"Retry-After": "5"})
    response = error_page(request, DATABASE_DOWN, 503, session=None)
    response.headers["Retry-After"] = "5"
    return response


async def login_required(request: Request, exc: Exception) -> Response:
    if wants_json(request):
        return JSONResponse({"detail": "Phiên đăng nhập đã hết hạn."}, status_code=401)
    response = RedirectResponse("/web/login", status_code=303)
    response.delete_cookie(COOKIE, path="/web")
    return response


async def page_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PageError)
    return error_page(request, exc.message, exc.status)
