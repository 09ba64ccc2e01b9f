"""How much each benchmark phase sends, and for how long at most: the smoke and full profiles."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

# Absolute targets from the design brief; the other limits are measured in the same run.
TARGET_INGEST_SINGLE_PER_S = 3000.0
TARGET_FRESHNESS_P99_MS = 500.0
TARGET_API_P99_MS = 20.0
# a partition's new owner applies reports within this of taking it; an API replica serves every
# document within this of starting
TARGET_TAKEOVER_S = 10.0


@dataclass(frozen=True)
class Sizes:
    """One benchmark profile. Counts are reports (or requests); durations are seconds."""

    mode: str
    limit_reports: int  # study_session messages for the raw Kafka produce / consume limits
    single_seconds: float  # single-report POSTs to ingest for this long ...
    single_reports: int  # ... or until this many were sent
    single_concurrency: int
    batch_seconds: float  # POST /v1/reports/batch for this long ...
    batches: int  # ... or until this many batches ...
    batch_size: int  # ... of this many reports each were sent
    batch_concurrency: int
    backlog: int  # mixed reports pre-produced for one aggregator to drain
    drain_timeout_s: float  # the aggregator gets this long; a partial drain gives a partial rate
    freshness_rate: float  # reports/s sent through ingest while probing freshness
    freshness_seconds: float
    visible_within_s: float  # after sending, how long probes may take to become visible
    probe_every: int  # every n-th report sent in the freshness phase is a probe
    api_rate: float  # requests/s per read endpoint
    api_seconds: float
    idle_timeout_s: float  # how long a phase waits for the database to finish earlier work
    phase_timeout_s: float  # bound on other waits: services starting, Kafka round trips
    workers: int = 1  # aggregate workers draining the backlog together (one consumer group)
    snapshot_every: int = 10_000  # the workers' BAOCAO_AGGREGATE_SNAPSHOT_EVERY (the default)

    def adjusted(
        self, reports: int | None = None, drain_timeout_s: float | None = None, workers: int | None = None
    ) -> Sizes:
        """These sizes with the backlog, the drain time limit and the workers overridden where given."""
        out = self if reports is None else replace(self, backlog=reports)
        out = out if workers is None else replace(out, workers=workers)
        return out if drain_timeout_s is None else replace(out, drain_timeout_s=drain_timeout_s)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


SMOKE = Sizes(
    mode="smoke",
    limit_reports=2_000,
    single_seconds=3.0,
    single_reports=2_000,
    single_concurrency=64,
    batch_seconds=5.0,
    batches=2,
    batch_size=1_000,
    batch_concurrency=2,
    backlog=500,
    drain_timeout_s=60.0,
    freshness_rate=50.0,
    freshness_seconds=3.0,
    visible_within_s=30.0,
    probe_every=20,
    api_rate=50.0,
    api_seconds=2.0,
    idle_timeout_s=30.0,
    phase_timeout_s=60.0,
    snapshot_every=20,  # a few snapshots of the small backlog, so restoring from them is exercised
)

FULL = Sizes(
    mode="full",
    limit_reports=100_000,
    single_seconds=20.0,
    single_reports=100_000,
    single_concurrency=64,
    batch_seconds=30.0,
    batches=100,
    batch_size=1_000,
    batch_concurrency=4,
    backlog=200_000,
    drain_timeout_s=600.0,
    freshness_rate=1_000.0,
    freshness_seconds=60.0,
    visible_within_s=45.0,
    probe_every=20,
    api_rate=500.0,
    api_seconds=15.0,
    idle_timeout_s=120.0,
    phase_timeout_s=180.0,
)
