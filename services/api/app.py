"""The read API: `create_app(settings)` is its composition root. Routes only translate."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from prometheus_client import CollectorRegistry, Counter, Histogram

from services.api.repository import MongoTotalsReader, TotalsReader
from services.api.settings import ApiSettings
from services.api.views import (
    ChildrenTotalsOut,
    MissingOut,
    UnitOut,
    UnitTotalsOut,
    children_totals,
    missing_units,
    unit_out,
    unit_totals,
)
from shared.catalog import load_catalog
from shared.hierarchy import OrgTree, load_vietnam
from shared.http import add_request_metrics, probes_router
from shared.mongo import make_client, ping
from shared.periods import ACCEPTED_FORMS, PeriodError, parse_period
from shared.registry import AgencyRegistry
from shared.reports import UNIT_CODE_PATTERN


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "baocao_api_requests_total", "HTTP requests by route template and status code", ["route", "code"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "baocao_api_request_duration_seconds", "HTTP request latency by route template", ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )


def get_reader(request: Request) -> TotalsReader:
    return request.app.state.components["reader"]  # type: ignore[no-any-return]


def get_tree(request: Request) -> OrgTree:
    return request.app.state.components["tree"]  # type: ignore[no-any-return]


Reader = Annotated[TotalsReader, Depends(get_reader)]
Tree = Annotated[OrgTree, Depends(get_tree)]
Code = Annotated[str, Path(pattern=UNIT_CODE_PATTERN, description="unit code, e.g. 38, 386, 14923")]
Period = Annotated[str, Query(description=f"one of: {ACCEPTED_FORMS}", max_length=9)]


def _period(period: str) -> str:
    try:
        parse_period(period)
    except PeriodError as exc:
        raise HTTPException(
            422, detail=[{"loc": ["query", "period"], "msg": str(exc), "type": "period", "accepted": ACCEPTED_FORMS}]
        ) from None
    return period


def create_app(settings: ApiSettings, *, reader: TotalsReader | None = None, tree: OrgTree | None = None) -> FastAPI:
    catalog = load_catalog()
    metrics = ApiMetrics()
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        org = tree or load_vietnam(settings.province_codes)
        mongo = None
        refresher = None
        rd = reader
        if rd is None:
            mongo = make_client(settings.mongodb_uri, "baocao-api")
            rd = MongoTotalsReader(mongo, settings.mongodb_database)
            registry = AgencyRegistry(mongo, settings.mongodb_database, org)
            await registry.refresh()
            refresher = asyncio.create_task(registry.refresh_forever())
        state.update(reader=rd, tree=org, mongo=mongo)
        try:
            yield
        finally:
            if refresher:
                refresher.cancel()
            if mongo is not None:
                await mongo.close()

    app = FastAPI(
        title="baocao API",
        version="1",
        description="Totals of every unit's subtree, drill-down by child, and who has not reported.",
        lifespan=lifespan,
    )

    def known(tree: OrgTree, code: str) -> str:
        if code not in tree:
            raise HTTPException(404, detail=f"unit {code} is not in the registry")
        return code

    async def ready() -> dict[str, bool]:
        if state.get("mongo") is None:
            return {"mongodb": True}
        try:
            await ping(state["mongo"])
            return {"mongodb": True}
        except Exception:  # noqa: BLE001 - readiness reports, it does not raise
            return {"mongodb": False}

    @app.get("/v1/units/{code}", response_model=UnitOut, summary="A unit: name, level, parent, children")
    async def get_unit(code: Code, tree: Tree) -> UnitOut:
        return unit_out(tree, known(tree, code))

    @app.get(
        "/v1/units/{code}/totals",
        response_model=UnitTotalsOut,
        summary="Totals of the unit's whole subtree for a period",
    )
    async def get_totals(code: Code, period: Period, tree: Tree, reader: Reader) -> UnitTotalsOut:
        return await unit_totals(reader, catalog, tree, known(tree, code), _period(period))

    @app.get(
        "/v1/units/{code}/children/totals",
        response_model=ChildrenTotalsOut,
        summary="One row of totals per child unit (drill-down)",
    )
    async def get_children_totals(code: Code, period: Period, tree: Tree, reader: Reader) -> ChildrenTotalsOut:
        return await children_totals(reader, catalog, tree, known(tree, code), _period(period))

    @app.get(
        "/v1/units/{code}/completeness",
        response_model=MissingOut,
        summary="Who in the subtree has not reported a series for a period",
    )
    async def get_completeness(
        code: Code,
        period: Period,
        tree: Tree,
        reader: Reader,
        series: Annotated[str, Query(description="a report kind or indicator.<code>", max_length=80)],
    ) -> MissingOut:
        if series not in catalog.series:
            raise HTTPException(
                422,
                detail=[{"loc": ["query", "series"], "msg": f"unknown series; one of {sorted(catalog.series)}", "type": "series"}],
            )
        return await missing_units(reader, catalog, tree, known(tree, code), series, _period(period))

    app.include_router(probes_router(metrics.registry, ready))
    add_request_metrics(app, metrics.requests, metrics.request_seconds)
    app.state.components = state
    return app
