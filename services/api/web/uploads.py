"""Uploaded files are read and checked away from the event loop that serves every request.

Contract: a file is parsed (services.api.web.sheets.read_rows, then each row checked as a report) in a
pool of ``workers`` separate processes. At most ``workers`` files are parsed at once and at most
``queue`` more wait for a worker; an upload past that is refused at once (UploadsBusy, a 503 to
the client) rather than queued without end. The event loop only awaits the result, so the other
routes are answered while files are parsed, whatever the files hold.

Processes rather than threads: reading a spreadsheet is pure-Python work that holds the GIL, so a
parsing thread would take the interpreter in turns with the event loop, and its memory would be
the API's. A worker process has its own interpreter and memory; it is replaced after
``tasks_per_worker`` files, which gives back whatever a parse took. Workers are started with
"spawn" (never forked from the API, whose threads and sockets a fork would copy) on the first
upload, not at start-up.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime
from functools import cache
from typing import Any

from services.api.web.access import unit_error
from services.api.web.forms import build_report
from services.api.web.labels import field_label
from services.api.web.sheets import UploadLimits, read_rows
from shared.domain.auth import Principal
from shared.domain.catalog import Catalog, load_catalog
from shared.domain.hierarchy import OrgTree

# (row number, unit and period as written, the report or None, field name -> error)
CheckedRow = tuple[int, str, str, dict[str, Any] | None, dict[str, str]]


class UploadsBusy(Exception):
    """Every worker is busy and the queue is full: the client should retry in a moment."""


@cache
def _catalog() -> Catalog:
    return load_catalog()


def check_file(kind: str, filename: str, data: bytes, limits: UploadLimits, now: datetime) -> list[CheckedRow]:
    """Runs in a worker: the file's rows, each built into a report of ``kind`` or its errors.
    Raises SheetError for a file that cannot be read or passes a limit."""
    catalog = _catalog()
    out: list[CheckedRow] = []
    for number, values in read_rows(catalog, kind, filename, data, limits):
        checked = build_report(catalog, kind, values, now)
        unit, period = (str(values.get(name, "")).strip() for name in ("unit", "period"))
        out.append((number, unit, period, checked.report, dict(checked.errors)))
    return out


def _exit_with_parent(parent: int) -> None:
    """Runs as each worker starts: the worker ends once the process that started it is gone (killed
    without closing the pool), rather than waiting for work that cannot come."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


Lifespan = Callable[[Any], AbstractAsyncContextManager[Any]]


class UploadParser:
    def __init__(self, workers: int, queue: int, tasks_per_worker: int = 50) -> None:
        self.workers = workers
        self.queue = queue
        self.tasks_per_worker = tasks_per_worker
        self.pending = 0  # files handed to the pool and not finished, the running ones included
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                max_tasks_per_child=self.tasks_per_worker,
                initializer=_exit_with_parent,
                initargs=(os.getpid(),),
            )
        return self._pool

    async def check(
        self, kind: str, filename: str, data: bytes, limits: UploadLimits, now: datetime
    ) -> list[CheckedRow]:
        if self.pending >= self.workers + self.queue:
            raise UploadsBusy
        loop = asyncio.get_running_loop()
        try:
            future: Future[list[CheckedRow]] = self._executor().submit(check_file, kind, filename, data, limits, now)
        except BrokenProcessPool:  # a worker died (killed, out of memory): a new pool for this file
            self._pool = None
            future = self._executor().submit(check_file, kind, filename, data, limits, now)
        # counted until the worker is done with it, even when the client goes away first
        self.pending += 1
        future.add_done_callback(lambda _: loop.is_closed() or loop.call_soon_threadsafe(self._finished))
        try:
            return await asyncio.wrap_future(future)
        except BrokenProcessPool:  # the worker died under this file: the next file gets a new pool
            self._pool = None
            raise UploadsBusy from None

    def _finished(self) -> None:
        self.pending -= 1

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def closing(self, lifespan: Lifespan) -> Lifespan:
        """An app's ``lifespan`` that also stops this pool's workers when the app stops."""

        @asynccontextmanager
        async def wrapped(app: Any) -> AsyncIterator[Any]:
            try:
                async with lifespan(app) as state:
                    yield state
            finally:
                self.close()

        return wrapped


def row_answers(rows: list[CheckedRow], org: OrgTree, principal: Principal) -> list[dict[str, Any]]:
    """The checked rows as the upload page's script reads them, each row's unit also checked
    against the token (in the tree of the row's period); a row with errors carries no report."""
    out = []
    for number, unit, period, report, errors in rows:
        refused = unit_error(org, principal, unit, period) if unit else None
        if refused and "unit" not in errors:
            errors["unit"] = refused
        out.append(
            {
                "row": number,
                "unit": unit,
                "report": report if not errors else None,
                "errors": {field_label(k) if k != "_form" else "": v for k, v in errors.items()},
            }
        )
    return out
