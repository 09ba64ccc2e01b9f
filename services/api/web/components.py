"""What the pages work with, built once: ``WebConfig`` when the pages are mounted (from the
settings alone), ``WebComponents`` when the app starts (with what the read API's own start-up
built, a session store, the submissions listing, the HTTP client to ingest, the accounts). Routes
reach them through services/api/web/deps.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI

from services.api.components import ApiComponents
from services.api.settings import ApiSettings
from services.api.web import labels
from services.api.web.accounts import AccountService
from services.api.web.ingest import IngestClient
from services.api.web.listing import InMemorySubmissionListing, MongoSubmissionListing, SubmissionListing
from services.api.web.live import LiveStreams
from services.api.web.session import (
    InMemorySessions,
    LoginThrottle,
    MongoSessions,
    SessionStore,
    StreamGuard,
    session_key,
)
from services.api.web.sheets import UploadLimits
from services.api.web.uploads import Lifespan, UploadParser
from shared.adapters.accounts import AccountStore, InMemoryAccountStore, MongoAccountStore
from shared.adapters.tokens import InMemoryTokenRegistry, MongoTokenRegistry, TokenRegistry
from shared.domain.catalog import Catalog, load_catalog
from shared.domain.hierarchy import OrgTree


@dataclass(frozen=True)
class WebConfig:
    """What the pages need that the settings alone decide."""

    settings: ApiSettings
    secret: str  # BAOCAO_AUTH_SECRET: verifies tokens
    key: bytes  # derived from the secret: signs the login form's nonce
    catalog: Catalog
    upload_limits: UploadLimits
    uploads: UploadParser  # files are parsed in its worker processes, never on the event loop
    series_choices: list[tuple[str, str]]
    kind_choices: list[tuple[str, str]]

    @classmethod
    def of(cls, settings: ApiSettings) -> WebConfig:
        secret = settings.auth_secret.get_secret_value()
        catalog = load_catalog()
        limits = UploadLimits(
            max_rows=settings.upload_max_rows,
            max_columns=settings.upload_max_columns,
            max_cells=settings.upload_max_cells,
            max_cell_chars=settings.upload_max_cell_chars,
            max_zip_members=settings.upload_max_zip_members,
            max_member_bytes=settings.upload_max_part_bytes,
            max_unzipped_bytes=settings.upload_max_unzipped_bytes,
        )
        return cls(
            settings=settings,
            secret=secret,
            key=session_key(secret),
            catalog=catalog,
            upload_limits=limits,
            uploads=UploadParser(settings.upload_workers, settings.upload_queue),
            series_choices=[(s, labels.series_title(catalog, s)) for s in catalog.series],
            kind_choices=[(k, labels.kind_title(catalog, k)) for k in catalog.kinds],
        )


@dataclass
class WebComponents:
    config: WebConfig
    api: ApiComponents  # the read API's, whose lifespan builds them first
    sessions: SessionStore
    submissions: SubmissionListing
    ingest: IngestClient
    accounts: AccountStore
    live: LiveStreams = field(init=False)
    account_service: AccountService = field(init=False)  # what the admin pages change accounts with
    throttle: LoginThrottle = field(init=False)  # failed password logins (in memory: its docstring)
    # machine tokens issued from the admin pages (the fake in an app built by a test)
    tokens: TokenRegistry = field(default_factory=InMemoryTokenRegistry)

    def __post_init__(self) -> None:
        settings = self.config.settings
        guard = StreamGuard(settings.web_stream_recheck_seconds)
        self.live = LiveStreams(settings.web_max_streams_per_session, self.api.streams, guard)
        self.account_service = AccountService(
            self.accounts, self.api.auth.revocations, lambda: self.tree, self.sessions
        )
        self.throttle = LoginThrottle()

    @property
    def catalog(self) -> Catalog:
        return self.config.catalog

    @property
    def tree(self) -> OrgTree:
        return self.api.tree


@asynccontextmanager
async def open_components(app: FastAPI, config: WebConfig) -> AsyncIterator[WebComponents]:
    """The pages' components for one run of the app; the client to ingest closes with it."""
    api: ApiComponents = app.state.components
    database = config.settings.mongodb_database
    sessions: SessionStore = (
        MongoSessions(api.mongo, database) if api.mongo is not None else InMemorySessions(api.auth.revocations)
    )
    # no database in an app built by a test: the listing is the (empty) fake until the test fills one
    submissions: SubmissionListing = (
        MongoSubmissionListing(api.mongo, database) if api.mongo is not None else InMemorySubmissionListing()
    )
    accounts: AccountStore = MongoAccountStore(api.mongo, database) if api.mongo is not None else InMemoryAccountStore()
    tokens: TokenRegistry = (
        MongoTokenRegistry(api.mongo, database) if api.mongo is not None else InMemoryTokenRegistry()
    )
    async with IngestClient.open(config.settings.ingest_url) as ingest:
        yield WebComponents(config, api, sessions, submissions, ingest, accounts, tokens=tokens)


def with_web(config: WebConfig, lifespan: Lifespan) -> Lifespan:
    """The app's ``lifespan`` with the pages' components: built on ``app.state.web`` after the
    API's own start-up (whose components they use), closed before the API's shutdown."""

    @asynccontextmanager
    async def wrapped(app: Any) -> AsyncIterator[Any]:
        async with lifespan(app) as state, open_components(app, config) as web:
            app.state.web = web
            yield state

    return wrapped
