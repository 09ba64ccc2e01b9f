"""/web/admin/accounts: the accounts at the admin's unit and under it; create one, and on an
account's own page disable or enable it, reset its password, change its roles.

What is allowed is decided by the account service (services/api/web/accounts.py): an admin acts
only on accounts of units it covers, and never disables or changes the roles of its own
account. A password the page makes up (a new account without a typed one, a reset) is shown
once, on the answer, and never again. Every change is written to the audit log."""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from services.api.web.accounts import AccountChange, UnknownAccount
from services.api.web.audit import record
from services.api.web.components import WebComponents
from services.api.web.deps import CurrentSession, Web
from services.api.web.errors import PageError
from services.api.web.pages.admin_access import admin_of, fmt_time, form_of, listing_keys, merged_page
from services.api.web.render import page
from services.api.web.session import Session
from shared.adapters.accounts import AccountExists, StaleAccount
from shared.domain.accounts import ROLES_VI, Account, AccountError, Role, check_password
from shared.domain.auth import Forbidden, Principal

router = APIRouter()

FIELDS_VI = {
    "username": "Tên đăng nhập",
    "display_name": "Họ tên",
    "unit": "Mã đơn vị",
    "roles": "Vai trò",
    "password": "Mật khẩu",
    "email": "Thư điện tử",
}
STALE = "Tài khoản vừa được người khác thay đổi; hãy mở lại trang và làm lại."


def made_up_password(username: str) -> str:
    """A random password the account rules accept: 16 URL-safe characters (96 bits)."""
    while True:
        candidate = secrets.token_urlsafe(12)
        try:
            return check_password(candidate, username)
        except AccountError:
            continue


def field_error(exc: AccountError) -> dict[str, str]:
    return {exc.field: f"{FIELDS_VI.get(exc.field, exc.field)} ({exc.field}): {exc.message}"}


def forbidden(exc: Forbidden) -> PageError:
    return PageError(403, f"Không được phép: {exc}")


async def accounts_page(
    web: WebComponents, principal: Principal, after: str | None
) -> tuple[list[Account], str | None]:
    async def fetch(key: str, cursor: str | None, size: int) -> tuple[list[Account], str | None]:
        found = await web.accounts.page(key, cursor, size)
        return found.items, found.next

    return await merged_page(listing_keys(web.tree, principal), fetch, lambda a: a.username, after, newest_first=False)


def context(**more: Any) -> dict[str, Any]:
    return {"roles_vi": ROLES_VI, "roles": list(Role), "fields": FIELDS_VI, "fmt_time": fmt_time, "errors": {}, **more}


async def render_list(request: Request, web: WebComponents, s: Session, status: int = 200, **more: Any) -> Response:
    accounts, next_after = await accounts_page(web, s.principal, more.pop("after", None))
    more.setdefault("errors", {})
    more.setdefault("values", {"unit": s.principal.unit, "roles": ["clerk"]})
    return page(
        request, web, "admin_accounts.html", s, status, **context(accounts=accounts, next_after=next_after, **more)
    )


async def audit(web: WebComponents, request: Request, principal: Principal, change: AccountChange) -> None:
    after = change.audit_after
    await record(
        web,
        request,
        principal,
        change.action,
        change.after.unit,
        subject=change.after.username,
        before=change.audit_before,
        after=after,
    )


def shown_once(answer: Response) -> Response:
    answer.headers["Cache-Control"] = "no-store"  # a password shown once: no copy kept by the browser
    return answer


@router.get("/admin/accounts")
async def accounts(request: Request, web: Web, s: CurrentSession, after: str | None = None) -> Response:
    admin_of(s.principal)
    return await render_list(request, web, s, after=after)


@router.post("/admin/accounts")
async def create(request: Request, web: Web, s: CurrentSession) -> Response:
    principal = admin_of(s.principal)
    values, multi = await form_of(request)
    roles = multi.get("roles", [])
    typed = values.get("password", "")
    password = typed or made_up_password(values.get("username", ""))
    try:
        change = await web.account_service.create(
            principal,
            username=values.get("username", ""),
            display_name=values.get("display_name", ""),
            unit=values.get("unit", ""),
            roles=roles,
            password=password,
            email=values.get("email", ""),
        )
    except AccountError as exc:
        kept = {k: v for k, v in values.items() if k != "password"}
        return await render_list(request, web, s, 422, errors=field_error(exc), values={**kept, "roles": roles})
    except AccountExists:
        errors = {"username": f"{FIELDS_VI['username']} (username): đã có tài khoản này"}
        return await render_list(request, web, s, 409, errors=errors, values={**values, "roles": roles, "password": ""})
    except Forbidden as exc:
        raise forbidden(exc) from None
    await audit(web, request, principal, change)
    if typed:
        return RedirectResponse(f"/web/admin/accounts/{change.after.username}?saved=create", status_code=303)
    answer = page(
        request, web, "admin_account.html", s, **context(account=change.after, new_password=password, saved="create")
    )
    return shown_once(answer)


@router.get("/admin/accounts/{username}")
async def account(request: Request, web: Web, s: CurrentSession, username: str, saved: str | None = None) -> Response:
    principal = admin_of(s.principal)
    try:
        found = await web.account_service.get(principal, username)
    except UnknownAccount:
        raise PageError(404, f"Không có tài khoản {username!r}.") from None
    except Forbidden as exc:
        raise forbidden(exc) from None
    return page(request, web, "admin_account.html", s, **context(account=found, saved=saved))


@router.post("/admin/accounts/{username}")
async def change(request: Request, web: Web, s: CurrentSession, username: str) -> Response:
    """The form's ``do``: disable, enable, reset (a new password, shown once) or roles."""
    principal = admin_of(s.principal)
    values, multi = await form_of(request)
    service, do = web.account_service, values.get("do", "")
    password = made_up_password(username) if do == "reset" else None
    try:
        if do == "disable":
            done = await service.disable(principal, username)
        elif do == "enable":
            done = await service.enable(principal, username)
        elif do == "roles":
            done = await service.set_roles(principal, username, multi.get("roles", []))
        elif do == "reset" and password is not None:
            done = await service.reset_password(principal, username, password)
        else:
            raise PageError(422, "Thao tác không hợp lệ (do): disable, enable, reset hoặc roles.")
    except UnknownAccount:
        raise PageError(404, f"Không có tài khoản {username!r}.") from None
    except Forbidden as exc:
        raise forbidden(exc) from None
    except StaleAccount:
        raise PageError(409, STALE) from None
    except AccountError as exc:
        found = await service.get(principal, username)
        return page(request, web, "admin_account.html", s, 422, **context(account=found, errors=field_error(exc)))
    await audit(web, request, principal, done)
    if password is None:
        return RedirectResponse(f"/web/admin/accounts/{username}?saved={do}", status_code=303)
    answer = page(request, web, "admin_account.html", s, **context(account=done.after, new_password=password, saved=do))
    return shown_once(answer)
