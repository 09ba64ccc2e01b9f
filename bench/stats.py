"""Statistics helpers: percentiles of samples, rates, quantiles of Prometheus histograms."""

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


def rate(count: float, seconds: float) -> float | None:
    """count / seconds, or None when nothing happened or no time passed."""
    if count <= 0 or seconds <= 0:
        return None
    return count / seconds


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


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """Quantile ``q`` (0..1) of a cumulative histogram [(upper bound, count), ...] sorted by bound,
    the last bound being +Inf, interpolated linearly inside the bucket as Prometheus'
    histogram_quantile() does. None when the histogram is empty."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    wanted = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= wanted:
            if math.isinf(bound):
                return lower_bound  # beyond the last finite bucket: its bound is all we know
            inside = count - lower_count
            share = (wanted - lower_count) / inside if inside > 0 else 1.0
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, count
    return lower_bound
