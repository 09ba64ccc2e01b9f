"""Which partition counts a report: the one of its province, whatever partition it came on.

Ingest writes each report to the partition of its province: ``partition_for``, the balanced table
of shared/domain/partitions.py (stated there, not left to a client library's partitioner). A unit's own
system producing straight to Kafka may use another key or another partitioner, so two revisions
of one report could arrive on two partitions, and two workers would each count it. So the
worker that reads a report on a partition other than its province's forwards it there (as an
envelope keeping the original receipt time and position) and counts nothing itself: one worker
owns a province's reports, and every total in it.

Forwarding is at least once (a worker killed after forwarding and before its offset commit
forwards again); the province's worker sees a duplicate, which changes nothing.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from shared.domain.partitions import partition_for

__all__ = ["forwarded", "partition_for"]


def forwarded(value: bytes, timestamp_ms: int | None, source: str) -> bytes:
    """The message to forward: an envelope as ingest writes it (kept as is when it already is
    one), with the receipt time of the original (its broker timestamp for a bare report)."""
    raw: Any = json.loads(value)
    if "report" in raw:
        return value
    received_at = datetime.fromtimestamp((timestamp_ms or 0) / 1000, UTC).isoformat()
    envelope = {"report": raw, "received_at": received_at, "source": f"forwarded from {source}"}
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()
