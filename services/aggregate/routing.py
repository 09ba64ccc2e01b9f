"""Stage one of the aggregator: every report, by whatever partition it came, goes to its province.

The ``reports`` topic is keyed by unit code when ingest writes it, but a unit's own system may
produce with another key or another partitioner, so two revisions of one report can arrive on
two partitions. Counting straight from there would let two workers hold the same report (and
count it twice). So stage one validates each message and forwards it, reduced to what the
roll-up needs, to ``<reports>.by-province``: the partition is a function of the province alone
(CRC-32 of its code, modulo the partition count: stated here, not left to a client library's
partitioner), so one worker owns a province's reports and every total in it.

Forwarding is at least once: a worker killed after forwarding and before its offset commit
forwards the same messages again, and stage two sees duplicates, which it ignores. The routed
message keeps the receipt time and the source position, so nothing about a report depends on
when or how often it was forwarded.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.catalog import Catalog
from shared.hierarchy import Level, OrgTree
from shared.rollup import Report


def partition_for(province: str, partitions: int) -> int:
    return zlib.crc32(province.encode()) % partitions


@dataclass(frozen=True)
class Routed:
    """A report on its way to the province's worker: where it counts and where it came from."""

    report: Report
    path: tuple[str, ...]  # the unit and its ancestors, the province last
    expected: bool  # the unit's level is one expected to report this series
    source: str  # topic/partition/offset of the message in ``reports``


def route(report: Report, source: str, tree: OrgTree, catalog: Catalog) -> Routed:
    path = tuple(tree.path(report.unit))
    spec = catalog.series[report.series]
    expected = tree.get(report.unit).level in {Level(x) for x in spec.expected_levels}
    return Routed(report, path, expected, source)


def encode_routed(r: Routed) -> tuple[bytes, bytes]:
    """(key, value): keyed by province, the value compact JSON."""
    rep = r.report
    value = {
        "id": rep.report_id,
        "rev": rep.revision,
        "kind": rep.kind,
        "series": rep.series,
        "period": rep.period,
        "values": dict(rep.values),
        "withdrawn": rep.withdrawn,
        "received_at": rep.received_at.isoformat(),
        "path": list(r.path),
        "expected": r.expected,
        "source": r.source,
    }
    return r.path[-1].encode(), json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def decode_routed(value: bytes) -> Routed:
    """The inverse of :func:`encode_routed`; raises on anything else (stage one wrote it)."""
    d: dict[str, Any] = json.loads(value)
    path = tuple(d["path"])
    report = Report(
        report_id=d["id"],
        revision=int(d["rev"]),
        unit=path[0],
        kind=d["kind"],
        series=d["series"],
        period=d["period"],
        values={k: int(v) for k, v in d["values"].items()},
        withdrawn=bool(d["withdrawn"]),
        received_at=datetime.fromisoformat(d["received_at"]),
    )
    return Routed(report, path, bool(d["expected"]), str(d["source"]))
