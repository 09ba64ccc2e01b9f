"""The read API's cache of stored totals documents, kept current by the totals stream.

The aggregator publishes every new version of a document on the totals topic before it writes it
to MongoDB (services/aggregate/aggregator.py), and the API already follows that topic for its
server-sent events. So the API keeps the documents it has seen, from the stream or read from
MongoDB, and answers from memory: a change is served as soon as it is published, not once the
database has taken it, and a hot document (a province's, a district's) is not read again.

Why a cached document is never stale, as long as the follower is live:

* a document from the stream is replaced by each later version the stream brings;
* a document read from MongoDB is one whose later versions, if any, the follower has seen or
  will see, except one published before the follower started whose database write had not
  landed when it was read. The aggregator writes what it published at most one bulk write
  later, so documents read in the first ``grace_s`` seconds after the follower started are served
  but not kept;
* a version never replaces a higher one, so a database read racing a newer stream message loses.

When the follower loses the topic (Kafka away), the cache is emptied and reads go to MongoDB
until it is back. Memory is bounded: the least recently used documents are dropped past
``max_documents``.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from services.api.repository import reporting_units, views_of

# What an absent document is cached as: no figures, below every real version.
_ABSENT_VERSION = 0


class DocumentStore(Protocol):
    async def documents(self, doc_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Whole stored documents by id (absent ids are left out)."""
        ...


class TotalsCache:
    def __init__(self, max_documents: int, grace_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_documents = max_documents
        self.grace_s = grace_s
        self._clock = clock
        self._docs: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._live_since: float | None = None
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._docs)

    # ------------------------------------------------------------------ the follower

    def follower_started(self) -> None:
        """The follower (re)started at the end of the topic: what it missed meanwhile is unknown."""
        self._docs.clear()
        self._live_since = self._clock()

    def follower_lost(self) -> None:
        self._docs.clear()
        self._live_since = None

    @property
    def serving(self) -> bool:
        return self._live_since is not None

    def trusts_reads(self) -> bool:
        """Whether a document read from MongoDB now may be kept (see the module's docstring)."""
        return self._live_since is not None and self._clock() - self._live_since >= self.grace_s

    def offer_message(self, message: dict[str, Any]) -> None:
        """A totals message (shared/totals_stream.py): the whole current document."""
        self._offer(
            {
                "_id": message["id"],
                "unit": message["unit"],
                "series": message["series"],
                "parents": list(message.get("parents", ())),
                "version": int(message["version"]),
                "periods": message.get("periods") or {},
            }
        )

    # ------------------------------------------------------------------ reading

    def get(self, doc_id: str) -> dict[str, Any] | None:
        """The cached document (with empty periods if it is known not to exist), or None."""
        doc = self._docs.get(doc_id)
        if doc is not None:
            self._docs.move_to_end(doc_id)
        return doc

    def keep_read(self, doc_ids: Iterable[str], found: dict[str, dict[str, Any]]) -> None:
        """Keep documents just read from MongoDB (and the absence of those not found), if the
        follower has been live long enough for them to be trusted."""
        if not self.trusts_reads():
            return
        for doc_id in doc_ids:
            self._offer(found.get(doc_id) or {"_id": doc_id, "version": _ABSENT_VERSION, "periods": {}})

    def _offer(self, doc: dict[str, Any]) -> None:
        if self._live_since is None:
            return
        doc_id = doc["_id"]
        current = self._docs.get(doc_id)
        if current is not None and int(current.get("version", 0)) >= int(doc.get("version", 0)):
            return
        self._docs[doc_id] = doc
        self._docs.move_to_end(doc_id)
        while len(self._docs) > self.max_documents:
            self._docs.popitem(last=False)


class CachedTotalsReader:
    """A TotalsReader that answers from the cache and reads only what it lacks from the store."""

    def __init__(self, store: DocumentStore, cache: TotalsCache) -> None:
        self.store = store
        self.cache = cache

    async def _stored(self, doc_ids: list[str]) -> dict[str, dict[str, Any]]:
        cache = self.cache
        if not cache.serving:
            return await self.store.documents(doc_ids)
        out: dict[str, dict[str, Any]] = {}
        missing = []
        for doc_id in doc_ids:
            doc = cache.get(doc_id)
            if doc is None:
                missing.append(doc_id)
            elif doc.get("periods"):
                out[doc_id] = doc
        cache.hits += len(doc_ids) - len(missing)
        cache.misses += len(missing)
        if missing:
            found = await self.store.documents(missing)
            cache.keep_read(missing, found)
            out.update(found)
        return out

    async def get_many(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        return await views_of(list(ids), self._stored)

    async def reporting_units(self, units: Iterable[str], series: str, period: str) -> set[str]:
        return await reporting_units(self, units, series, period)
