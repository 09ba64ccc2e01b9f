"""Per-token rate limiting for ingest: the token bucket of shared/http/ratelimit.py, one per token id.

Each report costs one token (a batch of n reports costs n)."""

from __future__ import annotations

import math

from shared.http.ratelimit import RateLimiter

__all__ = ["RateLimiter", "retry_after"]

# What a cost that can never be met (more than the burst) is told to wait, in seconds.
NEVER = 3600


def retry_after(limiter: RateLimiter, token_id: str, cost: int) -> int | None:
    """None when ``token_id`` may send ``cost`` reports now (they are taken from its bucket),
    else the whole seconds to wait before sending them: at least 1."""
    wait = limiter.acquire(token_id, cost)
    if not wait:
        return None
    return NEVER if math.isinf(wait) else max(1, math.ceil(wait))
