"""POST /v1/exchange/dataValueSets: a DHIS2 data value set (JSON or CSV) taken as reports.

The values become reports (shared/domain/exchange.py: one per unit, series and period, with the
mapping of BAOCAO_EXCHANGE_MAPPING), each at the revision the submission log calls for
(``choose_revision``), and are taken like a batch (``IngestService.take_batch``: the token's
subtree, the units, validation, Kafka). The answer is DHIS2's import summary, counted per data
value: ``imported`` (in a report new to baocao), ``updated`` (in a new revision), ``ignored``
(unchanged, or in ``conflicts``, each with the reason).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from functools import partial
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from pymongo.errors import PyMongoError

from services.ingest.components import IngestComponents
from services.ingest.deps import Components, CurrentPrincipal
from services.ingest.outcomes import Result, Verdict, batch_status
from services.ingest.ratelimit import retry_after
from services.ingest.routes.reports import origin_of
from services.ingest.service import digest
from shared.domain.auth import Principal, Scope
from shared.domain.exchange import (
    DEFAULT_MAPPING_PATH,
    MAPPING_SETTING,
    Conflict,
    DataValue,
    ExchangeError,
    ExchangeMapping,
    ReportDraft,
    choose_revision,
    data_values_from_csv,
    data_values_from_json,
    drafts_from_values,
    load_mapping,
)
from shared.domain.reports import REPORT_ADAPTER
from shared.http.base import ErrorOut, error

PATH = "/v1/exchange/dataValueSets"
CSV_TYPES = ("text/csv", "application/csv")

router = APIRouter()


class ImportCount(BaseModel):
    imported: int = Field(description="data values in reports new to baocao")
    updated: int = Field(description="data values in a new revision of a report (something in it changed)")
    ignored: int = Field(description="data values unchanged since the last import, or in conflicts")
    deleted: int = Field(description="always 0: a deletion is not imported")


class ConflictOut(BaseModel):
    object: str = Field(description="the data element, org unit or line at fault")
    value: str = Field(description="why the value was not taken")
    indexes: list[int] = Field(description="positions of the data values concerned in the set (0 first)")


class ImportSummaryOut(BaseModel):
    responseType: Literal["ImportSummary"] = "ImportSummary"
    status: Literal["SUCCESS", "WARNING", "ERROR"]
    description: str
    importCount: ImportCount
    conflicts: list[ConflictOut]


BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "object", "title": "DataValueSet"}},
            "text/csv": {"schema": {"type": "string", "title": "DataValueSetCsv"}},
        },
    }
}


def mapping() -> ExchangeMapping:
    """The mapping BAOCAO_EXCHANGE_MAPPING names (the shipped one when unset); 503 naming the
    file and the key when it cannot be used."""
    try:
        return load_mapping(os.environ.get(MAPPING_SETTING) or str(DEFAULT_MAPPING_PATH))
    except ExchangeError as exc:
        raise HTTPException(503, f"the exchange mapping cannot be used: {exc}") from None


async def read_values(request: Request) -> tuple[list[DataValue], list[Conflict]]:
    """The data values of the body, by its Content-Type: 400 when it is not JSON (or UTF-8), 415
    for another type, 422 when it is not a data value set."""
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    raw = await request.body()
    try:
        if kind in CSV_TYPES:
            return data_values_from_csv(raw.decode("utf-8"))
        if kind != "application/json":
            raise HTTPException(415, f"send application/json or text/csv, not {kind}")
        return data_values_from_json(json.loads(raw))
    except UnicodeDecodeError:
        raise HTTPException(400, "the body is not UTF-8 text") from None
    except ValueError as exc:
        if isinstance(exc, ExchangeError):
            raise HTTPException(422, [{"loc": ["body"], "msg": str(exc), "type": "data_value_set"}]) from None
        raise HTTPException(400, f"the body is not valid JSON: {exc}") from None


def _digest_at(draft: ReportDraft, revision: int) -> str | None:
    """The digest ingest keeps of the draft sent at ``revision`` (services/ingest/service.py
    ``digest`` of the validated report); None when the report would not be valid."""
    try:
        report = REPORT_ADAPTER.validate_python(draft.report(revision))
    except ValidationError:
        return None
    return digest(report.model_dump(mode="json"))


async def revisions(components: IngestComponents, drafts: list[ReportDraft]) -> list[int]:
    """The revision to send each draft at; 503 when the submission log cannot be read (without
    it a changed value could not be told from an unchanged one)."""
    log = components.service.submissions
    try:
        # at once: the MongoDB log answers concurrent lookups in bulk
        priors = await asyncio.gather(*(log.get(d.unit, d.report_id) for d in drafts))
    except PyMongoError:
        raise HTTPException(503, "the submission log cannot be read; nothing was imported, retry") from None
    return [
        choose_revision(prior.revisions if prior else None, partial(_digest_at, draft))
        for draft, prior in zip(drafts, priors, strict=True)
    ]


def _reason(result: Result, draft: ReportDraft) -> Conflict:
    """A refused report as a conflict: its data element when an error names a body field."""
    obj = draft.org_unit
    reasons = []
    for e in result.errors:
        loc = [str(part) for part in e.get("loc", ())]
        if loc and loc[0] == draft.report(1)["kind"]:  # the report's kind, where pydantic's errors start
            loc = loc[1:]
        if len(loc) >= 2 and loc[0] == "body" and loc[1] in draft.elements and obj == draft.org_unit:
            obj = draft.elements[loc[1]]
        reasons.append(f"{'.'.join(loc) or 'report'}: {e.get('msg', '')}")
    where = f"{draft.series} of {draft.unit} in {draft.period}"
    return Conflict(obj, f"{where} ({result.verdict.value}): {'; '.join(reasons)}", tuple(draft.indexes))


def summary(drafts: list[ReportDraft], results: list[Result], conflicts: list[Conflict]) -> ImportSummaryOut:
    counts: Counter[str] = Counter()
    for draft, result in zip(drafts, results, strict=True):
        if result.verdict is Verdict.ACCEPTED:
            counts["updated" if (result.revision or 1) > 1 else "imported"] += len(draft.indexes)
        elif result.verdict is Verdict.DUPLICATE:
            counts["unchanged"] += len(draft.indexes)
        else:
            conflicts.append(_reason(result, draft))
    counts["ignored"] = counts["unchanged"] + sum(len(c.indexes) for c in conflicts)
    # as DHIS2 says it: every value taken or unchanged, some not, or none
    fine = counts["imported"] + counts["updated"] + counts["unchanged"]
    status: Literal["SUCCESS", "WARNING", "ERROR"] = "SUCCESS" if not conflicts else "WARNING" if fine else "ERROR"
    return ImportSummaryOut(
        status=status,
        description=f"{len(results)} reports from the data values; {len(conflicts)} conflicts",
        importCount=ImportCount(
            imported=counts["imported"], updated=counts["updated"], ignored=counts["ignored"], deleted=0
        ),
        conflicts=[ConflictOut.model_validate(c.as_json()) for c in conflicts],
    )


def _check_rate(components: IngestComponents, principal: Principal, cost: int) -> None:
    """429 with Retry-After when the token has sent more reports than its rate allows."""
    wait = retry_after(components.limiter, principal.token_id, cost)
    if wait is not None:
        components.metrics.reports.labels("rate_limited").inc(cost)
        raise HTTPException(429, f"too many reports for this token; retry after {wait} s", {"Retry-After": str(wait)})


@router.post(
    PATH,
    response_model=ImportSummaryOut,
    summary="Import a DHIS2 data value set (JSON or CSV): its values become reports",
    openapi_extra=BODY,
    responses={
        413: error("More reports than a batch holds, or too large a body"),
        415: error("Neither application/json nor text/csv"),
        429: error("Too many reports for this token; see Retry-After"),
        503: {
            "model": ImportSummaryOut | ErrorOut,
            "description": "Kafka did not acknowledge some reports (their conflicts say so; send the set "
            "again), or the submission log or the mapping cannot be used",
        },
    },
)
async def import_data_value_set(request: Request, components: Components, principal: CurrentPrincipal) -> Any:
    if Scope.SUBMIT not in principal.scopes:
        raise HTTPException(403, "this token lacks the 'submit' scope")
    values, conflicts = await read_values(request)
    drafts, more = drafts_from_values(values, mapping(), components.service.catalog)
    conflicts += more
    most = components.settings.max_batch
    if len(drafts) > most:
        raise HTTPException(413, f"a data value set makes at most {most} reports here; this one makes {len(drafts)}")
    _check_rate(components, principal, len(drafts))
    reports = [d.report(r) for d, r in zip(drafts, await revisions(components, drafts), strict=True)]
    results = await components.service.take_batch(reports, principal, origin_of(request)) if reports else []
    out = summary(drafts, results, conflicts)
    return JSONResponse(out.model_dump(mode="json"), status_code=batch_status(results))
