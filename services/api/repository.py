"""The read API's port to the totals, with the MongoDB adapter and an in-memory fake.

The API asks for totals by their id, ``<unit>|<series>|<period>``; they are stored one document
per (unit, series, span) (shared/totals_docs.py), so each adapter reads the documents holding the
periods asked for and hands back each period's view. Both pass
tests/contract/test_totals_reader_contract.py.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable, Iterable
from functools import lru_cache
from typing import Any, Protocol

from pymongo import AsyncMongoClient

from shared.mongo import TOTALS
from shared.periods import span_of
from shared.rollup import OWN, TotalKey
from shared.totals_docs import period_view


class TotalsReader(Protocol):
    async def get_many(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Totals by id (unit|series|period): ``sums`` and the counters; absent ids have none."""
        ...

    async def reporting_units(self, units: Iterable[str], series: str, period: str) -> set[str]:
        """Those of ``units`` that themselves have an active report in (series, period)."""
        ...


async def views_of(
    ids: list[str], fetch: Callable[[list[str]], Awaitable[dict[str, dict[str, Any]]]]
) -> dict[str, dict[str, Any]]:
    """The totals ``ids`` (unit|series|period) from the stored documents ``fetch`` gives by id.
    (The drill-down asks for hundreds at a time: each id is split once.)"""
    wanted = []
    for i in ids:
        unit, series, period = i.split("|")
        wanted.append((i, f"{unit}|{series}|{_span(period)}", period))
    stored = await fetch(list(dict.fromkeys(doc_id for _, doc_id, _ in wanted)))
    out = {}
    for i, doc_id, period in wanted:
        view = period_view(stored.get(doc_id), period)
        if view is not None:
            out[i] = view
    return out


@lru_cache(maxsize=1024)
def _span(period: str) -> str:
    return span_of(period)


async def reporting_units(reader: TotalsReader, units: Iterable[str], series: str, period: str) -> set[str]:
    views = await reader.get_many([TotalKey(u, series, period).id for u in units])
    return {v["unit"] for v in views.values() if v.get(OWN, 0) > 0}


class MongoTotalsReader:
    def __init__(self, client: AsyncMongoClient[dict[str, Any]], database: str) -> None:
        self._col = client[database][TOTALS]

    async def get_many(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        wanted = list(ids)
        # only the periods asked for; by _id, the one index every MongoDB-compatible server has
        periods = {i.rsplit("|", 1)[1] for i in wanted}
        projection = {"unit": 1, "series": 1, "parents": 1, "version": 1, **{f"periods.{p}": 1 for p in periods}}

        async def fetch(doc_ids: list[str]) -> dict[str, dict[str, Any]]:
            return {d["_id"]: d async for d in self._col.find({"_id": {"$in": doc_ids}}, projection=projection)}

        return await views_of(wanted, fetch)

    async def reporting_units(self, units: Iterable[str], series: str, period: str) -> set[str]:
        return await reporting_units(self, units, series, period)


class InMemoryTotalsReader:
    """The fake: stored documents (as the aggregator writes them) in a dictionary."""

    def __init__(self, docs: dict[str, dict[str, Any]] | None = None) -> None:
        self.docs = docs if docs is not None else {}

    async def _documents(self, doc_ids: list[str]) -> dict[str, dict[str, Any]]:
        return {i: copy.deepcopy(self.docs[i]) for i in doc_ids if i in self.docs}

    async def get_many(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        return await views_of(list(ids), self._documents)

    async def reporting_units(self, units: Iterable[str], series: str, period: str) -> set[str]:
        return await reporting_units(self, units, series, period)
