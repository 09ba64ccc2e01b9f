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
bounded: past ``max_documents`` the least recently used documents go (docs/benchmarks.md has
the size of one).

The follower reads the topic from its beginning first (services/api/stream.py). The topic is
compacted, so that replay brings the latest version of every document ever published, and every
document MongoDB holds was published first: once replayed, the cache knows which documents exist.
A document it has never seen is then known to be absent (most of what a drill-down asks for: a
commune that has not reported a series in a year) and is not looked for in MongoDB; only those
that exist but were pushed out of memory are. The ids of every existing document stay in memory.

The same messages keep a second, smaller memory: :class:`Answers`, the JSON of answers built from
those documents (a unit's totals, a drill-down), each dropped as soon as a message changes a
document it was built from.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from pydantic_core import to_json

from services.api.repository import Figures, TotalsReader, figures_of, reporting_units
from shared.domain.hierarchy import COUNTRY, OrgTree

# What an answer is kept under: (kind of answer, unit, period, "<tree id>:<tree version>"). The
# tree's version changes when an agency is registered, so an answer never outlives the tree it
# was built from; the unit is second, the one whose documents (or children's) the answer shows.
AnswerKey = tuple[str, str, str, str]


def answer_key(kind: str, code: str, period: str, tree: OrgTree) -> AnswerKey:
    return (kind, code, period, f"{tree.tree_id}:{tree.version}")


async def answer_json(
    cache: TotalsCache | None,
    kind: str,
    code: str,
    period: str,
    tree: OrgTree,
    build: Callable[[], Awaitable[dict[str, Any]]],
) -> bytes:
    """The JSON of ``kind`` (``totals``, ``children``) for ``code`` in ``period`` and ``tree``:
    built by ``build``, or the one the cache holds, reused until the stream changes a document it
    shows (:class:`Answers`)."""
    if cache is None:
        return to_json(await build())
    return await cache.answer(answer_key(kind, code, period, tree), build)


class Answers:
    """Answers already built, as the bytes sent, keyed by what was asked (:data:`AnswerKey`).
    Each answer shows the documents of one unit (its totals) or of one unit's children (a
    drill-down); a message about a document drops the answers of its unit and of its unit's
    parent. Sending an answer again costs a lookup, not a build (docs/benchmarks.md).

    An answer is kept only if nothing it could show changed while it was built (a document read
    from MongoDB may be older than one the stream brought meanwhile): :meth:`token` is taken before
    building, :meth:`keep` checks it. Bounded by ``max_bytes``, least recently used first out."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._bodies: OrderedDict[AnswerKey, bytes] = OrderedDict()
        self._by_unit: dict[str, set[AnswerKey]] = {}  # unit shown -> keys of its answers
        self._changes: dict[str, int] = {}  # unit -> messages that touched what it shows
        self._epoch = 0  # bumped when everything is dropped
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: AnswerKey) -> bytes | None:
        body = self._bodies.get(key)
        if body is None:
            self.misses += 1
            return None
        self._bodies.move_to_end(key)
        self.hits += 1
        return body

    def token(self, unit: str) -> tuple[int, int]:
        return (self._epoch, self._changes.get(unit, 0))

    def keep(self, key: AnswerKey, unit: str, token: tuple[int, int], body: bytes) -> None:
        """Remember ``body`` as the answer to ``key``, which shows documents of ``unit`` (its own,
        or its children's), unless something it shows changed since ``token`` was taken."""
        if self.max_bytes <= 0 or token != self.token(unit) or len(body) > self.max_bytes:
            return
        old = self._bodies.pop(key, None)
        if old is not None:
            self.bytes -= len(old)
        self._bodies[key] = body
        self.bytes += len(body)
        self._by_unit.setdefault(unit, set()).add(key)
        while self.bytes > self.max_bytes:
            old_key, old_body = self._bodies.popitem(last=False)
            self.bytes -= len(old_body)
            keys = self._by_unit.get(old_key[1])
            if keys is not None:
                keys.discard(old_key)

    def changed(self, parents: list[str]) -> None:
        """A document of ``parents[0]`` changed: drop the answers showing it (that unit's own and
        its parent's drill-down; a province's parent is the country, VN, summed at read time)."""
        units = parents[:2] if len(parents) > 1 else [*parents, COUNTRY]
        for unit in units:
            self._changes[unit] = self._changes.get(unit, 0) + 1
            for key in self._by_unit.pop(unit, ()):
                body = self._bodies.pop(key, None)
                if body is not None:
                    self.bytes -= len(body)

    def clear(self) -> None:
        self._bodies.clear()
        self._by_unit.clear()
        self._changes.clear()
        self._epoch += 1
        self.bytes = 0


class TotalsCache:
    def __init__(self, max_documents: int, answer_bytes: int = 0) -> None:
        self.max_documents = max_documents
        self._docs: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.serving = False  # whether the follower is live (else nothing is kept or served)
        self.replaying = False  # the follower is reading the topic from its beginning
        self.complete = False  # everything published has been seen: what was not does not exist
        self._existing: set[str] = set()  # ids of the documents with figures, cached or not
        self.answers = Answers(answer_bytes)
        self.hits = 0
        self.misses = 0
        self.absent = 0  # looked up, known not to exist

    def __len__(self) -> int:
        return len(self._docs)

    def _forget(self) -> None:
        self._docs.clear()
        self._existing.clear()
        self.answers.clear()
        self.serving = self.replaying = self.complete = False

    def follower_started(self) -> None:
        """The follower (re)started at the end of the topic: what was published before is unknown,
        so what the cache lacks is read from the database."""
        self._forget()
        self.serving = True

    def follower_replaying(self) -> None:
        """The follower (re)started at the beginning of the topic: documents are kept, nothing is
        served until :meth:`follower_replayed`."""
        self._forget()
        self.replaying = True

    def follower_replayed(self) -> None:
        """The follower has read the topic up to where it ended when the replay started: the cache
        has seen every document published, and serves."""
        self.replaying = False
        self.serving = self.complete = True

    def follower_lost(self) -> None:
        self._forget()

    def exists(self, doc_id: str) -> bool:
        """Whether the document may hold figures: always, unless the replay made the cache
        complete and the stream never brought it (or brought it emptied)."""
        return not self.complete or doc_id in self._existing

    def offer_message(self, message: dict[str, Any]) -> None:
        """A totals message (shared/domain/totals_stream.py): the whole current document."""
        if not (self.serving or self.replaying):
            return
        doc_id = message["id"]
        version = int(message["version"])
        current = self._docs.get(doc_id)
        if current is not None and current["version"] >= version:
            return  # a duplicate or an older version (a republication after a restore)
        self.answers.changed(list(message.get("parents", ())) or [message["unit"]])
        periods = message.get("periods") or {}
        if periods:
            self._existing.add(doc_id)
        else:
            self._existing.discard(doc_id)  # all its figures withdrawn: deleted from MongoDB too
        self._docs[doc_id] = {
            "_id": doc_id,
            "unit": message["unit"],
            "series": message["series"],
            "parents": list(message.get("parents", ())),
            "version": version,
            "periods": periods,
        }
        self._docs.move_to_end(doc_id)
        while len(self._docs) > self.max_documents:
            self._docs.popitem(last=False)

    async def answer(self, key: AnswerKey, build: Callable[[], Awaitable[dict[str, Any]]]) -> bytes:
        """The JSON answer to ``key`` (route, unit, period, tree version) showing documents of
        ``key[1]`` or of its children: the one already built if none of them changed since, else
        ``build()``'s, kept for next time while the follower is live."""
        if not self.serving:
            return to_json(await build())
        body = self.answers.get(key)
        if body is None:
            token = self.answers.token(key[1])
            body = to_json(await build())
            self.answers.keep(key, key[1], token, body)
        return body

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

    async def figures(self, units: Sequence[str], series: Sequence[str], period: str) -> dict[tuple[str, str], Figures]:
        cache = self.cache
        if not cache.serving:
            return await self.store.figures(units, series, period)
        missing: set[str] = set()

        async def from_cache(doc_ids: list[str]) -> dict[str, dict[str, Any]]:
            found = {}
            absent = 0
            for doc_id in doc_ids:
                doc = cache.get(doc_id)
                if doc is not None:
                    found[doc_id] = doc
                elif cache.exists(doc_id):
                    missing.add(doc_id)
                else:
                    absent += 1
            cache.hits += len(found)
            cache.misses += len(missing)
            cache.absent += absent
            return found

        out = await figures_of(units, series, period, from_cache)
        if missing:  # what the cache lacks comes from the database; what it holds is newer there
            lacking: set[tuple[str, str]] = set()
            for doc_id in missing:
                unit, name, _ = doc_id.split("|")
                lacking.add((unit, name))
            rest = await self.store.figures(
                [u for u in units if any((u, s) in lacking for s in series)],
                [s for s in series if any((u, s) in lacking for u in units)],
                period,
            )
            out.update((key, found) for key, found in rest.items() if key in lacking)
        return out

    async def reporting_units(self, units: Iterable[str], series: str, period: str) -> set[str]:
        return await reporting_units(self, units, series, period)


class CacheCollector:
    """The cache's size and lookups for Prometheus, read when /metrics is scraped."""

    def __init__(self, cache: TotalsCache) -> None:
        self.cache = cache

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "baocao_api_cache_documents", "Totals documents from the stream held by the API", value=len(self.cache)
        )
        yield GaugeMetricFamily(
            "baocao_api_cache_complete",
            "1 once the follower has replayed the totals topic: the cache knows which documents exist",
            value=int(self.cache.complete),
        )
        lookups = CounterMetricFamily(
            "baocao_api_cache_lookups",
            "Totals documents looked up in the API's cache: hit, miss (read from MongoDB), absent (known not to exist)",
            labels=["result"],
        )
        lookups.add_metric(["hit"], self.cache.hits)
        lookups.add_metric(["miss"], self.cache.misses)  # read from MongoDB
        lookups.add_metric(["absent"], self.cache.absent)  # known not to exist: not read
        yield lookups
        answers = self.cache.answers
        yield GaugeMetricFamily(
            "baocao_api_answers_bytes",
            "Bytes of built answers (totals, drill-downs) the API holds",
            value=answers.bytes,
        )
        reused = CounterMetricFamily(
            "baocao_api_answers_lookups", "Answers looked up among those already built, by result", labels=["result"]
        )
        reused.add_metric(["hit"], answers.hits)
        reused.add_metric(["miss"], answers.misses)
        yield reused
