"""Per-token rate limiting: a token bucket per token id, in this process's memory.

Each request costs some tokens (ingest: one per report, a batch of 1,000 costs 1,000; the read
API: one per expensive read). An empty bucket answers 429 with a Retry-After header saying when
enough tokens will be back. Several replicas each apply the limit on their own; the limit is a
guard against a runaway or hostile client, not a quota.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(
        self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000
    ) -> None:
        self.rate = rate_per_s
        self.burst = burst
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: dict[str, _Bucket] = {}

    def acquire(self, key: str, cost: int = 1) -> float:
        """Take ``cost`` tokens; return 0 when allowed, else the seconds to wait."""
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._buckets.clear()  # bounded memory; a reset only ever lets clients through
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if cost > self.burst:
            return math.inf
        if bucket.tokens >= cost:
            bucket.tokens -= cost
            return 0.0
        return (cost - bucket.tokens) / self.rate


def retry_after(wait: float) -> str:
    """A Retry-After value (whole seconds, at least 1) for a wait ``acquire`` returned."""
    return str(max(1, math.ceil(wait))) if math.isfinite(wait) else "60"
