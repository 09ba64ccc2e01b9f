"""What ingest remembers of each report: its series and the revisions it accepted (with a digest
of their content). It lets ingest answer a resubmission as a duplicate and refuse a revision that
would change a report's kind. The aggregator does not depend on it: its own state (the latest
revision of every report) makes every redelivery harmless.

A report is identified by (unit, report_id), as the aggregator keys its entries
(``<unit>/<report_id>``, shared/domain/rollup.py): report ids are chosen by each unit, so two units may
use the same one, and one unit's report never answers, blocks or reveals another's. Documents are
stored under ``_id`` ``<unit>/<report_id>`` with ``unit`` and ``report_id`` as fields. A document
of the older layout, whose ``_id`` is the bare report id, is still listed; a revision of its
report is recorded under ``<unit>/<report_id>``.

Each report also carries its ``scope``: the unit and its ancestors in the tree of the report's
period, each code qualified by that tree (``["2025:14923", "2025:38"]``; codes are reused across
trees, so a bare code would let a legacy district's listing take in a 2025 commune of the same
code). A subtree's listing is then one equality on ``scope``, on an index (scope, updated, _id),
instead of a ``$in`` of every code of the subtree.

Each revision's body is kept too (``bodies``: revision -> the report as accepted, the JSON ingest
published), not only its digest: a revision form starts from the latest figures and a clerk sees
what was sent. Every revision is kept, not the latest alone: a report has a few revisions of a few
kilobytes each, far below a document's limit, and the audit log's entries, though they also hold
the figures before and after, are per reader's scope and per action, not per report; a report's
own document answers "what did revision 2 say" in one read. A document written before bodies were
kept has none (``bodies`` {}), and its revisions still count as before; a lookup reads the
bodies only where it needs them (``get``), never the listing.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

from pymongo import DESCENDING, AsyncMongoClient, UpdateOne

from shared.adapters.mongo import SUBMISSIONS
from shared.domain.hierarchy import LEGACY, OrgTree, UnknownTree
from shared.domain.paging import decode_cursor, encode_cursor

log = logging.getLogger(__name__)

# a report recorded before the log kept the time of its last revision sorts as if recorded then
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PAGE_SIZE = 50  # reports per page of a listing
BACKFILL_CHUNK = 1000  # scopes written per bulk write when filling in those of older reports


@dataclass
class Submission:
    report_id: str
    unit: str
    series: str
    revisions: dict[int, str] = field(default_factory=dict)  # revision -> content digest
    updated: datetime = EPOCH  # when its latest revision was recorded
    scope: tuple[str, ...] = ()  # the unit and its ancestors in its period's tree (scope_of)
    bodies: dict[int, dict[str, Any]] = field(default_factory=dict)  # revision -> the report as accepted

    def latest_body(self, before: int | None = None) -> tuple[int, dict[str, Any]] | None:
        """(revision, body) of the newest revision kept, below ``before`` when given; None when
        no such body is kept (none yet, or a document from before bodies were kept)."""
        kept = [r for r in self.bodies if before is None or r < before]
        return None if not kept else (max(kept), self.bodies[max(kept)])


@dataclass(frozen=True)
class SubmissionPage:
    items: list[Submission]
    next: str | None  # the cursor of the page after this one; None on the last page


def submission_key(unit: str, report_id: str) -> str:
    return f"{unit}/{report_id}"


def scope_code(tree_id: str, code: str) -> str:
    """``code`` named together with its tree, as a report's scope holds it: ``"2025:38"``."""
    return f"{tree_id}:{code}"


def scope_of(tree: OrgTree, unit: str) -> list[str]:
    """The scope of a report of ``unit`` in ``tree`` (the version of its period): the unit and
    its ancestors, the unit first, each qualified by the tree. UnknownUnit when ``tree`` does not
    hold ``unit``."""
    return [scope_code(tree.tree_id, code) for code in tree.path(unit)]


def series_tree(series: str) -> str:
    """The id of the tree a series key of the log names: ``study_session@2025`` -> ``2025``; a
    key without a suffix is the legacy tree's."""
    return series.partition("@")[2] or LEGACY


def _millis(moment: datetime) -> datetime:
    """``moment`` at MongoDB's precision (milliseconds), so both adapters order and page alike."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


class SubmissionLog(Protocol):
    async def get(self, unit: str, report_id: str) -> Submission | None: ...

    async def record(
        self,
        report_id: str,
        unit: str,
        series: str,
        revision: int,
        digest: str,
        scope: Sequence[str],
        body: Mapping[str, Any] | None = None,
    ) -> None:
        """Add ``revision`` to the report, with its ``body`` (the report as accepted) when given.
        ``series`` and ``scope`` are kept from its first record: a report never changes its kind or
        its tree (ingest refuses such a revision), and a unit never moves within a tree."""
        ...

    async def page(
        self, where: Mapping[str, Any] | None, after: str | None = None, size: int = PAGE_SIZE
    ) -> SubmissionPage:
        """The reports ``where`` selects, newest revision first (ties by key, in reverse),
        ``size`` at most, starting after the ``after`` cursor a previous page gave; BadCursor for
        a cursor it did not give. ``where`` is a filter on the fields ``unit``, ``series`` and
        ``scope`` in MongoDB's query language, of equalities, ``$in`` and ``$or`` (None or {}: every
        report); as in MongoDB, an equality on ``scope`` (a list) holds when the list contains the
        value, and a ``$in`` when it contains one of the values."""
        ...


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Record:
    report_id: str
    unit: str
    series: str
    revision: int
    digest: str
    scope: tuple[str, ...]
    body: Mapping[str, Any] | None = None


def _bodies(stored: Any) -> dict[int, dict[str, Any]]:
    return {int(k): dict(v) for k, v in (stored or {}).items()}


class MongoSubmissionLog:
    """Concurrent calls are coalesced: all the lookups (and all the records) that arrive while
    one round trip is under way go together in the next one, as one ``$in`` query (one unordered
    bulk write). Concurrent submissions (a batch's) so share round trips instead of taking two
    each, and a lone submission is not delayed."""

    def __init__(
        self, client: AsyncMongoClient[dict[str, Any]], database: str, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self._col = client[database][SUBMISSIONS]
        self._clock = clock
        self._gets = _Coalescer[tuple[str, str], Submission | None](self._get_many)
        self._records = _Coalescer[Record, None](self._record_many)

    async def ensure_indexes(self) -> None:
        """The indexes a listing needs (a unit's or a subtree's reports, newest first, and every
        report newest first), and a time for the reports recorded before the log kept one."""
        await self._col.create_index([("unit", 1), ("updated", DESCENDING), ("_id", DESCENDING)])
        # multikey: one entry per code of the scope, so a subtree's listing is one equality
        await self._col.create_index([("scope", 1), ("updated", DESCENDING), ("_id", DESCENDING)])
        await self._col.create_index([("updated", DESCENDING), ("_id", DESCENDING)])
        await self._col.update_many({"updated": {"$exists": False}}, {"$set": {"updated": EPOCH}})

    async def backfill_scope(self, tree: OrgTree, chunk: int = BACKFILL_CHUNK) -> int:
        """Give a scope to the reports recorded before the log kept one, in the tree their series
        names (``series_tree``), ``chunk`` per bulk write; returns how many were given one. A unit
        that tree does not hold (an agency missing from ``tree``: load the agency registry first)
        is skipped and logged, and its report stays out of every listing but the country's until a
        later run finds it. Safe to run again, and from two processes at once: it writes only
        documents still without a scope."""
        written = 0
        skipped: dict[tuple[str, str], int] = {}
        batch: list[UpdateOne] = []

        async def flush() -> None:
            nonlocal written, batch
            if batch:
                result = await self._col.bulk_write(batch, ordered=False)
                written += result.modified_count
                batch = []

        cursor = self._col.find({"scope": {"$exists": False}}, {"unit": 1, "series": 1}).batch_size(chunk)
        async for doc in cursor:
            unit, tree_id = str(doc.get("unit", "")), series_tree(str(doc.get("series", "")))
            try:
                version = tree.version_named(tree_id)
            except UnknownTree:
                version = None
            if version is None or unit not in version:
                skipped[(tree_id, unit)] = skipped.get((tree_id, unit), 0) + 1
                continue
            missing = {"_id": doc["_id"], "scope": {"$exists": False}}
            batch.append(UpdateOne(missing, {"$set": {"scope": scope_of(version, unit)}}))
            if len(batch) >= chunk:
                await flush()
        await flush()
        if skipped:
            log.warning(
                "submissions left without a scope: their unit is not in the tree their series names",
                extra={
                    "reports": sum(skipped.values()),
                    "units": [scope_code(t, u) for t, u in sorted(skipped)[:20]],
                    "distinct_units": len(skipped),
                },
            )
        return written

    async def page(
        self, where: Mapping[str, Any] | None, after: str | None = None, size: int = PAGE_SIZE
    ) -> SubmissionPage:
        clauses: list[Mapping[str, Any]] = [where] if where else []
        if after is not None:
            at, key = decode_cursor(after)
            clauses.append({"$or": [{"updated": {"$lt": at}}, {"updated": at, "_id": {"$lt": key}}]})
        query = clauses[0] if len(clauses) == 1 else {"$and": clauses} if clauses else {}
        cursor = (
            self._col.find(query, {"bodies": 0})  # a listing shows no figures: the bodies stay on the server
            .sort([("updated", DESCENDING), ("_id", DESCENDING)])
            .limit(size + 1)
        )
        docs = [d async for d in cursor]
        items = [
            Submission(
                str(d.get("report_id", d["_id"])),
                str(d.get("unit", "")),
                str(d.get("series", "")),
                {int(k): v for k, v in (d.get("revisions") or {}).items()},
                d.get("updated") or EPOCH,
                tuple(d.get("scope") or ()),
            )
            for d in docs[:size]
        ]
        more = len(docs) > size
        return SubmissionPage(items, encode_cursor(items[-1].updated, str(docs[size - 1]["_id"])) if more else None)

    async def get(self, unit: str, report_id: str) -> Submission | None:
        return await self._gets.call((unit, report_id))

    async def record(
        self,
        report_id: str,
        unit: str,
        series: str,
        revision: int,
        digest: str,
        scope: Sequence[str],
        body: Mapping[str, Any] | None = None,
    ) -> None:
        await self._records.call(Record(report_id, unit, series, revision, digest, tuple(scope), body))

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
                    rid,
                    doc["unit"],
                    doc["series"],
                    {int(k): v for k, v in (doc.get("revisions") or {}).items()},
                    doc.get("updated") or EPOCH,
                    tuple(doc.get("scope") or ()),
                    _bodies(doc.get("bodies")),
                )
            )
        return out

    async def _record_many(self, records: list[Record]) -> list[None]:
        await self._col.bulk_write(
            [
                UpdateOne(
                    {"_id": submission_key(r.unit, r.report_id)},
                    {
                        "$set": {
                            f"revisions.{r.revision}": r.digest,
                            "updated": _millis(self._clock()),
                            **({f"bodies.{r.revision}": dict(r.body)} if r.body is not None else {}),
                        },
                        "$setOnInsert": {
                            "unit": r.unit,
                            "report_id": r.report_id,
                            "series": r.series,
                            "scope": list(r.scope),
                        },
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
    def __init__(self, clock: Callable[[], datetime] = utc_now) -> None:
        self.items: dict[str, Submission] = {}
        self._clock = clock

    async def get(self, unit: str, report_id: str) -> Submission | None:
        item = self.items.get(submission_key(unit, report_id))
        return None if item is None else self._copy(item)

    async def record(
        self,
        report_id: str,
        unit: str,
        series: str,
        revision: int,
        digest: str,
        scope: Sequence[str],
        body: Mapping[str, Any] | None = None,
    ) -> None:
        item = self.items.setdefault(
            submission_key(unit, report_id), Submission(report_id, unit, series, scope=tuple(scope))
        )
        item.revisions[revision] = digest
        if body is not None:
            item.bodies[revision] = copy.deepcopy(dict(body))
        item.updated = _millis(self._clock())

    async def page(
        self, where: Mapping[str, Any] | None, after: str | None = None, size: int = PAGE_SIZE
    ) -> SubmissionPage:
        rows = sorted(
            ((item.updated, key, item) for key, item in self.items.items() if _matches(where or {}, item)),
            key=lambda row: (row[0], row[1]),
            reverse=True,
        )
        if after is not None:
            at, last = decode_cursor(after)
            rows = [row for row in rows if (row[0], row[1]) < (at, last)]
        items = [self._copy(item) for _, _, item in rows[:size]]
        return SubmissionPage(items, encode_cursor(rows[size - 1][0], rows[size - 1][1]) if len(rows) > size else None)

    @staticmethod
    def _copy(item: Submission) -> Submission:
        return Submission(
            item.report_id,
            item.unit,
            item.series,
            dict(item.revisions),
            item.updated,
            item.scope,
            copy.deepcopy(item.bodies),
        )


def _matches(where: Mapping[str, Any], item: Submission) -> bool:
    """Whether ``item`` passes a filter of the kind SubmissionLog.page takes. A list field (the
    scope) holds for a value as MongoDB's does: when it is the whole list or one of its elements."""
    fields: dict[str, Any] = {"unit": item.unit, "series": item.series, "scope": list(item.scope)}
    for name, wanted in where.items():
        if name == "$or":
            if not any(_matches(branch, item) for branch in wanted):
                return False
        elif name not in fields:
            raise ValueError(f"a listing filters on unit, series and scope, not {name!r}")
        elif isinstance(wanted, Mapping):
            if set(wanted) != {"$in"}:
                raise ValueError(f"a listing filters with equalities, $in and $or, not {sorted(wanted)}")
            if not any(_equals(fields[name], value) for value in wanted["$in"]):
                return False
        elif not _equals(fields[name], wanted):
            return False
    return True


def _equals(value: Any, wanted: Any) -> bool:
    """MongoDB's equality on a field: against a list, the whole list or any element of it."""
    return value == wanted or (isinstance(value, list) and wanted in value)
