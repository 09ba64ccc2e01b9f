"""Where targets are kept (shared/domain/targets.py): a port (``TargetStore``), its MongoDB adapter
and an in-memory fake; both pass tests/contract/test_target_store_contract.py.

The MongoDB documents (collection ``targets``): ``_id`` ``<unit>/<metric>/<period>``, the
target's fields by name, ``low`` and ``high`` as decimal text (exact: ``"9.96"``), ``path`` the
unit, its ancestors in the period's tree and ``VN`` (a list, indexed with the period: a
subtree's listing is one equality on each). Setting a target replaces the one standing for its
(unit, metric, period).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Protocol

from pymongo import AsyncMongoClient

from shared.domain.targets import Target, target_id

TARGETS = "targets"


class TargetStore(Protocol):
    async def put(self, target: Target) -> Target | None:
        """Keeps ``target``, replacing the one of its (unit, metric, period); the one replaced."""
        ...

    async def get(self, unit: str, metric: str, period: str) -> Target | None: ...

    async def remove(self, unit: str, metric: str, period: str) -> Target | None:
        """Removes the target of (unit, metric, period); the one removed, None when none stood."""
        ...

    async def listing(self, unit: str, period: str) -> list[Target]:
        """The targets of ``period`` for ``unit`` and every unit under it, by unit then metric."""
        ...


def _sorted(targets: Sequence[Target]) -> list[Target]:
    return sorted(targets, key=lambda t: (t.unit, t.metric))


class InMemoryTargetStore:
    def __init__(self) -> None:
        self.targets: dict[str, Target] = {}

    async def put(self, target: Target) -> Target | None:
        before = self.targets.get(target.id)
        self.targets[target.id] = target
        return before

    async def get(self, unit: str, metric: str, period: str) -> Target | None:
        return self.targets.get(target_id(unit, metric, period))

    async def remove(self, unit: str, metric: str, period: str) -> Target | None:
        return self.targets.pop(target_id(unit, metric, period), None)

    async def listing(self, unit: str, period: str) -> list[Target]:
        return _sorted([t for t in self.targets.values() if t.period == period and unit in t.path])


def _document(target: Target) -> dict[str, Any]:
    return {
        "_id": target.id,
        "unit": target.unit,
        "metric": target.metric,
        "period": target.period,
        "low": format(target.low, "f"),
        "high": format(target.high, "f"),
        "set_by": target.set_by,
        "at": target.at,
        "path": list(target.path),
    }


def _target(doc: dict[str, Any]) -> Target:
    return Target(
        unit=str(doc["unit"]),
        metric=str(doc["metric"]),
        period=str(doc["period"]),
        low=Decimal(str(doc["low"])),
        high=Decimal(str(doc["high"])),
        set_by=str(doc.get("set_by", "")),
        at=float(doc.get("at", 0.0)),
        path=tuple(doc.get("path") or ()),
    )


class MongoTargetStore:
    def __init__(self, client: AsyncMongoClient[dict[str, Any]], database: str) -> None:
        self._col = client[database][TARGETS]

    async def ensure_indexes(self) -> None:
        # multikey on path: a subtree's listing for a period is one equality on each
        await self._col.create_index([("path", 1), ("period", 1)])

    async def put(self, target: Target) -> Target | None:
        before = await self._col.find_one_and_replace({"_id": target.id}, _document(target), upsert=True)
        return _target(before) if before is not None else None

    async def get(self, unit: str, metric: str, period: str) -> Target | None:
        doc = await self._col.find_one({"_id": target_id(unit, metric, period)})
        return _target(doc) if doc is not None else None

    async def remove(self, unit: str, metric: str, period: str) -> Target | None:
        doc = await self._col.find_one_and_delete({"_id": target_id(unit, metric, period)})
        return _target(doc) if doc is not None else None

    async def listing(self, unit: str, period: str) -> list[Target]:
        return _sorted([_target(d) async for d in self._col.find({"path": unit, "period": period})])
