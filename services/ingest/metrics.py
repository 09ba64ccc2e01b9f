"""Prometheus metrics of the ingest service."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class IngestMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "baocao_ingest_requests_total",
            "HTTP requests by route template and status code",
            ["route", "code"],
            registry=self.registry,
        )
        self.producer_renewals = Counter(
            "baocao_ingest_producer_renewals_total",
            "Kafka producers replaced because the broker lost their state (shared/adapters/kafka_producer.py)",
            registry=self.registry,
        )
        self.reports = Counter(
            "baocao_ingest_reports_total",
            "Reports by outcome (accepted, duplicate, invalid, conflict, unknown_unit, unavailable)",
            ["outcome"],
            registry=self.registry,
        )
        self.validation_failures = Counter(
            "baocao_ingest_validation_failures_total",
            "Validation errors by pydantic error type",
            ["reason"],
            registry=self.registry,
        )
        self.produce_seconds = Histogram(
            "baocao_ingest_produce_duration_seconds",
            "From produce to the broker's acknowledgement",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "baocao_ingest_request_duration_seconds",
            "HTTP request latency by route template",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
            registry=self.registry,
        )
        # an accepted report whose audit entry could not be written (logged with the entry)
        self.audit_failures = Counter(
            "baocao_audit_write_failures_total",
            "Audit log entries that could not be written, by action",
            ["action"],
            registry=self.registry,
        )
