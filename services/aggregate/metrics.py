"""Prometheus metrics of the aggregate worker (its own registry, served on /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class AggregateMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
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
            "Totals documents written (or deleted) per flush",
            buckets=(0, 1, 5, 10, 50, 100, 500, 1000, 5000, 20000),
            registry=self.registry,
        )
        self.flush_seconds = Histogram(
            "baocao_aggregate_flush_duration_seconds",
            "Time to publish and write one flush of changed totals documents",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.freshness = Histogram(
            "baocao_aggregate_freshness_seconds",
            "From receipt at ingest to the totals written",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
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
