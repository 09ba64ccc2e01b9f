"""What ingest remembers of each report: its series and the revisions it accepted (with a digest
of their content). It lets ingest answer a resubmission as a duplicate and refuse a revision that
would change a report's kind. The aggregator does not depend on it: its own state (the latest
revision of every report) makes every redelivery harmless.

A report is identified by (unit, report_id), as the aggregator keys its entries
(``<unit>/<report_id>``, shared/rollup.py): report ids are chosen by each unit, so two units may
use the same one, and one unit's report never answers, blocks or reveals another's. Documents are
stored under ``_id`` ``<unit>/<report_id>`` with ``unit`` and ``report_id`` as fields. (Before
December 2026 the ``_id`` was the bare report id; such documents are still listed, and a revision
of one is recorded under the new key.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from pymongo import AsyncMongoClient, UpdateOne

from shared.mongo import SUBMISSIONS


@dataclass
class Submission:
    report_id: str
    unit: str
    series: str
    revisions: dict[int, str] = field(default_factory=dict)  # revision -> content digest


def submission_key(unit: str, report_id: str) -> str:
    return f"{unit}/{report_id}"


class SubmissionLog(Protocol):
    async def get(self, unit: str, report_id: str) -> Submission | None: ...

    async def record(self, report_id: str, unit: str, series: str, revision: int, digest: str) -> None: ...


@dataclass(frozen=True)
class Record:
    report_id: str
    unit: str
    series: str
    revision: int
    digest: str


class MongoSubmissionLog:
    """Concurrent calls are coalesced: all the lookups (and all the records) that arrive while
    one round trip is under way go together in the next one, as one ``$in`` query (one unordered
    bulk write). A thousand concurrent submissions cost a handful of round trips, not two
    thousand, and a lone submission is not delayed."""

    def __init__(self, client: AsyncMongoClient[dict[str, Any]], database: str) -> None:
        self._col = client[database][SUBMISSIONS]
        self._gets = _Coalescer[tuple[str, str], Submission | None](self._get_many)
        self._records = _Coalescer[Record, None](self._record_many)

    async def get(self, unit: str, report_id: str) -> Submission | None:
        return await self._gets.call((unit, report_id))

    async def record(self, report_id: str, unit: str, series: str, revision: int, digest: str) -> None:
        await self._records.call(Record(report_id, unit, series, revision, digest))

    async def _get_many(self, keys: list[tuple[str, str]]) -> list[Submission | None]:
        ids = list(dict.fromkeys(submission_key(u, r) for u, r in keys))
        found = {d["_id"]: d async for d in self._col.find({"_id": {"$in": ids}})}
        out: list[Submission | None] = []
        for unit, rid in keys:
            doc = found.get(submission_key(unit, rid))
            out.append(
                None
                if doc is None
                else Submission(
                    rid, doc["unit"], doc["series"], {int(k): v for k, v in (doc.get("revisions") or {}).items()}
                )
            )
        return out

    async def _record_many(self, records: list[Record]) -> list[None]:
        await self._col.bulk_write(
            [
                UpdateOne(
                    {"_id": submission_key(r.unit, r.report_id)},
                    {
                        "$set": {f"revisions.{r.revision}": r.digest},
                        "$setOnInsert": {"unit": r.unit, "report_id": r.report_id, "series": r.series},
                    },
                    upsert=True,
                )
                for r in records
            ],
            ordered=False,
        )
        return [None] * len(records)


K = TypeVar("K")
R = TypeVar("R")


class _Coalescer(Generic[K, R]):
    """Runs ``many(keys)`` for the keys of every call made while the previous run was under
    way; each call gets its own result (or the run's exception)."""

    def __init__(self, many: Callable[[list[K]], Awaitable[list[R]]]) -> None:
        self._many = many
        self._pending: list[tuple[K, asyncio.Future[R]]] = []
        self._running = False
        self._task: asyncio.Task[None] | None = None

    async def call(self, key: K) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((key, future))
        if not self._running:
            self._running = True
            self._task = asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    results = await self._many([k for k, _ in batch])
                except Exception as exc:  # noqa: BLE001 - handed to every caller of the batch
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            self._running = False


class InMemorySubmissionLog:
    def __init__(self) -> None:
        self.items: dict[str, Submission] = {}

    async def get(self, unit: str, report_id: str) -> Submission | None:
        item = self.items.get(submission_key(unit, report_id))
        return None if item is None else Submission(item.report_id, item.unit, item.series, dict(item.revisions))

    async def record(self, report_id: str, unit: str, series: str, revision: int, digest: str) -> None:
        item = self.items.setdefault(submission_key(unit, report_id), Submission(report_id, unit, series))
        item.revisions[revision] = digest
