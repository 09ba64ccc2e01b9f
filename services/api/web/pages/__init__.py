"""The pages' routes, a router per resource under /web (kept out of the OpenAPI schema). Each
route reads its session (services/api/web/deps.py), checks the token as the HTTP API does (a page
outside the subtree is a 403 page, never data), calls the service it needs and renders a template."""

from __future__ import annotations

from fastapi import APIRouter

from services.api.web.pages.admin_accounts import router as admin_account_pages
from services.api.web.pages.admin_agencies import router as admin_agency_pages
from services.api.web.pages.admin_tokens import router as admin_token_pages
from services.api.web.pages.audit import router as audit_pages
from services.api.web.pages.oidc import router as oidc_pages
from services.api.web.pages.reminders import router as reminder_pages
from services.api.web.pages.session import router as session_pages
from services.api.web.pages.submissions import router as submissions_pages
from services.api.web.pages.submit import router as submit_pages
from services.api.web.pages.units import router as unit_pages
from services.api.web.pages.uploads import router as upload_pages


def web_router() -> APIRouter:
    router = APIRouter(prefix="/web", include_in_schema=False)
    for pages in (unit_pages, session_pages, submit_pages, submissions_pages, upload_pages, reminder_pages):
        router.include_router(pages)
    router.include_router(admin_account_pages)
    router.include_router(admin_agency_pages)
    router.include_router(admin_token_pages)
    router.include_router(oidc_pages)
    router.include_router(audit_pages)
    return router
