"""Per-token rate limiting for ingest: the token bucket of shared/http/ratelimit.py, one per token id.

Each report costs one token (a batch of 1,000 costs 1,000)."""

from __future__ import annotations

from shared.http.ratelimit import RateLimiter

__all__ = ["RateLimiter"]
