"""POST /v1/reports (one report) and POST /v1/reports/batch (up to max_batch, one result each).

Each route checks what belongs to the request (the token's scope for a batch, its size, the
token's rate), hands the reports to IngestService, and answers its Results: the single route with
``HTTP_STATUS`` of the verdict, the batch with each item's verdict as its ``status``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from services.ingest.components import IngestComponents
from services.ingest.deps import Components, CurrentPrincipal, components_of
from services.ingest.outcomes import (
    HTTP_STATUS,
    REJECTED,
    Result,
    Verdict,
    batch_status,
    clean_errors,
    count,
    in_body,
    log_rejected,
)
from services.ingest.ratelimit import retry_after
from services.ingest.service import Status
from shared.domain.auth import Principal, Scope
from shared.domain.reports import ReportIn
from shared.http.base import error, invalid_json

ONE = "/v1/reports"
BATCH = "/v1/reports/batch"

router = APIRouter()


class ReportAccepted(BaseModel):
    report_id: str
    revision: int
    status: Status = Field(description="accepted: published to Kafka; duplicate: this revision was already accepted")


class BatchItemOut(BaseModel):
    index: int
    report_id: str | None = None
    revision: int | None = None
    status: str = Field(description="accepted, duplicate, invalid, unknown_unit, forbidden, conflict or unavailable")
    errors: list[dict[str, Any]] | None = None


class BatchOut(BaseModel):
    accepted: int
    duplicates: int
    failed: int
    results: list[BatchItemOut]


@router.post(
    ONE,
    status_code=202,
    response_model=ReportAccepted,
    summary="Submit one report",
    responses={
        200: {"model": ReportAccepted, "description": "This revision was already accepted (duplicate)"},
        409: error("Conflicts with an earlier revision"),
        429: error("Too many reports for this token; see Retry-After"),
        422: error("Invalid report; errors name each field"),
        503: error("Kafka did not acknowledge; the report is not accepted, retry"),
    },
)
async def submit_report(
    report: Annotated[ReportIn, Body()],  # type: ignore[valid-type]  # a union built from the catalog
    components: Components,
    principal: CurrentPrincipal,
    request: Request,
) -> Any:
    if (limited := _rate_limited(components, principal, 1)) is not None:
        return limited
    result = await components.service.take(report, principal, origin_of(request))
    if result.verdict in REJECTED:
        log_rejected(ONE, result.verdict.value, in_body(result.errors), result.ids)
    return JSONResponse(_one_answer(result), status_code=HTTP_STATUS[result.verdict])


def _one_answer(result: Result) -> dict[str, Any]:
    """The single route's body for ``result``: the report's ids and status when it was taken;
    otherwise ``detail``, a list of errors located in the body (422) or a message."""
    if result.verdict in (Verdict.ACCEPTED, Verdict.DUPLICATE):
        assert result.report_id is not None and result.revision is not None  # a validated report's
        taken = ReportAccepted(report_id=result.report_id, revision=result.revision, status=Status(result.verdict))
        return taken.model_dump(mode="json")
    if HTTP_STATUS[result.verdict] == 422:
        return {"detail": [{**e, "type": e.get("type", result.verdict.value)} for e in in_body(result.errors)]}
    if result.verdict is Verdict.UNAVAILABLE:
        return {"detail": f"{result.message}; the report was not accepted, please retry"}
    return {"detail": result.message}


@router.post(
    BATCH,
    response_model=BatchOut,
    summary="Submit up to max_batch reports; one result per item, in order",
    responses={
        413: error("Too many items or too large a body"),
        429: error("Too many reports for this token; see Retry-After"),
        503: {"description": "Kafka did not acknowledge some items (status 'unavailable'); retry those"},
    },
)
async def submit_batch(
    items: Annotated[list[dict[str, Any]], Body(description="Reports, as for POST /v1/reports")],
    components: Components,
    principal: CurrentPrincipal,
    request: Request,
) -> Any:
    if Scope.SUBMIT not in principal.scopes:
        return JSONResponse({"detail": "this token lacks the 'submit' scope"}, status_code=403)
    most = components.settings.max_batch
    if len(items) > most:
        return JSONResponse(
            {"detail": f"a batch holds at most {most} reports; this one has {len(items)}"}, status_code=413
        )
    if (limited := _rate_limited(components, principal, len(items))) is not None:
        return limited
    results = await components.service.take_batch(items, principal, origin_of(request))
    for index, result in enumerate(results):
        if result.verdict in REJECTED:
            log_rejected(BATCH, result.verdict.value, result.errors, result.ids, index)
    out = BatchOut(
        accepted=sum(r.verdict is Verdict.ACCEPTED for r in results),
        duplicates=sum(r.verdict is Verdict.DUPLICATE for r in results),
        failed=sum(r.verdict not in (Verdict.ACCEPTED, Verdict.DUPLICATE) for r in results),
        results=[
            BatchItemOut(
                index=i, report_id=r.report_id, revision=r.revision, status=r.verdict.value, errors=r.errors or None
            )
            for i, r in enumerate(results)
        ],
    )
    return JSONResponse(out.model_dump(mode="json", exclude_none=True), status_code=batch_status(results))


def origin_of(request: Request) -> str | None:
    """Where the request came from, for the audit log (a token minted for a person by the pages
    carries the person's own address instead, which the service prefers)."""
    return request.client.host if request.client is not None else None


def _rate_limited(components: IngestComponents, principal: Principal, cost: int) -> JSONResponse | None:
    """429 with Retry-After when the token has sent more than its rate allows; None otherwise."""
    wait = retry_after(components.limiter, principal.token_id, cost)
    if wait is None:
        return None
    components.metrics.reports.labels("rate_limited").inc(cost)
    return JSONResponse(
        {"detail": f"too many reports for this token; retry after {wait} s"},
        status_code=429,
        headers={"Retry-After": str(wait)},
    )


def answer_invalid_reports(app: FastAPI) -> None:
    """A body that fails validation is counted and logged as a rejected report: 400 when it is
    not JSON at all (nothing of it is read), 422 with the errors otherwise, each naming its field."""

    async def invalid_request(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = clean_errors(exc.errors())
        count(components_of(request.app).metrics, Verdict.INVALID, exc.errors())
        not_json = invalid_json(exc)
        if not_json is not None:
            log_rejected(request.url.path, "invalid_json", errors)
            return not_json
        body = exc.body if isinstance(exc.body, dict) else {}
        log_rejected(request.url.path, Verdict.INVALID.value, errors, body)
        return JSONResponse({"detail": errors}, status_code=422)

    app.add_exception_handler(RequestValidationError, invalid_request)


def declare_batch_items(app: FastAPI, max_batch: int) -> None:
    """The batch's items in the OpenAPI schema are the single route's report (one of the kinds,
    by ``kind``), not "any object". The route itself takes plain objects and validates each on
    its own, so that one bad item gets its own errors and the others still go through."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        paths = schema["paths"]
        report = paths[ONE]["post"]["requestBody"]["content"]["application/json"]["schema"]
        paths[BATCH]["post"]["requestBody"]["content"]["application/json"]["schema"] = {
            "type": "array",
            "items": report,
            "maxItems": max_batch,
            "title": "Reports",
            "description": f"Up to {max_batch} reports, each as for POST /v1/reports; each is checked on its own",
        }
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
