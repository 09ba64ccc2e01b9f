"""The read API: `create_app(settings)` is its composition root. Routes only translate."""

import asyncio
import json
import time
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import to_json
from starlette.types import Receive, Send
from starlette.types import Scope as AsgiScope

from services.api.cache import CacheCollector, CachedTotalsReader, TotalsCache
from services.api.repository import MongoTotalsReader, TotalsReader
from services.api.settings import ApiSettings
from services.api.stream import TotalsBroadcaster
from services.api.views import (
    ChildrenTotalsOut,
    MissingOut,
    RemappedTotalsOut,
    UnitOut,
    UnitsOut,
    UnitTotalsOut,
    children_totals_data,
    missing_units,
    remapped_sources,
    remapped_totals,
    search_units,
    unit_out,
    unit_totals_data,
)
from services.api.web.routes import mount_web
from services.api.web.security import SecurityHeaders
from shared.adapters.mongo import make_client, ping
from shared.adapters.registry import AgencyRegistry
from shared.adapters.revocations import InMemoryRevocations, MongoRevocations, Revocations, RevocationsUnavailable
from shared.domain.auth import Principal, Scope
from shared.domain.catalog import load_catalog
from shared.domain.hierarchy import (
    COUNTRY,
    LEGACY,
    TREE_2025,
    HierarchyError,
    Level,
    OrgTree,
    UnknownTree,
    UnknownUnit,
    conversion_2025,
    load_vietnam,
)
from shared.domain.periods import ACCEPTED_FORMS, PeriodError, parse_period
from shared.domain.reports import UNIT_CODE_PATTERN, NfcText
from shared.http.base import (
    COMMON_RESPONSES,
    NO_TELEMETRY,
    Authenticator,
    CurrentPrincipal,
    add_body_size_limit,
    add_request_metrics,
    answer_invalid_json_with_400,
    authorize,
    error,
    probes_router,
)
from shared.http.early_auth import check_bearer_before_body
from shared.http.ratelimit import RateLimiter, retry_after
from shared.startup import freeze_startup_objects, freeze_survivors_forever


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "baocao_api_requests_total",
            "HTTP requests by route template and status code",
            ["route", "code"],
            registry=self.registry,
        )
        self.sse_clients = Gauge("baocao_api_sse_clients", "Open server-sent event streams", registry=self.registry)
        self.request_seconds = Histogram(
            "baocao_api_request_duration_seconds",
            "HTTP request latency by route template",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )


# Dependencies are coroutines: FastAPI runs a plain function dependency in a worker thread, two
# thread hops per request (about a tenth of the API's processor time at 500 requests/s).
async def get_reader(request: Request) -> TotalsReader:
    return request.app.state.components["reader"]  # type: ignore[no-any-return]


async def get_tree(
    request: Request,
    tree: Annotated[
        str | None,
        Query(
            description="legacy (the tree before 2025-07-01, with districts) or 2025 (from 2025-07-01); "
            "default: the tree valid at the end of `period`, or the tree in force today without a period",
            max_length=16,
        ),
    ] = None,
) -> OrgTree:
    """The tree version a request is about: ``tree`` when named, else the one valid at the end
    of the request's ``period`` (a code names a unit only within its tree: 14923 is Thị trấn Cành
    Nàng before July 2025 and Xã Bá Thước after)."""
    org: OrgTree = request.app.state.components["tree"]
    period = request.query_params.get("period")
    by_period = None
    if period is not None:
        try:
            by_period = org.for_period(period)
        except PeriodError:
            _period(period)  # 422 naming the period, before the tree is chosen without it
    if tree is None:
        if by_period is not None:
            return by_period
        return org.in_force()
    try:
        named = org.version_named(tree)
    except UnknownTree as exc:
        raise HTTPException(422, detail=[{"loc": ["query", "tree"], "msg": str(exc), "type": "tree"}]) from None
    if by_period is not None and named is not by_period:
        raise HTTPException(
            422,
            detail=[
                {
                    "loc": ["query", "tree"],
                    "msg": f"period {period} belongs to {by_period.validity()}, not to tree {tree}",
                    "type": "tree",
                }
            ],
        )
    return named


Reader = Annotated[TotalsReader, Depends(get_reader)]
Tree = Annotated[OrgTree, Depends(get_tree)]
# a unit's code, or VN: the whole country (the sum of its provinces)
CODE_OR_COUNTRY_PATTERN = f"^(?:{COUNTRY}|{UNIT_CODE_PATTERN.strip('^$')})$"
Code = Annotated[
    str, Path(pattern=CODE_OR_COUNTRY_PATTERN, description="unit code, e.g. 38, 386, 14923, or VN (the country)")
]
Period = Annotated[str, Query(description=f"one of: {ACCEPTED_FORMS}", max_length=32)]


def _period(period: str) -> str:
    try:
        parse_period(period)
    except PeriodError as exc:
        raise HTTPException(
            422, detail=[{"loc": ["query", "period"], "msg": str(exc), "type": "period", "accepted": ACCEPTED_FORMS}]
        ) from None
    return period


# Refused in agency names: characters that are invisible, change how the text around them is
# displayed, or have no agreed meaning, so that two names that look alike are alike and a name
# cannot hide what it says: control characters (Cc: NUL, newlines, ...), the bidirectional
# embeddings, overrides, isolates and marks (U+202A-U+202E, U+2066-U+2069, U+200E, U+200F,
# U+061C), every other format character (Cf: zero-width space, BOM, soft hyphen, tag characters;
# the zero-width joiners too, which Vietnamese names have no use for), line and paragraph
# separators (Zl, Zp), surrogates (Cs), private-use (Co) and unassigned (Cn) code points, and
# the markup characters < and >. A name must hold at least one letter or digit.
_BIDI_CONTROLS = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C)}
_REFUSED_CATEGORIES = {
    "Cc": "control characters",
    "Cf": "invisible format characters",
    "Zl": "line separators",
    "Zp": "paragraph separators",
    "Cs": "surrogate code points",
    "Co": "private-use characters",
    "Cn": "unassigned code points",
}


def _plain_name(name: str) -> str:
    for position, char in enumerate(name):
        if char in _BIDI_CONTROLS:
            raise ValueError(
                f"must not contain bidirectional control characters (U+{ord(char):04X} at position {position})"
            )
        if (what := _REFUSED_CATEGORIES.get(unicodedata.category(char))) is not None:
            raise ValueError(f"must not contain {what} (U+{ord(char):04X} at position {position})")
        if char in "<>":
            raise ValueError(f"must not contain '<' or '>' (at position {position})")
    if not any(unicodedata.category(char)[0] in "LN" for char in name):
        raise ValueError("must contain at least one letter or digit")
    return name


class AgencyIn(BaseModel):
    """An agency, hospital, school or enterprise party unit, registered under an existing unit."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    code: str = Field(
        pattern=r"^[0-9]{2,5}-[a-z0-9][a-z0-9_]{0,39}$", examples=["38-bvdk"], description="<parent>-<slug>"
    )
    name: Annotated[NfcText, AfterValidator(_plain_name)] = Field(
        min_length=1,
        max_length=200,
        examples=["Đảng bộ Bệnh viện Đa khoa tỉnh"],
        description="plain text with a letter or digit: no control, format (zero-width, bidirectional, BOM, tag), "
        "separator, private-use or unassigned characters, no '<' or '>'",
    )
    parent: str = Field(pattern=r"^[0-9]{2,5}$", examples=["38"], description="a commune, district or province")


def _json(model: BaseModel) -> Response:
    """A response model as JSON, serialized once by pydantic-core. (Returned as a model, FastAPI
    would validate it again and encode it with the json module: 1.15 ms against 0.21 ms for a
    province's drill-down of 26 districts.) The routes keep ``response_model`` for the schema."""
    return Response(model.model_dump_json(), media_type="application/json")


KEEP_ALIVE_SECONDS = 15.0


class _ReleasingStream(StreamingResponse):
    """Calls ``release`` once the response is over, however it ends. (A generator's ``finally``
    does not run when the client leaves before its first item.)"""

    def __init__(self, content: AsyncIterator[str], release: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self._release = release

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


def create_app(
    settings: ApiSettings,
    *,
    reader: TotalsReader | None = None,
    tree: OrgTree | None = None,
    registry: AgencyRegistry | None = None,
    revocations: Revocations | None = None,
) -> FastAPI:
    catalog = load_catalog()
    metrics = ApiMetrics()
    state: dict[str, Any] = {"streams": {}}  # open streams per token id
    # Reads whose cost grows with the tree or the subtree (searches, completeness lists, re-mapped
    # totals) are rationed per token, so one token cannot take the event loop from everyone else's
    # reads; totals and drill-downs come from the cache and are not.
    expensive_reads = RateLimiter(settings.expensive_reads_per_second, settings.expensive_reads_burst)

    def ration(principal: Principal) -> None:
        wait = expensive_reads.acquire(principal.token_id)
        if wait:
            raise HTTPException(
                429,
                f"too many searches, completeness lists or re-mapped totals for this token (at most "
                f"{settings.expensive_reads_per_second:g} a second, BAOCAO_API_EXPENSIVE_READS_PER_SECOND); "
                f"retry after {retry_after(wait)} s",
                headers={"Retry-After": retry_after(wait)},
            )

    rationed: dict[int | str, dict[str, Any]] = {429: error("too many expensive reads for this token; see Retry-After")}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        org = tree or load_vietnam(settings.province_codes)
        mongo = None
        refresher = None
        rd, reg, revoked = reader, registry, revocations
        cache = None
        if rd is None:
            mongo = make_client(
                settings.mongodb_uri,
                "baocao-api",
                min_connections=16,
                read_preference=settings.mongodb_read_preference,
            )
            rd = MongoTotalsReader(mongo, settings.mongodb_database)
            if settings.cache_documents:
                cache = TotalsCache(settings.cache_documents, settings.cache_answers_mb * 2**20)
                rd = CachedTotalsReader(rd, cache)
                metrics.registry.register(CacheCollector(cache))
            reg = AgencyRegistry(mongo, settings.mongodb_database, org)
            await reg.refresh()
            refresher = asyncio.create_task(reg.refresh_forever())
            revoked = revoked or MongoRevocations(mongo, settings.mongodb_database)
        auth = Authenticator(settings.auth_secret.get_secret_value(), revoked or InMemoryRevocations())
        broadcaster = TotalsBroadcaster(
            settings.kafka_bootstrap_servers, settings.totals_topic, cache, credentials=settings.kafka_credentials
        )
        follower = asyncio.create_task(broadcaster.run()) if reader is None else None
        state["broadcaster"] = broadcaster
        state.update(reader=rd, tree=reg.tree if reg else org, mongo=mongo, registry=reg, auth=auth, cache=cache)
        freezer = None
        if mongo is not None:  # a real deployment, not an app built by a test
            freeze_startup_objects()
            # the cache's documents are millions of objects: frozen out of the collector's reach, as
            # in the aggregator (drill-downs at 500/s: p50 119 -> 3.9 ms, p99 774 -> 274 ms)
            freezer = asyncio.create_task(freeze_survivors_forever())
        try:
            yield
        finally:
            if follower:
                follower.cancel()
            if refresher:
                refresher.cancel()
            if freezer:
                freezer.cancel()
            if mongo is not None:
                await mongo.close()

    app = FastAPI(
        telemetry=NO_TELEMETRY,
        title="baocao API",
        version="1",
        description="Totals of every unit's subtree, drill-down by child, and who has not reported.",
        lifespan=lifespan,
        responses={**COMMON_RESPONSES, 404: error("No such unit (only for a code the token could see if it existed)")},
    )

    def known(tree: OrgTree, code: str) -> str:
        """404 for an unknown unit; called after ``authorize``, which answers 403 for a code the
        token could not see if it existed, so a token cannot probe for units outside its subtree."""
        if not tree.has(code):
            others = [t.tree_id for t in tree.versions if t is not tree and code in t]
            where = f" (it is in tree {', '.join(others)}; ask with tree= or a period of it)" if others else ""
            raise HTTPException(404, detail=f"unit {code} is not in {tree.validity()}{where}")
        return code

    async def answer(key: tuple[str, str, str, str], build: Callable[[], Awaitable[dict[str, Any]]]) -> Response:
        """The answer to ``key`` (route, unit, period, tree and its version), built once and reused until
        the stream changes a document it shows (services/api/cache.py, Answers)."""
        cache: TotalsCache | None = state.get("cache")
        body = to_json(await build()) if cache is None else await cache.answer(key, build)
        return Response(body, media_type="application/json")

    async def ready() -> dict[str, bool]:
        if state.get("mongo") is None:
            return {"mongodb": True}
        try:
            await ping(state["mongo"])
            return {"mongodb": True}
        except Exception:  # noqa: BLE001 - readiness reports, it does not raise
            return {"mongodb": False}

    @app.get(
        "/v1/units",
        response_model=UnitsOut,
        summary="Find units by name or code (accents and case ignored) and/or list a parent's children",
        responses=rationed,
    )
    async def find_units(
        tree: Tree,
        principal: CurrentPrincipal,
        q: Annotated[str, Query(description="part of a name or code: 'ba thuoc' finds Bá Thước", max_length=40)] = "",
        parent: Annotated[
            str | None, Query(pattern=CODE_OR_COUNTRY_PATTERN, description="only this unit's children (VN: provinces)")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    ) -> Response:
        ration(principal)
        authorize(principal, Scope.READ, tree, parent)
        if parent is not None:
            known(tree, parent)
        found = search_units(tree, q, parent, limit, lambda code: principal.covers(tree, code), principal.unit)
        return _json(found)

    @app.get("/v1/units/{code}", response_model=UnitOut, summary="A unit: name, level, parent, children")
    async def get_unit(code: Code, tree: Tree, principal: CurrentPrincipal) -> UnitOut:
        authorize(principal, Scope.READ, tree, code)
        known(tree, code)
        return unit_out(tree, code)

    @app.get(
        "/v1/units/{code}/totals",
        response_model=UnitTotalsOut,
        summary="Totals of the unit's whole subtree for a period",
    )
    async def get_totals(
        code: Code, period: Period, tree: Tree, reader: Reader, principal: CurrentPrincipal
    ) -> Response:
        authorize(principal, Scope.READ, tree, code)
        known(tree, code)
        period = _period(period)
        key = ("totals", code, period, f"{tree.tree_id}:{tree.version}")
        return await answer(key, lambda: unit_totals_data(reader, catalog, tree, code, period))

    @app.get(
        "/v1/units/{code}/children/totals",
        response_model=ChildrenTotalsOut,
        summary="One row of totals per child unit (drill-down)",
    )
    async def get_children_totals(
        code: Code, period: Period, tree: Tree, reader: Reader, principal: CurrentPrincipal
    ) -> Response:
        authorize(principal, Scope.READ, tree, code)
        known(tree, code)
        period = _period(period)
        key = ("children", code, period, f"{tree.tree_id}:{tree.version}")
        return await answer(key, lambda: children_totals_data(reader, catalog, tree, code, period))

    @app.get(
        "/v1/units/{code}/remapped/totals",
        response_model=RemappedTotalsOut,
        summary="A unit of the 2025 tree with the history of the old units it took over, for a period before July 2025",
        responses=rationed,
    )
    async def get_remapped_totals(
        code: Code, period: Period, request: Request, reader: Reader, principal: CurrentPrincipal
    ) -> Response:
        ration(principal)
        org: OrgTree = request.app.state.components["tree"]
        try:
            new = org.version_named(TREE_2025)
        except UnknownTree:
            raise HTTPException(404, detail="this API was started without the 2025 tree") from None
        authorize(principal, Scope.READ, new, code)
        known(new, code)
        if org.for_period(_period(period)).tree_id != LEGACY:
            raise HTTPException(
                422,
                detail=[
                    {
                        "loc": ["query", "period"],
                        "msg": f"period {period} is in tree {org.for_period(period).tree_id}: its totals are at "
                        f"/v1/units/{code}/totals; the re-mapped view shows periods before 2025-07-01",
                        "type": "period",
                    }
                ],
            )
        # The figures shown are the old units' (legacy-tree reports): each is read in its own tree,
        # like any read of its period, so a token sees here only what it could read directly.
        found = remapped_sources(org, conversion_2025(), code)
        sources = found[0]
        hidden = [u for u, _ in sources if not principal.covers(org.version_named(LEGACY), u.code)]
        if hidden:
            names = ", ".join(f"{u.code} {u.name}" for u in hidden[:3]) + (" …" if len(hidden) > 3 else "")
            raise HTTPException(
                403,
                f"the re-mapped view of {code} adds up {len(sources)} units of the tree before 2025-07-01; "
                f"{len(hidden)} of them are outside this token's unit {principal.unit} in that tree ({names})",
            )
        return _json(await remapped_totals(reader, catalog, org, found, code, period))

    @app.get(
        "/v1/units/{code}/completeness",
        response_model=MissingOut,
        summary="Who in the subtree has not reported a series for a period",
        responses=rationed,
    )
    async def get_completeness(
        code: Code,
        period: Period,
        tree: Tree,
        reader: Reader,
        series: Annotated[str, Query(description="a report kind or indicator.<code>", max_length=80)],
        principal: CurrentPrincipal,
    ) -> Response:
        ration(principal)
        authorize(principal, Scope.READ, tree, code)
        known(tree, code)
        if series not in catalog.series:
            raise HTTPException(
                422,
                detail=[
                    {
                        "loc": ["query", "series"],
                        "msg": f"unknown series; one of {sorted(catalog.series)}",
                        "type": "series",
                    }
                ],
            )
        return _json(await missing_units(reader, catalog, tree, code, series, _period(period)))

    @app.get(
        "/v1/units/{code}/stream",
        summary="Server-sent events: every change of a total in the unit's subtree (stream scope)",
        response_class=StreamingResponse,
        responses={
            200: {
                "content": {"text/event-stream": {}},
                "description": "event: total, data: a totals message (schema v1); event: end, data: "
                '{"reason": ...} when the token expires or is revoked (checked every few seconds)',
            },
            429: error("the token already holds the most open streams allowed"),
        },
    )
    async def stream_totals(code: Code, tree: Tree, principal: CurrentPrincipal) -> StreamingResponse:
        authorize(principal, Scope.STREAM, tree, code)
        known(tree, code)
        broadcaster: TotalsBroadcaster = state["broadcaster"]
        open_streams: dict[str, int] = state["streams"]
        held = open_streams.get(principal.token_id, 0)
        if held >= settings.max_streams_per_token:
            raise HTTPException(
                429,
                f"this token already has {held} open streams, the most one token may hold "
                f"(BAOCAO_API_MAX_STREAMS_PER_TOKEN={settings.max_streams_per_token}); close one first",
                headers={"Retry-After": "5"},
            )
        open_streams[principal.token_id] = held + 1

        def release() -> None:
            left = open_streams.pop(principal.token_id, 1) - 1
            if left:
                open_streams[principal.token_id] = left

        async def ended() -> str | None:
            """Why the stream must end now, or None: the token was checked once, when it opened."""
            if principal.expires_at < time.time():
                return "token expired"
            auth: Authenticator = state["auth"]
            try:
                if await auth.revocations.is_revoked(principal.token_id):
                    return "token revoked"
            except RevocationsUnavailable:
                return "the revocation list cannot be read; reconnect shortly"
            return None

        async def events() -> AsyncIterator[str]:
            metrics.sse_clients.inc()
            loop = asyncio.get_running_loop()
            try:
                async with broadcaster.subscribe(code) as sub:
                    yield ": connected\n\n"
                    last_sent = next_check = loop.time()
                    while True:
                        now = loop.time()
                        if now >= next_check:
                            if (reason := await ended()) is not None:
                                yield f"event: end\ndata: {json.dumps({'reason': reason})}\n\n"
                                return
                            next_check = now + settings.stream_recheck_seconds
                        if now - last_sent >= KEEP_ALIVE_SECONDS:
                            yield ": keep-alive\n\n"
                            last_sent = now
                        wait = min(next_check, last_sent + KEEP_ALIVE_SECONDS) - now
                        try:
                            message = await asyncio.wait_for(sub.queue.get(), timeout=max(wait, 0.0))
                        except TimeoutError:
                            continue
                        event_id = f"{message['id']}:{message['version']}"
                        data = json.dumps(message, ensure_ascii=False)
                        yield f"event: total\nid: {event_id}\ndata: {data}\n\n"
                        last_sent = loop.time()
            finally:
                metrics.sse_clients.dec()

        return _ReleasingStream(
            events(), release, media_type="text/event-stream", headers={"Cache-Control": "no-store"}
        )

    @app.post(
        "/v1/admin/agencies",
        status_code=201,
        response_model=UnitOut,
        summary="Register an agency under a commune, district or province (admin scope)",
        responses={
            200: {"model": UnitOut, "description": "already registered, identically"},
            409: error("conflicts with a registered unit, or the parent has the most agencies allowed"),
            503: error("the agency registry is not available"),
        },
    )
    async def register_agency(agency: AgencyIn, tree: Tree, principal: CurrentPrincipal) -> Any:
        authorize(principal, Scope.ADMIN, tree, agency.parent)
        known(tree, agency.parent)
        if agency.code not in tree:
            registered = sum(1 for unit in tree.children(agency.parent) if unit.level == Level.AGENCY)
            if registered >= settings.max_agencies_per_unit:
                raise HTTPException(
                    409,
                    f"unit {agency.parent} already has {registered} agencies registered under it, the most "
                    f"one unit may have (BAOCAO_API_MAX_AGENCIES_PER_UNIT={settings.max_agencies_per_unit})",
                )
        reg: AgencyRegistry | None = state.get("registry")
        if reg is None:
            raise HTTPException(503, "the agency registry is not available")
        try:
            # only in the versions of the tree where this token covers the parent: a code names a
            # unit only within its tree (district 386's token registers under the old 14923, not
            # under the 2025 commune that took its code)
            trees = [t.tree_id for t in tree.versions if agency.parent in t and principal.covers(t, agency.parent)]
            created = await reg.register(agency.code, agency.name, agency.parent, trees)
        except (HierarchyError, UnknownUnit) as exc:
            raise HTTPException(409, str(exc)) from None
        return JSONResponse(unit_out(tree, agency.code).model_dump(mode="json"), status_code=201 if created else 200)

    @app.get("/", include_in_schema=False)
    async def root(request: Request) -> Response:
        """Where to go from the root: a browser to the pages, a program to the API's description."""
        if "text/html" in request.headers.get("accept", ""):
            return RedirectResponse("/web/", status_code=303)
        return JSONResponse({"web": "/web/", "docs": "/docs", "openapi": "/openapi.json"})

    app.include_router(probes_router(metrics.registry, ready))
    mount_web(app, settings)  # the pages under /web/, outside the OpenAPI schema
    check_bearer_before_body(app, settings.auth_secret.get_secret_value())  # no body read without a token
    add_body_size_limit(app, settings.max_body_bytes)
    add_request_metrics(app, metrics.requests, metrics.request_seconds)
    answer_invalid_json_with_400(app)
    app.add_middleware(SecurityHeaders)  # added last: the outermost, so every answer carries them
    app.state.components = state
    return app
