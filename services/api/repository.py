"""The read API's port to the totals, with the MongoDB adapter and an in-memory fake.

Both pass tests/contract/test_totals_reader_contract.py.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any, Protocol

from pymongo import AsyncMongoClient

from shared.mongo import TOTALS


class TotalsReader(Protocol):
    async def get_many(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]: ...

    async def reporting_units(self, ancestor: str, series: str, period: str) -> set[str]:
        """Units in the subtree of ``ancestor`` that themselves have an active report."""
        ...


class MongoTotalsReader:
    def __init__(self, client: AsyncMongoClient[dict[str, Any]], database: str) -> None:
        self._col = client[database][TOTALS]

    async def get_many(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        return {d["_id"]: d async for d in self._col.find({"_id": {"$in": list(ids)}}, projection={"wm": 0})}

    async def reporting_units(self, ancestor: str, series: str, period: str) -> set[str]:
        cursor = self._col.find(
            {"parents": ancestor, "series": series, "period": period, "own": {"$gt": 0}},
            projection={"unit": 1},
        )
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

    async def reporting_units(self, ancestor: str, series: str, period: str) -> set[str]:
        return {
            d["unit"]
            for d in self.docs.values()
            if ancestor in d.get("parents", ())
            and d["series"] == series
            and d["period"] == period
            and d.get("own", 0) > 0
        }
