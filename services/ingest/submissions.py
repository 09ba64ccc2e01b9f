"""What ingest remembers of each report_id: its unit and series, and the revisions it accepted
(with a digest of their content). It lets ingest answer a resubmission as a duplicate and refuse
a revision that would change a report's unit or kind. The aggregator does not depend on it: its
own ledger makes every redelivery harmless.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from pymongo import AsyncMongoClient

from shared.mongo import SUBMISSIONS


@dataclass
class Submission:
    report_id: str
    unit: str
    series: str
    revisions: dict[int, str] = field(default_factory=dict)  # revision -> content digest


class SubmissionLog(Protocol):
    async def get(self, report_id: str) -> Submission | None: ...

    async def record(self, report_id: str, unit: str, series: str, revision: int, digest: str) -> None: ...


class MongoSubmissionLog:
    def __init__(self, client: AsyncMongoClient[dict[str, Any]], database: str) -> None:
        self._col = client[database][SUBMISSIONS]

    async def get(self, report_id: str) -> Submission | None:
        doc = await self._col.find_one({"_id": report_id})
        if doc is None:
            return None
        return Submission(
            report_id, doc["unit"], doc["series"], {int(k): v for k, v in (doc.get("revisions") or {}).items()}
        )

    async def record(self, report_id: str, unit: str, series: str, revision: int, digest: str) -> None:
        await self._col.update_one(
            {"_id": report_id},
            {"$set": {f"revisions.{revision}": digest}, "$setOnInsert": {"unit": unit, "series": series}},
            upsert=True,
        )


class InMemorySubmissionLog:
    def __init__(self) -> None:
        self.items: dict[str, Submission] = {}

    async def get(self, report_id: str) -> Submission | None:
        item = self.items.get(report_id)
        return None if item is None else Submission(item.report_id, item.unit, item.series, dict(item.revisions))

    async def record(self, report_id: str, unit: str, series: str, revision: int, digest: str) -> None:
        item = self.items.setdefault(report_id, Submission(report_id, unit, series))
        item.revisions[revision] = digest
