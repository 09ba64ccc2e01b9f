"""A subtree's approvals or targets of one period, kept a few seconds for the read path.

A totals answer is served from the cache of figures; the approvals and targets shown beside the
figures come from MongoDB. Reading them on every request would make each answer wait for the
database, so each (unit, period) listing is kept ``ttl_s`` seconds. A change made through this
process clears them at once (``clear``); one made through another replica of the API shows here
within ``ttl_s``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

T = TypeVar("T")

LISTING_SECONDS = 5.0
LISTING_ENTRIES = 10_000


class ListingStore(Protocol[T]):
    async def listing(self, unit: str, period: str) -> list[T]:
        """What is set at ``unit`` and every unit under it for ``period``."""
        ...


class Listings(Generic[T]):
    def __init__(
        self,
        store: ListingStore[T],
        ttl_s: float = LISTING_SECONDS,
        max_entries: int = LISTING_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self._ttl = ttl_s
        self._max = max_entries
        self._clock = clock
        self._kept: dict[tuple[str, str], tuple[float, list[T]]] = {}

    async def listing(self, unit: str, period: str) -> list[T]:
        now = self._clock()
        hit = self._kept.get((unit, period))
        if hit is not None and now - hit[0] <= self._ttl:
            return hit[1]
        found = await self.store.listing(unit, period)
        if len(self._kept) >= self._max:
            self._kept.clear()
        self._kept[(unit, period)] = (now, found)
        return found

    def clear(self) -> None:
        self._kept.clear()
