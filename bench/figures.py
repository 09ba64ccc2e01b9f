"""The figures a benchmark run reports, each with its limit or target, and the printed table.

Kept free of heavy imports: tests import FIGURE_KEYS from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.sizes import TARGET_API_P99_MS, TARGET_FRESHNESS_P99_MS, TARGET_INGEST_SINGLE_PER_S, TARGET_TAKEOVER_S

# key: (title, unit, better). Titles may use {backlog}.
SPECS: dict[str, tuple[str, str, str]] = {
    "kafka_produce_rate": ("Kafka produce, raw aiokafka acks=all", "reports/s", "higher"),
    "kafka_consume_decode_rate": ("Kafka consume + decode, raw aiokafka", "reports/s", "higher"),
    "faust_consume_decode_rate": ("Kafka consume + decode, faust agent", "reports/s", "higher"),
    "ingest_single_rate": ("Ingest, one report per POST", "reports/s", "higher"),
    "ingest_batch_rate": ("Ingest, batches of 1,000", "reports/s", "higher"),
    "aggregate_rate": ("Aggregation, {workers}, {backlog} backlog", "reports/s", "higher"),
    "freshness_send_rate": ("Freshness load, sent through ingest", "reports/s", "higher"),
    "freshness_p50_ms": ("Freshness p50, ack -> province via API", "ms", "lower"),
    "freshness_p99_ms": ("Freshness p99, ack -> province via API", "ms", "lower"),
    "aggregate_freshness_p50_ms": ("Freshness p50, receipt -> written (bucket bound)", "ms", "lower"),
    "aggregate_freshness_p99_ms": ("Freshness p99, receipt -> written (bucket bound)", "ms", "lower"),
    "api_totals_rate": ("API /units/{{code}}/totals, achieved", "requests/s", "higher"),
    "api_totals_p50_ms": ("API /units/{{code}}/totals p50", "ms", "lower"),
    "api_totals_p99_ms": ("API /units/{{code}}/totals p99", "ms", "lower"),
    "api_children_rate": ("API /children/totals, achieved", "requests/s", "higher"),
    "api_children_p50_ms": ("API /children/totals p50", "ms", "lower"),
    "api_children_p99_ms": ("API /children/totals p99", "ms", "lower"),
    # limit: the same reads with nobody searching, so the ratio is how much 4 searching clients of
    # another token slow them down
    "api_search_neighbour_p50_ms": ("API /totals p50 while another token searches x4", "ms", "lower"),
    "api_search_neighbour_p99_ms": ("API /totals p99 while another token searches x4", "ms", "lower"),
    "aggregate_peak_rss_mb": ("Aggregator peak RSS after {backlog} reports", "MB", "lower"),
    # the slowest partition of a new worker owning all of them, assignment -> restored
    "restore_whole_s": ("Restore, whole changelog, {backlog} reports", "s", "lower"),
    "restore_snapshot_s": ("Restore, snapshot + tail, {backlog} reports", "s", "lower"),
    # a worker SIGKILLed: the slowest of the partitions its survivor took, assignment -> restored
    "takeover_s": ("New owner after a kill, {backlog} reports", "s", "lower"),
    # serving from MongoDB at once; the totals topic replayed into its cache behind (details)
    "api_restart_s": ("API restarted -> serving", "s", "lower"),
}
FIGURE_KEYS = tuple(SPECS)


@dataclass
class Figure:
    key: str
    title: str
    unit: str
    better: str  # "higher" or "lower": which way the ratio to the limit should go
    value: float | None = None
    limit: float | None = None
    limit_source: str = ""  # what the limit is: a measured limit or a target
    note: str = ""  # how to read this value, when it is not the plain measurement

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.limit:
            return None
        return self.value / self.limit

    def as_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "value": self.value,
            "unit": self.unit,
            "limit": self.limit,
            "limit_source": self.limit_source,
            "ratio": self.ratio,
            "better": self.better,
            "note": self.note,
        }


class Figures:
    """The run's figures, in SPECS order; unset ones stay None (and fail the run)."""

    def __init__(self, backlog: int, workers: int = 1) -> None:
        named = {"backlog": f"{backlog:,}", "workers": "1 worker" if workers == 1 else f"{workers} workers"}
        self.items = {
            key: Figure(key, title.format(**named), unit, better) for key, (title, unit, better) in SPECS.items()
        }

    def set(self, key: str, value: float | None) -> None:
        self.items[key].value = None if value is None else float(value)

    def annotate(self, key: str, note: str) -> None:
        self.items[key].note = note

    def value(self, key: str) -> float | None:
        return self.items[key].value

    def limit(self, key: str, limit: float | None, source: str) -> None:
        self.items[key].limit = limit
        self.items[key].limit_source = source

    def apply_limits(self, freshness_target_rate: float, api_target_rate: float) -> None:
        """Measured limits where the brief names one, absolute targets elsewhere."""
        self.limit("ingest_single_rate", TARGET_INGEST_SINGLE_PER_S, "target")
        self.limit("ingest_batch_rate", self.value("kafka_produce_rate"), "raw produce")
        self.limit("faust_consume_decode_rate", self.value("kafka_consume_decode_rate"), "raw consume+decode")
        self.limit("aggregate_rate", self.value("kafka_consume_decode_rate"), "raw consume+decode")
        self.limit("freshness_send_rate", freshness_target_rate, "target rate")
        for key in ("freshness_p99_ms", "aggregate_freshness_p99_ms"):
            self.limit(key, TARGET_FRESHNESS_P99_MS, "target")
        for key in ("api_totals_p99_ms", "api_children_p99_ms"):
            self.limit(key, TARGET_API_P99_MS, "target")
        for key in ("api_totals_rate", "api_children_rate"):
            self.limit(key, api_target_rate, "target rate")
        self.limit("restore_snapshot_s", self.value("restore_whole_s"), "whole changelog")
        for key in ("takeover_s", "api_restart_s"):
            self.limit(key, TARGET_TAKEOVER_S, "target")

    def missing(self) -> list[str]:
        return [k for k, f in self.items.items() if f.value is None or f.value <= 0]

    def as_dict(self) -> dict[str, dict[str, Any]]:
        return {k: f.as_dict() for k, f in self.items.items()}


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "ms":
        return f"{value:,.1f}"
    return f"{value:,.0f}"


def _limit(figure: Figure) -> str:
    if figure.limit is None:
        return "-"
    sign = "≥" if figure.better == "higher" else "≤"
    return f"{sign} {_number(figure.limit, figure.unit)} ({figure.limit_source})"


def table(figures: Figures) -> str:
    """The figures as a fixed-width text table: figure, value, unit, limit, ratio to the limit."""
    header = ("figure", "value", "unit", "limit / target", "ratio")
    rows = [
        (
            f.title + (" *" if f.note else ""),
            _number(f.value, f.unit),
            f.unit,
            _limit(f),
            "-" if f.ratio is None else f"{f.ratio:.2f}",
        )
        for f in figures.items.values()
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    align = ["<", ">", "<", "<", ">"]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(f"{c:{a}{w}}" for c, a, w in zip(cells, align, widths, strict=True))

    rule = "-" * len(line(header))
    notes = [f"* {f.title}: {f.note}" for f in figures.items.values() if f.note]
    return "\n".join([line(header), rule, *(line(r) for r in rows), *notes])
