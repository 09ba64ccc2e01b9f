"""Reports from the pages go to ingest over HTTP, with the session's token, on one client that
opens and closes with the app (its connections are reused from one submission to the next).
Ingest's answers become what the pages say: a status, or an error next to the field it is about.

For an account's session the token is one minted for the request (deps.account_session), naming
the account and the browser's address: ingest and its audit entry know who sent the report and
from where, and a disabled account's token is refused like a revoked one."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from services.api.web import labels
from services.api.web.forms import schema_errors

log = logging.getLogger(__name__)
TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class Sent:
    """Ingest's answer to one report from the form: its ``outcome`` (accepted, duplicate...)
    when taken, else the ``errors`` to show by field and the page's HTTP status."""

    outcome: str | None
    errors: dict[str, str] = field(default_factory=dict)
    status: int = 200


@dataclass(frozen=True)
class BatchSent:
    """Ingest's answer to a batch of reports from a file, as the upload page's script reads it."""

    status: int
    body: dict[str, Any]


def _unavailable(status: int) -> Sent:
    return Sent(None, {"_form": labels.STATUSES["unavailable"]}, status)


def report_outcome(status: int, answer: Any, report: dict[str, Any]) -> Sent:
    """What the form says of ingest's answer ``status``/``answer`` (its JSON) to ``report``."""
    if status in (200, 202):
        return Sent(str(answer.get("status", "accepted")))
    if status == 422:
        errors = schema_errors(answer.get("detail") or [])
    elif status == 409:
        errors = {
            "revision": f"Báo cáo {report['report_id']} đã có bản {report['revision']} với nội dung khác. "
            "Để sửa số liệu, gửi bản số lớn hơn."
        }
    elif status == 403:
        errors = {"unit": labels.STATUSES["forbidden"]}
    else:
        errors = {"_form": labels.STATUSES["unavailable"]}
    return Sent(None, errors, 422 if status < 500 else 503)


def batch_results(answer: Any) -> list[dict[str, Any]]:
    """One result per report of a batch: its status, in words, and its errors by field label."""
    results = []
    for item in answer.get("results", []):
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
    return results


class IngestClient:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    @classmethod
    @asynccontextmanager
    async def open(cls, base_url: str) -> AsyncIterator[IngestClient]:
        async with httpx.AsyncClient(base_url=base_url, timeout=TIMEOUT_SECONDS) as http:
            yield cls(http)

    async def _post(self, token: str, path: str, payload: Any) -> httpx.Response:
        return await self._http.post(path, json=payload, headers={"Authorization": f"Bearer {token}"})

    async def send_report(self, token: str, report: dict[str, Any]) -> Sent:
        try:
            answer = await self._post(token, "/v1/reports", report)
        except httpx.HTTPError:
            log.warning("ingest unreachable from the web front end", exc_info=True)
            return _unavailable(503)
        body = answer.json() if answer.status_code in (200, 202, 422) else {}
        return report_outcome(answer.status_code, body, report)

    async def send_batch(self, token: str, reports: list[Any]) -> BatchSent:
        try:
            answer = await self._post(token, "/v1/reports/batch", reports)
        except httpx.HTTPError:
            return BatchSent(503, {"detail": labels.STATUSES["unavailable"]})
        if answer.status_code not in (200, 503):
            return BatchSent(answer.status_code, {"detail": labels.STATUSES.get("invalid", "")})
        return BatchSent(200, {"results": batch_results(answer.json())})
