"""The submitted reports a token may list, a page at a time, newest first: the read side of the
submission log that ingest writes (services/ingest/submissions.py).

``SubmissionListing`` is the port; ``MongoSubmissionListing`` reads ingest's collection and
``InMemorySubmissionListing`` is its fake. Both pass tests/contract/test_submissions_listing_contract.py.

The documents, as ingest writes them: ``_id`` ``<unit>/<report_id>`` (a bare report id before
December 2026), ``unit``, ``report_id``, ``series`` (``study_session@2025``: the tree of the
report's period after the "@", none for the legacy tree), ``revisions`` (revision -> digest),
``updated`` (when the latest revision was recorded) and ``scope`` (the unit and its ancestors in
that tree, each code named with the tree: ``["2025:14923", "2025:38"]``) and ``bodies`` (revision ->
the report as accepted; none in a document written before ingest kept them). Ingest creates the
index (scope, updated, _id) a listing runs on. A listing never reads the bodies; ``report`` reads
one report with them, for the page that shows what was sent and the form that starts from it.

Which reports a token lists is a rule of its own (``reach_of``): for each tree that holds the
token's unit, the reports whose scope holds that unit in that tree. Codes are reused across trees,
so an old district's token lists nothing of the 2025 tree, where 14923 is a commune of province 38.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from pymongo import DESCENDING, AsyncMongoClient

from shared.adapters.mongo import SUBMISSIONS
from shared.domain.auth import Principal
from shared.domain.hierarchy import COUNTRY, OrgTree
from shared.domain.paging import decode_cursor, encode_cursor

PAGE_SIZE = 50  # reports per page
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # the time of a report recorded before the log kept one


@dataclass(frozen=True)
class Reach:
    """The reports a listing holds: those whose scope holds one of ``scopes``, or every report."""

    scopes: tuple[str, ...] = ()
    everything: bool = False


NOTHING = Reach()
EVERYTHING = Reach(everything=True)


def reach_of(org: OrgTree, principal: Principal) -> Reach:
    """What ``principal`` may list: every report for the country's token; else, for each tree
    that holds its unit, the reports whose scope holds the unit named with that tree; nothing for
    a unit no tree holds."""
    if principal.unit == COUNTRY:
        return EVERYTHING
    return Reach(tuple(scope_code(tree.tree_id, principal.unit) for tree in org.versions if principal.unit in tree))


def scope_code(tree_id: str, code: str) -> str:
    """``code`` named with its tree, as a report's scope holds it: ``"2025:38"``."""
    return f"{tree_id}:{code}"


@dataclass(frozen=True)
class ListedReport:
    report_id: str
    unit: str  # "" for a report recorded before the log kept units
    series: str  # as the log names it: "study_session@2025"
    revisions: tuple[int, ...]  # ascending


@dataclass(frozen=True)
class ListingPage:
    items: list[ListedReport]
    next: str | None  # the cursor of the page after this one; None on the last page


@dataclass(frozen=True)
class StoredReport:
    """One report with the bodies of its revisions (those kept: see the module's text)."""

    report_id: str
    unit: str
    series: str
    revisions: tuple[int, ...]  # ascending
    scope: tuple[str, ...]
    bodies: dict[int, dict[str, Any]]

    def within(self, reach: Reach) -> bool:
        return reach.everything or bool(set(self.scope) & set(reach.scopes))


class SubmissionListing(Protocol):
    async def page(self, reach: Reach, after: str | None = None, size: int = PAGE_SIZE) -> ListingPage:
        """The reports of ``reach``, newest revision first (ties by key, in reverse), ``size`` at
        most, starting after the cursor ``after`` that a previous page gave; BadCursor for a
        cursor it did not give."""
        ...

    async def report(self, unit: str, report_id: str) -> StoredReport | None:
        """The report ``report_id`` of ``unit`` with its bodies; None when there is none. The
        caller checks the reader may see it (``StoredReport.within``)."""
        ...


def _revisions(stored: Any) -> tuple[int, ...]:
    return tuple(sorted(int(r) for r in (stored or {})))


def _stored(doc: dict[str, Any], unit: str, report_id: str) -> StoredReport:
    return StoredReport(
        report_id,
        unit,
        str(doc.get("series", "")),
        _revisions(doc.get("revisions")),
        tuple(doc.get("scope") or ()),
        {int(k): dict(v) for k, v in (doc.get("bodies") or {}).items()},
    )


class MongoSubmissionListing:
    """Reads ingest's collection; never writes it."""

    def __init__(self, client: AsyncMongoClient[dict[str, Any]], database: str) -> None:
        self._col = client[database][SUBMISSIONS]

    async def page(self, reach: Reach, after: str | None = None, size: int = PAGE_SIZE) -> ListingPage:
        start = decode_cursor(after) if after is not None else None
        if not reach.everything and not reach.scopes:
            return ListingPage([], None)
        clauses: list[dict[str, Any]] = []
        if not reach.everything:  # one equality per tree: each runs on the (scope, updated, _id) index
            clauses.append({"$or": [{"scope": scope} for scope in reach.scopes]})
        if start is not None:
            at, key = start
            clauses.append({"$or": [{"updated": {"$lt": at}}, {"updated": at, "_id": {"$lt": key}}]})
        query = clauses[0] if len(clauses) == 1 else {"$and": clauses} if clauses else {}
        # a listing shows no figures: the bodies stay on the server
        cursor = self._col.find(query, {"bodies": 0}).sort([("updated", DESCENDING), ("_id", DESCENDING)])
        docs = [d async for d in cursor.limit(size + 1)]
        items = [
            ListedReport(
                str(d.get("report_id", d["_id"])),
                str(d.get("unit", "")),
                str(d.get("series", "")),
                _revisions(d.get("revisions")),
            )
            for d in docs[:size]
        ]
        if len(docs) <= size:
            return ListingPage(items, None)
        last = docs[size - 1]
        return ListingPage(items, encode_cursor(last.get("updated") or EPOCH, str(last["_id"])))

    async def report(self, unit: str, report_id: str) -> StoredReport | None:
        doc = await self._col.find_one({"_id": f"{unit}/{report_id}"})
        return None if doc is None else _stored(doc, unit, report_id)


@dataclass
class _Stored:
    report: ListedReport
    updated: datetime
    scope: tuple[str, ...]
    key: str
    bodies: dict[int, dict[str, Any]] = field(default_factory=dict)


@dataclass
class InMemorySubmissionListing:
    """The fake: reports put in with ``add``, listed as the MongoDB adapter lists them."""

    stored: list[_Stored] = field(default_factory=list)

    def add(
        self,
        unit: str,
        report_id: str,
        series: str,
        revisions: Sequence[int],
        updated: datetime,
        scope: Sequence[str],
        key: str | None = None,
        bodies: dict[int, dict[str, Any]] | None = None,
    ) -> None:
        """A report as ingest records it; ``key`` its ``_id`` when not ``<unit>/<report_id>``;
        ``bodies`` the reports of its revisions (revision -> report)."""
        moment = updated.replace(microsecond=updated.microsecond // 1000 * 1000)  # MongoDB keeps milliseconds
        report = ListedReport(report_id, unit, series, tuple(sorted(revisions)))
        self.stored.append(_Stored(report, moment, tuple(scope), key or f"{unit}/{report_id}", dict(bodies or {})))

    async def report(self, unit: str, report_id: str) -> StoredReport | None:
        for s in self.stored:
            if s.key == f"{unit}/{report_id}":
                r = s.report
                return StoredReport(r.report_id, r.unit, r.series, r.revisions, s.scope, dict(s.bodies))
        return None

    async def page(self, reach: Reach, after: str | None = None, size: int = PAGE_SIZE) -> ListingPage:
        start = decode_cursor(after) if after is not None else None
        rows = sorted(
            (s for s in self.stored if reach.everything or set(s.scope) & set(reach.scopes)),
            key=lambda s: (s.updated, s.key),
            reverse=True,
        )
        if start is not None:
            rows = [s for s in rows if (s.updated, s.key) < start]
        items = [s.report for s in rows[:size]]
        if len(rows) <= size:
            return ListingPage(items, None)
        return ListingPage(items, encode_cursor(rows[size - 1].updated, rows[size - 1].key))
