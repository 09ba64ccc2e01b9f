"""How much each benchmark phase sends, and for how long at most: the smoke and full profiles."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

# Absolute targets from the design brief; the other limits are measured in the same run.
TARGET_INGEST_SINGLE_PER_S = 3000.0
TARGET_FRESHNESS_P99_MS = 500.0
TARGET_API_P99_MS = 20.0


@dataclass(frozen=True)
class Sizes:
    """One benchmark profile. Counts are reports (or requests); durations are seconds."""

    mode: str
    limit_reports: int  # study_session messages for the raw Kafka produce / consume limits
    single_reports: int  # single-report POSTs to ingest
    single_concurrency: int
    batches: int  # POST /v1/reports/batch calls ...
    batch_size: int  # ... of this many reports each
    batch_concurrency: int
    backlog: int  # mixed reports pre-produced for one aggregator to drain
    freshness_rate: float  # reports/s sent through ingest while probing freshness
    freshness_seconds: float
    probe_every: int  # every n-th report sent in the freshness phase is a probe
    api_rate: float  # requests/s per read endpoint
    api_seconds: float
    phase_timeout_s: float  # no single wait of a phase lasts longer than this

    def with_backlog(self, reports: int | None) -> Sizes:
        return self if reports is None else replace(self, backlog=reports)

    @property
    def drain_timeout_s(self) -> float:
        """Upper bound for one aggregator to drain the backlog (it should need far less)."""
        return self.phase_timeout_s + self.backlog / 100

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


SMOKE = Sizes(
    mode="smoke",
    limit_reports=2_000,
    single_reports=300,
    single_concurrency=64,
    batches=2,
    batch_size=1_000,
    batch_concurrency=2,
    backlog=2_000,
    freshness_rate=50.0,
    freshness_seconds=3.0,
    probe_every=20,
    api_rate=50.0,
    api_seconds=2.0,
    phase_timeout_s=60.0,
)

FULL = Sizes(
    mode="full",
    limit_reports=100_000,
    single_reports=20_000,
    single_concurrency=64,
    batches=50,
    batch_size=1_000,
    batch_concurrency=4,
    backlog=200_000,
    freshness_rate=1_000.0,
    freshness_seconds=60.0,
    probe_every=20,
    api_rate=500.0,
    api_seconds=15.0,
    phase_timeout_s=180.0,
)
