"""The read API's port to the totals, with the MongoDB adapter and an in-memory fake.

The API asks for the figures of units and series in one period; they are stored one document per
(unit, series, span) (shared/domain/totals_docs.py), so each adapter reads the documents of the period's
span, only that period of them, and hands back its figures. Both pass
tests/contract/test_totals_reader_contract.py.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any, Protocol

from pymongo import AsyncMongoClient

from shared.adapters.mongo import TOTALS
from shared.domain.periods import span_of
from shared.domain.rollup import OWN, doc_id

# What the API reads of one total: the stored figures of one (unit, series) in one period, as the
# aggregator wrote them (shared/domain/totals_docs.py): ``sums`` and the non-zero counters. Read-only: the
# cache hands out the dictionaries it holds.
Figures = Mapping[str, Any]


class TotalsReader(Protocol):
    async def figures(self, units: Sequence[str], series: Sequence[str], period: str) -> dict[tuple[str, str], Figures]:
        """The figures of every (unit, series) asked for in ``period``, keyed (unit, series);
        those with none are absent."""
        ...

    async def reporting_units(self, units: Iterable[str], series: str, period: str) -> set[str]:
        """Those of ``units`` that themselves have an active report in (series, period)."""
        ...


async def figures_of(
    units: Sequence[str],
    series: Sequence[str],
    period: str,
    fetch: Callable[[list[str]], Awaitable[Mapping[str, Mapping[str, Any]]]],
) -> dict[tuple[str, str], Figures]:
    """The figures of (unit, series) in ``period`` from the stored documents ``fetch`` gives by id
    (one per unit, series and the period's span). A drill-down asks for hundreds at once: the span
    is worked out once, and nothing is copied."""
    span = _span(period)
    keys = [(u, s) for u in units for s in series]
    doc_ids = [doc_id(u, s, span) for u, s in keys]
    stored = await fetch(doc_ids)
    out: dict[tuple[str, str], Figures] = {}
    for key, stored_id in zip(keys, doc_ids, strict=True):
        doc = stored.get(stored_id)
        if doc is not None and (found := (doc.get("periods") or {}).get(period)):
            out[key] = found
    return out


@lru_cache(maxsize=1024)
def _span(period: str) -> str:
    return span_of(period)


async def reporting_units(reader: TotalsReader, units: Iterable[str], series: str, period: str) -> set[str]:
    found = await reader.figures(list(units), [series], period)
    return {unit for (unit, _), f in found.items() if f.get(OWN, 0) > 0}


class MongoTotalsReader:
    def __init__(self, client: AsyncMongoClient[dict[str, Any]], database: str) -> None:
        self._col = client[database][TOTALS]

    async def figures(self, units: Sequence[str], series: Sequence[str], period: str) -> dict[tuple[str, str], Figures]:
        # only the period asked for; by _id, the one index every MongoDB-compatible server has
        projection = {f"periods.{period}": 1}

        async def fetch(doc_ids: list[str]) -> dict[str, dict[str, Any]]:
            # one round trip: MongoDB's first batch stops at 101 documents unless told otherwise (a
            # district's drill-down asks for up to 30 communes x 11 series); mongo-java-server
            # sends them all at once either way
            cursor = self._col.find({"_id": {"$in": doc_ids}}, projection=projection, batch_size=len(doc_ids) + 1)
            return {d["_id"]: d for d in await cursor.to_list(None)}

        return await figures_of(units, series, period, fetch)

    async def reporting_units(self, units: Iterable[str], series: str, period: str) -> set[str]:
        return await reporting_units(self, units, series, period)


class InMemoryTotalsReader:
    """The fake: stored documents (as the aggregator writes them) in a dictionary."""

    def __init__(self, docs: dict[str, dict[str, Any]] | None = None) -> None:
        self.docs = docs if docs is not None else {}

    async def _documents(self, doc_ids: list[str]) -> dict[str, dict[str, Any]]:
        return {i: copy.deepcopy(self.docs[i]) for i in doc_ids if i in self.docs}

    async def figures(self, units: Sequence[str], series: Sequence[str], period: str) -> dict[tuple[str, str], Figures]:
        return await figures_of(units, series, period, self._documents)

    async def reporting_units(self, units: Iterable[str], series: str, period: str) -> set[str]:
        return await reporting_units(self, units, series, period)
