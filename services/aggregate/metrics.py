"""Prometheus metrics of the aggregate worker (its own registry, served on /metrics)."""

from __future__ import annotations

import gc
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class AggregateMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._gc_started = 0.0
        self.reports = Counter(
            "baocao_aggregate_reports_total",
            "Report messages consumed, by what became of them",
            ["outcome"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "baocao_aggregate_dead_letters_total",
            "Messages sent to the dead-letter topic, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.flush_size = Histogram(
            "baocao_aggregate_flush_documents",
            "Totals documents published (and queued for MongoDB) per publication of changes",
            buckets=(0, 1, 5, 10, 50, 100, 500, 1000, 5000, 20000, 50000, 100000),
            registry=self.registry,
        )
        self.flush_seconds = Histogram(
            "baocao_aggregate_flush_duration_seconds",
            "Time to build and publish one publication of changed totals documents",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.write_size = Histogram(
            "baocao_aggregate_view_write_documents",
            "Totals documents per bulk write to MongoDB (the latest published form of each)",
            buckets=(1, 10, 100, 1000, 5000, 20000, 50000, 100000),
            registry=self.registry,
        )
        self.write_seconds = Histogram(
            "baocao_aggregate_view_write_duration_seconds",
            "Time to write one bulk write of totals documents to MongoDB",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self._declare_backlog()
        self._declare_restore()
        self._declare_process()

    def _declare_backlog(self) -> None:
        """What waits: to be published, to be written, to be read."""
        self.unpublished = Gauge(
            "baocao_aggregate_unpublished_documents",
            "Totals documents changed by reports applied and not yet published on the stream",
            registry=self.registry,
        )
        self.unwritten = Gauge(
            "baocao_aggregate_view_unwritten_documents",
            "Totals documents published on the stream and not yet written to MongoDB",
            registry=self.registry,
        )
        self.freshness = Histogram(
            "baocao_aggregate_freshness_seconds",
            "From receipt at ingest to the totals published on the stream (what the API serves)",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
            registry=self.registry,
        )
        self.producer_renewals = Counter(
            "baocao_aggregate_producer_renewals_total",
            "Kafka producers replaced because the broker lost their state (shared/adapters/kafka_producer.py)",
            registry=self.registry,
        )
        self.retries = Counter(
            "baocao_aggregate_write_retries_total",
            "Operations retried after Kafka or the database failed, by what was retried",
            ["cause"],
            registry=self.registry,
        )
        self.lag = Gauge(
            "baocao_aggregate_consumer_lag_messages",
            "Messages in the partition not yet handled (high watermark - next offset)",
            ["topic", "partition"],
            registry=self.registry,
        )

    def _declare_restore(self) -> None:
        """Restoring partitions and the snapshots that keep it short (snapshots.py)."""
        self.restore_seconds = Histogram(
            "baocao_aggregate_restore_seconds",
            "From a partition's assignment to its state restored and ready to apply reports",
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 60, 120, 300),
            registry=self.registry,
        )
        self.partition_restore_seconds = Gauge(
            "baocao_aggregate_partition_restore_seconds",
            "How long the last restore of each partition this worker owns took (assignment to ready)",
            ["partition"],
            registry=self.registry,
        )
        self.partitions_owned = Gauge(
            "baocao_aggregate_partitions_owned",
            "Partitions of reports this worker owns and has restored",
            registry=self.registry,
        )
        self.restored_records = Counter(
            "baocao_aggregate_restored_records_total",
            "Changelog records replayed while restoring partitions, by where the restore began",
            ["start"],  # "snapshot" (the tail after one) or "beginning" (no usable snapshot)
            registry=self.registry,
        )
        self.snapshots = Counter(
            "baocao_aggregate_snapshots_total",
            "Snapshots of a partition's state, by outcome (saved, superseded: a newer one was stored, failed)",
            ["outcome"],
            registry=self.registry,
        )
        self.snapshot_bytes = Histogram(
            "baocao_aggregate_snapshot_bytes",
            "Size of the snapshots saved, compressed",
            buckets=(1e4, 1e5, 1e6, 4e6, 1.6e7, 6.4e7, 2.56e8),
            registry=self.registry,
        )
        self.snapshot_capture_seconds = Histogram(
            "baocao_aggregate_snapshot_capture_seconds",
            "Time the worker stops applying to copy a partition's state for a snapshot",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )

    def _declare_process(self) -> None:
        self.gc_pause = Histogram(
            "baocao_aggregate_gc_pause_seconds",
            "Garbage collections of the worker process (it applies nothing meanwhile), by generation",
            ["generation"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )

    def watch_gc(self) -> None:
        """Time every garbage collection of this process (gc.callbacks): a full collection walks
        the whole state, and its pause lands on the reports being applied."""
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.gc_pause.labels(str(info["generation"])).observe(time.perf_counter() - self._gc_started)
