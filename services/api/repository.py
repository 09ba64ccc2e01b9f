"""The read API's port to the totals, with the MongoDB adapter and an in-memory fake.

Both pass tests/contract/test_totals_reader_contract.py.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any, Protocol

from pymongo import AsyncMongoClient

from shared.mongo import TOTALS
from shared.rollup import TotalKey


class TotalsReader(Protocol):
    async def get_many(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]: ...

    async def reporting_units(self, units: Iterable[str], series: str, period: str) -> set[str]:
        """Those of ``units`` that themselves have an active report in (series, period)."""
        ...


class MongoTotalsReader:
    def __init__(self, client: AsyncMongoClient[dict[str, Any]], database: str) -> None:
        self._col = client[database][TOTALS]

    async def get_many(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        return {d["_id"]: d async for d in self._col.find({"_id": {"$in": list(ids)}}, projection={"wm": 0})}

    async def reporting_units(self, units: Iterable[str], series: str, period: str) -> set[str]:
        # by _id, the one index every MongoDB-compatible server has: no scan of the collection
        ids = [TotalKey(u, series, period).id for u in units]
        cursor = self._col.find({"_id": {"$in": ids}, "own": {"$gt": 0}}, projection={"unit": 1})
        return {d["unit"] async for d in cursor}


class InMemoryTotalsReader:
    def __init__(self, docs: dict[str, dict[str, Any]] | None = None) -> None:
        self.docs = docs if docs is not None else {}

    async def get_many(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        out = {}
        for i in ids:
            if i in self.docs:
                doc = copy.deepcopy(self.docs[i])
                doc.pop("wm", None)
                out[i] = doc
        return out

    async def reporting_units(self, units: Iterable[str], series: str, period: str) -> set[str]:
        out = set()
        for u in units:
            doc = self.docs.get(TotalKey(u, series, period).id)
            if doc is not None and doc.get("own", 0) > 0:
                out.add(u)
        return out
