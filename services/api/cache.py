"""The read API's cache of stored totals documents, fed by the totals stream.

The aggregator publishes every new version of a document on the totals topic before it writes it
to MongoDB (services/aggregate/aggregator.py), and the API already follows that topic for its
server-sent events. So the API keeps the documents the stream brings and answers from memory: a
change is served as soon as it is published, not once the database has taken it, and a document
that changes (a province's, a district's) is not read from the database again.

Only the stream fills the cache, so nothing in it is stale while the follower is live: every later
version of a cached document comes the same way, and a version never replaces a higher one.
What is not cached is read from MongoDB, only the periods asked for, as without a cache. When the
follower loses the topic (Kafka away) or starts again, the cache is emptied (what was published
meanwhile is unknown) and reads go to MongoDB until the stream brings documents again. Memory is
bounded: past ``max_documents`` the least recently used documents go (about 3 KB each).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from services.api.repository import TotalsReader, reporting_units, views_of
from shared.totals_docs import stored_id


class TotalsCache:
    def __init__(self, max_documents: int) -> None:
        self.max_documents = max_documents
        self._docs: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.serving = False  # whether the follower is live (else nothing is kept or served)
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._docs)

    def follower_started(self) -> None:
        """The follower (re)started at the end of the topic: what it missed meanwhile is unknown."""
        self._docs.clear()
        self.serving = True

    def follower_lost(self) -> None:
        self._docs.clear()
        self.serving = False

    def offer_message(self, message: dict[str, Any]) -> None:
        """A totals message (shared/totals_stream.py): the whole current document."""
        if not self.serving:
            return
        doc_id = message["id"]
        version = int(message["version"])
        current = self._docs.get(doc_id)
        if current is not None and current["version"] >= version:
            return  # a duplicate or an older version (a republication after a restore)
        self._docs[doc_id] = {
            "_id": doc_id,
            "unit": message["unit"],
            "series": message["series"],
            "parents": list(message.get("parents", ())),
            "version": version,
            "periods": message.get("periods") or {},
        }
        self._docs.move_to_end(doc_id)
        while len(self._docs) > self.max_documents:
            self._docs.popitem(last=False)

    def get(self, doc_id: str) -> dict[str, Any] | None:
        """The cached document (with empty periods when all its reports were withdrawn), or None."""
        doc = self._docs.get(doc_id)
        if doc is not None:
            self._docs.move_to_end(doc_id)
        return doc


class CachedTotalsReader:
    """A TotalsReader that answers from the cache what it holds and asks ``store`` the rest."""

    def __init__(self, store: TotalsReader, cache: TotalsCache) -> None:
        self.store = store
        self.cache = cache

    async def get_many(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        wanted = list(ids)
        cache = self.cache
        if not cache.serving:
            return await self.store.get_many(wanted)
        found: dict[str, dict[str, Any]] = {}
        missing: list[str] = []

        async def from_cache(doc_ids: list[str]) -> dict[str, dict[str, Any]]:
            for doc_id in doc_ids:
                doc = cache.get(doc_id)
                if doc is None:
                    missing.append(doc_id)
                else:
                    found[doc_id] = doc
            return found

        views = await views_of(wanted, from_cache)
        cache.hits += len(found)
        cache.misses += len(missing)
        if missing:
            lacking = set(missing)
            rest = [i for i in wanted if _doc_id(i) in lacking]
            views.update(await self.store.get_many(rest))
        return {i: views[i] for i in wanted if i in views}

    async def reporting_units(self, units: Iterable[str], series: str, period: str) -> set[str]:
        return await reporting_units(self, units, series, period)


def _doc_id(total_id: str) -> str:
    return stored_id(total_id)


class CacheCollector:
    """The cache's size and lookups for Prometheus, read when /metrics is scraped."""

    def __init__(self, cache: TotalsCache) -> None:
        self.cache = cache

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "baocao_api_cache_documents", "Totals documents from the stream held by the API", value=len(self.cache)
        )
        lookups = CounterMetricFamily(
            "baocao_api_cache_lookups", "Totals documents looked up in the API's cache, by result", labels=["result"]
        )
        lookups.add_metric(["hit"], self.cache.hits)
        lookups.add_metric(["miss"], self.cache.misses)
        yield lookups
