"""/web/admin/tokens: machine tokens for units' systems (HTTP and Kafka), issued, listed and
revoked by an admin.

An admin issues a token for a unit it covers, for at most ``MAX_DAYS`` days, with the scopes it
may give there: those of the roles it may grant an account at that unit (every role is at or
below admin, services/api/web/accounts.py), so a token is never more than an account the same
admin could create; a system that sends reports needs ``submit``, which an admin holds only
through the roles it grants. The token is shown once, on the answer to the form, and never stored: the
registry (shared/adapters/tokens.py) keeps its id (the ``jti``) and what it grants. Revoking puts
the id in the revoked list, which the API, ingest, the Kafka path and the live streams read
within seconds, and marks the registry's entry."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from services.api.agencies import plain_name
from services.api.web.accounts import account_scope
from services.api.web.audit import record
from services.api.web.components import WebComponents
from services.api.web.deps import CurrentSession, Web
from services.api.web.errors import PageError
from services.api.web.pages.admin_access import admin_of, check_covers, fmt_time, form_of, listing_keys, merged_page
from services.api.web.render import page
from services.api.web.session import Session
from shared.adapters.revocations import RevocationsUnavailable
from shared.adapters.tokens import IssuedToken, TokenPage, new_token_id
from shared.domain.accounts import ROLE_SCOPES
from shared.domain.audit import Action
from shared.domain.auth import Principal, Scope, mint
from shared.domain.hierarchy import COUNTRY

router = APIRouter()

MAX_DAYS = 365  # a system's token is renewed at least yearly
MAX_LABEL_CHARS = 100
SCOPES_VI = {
    Scope.SUBMIT: "Gửi báo cáo (submit)",
    Scope.READ: "Xem số liệu (read)",
    Scope.STREAM: "Theo dõi trực tiếp (stream)",
    Scope.ADMIN: "Quản trị (admin)",
    Scope.APPROVE: "Duyệt số liệu (approve)",
}
FIELDS_VI = {"label": "Tên gọi", "unit": "Mã đơn vị", "scopes": "Quyền", "days": "Thời hạn (ngày)"}


def grantable(admin: Principal) -> frozenset[Scope]:
    """The scopes ``admin`` may put in a token: those of every role it may grant an account."""
    return frozenset().union(*ROLE_SCOPES.values()) if Scope.ADMIN in admin.scopes else frozenset()


def checked_issue(
    values: dict[str, str], scopes: list[str], own: frozenset[Scope]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The form's label, unit, scopes and days checked: (the values, the errors by field)."""
    errors: dict[str, str] = {}
    label = " ".join(values.get("label", "").split())
    try:
        if not 1 <= len(label) <= MAX_LABEL_CHARS:
            raise ValueError(f"1-{MAX_LABEL_CHARS} ký tự")
        plain_name(label)
    except ValueError as exc:
        errors["label"] = str(exc)
    granted = set()
    for value in scopes:
        try:
            granted.add(Scope(value))
        except ValueError:
            errors["scopes"] = f"không có quyền {value!r}"
    if not granted and "scopes" not in errors:
        errors["scopes"] = "chọn ít nhất một quyền"
    elif granted - own:
        errors["scopes"] = f"chỉ cấp được các quyền: {', '.join(sorted(own))}"
    days = values.get("days", "")
    if not days.isdigit() or not 1 <= int(days) <= MAX_DAYS:
        errors["days"] = f"một số nguyên từ 1 đến {MAX_DAYS}"
    if not values.get("unit"):
        errors["unit"] = "nhập mã đơn vị"
    named = {k: f"{FIELDS_VI[k]} ({k}): {m}" for k, m in errors.items()}
    return {"label": label, "unit": values.get("unit", ""), "scopes": granted, "days": days}, named


async def tokens_page(
    web: WebComponents, principal: Principal, after: str | None
) -> tuple[list[IssuedToken], str | None]:
    async def fetch(key: str, cursor: str | None, size: int) -> tuple[list[IssuedToken], str | None]:
        found: TokenPage = await web.tokens.page(key, cursor, size)
        return found.items, found.next

    return await merged_page(listing_keys(web.tree, principal), fetch, lambda t: t.id, after, newest_first=True)


async def render(request: Request, web: WebComponents, s: Session, status: int = 200, **context: Any) -> Response:
    tokens, next_after = await tokens_page(web, s.principal, context.pop("after", None))
    context.setdefault("errors", {})
    context.setdefault("values", {"days": "90", "unit": s.principal.unit})
    own = [(scope, SCOPES_VI[scope]) for scope in Scope if scope in grantable(s.principal)]
    return page(
        request,
        web,
        "admin_tokens.html",
        s,
        status,
        tokens=tokens,
        next_after=next_after,
        own_scopes=own,
        max_days=MAX_DAYS,
        now=time.time(),
        fmt_time=fmt_time,
        **context,
    )


@router.get("/admin/tokens")
async def tokens(request: Request, web: Web, s: CurrentSession, after: str | None = None) -> Response:
    admin_of(s.principal)
    return await render(request, web, s, after=after)


@router.post("/admin/tokens")
async def issue(request: Request, web: Web, s: CurrentSession) -> Response:
    principal = admin_of(s.principal)
    values, multi = await form_of(request)
    wanted, errors = checked_issue(values, multi.get("scopes", []), grantable(principal))
    if errors:
        return await render(request, web, s, 422, errors=errors, values={**values, "scopes": multi.get("scopes", [])})
    if wanted["unit"] != COUNTRY and not web.tree.known_anywhere(wanted["unit"]):
        errors = {"unit": f"{FIELDS_VI['unit']} (unit): không có đơn vị {wanted['unit']!r}"}
        return await render(request, web, s, 422, errors=errors, values={**values, "scopes": multi.get("scopes", [])})
    check_covers(web.tree, principal, wanted["unit"])
    now = time.time()
    token_id = new_token_id(now)
    lifetime = int(wanted["days"]) * 86_400
    token = mint(web.config.secret, wanted["unit"], wanted["scopes"], lifetime, now, token_id=token_id)
    issued = IssuedToken(
        id=token_id,
        label=wanted["label"],
        unit=wanted["unit"],
        scopes=frozenset(s.value for s in wanted["scopes"]),
        issued_by=principal.actor,
        issued_at=now,
        expires_at=int(now) + lifetime,
        scope=account_scope(web.tree, wanted["unit"]),
    )
    await web.tokens.add(issued)
    after = {
        "label": issued.label,
        "unit": issued.unit,
        "scopes": sorted(issued.scopes),
        "expires_at": issued.expires_at,
    }
    await record(web, request, principal, Action.TOKEN_ISSUE, issued.unit, subject=token_id, after=after)
    answer = page(request, web, "admin_token_issued.html", s, token=token, issued=issued, fmt_time=fmt_time)
    answer.headers["Cache-Control"] = "no-store"  # shown once: no copy kept by the browser
    return answer


@router.post("/admin/tokens/{token_id}/revoke")
async def revoke(request: Request, web: Web, s: CurrentSession, token_id: str) -> Response:
    principal = admin_of(s.principal)
    issued = await web.tokens.get(token_id)
    if issued is None:
        raise PageError(404, f"Không có mã truy cập {token_id!r} do trang quản trị cấp.")
    check_covers(web.tree, principal, issued.unit)
    try:
        await web.api.auth.revocations.revoke(token_id, f"revoked by {principal.actor}")
    except RevocationsUnavailable:
        raise PageError(503, "Chưa thu hồi được mã: danh sách thu hồi không phản hồi; hãy thử lại.") from None
    revoked = await web.tokens.revoke(token_id, time.time())
    if issued.revoked_at is None and revoked is not None:
        before, after = {"revoked_at": None}, {"revoked_at": revoked.revoked_at}
        await record(
            web, request, principal, Action.TOKEN_REVOKE, issued.unit, subject=token_id, before=before, after=after
        )
    return RedirectResponse(f"/web/admin/tokens?revoked={token_id}", status_code=303)
