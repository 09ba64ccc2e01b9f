"""The pages' one way to write the audit log (shared/domain/audit.py): who (the session's
principal), from where (the request's client address), what, about which unit, with the
figures or fields before and after.

Contract when the write fails (the database away, a timeout):
- it is never silent: the whole entry is logged at ERROR (so an operator can put it back) and
  counted in ``baocao_audit_write_failures_total`` by action;
- an account or token change (``account.*``, ``token.*``) then fails with a 503: such a change
  must not stand unrecorded without the person making it knowing, and they can make it again
  (callers record after the change is stored and before its result, such as a new token, is
  shown);
- anything else (logins, logouts, agency changes) goes on: refusing a login because the log is
  away would lock every person out, and an agency change is already in the registry.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import Request

from services.api.web.components import WebComponents
from services.api.web.errors import PageError
from shared.domain.audit import Action, AuditEntry, entry_scope
from shared.domain.auth import Principal

log = logging.getLogger(__name__)

NOT_RECORDED = (
    "Thay đổi đã được lưu nhưng chưa ghi được vào nhật ký kiểm tra; hãy kiểm tra lại và thực hiện lại sau ít giây."
)
MUST_RECORD = ("account.", "token.")  # actions that fail when their entry cannot be written


def origin_of(request: Request) -> str | None:
    """The address the request came from, as the server saw it."""
    return request.client.host if request.client is not None else None


async def record(
    web: WebComponents,
    request: Request,
    principal: Principal | None,
    action: Action,
    unit: str,
    *,
    subject: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    detail: str | None = None,
    period: str | None = None,
    actor: str | None = None,
) -> None:
    """Append an entry about ``unit`` by ``principal`` (``actor`` names who acts when there is no
    principal yet: a failed login's username). See the module's text for what a failure does."""
    entry = AuditEntry(
        at=time.time(),
        actor=actor or (principal.actor if principal is not None else "anonymous"),
        action=action,
        unit=unit,
        scope=entry_scope(web.tree, unit),
        origin=origin_of(request),
        period=period,
        subject=subject,
        before=before,
        after=after,
        detail=detail,
    )
    try:
        await web.api.audit.append(entry)
    except Exception:  # any failure of the store is handled the same way
        log.exception("audit entry not written", extra={"audit_entry": _loggable(entry)})
        web.api.metrics.audit_failures.labels(action.value).inc()
        if action.value.startswith(MUST_RECORD):
            raise PageError(503, NOT_RECORDED) from None


def _loggable(entry: AuditEntry) -> dict[str, Any]:
    return {
        "at": entry.at,
        "actor": entry.actor,
        "action": entry.action.value,
        "unit": entry.unit,
        "scope": list(entry.scope),
        "origin": entry.origin,
        "period": entry.period,
        "subject": entry.subject,
        "before": entry.before,
        "after": entry.after,
        "detail": entry.detail,
    }
