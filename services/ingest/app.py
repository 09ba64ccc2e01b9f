"""The ingest service: `create_app(settings)` is its composition root.

Routes only translate: parse the body, call IngestService, map the outcome to a status code.
"""

import asyncio
import logging
import math
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError

from services.ingest.metrics import IngestMetrics
from services.ingest.publisher import KafkaPublisher, Publisher, PublishFailed
from services.ingest.ratelimit import RateLimiter
from services.ingest.service import (
    ConflictError,
    FutureReportError,
    IngestService,
    Outcome,
    OutsideSubtreeError,
    Status,
    UnknownUnitError,
    utc_now,
)
from services.ingest.settings import IngestSettings
from services.ingest.submissions import MongoSubmissionLog, SubmissionLog
from shared.adapters.mongo import make_client, ping
from shared.adapters.registry import AgencyRegistry
from shared.adapters.revocations import InMemoryRevocations, MongoRevocations, Revocations
from shared.domain.auth import Principal, Scope
from shared.domain.catalog import load_catalog
from shared.domain.hierarchy import COUNTRY, OrgTree, load_vietnam
from shared.domain.reports import REPORT_ADAPTER, ReportIn
from shared.domain.stamps import stamp_key
from shared.http.base import (
    COMMON_RESPONSES,
    NO_TELEMETRY,
    Authenticator,
    CurrentPrincipal,
    add_body_size_limit,
    add_request_metrics,
    authorize,
    error,
    invalid_json,
    name_unparsable_bodies,
    probes_router,
)
from shared.http.early_auth import check_bearer_before_body
from shared.startup import freeze_startup_objects

log = logging.getLogger(__name__)
BATCH_CONCURRENCY = 200


async def get_service(request: Request) -> IngestService:  # a coroutine: no worker thread per request
    return request.app.state.components["service"]  # type: ignore[no-any-return]


Service = Annotated[IngestService, Depends(get_service)]


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


def _validation_reasons(errors: list[Any]) -> list[str]:
    return [str(e.get("type", "invalid")) for e in errors]


_TOKEN = re.compile(r"bcv1\.[A-Za-z0-9_.=-]+")
LOGGED_ERRORS = 20  # per rejected report
LOGGED_CHARS = 200  # per message, report id or unit


def _short(value: Any) -> str:
    """Printable, bounded, and with anything that looks like a token blanked out."""
    return _TOKEN.sub("bcv1.<redacted>", str(value))[:LOGGED_CHARS]


def log_rejected(
    route: str, reason: str, errors: list[dict[str, Any]], raw: Any = None, index: int | None = None
) -> None:
    """One JSON log line (WARNING) per rejected report: why, which fields, and its report_id and
    unit when they can be read. Headers, and so tokens, are never logged."""
    fields: dict[str, Any] = {"route": route, "reason": reason}
    if index is not None:
        fields["index"] = index
    if isinstance(raw, dict):
        for key in ("report_id", "unit"):
            if isinstance(raw.get(key), str):
                fields[key] = _short(raw[key])
    fields["errors"] = [
        {"loc": [_short(part) for part in e.get("loc", ())], "msg": _short(e.get("msg", ""))}
        for e in errors[:LOGGED_ERRORS]
    ]
    if len(errors) > LOGGED_ERRORS:
        fields["errors_not_logged"] = len(errors) - LOGGED_ERRORS
    log.warning("rejected report", extra=fields)


def create_app(
    settings: IngestSettings,
    *,
    publisher: Publisher | None = None,
    submissions: SubmissionLog | None = None,
    tree: OrgTree | None = None,
    revocations: Revocations | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> FastAPI:
    """Real adapters are opened in the lifespan unless fakes are passed in (unit tests); ``clock``
    gives the receipt time of each report."""
    metrics = IngestMetrics()
    catalog = load_catalog()
    limiter = RateLimiter(settings.rate_limit_per_second, max(settings.rate_limit_burst, settings.max_batch))

    def rate_limited(principal: Principal, cost: int) -> JSONResponse | None:
        wait = limiter.acquire(principal.token_id, cost)
        if not wait:
            return None
        metrics.reports.labels("rate_limited").inc(cost)
        retry = "3600" if math.isinf(wait) else str(max(1, math.ceil(wait)))
        return JSONResponse(
            {"detail": f"too many reports for this token; retry after {retry} s"},
            status_code=429,
            headers={"Retry-After": retry},
        )

    state: dict[str, Any] = {}

    def outside_whatever_exists(principal: Principal, unit: str) -> bool:
        """Whether ``unit`` is outside the token's subtree in every version of the tree whether
        or not it exists, decided from the token's unit and the code alone (an agency's code
        ``<parent>-<slug>`` names its parent; any other code stands for itself), before the
        registry is asked: a neighbour's registered agency and a missing one take the same path
        and the same work, so the time of the 403 does not tell whether it exists. A code that
        passes is the token's own or under it, and is looked up and checked as before."""
        if principal.unit == COUNTRY or unit == principal.unit:
            return False
        parent = unit.partition("-")[0]
        org: OrgTree = state["tree"]
        return not any(parent in t and principal.covers(t, parent) for t in org.versions)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        org = tree or load_vietnam(settings.province_codes)
        mongo = None
        pub = publisher
        subs = submissions
        refresher = None
        registry = None
        if pub is None:
            kafka = KafkaPublisher(
                settings.kafka_bootstrap_servers,
                settings.reports_topic,
                settings.produce_timeout_seconds,
                credentials=settings.kafka_credentials,
                stamp_key=stamp_key(settings.auth_secret.get_secret_value()),
            )
            await kafka.start()
            pub = kafka
        if subs is None:
            # from the primary whatever MONGODB_READ_PREFERENCE says: the submission log decides
            # what is a duplicate or a revision, which a lagging secondary would get wrong
            mongo = make_client(settings.mongodb_uri, "baocao-ingest")
            log_store = MongoSubmissionLog(mongo, settings.mongodb_database)
            await log_store.ensure_indexes()  # the web pages list a subtree's reports, newest first
            subs = log_store
            registry = AgencyRegistry(mongo, settings.mongodb_database, org)
            await registry.refresh()
            # after the registry: an agency's reports are placed by its path in the tree
            await log_store.backfill_scope(org)
            refresher = asyncio.create_task(registry.refresh_forever())
        revoked = revocations or (
            MongoRevocations(mongo, settings.mongodb_database) if mongo else InMemoryRevocations()
        )
        state["auth"] = Authenticator(settings.auth_secret.get_secret_value(), revoked)
        state["tree"] = org
        state["service"] = IngestService(
            pub, subs, org, catalog, metrics, registry.lookup if registry else None, clock=clock
        )
        state["publisher"] = pub
        state["mongo"] = mongo
        if mongo is not None:  # a real deployment, not an app built by a test
            freeze_startup_objects()
        try:
            yield
        finally:
            if refresher:
                refresher.cancel()
            if isinstance(pub, KafkaPublisher):
                await pub.stop()
            if mongo is not None:
                await mongo.close()

    app = FastAPI(
        telemetry=NO_TELEMETRY,
        title="baocao ingest",
        version="1",
        description="Local units submit reports here. Each is validated, published to Kafka and "
        "acknowledged only after the broker has it.",
        lifespan=lifespan,
        responses=COMMON_RESPONSES,
    )

    async def ready() -> dict[str, bool]:
        checks = {"kafka": await state["publisher"].ready()}
        if state.get("mongo") is not None:
            try:
                await ping(state["mongo"])
                checks["mongodb"] = True
            except Exception:  # noqa: BLE001 - readiness reports, it does not raise
                checks["mongodb"] = False
        return checks

    name_unparsable_bodies(app)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        for reason in _validation_reasons(list(exc.errors())):
            metrics.validation_failures.labels(reason).inc()
        metrics.reports.labels("invalid").inc()
        errors = _clean_errors(exc.errors())
        not_json = invalid_json(exc)
        if not_json is not None:  # the body is not JSON at all: 400, and nothing of it is read
            log_rejected(request.url.path, "invalid_json", errors)
            return not_json
        log_rejected(request.url.path, "invalid", errors, exc.body)
        return JSONResponse({"detail": errors}, status_code=422)

    @app.post(
        "/v1/reports",
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
        service: Service,
        principal: CurrentPrincipal,
    ) -> Any:
        if (limited := rate_limited(principal, 1)) is not None:
            return limited
        # Units must be in the token's subtree; an unknown unit the token could see if it existed is
        # answered 422 by the service, any other 403 like a neighbour's (no probing for units).
        unit: str = report.unit  # type: ignore[attr-defined]  # every member of the union has it
        ids = {"report_id": report.report_id, "unit": unit}  # type: ignore[attr-defined]
        if outside_whatever_exists(principal, unit):
            metrics.reports.labels("forbidden").inc()
            detail = f"unit {unit} is outside this token's unit {principal.unit}"
            log_rejected("/v1/reports", "forbidden", [{"loc": ["body", "unit"], "msg": detail}], ids)
            return JSONResponse({"detail": detail}, status_code=403)
        await service.known(unit)  # loads an agency registered through the API a moment ago
        try:
            authorize(principal, Scope.SUBMIT, state["tree"].holding(unit, report.period), unit)  # type: ignore[attr-defined]
        except HTTPException as exc:
            log_rejected("/v1/reports", "forbidden", [{"loc": ["body", "unit"], "msg": exc.detail}], ids)
            raise
        try:
            outcome = await service.submit(report, principal)
        except OutsideSubtreeError as exc:
            metrics.reports.labels("forbidden").inc()
            log_rejected("/v1/reports", "forbidden", [{"loc": ["body", "unit"], "msg": str(exc)}], ids)
            return JSONResponse({"detail": str(exc)}, status_code=403)
        except UnknownUnitError as exc:
            metrics.reports.labels("unknown_unit").inc()
            errors = [{"loc": ["body", "unit"], "msg": str(exc), "type": "unknown_unit"}]
            log_rejected("/v1/reports", "unknown_unit", errors, ids)
            return JSONResponse({"detail": errors}, status_code=422)
        except ConflictError as exc:
            metrics.reports.labels("conflict").inc()
            log_rejected("/v1/reports", "conflict", [{"loc": [], "msg": str(exc)}], ids)
            return JSONResponse({"detail": str(exc)}, status_code=409)
        except FutureReportError as exc:
            for e in exc.errors:
                metrics.validation_failures.labels(e["type"]).inc()
            metrics.reports.labels("invalid").inc()
            errors = [{**e, "loc": ["body", *e["loc"]]} for e in exc.errors]
            log_rejected("/v1/reports", "invalid", errors, ids)
            return JSONResponse({"detail": errors}, status_code=422)
        except PublishFailed as exc:
            metrics.reports.labels("unavailable").inc()
            return JSONResponse({"detail": f"{exc}; the report was not accepted, please retry"}, status_code=503)
        metrics.reports.labels(outcome.status.value).inc()
        body = ReportAccepted(report_id=outcome.report_id, revision=outcome.revision, status=outcome.status)
        return JSONResponse(body.model_dump(mode="json"), status_code=202 if outcome.status == Status.ACCEPTED else 200)

    @app.post(
        "/v1/reports/batch",
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
        service: Service,
        principal: CurrentPrincipal,
    ) -> Any:
        if Scope.SUBMIT not in principal.scopes:
            return JSONResponse({"detail": "this token lacks the 'submit' scope"}, status_code=403)
        if len(items) > settings.max_batch:
            return JSONResponse(
                {"detail": f"a batch holds at most {settings.max_batch} reports; this one has {len(items)}"},
                status_code=413,
            )
        if (limited := rate_limited(principal, len(items))) is not None:
            return limited
        gate = asyncio.Semaphore(BATCH_CONCURRENCY)

        async def one(index: int, raw: dict[str, Any]) -> BatchItemOut:
            try:
                report = REPORT_ADAPTER.validate_python(raw)
            except ValidationError as exc:
                for reason in _validation_reasons(exc.errors()):
                    metrics.validation_failures.labels(reason).inc()
                metrics.reports.labels("invalid").inc()
                problems = _clean_errors(exc.errors())
                log_rejected("/v1/reports/batch", "invalid", problems, raw, index)
                return BatchItemOut(
                    index=index,
                    report_id=raw.get("report_id") if isinstance(raw.get("report_id"), str) else None,
                    status="invalid",
                    errors=problems,
                )
            ids = {"report_id": report.report_id, "unit": report.unit}
            outside = outside_whatever_exists(principal, report.unit)
            if not outside:
                await service.known(report.unit)  # loads an agency registered a moment ago
            if outside or not principal.may_see(state["tree"].holding(report.unit, report.period), report.unit):
                metrics.reports.labels("forbidden").inc()
                problems = [
                    {"loc": ["unit"], "msg": f"unit {report.unit} is outside this token's unit {principal.unit}"}
                ]
                log_rejected("/v1/reports/batch", "forbidden", problems, ids, index)
                return BatchItemOut(
                    index=index,
                    report_id=report.report_id,
                    revision=report.revision,
                    status="forbidden",
                    errors=problems,
                )
            async with gate:
                outcome: Outcome | None = None
                try:
                    outcome = await service.submit(report, principal)
                    status = outcome.status.value
                    errors = None
                except OutsideSubtreeError as exc:
                    status, errors = "forbidden", [{"loc": ["unit"], "msg": str(exc)}]
                except UnknownUnitError as exc:
                    status, errors = "unknown_unit", [{"loc": ["unit"], "msg": str(exc)}]
                except ConflictError as exc:
                    status, errors = "conflict", [{"loc": [], "msg": str(exc)}]
                except FutureReportError as exc:
                    status, errors = "invalid", exc.errors
                except PublishFailed as exc:
                    status, errors = "unavailable", [{"loc": [], "msg": str(exc)}]
            metrics.reports.labels(status).inc()
            if status in ("unknown_unit", "conflict", "forbidden", "invalid"):
                log_rejected("/v1/reports/batch", status, errors or [], ids, index)
            return BatchItemOut(
                index=index, report_id=report.report_id, revision=report.revision, status=status, errors=errors
            )

        results = await asyncio.gather(*(one(i, raw) for i, raw in enumerate(items)))
        out = BatchOut(
            accepted=sum(r.status == "accepted" for r in results),
            duplicates=sum(r.status == "duplicate" for r in results),
            failed=sum(r.status not in ("accepted", "duplicate") for r in results),
            results=list(results),
        )
        code = 503 if any(r.status == "unavailable" for r in results) else 200
        return JSONResponse(out.model_dump(mode="json", exclude_none=True), status_code=code)

    _declare_batch_items(app, settings.max_batch)
    app.include_router(probes_router(metrics.registry, ready))
    check_bearer_before_body(app, settings.auth_secret.get_secret_value())  # no body read without a token
    add_body_size_limit(app, settings.max_body_bytes)
    add_request_metrics(app, metrics.requests, metrics.request_seconds)
    app.state.metrics = metrics
    app.state.components = state
    return app


def _declare_batch_items(app: FastAPI, max_batch: int) -> None:
    """The batch's items in the OpenAPI schema are the single route's report (one of the kinds,
    by ``kind``), not "any object". The route itself takes plain objects and validates each on
    its own, so that one bad item gets its own errors and the others still go through."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        paths = schema["paths"]
        report = paths["/v1/reports"]["post"]["requestBody"]["content"]["application/json"]["schema"]
        paths["/v1/reports/batch"]["post"]["requestBody"]["content"]["application/json"]["schema"] = {
            "type": "array",
            "items": report,
            "maxItems": max_batch,
            "title": "Reports",
            "description": f"Up to {max_batch} reports, each as for POST /v1/reports; each is checked on its own",
        }
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _clean_errors(errors: Any) -> list[dict[str, Any]]:
    """Pydantic errors without the echoed input or URLs: field path, message, type."""
    out = []
    for e in errors:
        item = {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        out.append(item)
    return out
