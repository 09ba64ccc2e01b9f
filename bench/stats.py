"""Statistics helpers: percentiles of samples, quantile bounds of Prometheus histograms."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100), interpolated between closest ranks; None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    rank = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))


def latency_summary(seconds: Sequence[float]) -> dict[str, float | int | None]:
    """p50 / p90 / p99 / max in milliseconds, plus the sample count."""
    ms = [s * 1000.0 for s in seconds]
    return {
        "count": len(ms),
        "p50_ms": percentile(ms, 50),
        "p90_ms": percentile(ms, 90),
        "p99_ms": percentile(ms, 99),
        "max_ms": max(ms) if ms else None,
    }


def histogram_bound(q: float, buckets: Sequence[tuple[float, float]]) -> tuple[float, bool] | None:
    """Upper bound of the bucket that holds quantile ``q`` (0..1) of a cumulative histogram
    [(upper bound, count), ...]: the quantile is at most that. When it falls in the +Inf bucket,
    the last finite bound and True (the quantile is above it). None when the histogram is empty.
    Coarse, but never better than the truth, unlike interpolating inside a wide bucket."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    wanted = q * buckets[-1][1]
    finite = [b for b, _ in buckets if not math.isinf(b)]
    for bound, count in buckets:
        if count >= wanted:
            if math.isinf(bound):
                return (finite[-1] if finite else 0.0), True
            return bound, False
    return (finite[-1] if finite else 0.0), True
