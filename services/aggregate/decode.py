"""Turns a raw Kafka message into a Report, or into a reason to dead-letter it.

Messages come from ingest (an envelope with the server's receipt time) or straight from a unit's
or a province's own systems (a bare report; its receipt time is the broker's timestamp). Neither
is trusted: both are validated against the same schema as at ingest, and whatever a message
holds, decoding it returns a Report or a Rejected, never raises (a message of 100,000 "[" makes
json.loads raise RecursionError, an integer of 5,000 digits ValueError).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from shared.catalog import Catalog
from shared.hierarchy import OrgTree
from shared.reports import REPORT_ADAPTER, ReportEnvelope
from shared.rollup import Report, report_from_input

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 256 * 1024


@dataclass(frozen=True)
class Rejected:
    reason: str  # a short machine-readable class: invalid_json, invalid_report, unknown_unit, too_large, rejected
    detail: str


def _first_errors(exc: ValidationError, limit: int = 5) -> str:
    parts = []
    for err in exc.errors()[:limit]:
        loc = ".".join(str(x) for x in err["loc"])
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def decode(value: bytes | None, timestamp_ms: int | None, catalog: Catalog, tree: OrgTree) -> Report | Rejected:
    try:
        return _decode(value, timestamp_ms, catalog, tree)
    except Exception as exc:  # noqa: BLE001 - whatever a producer sent, it is a dead letter, not a crash
        log.warning("undecodable message", extra={"error": repr(exc)[:300]})
        return Rejected("invalid_report", f"could not be decoded: {type(exc).__name__}: {str(exc)[:200]}")


def _decode(value: bytes | None, timestamp_ms: int | None, catalog: Catalog, tree: OrgTree) -> Report | Rejected:
    if value is None:
        return Rejected("invalid_json", "empty message")
    if len(value) > MAX_MESSAGE_BYTES:
        return Rejected("too_large", f"{len(value)} bytes, limit {MAX_MESSAGE_BYTES}")
    try:
        raw: Any = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError) as exc:
        return Rejected("invalid_json", f"{type(exc).__name__}: {str(exc)[:200]}")
    if not isinstance(raw, dict):
        return Rejected("invalid_report", "a report is a JSON object")
    try:
        if "report" in raw:
            envelope = ReportEnvelope.model_validate(raw)
            payload, received_at = envelope.report, envelope.received_at
        else:
            payload = raw
            received_at = datetime.fromtimestamp((timestamp_ms or 0) / 1000, UTC)
        model = REPORT_ADAPTER.validate_python(payload)
    except ValidationError as exc:
        return Rejected("invalid_report", _first_errors(exc))
    if not any(model.unit in version for version in tree.versions):
        return Rejected("unknown_unit", f"unit {model.unit!r} is not in the registry")
    if model.unit not in tree.for_period(model.period):  # a unit closed (or not yet open) then
        return Rejected("unknown_unit", tree.why_not(model.unit, model.period))
    return report_from_input(model.model_dump(), received_at, catalog)
