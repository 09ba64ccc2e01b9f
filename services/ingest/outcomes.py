"""What became of one submitted report (a ``Verdict``), and the one mapping from that to HTTP.

Both report routes answer with these verdicts: POST /v1/reports as its status code
(``HTTP_STATUS``), POST /v1/reports/batch as each item's ``status`` (and 503 for the whole batch
when an item is ``unavailable``). Each verdict is counted in the metrics (``count``), and each
rejected report is logged as one JSON line (``log_rejected``), never with its token.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from services.ingest.metrics import IngestMetrics

log = logging.getLogger(__name__)


class Verdict(StrEnum):
    ACCEPTED = "accepted"  # published to Kafka
    DUPLICATE = "duplicate"  # this revision was already accepted with the same content
    INVALID = "invalid"  # fails validation, or lies in the future at its receipt
    UNKNOWN_UNIT = "unknown_unit"  # the token could see the unit if it existed, and it does not
    FORBIDDEN = "forbidden"  # the unit is outside the token's subtree, or the token cannot submit
    CONFLICT = "conflict"  # contradicts an earlier revision of the same report
    UNAVAILABLE = "unavailable"  # Kafka did not acknowledge: not accepted, send it again as it is


HTTP_STATUS: Mapping[Verdict, int] = MappingProxyType(
    {
        Verdict.ACCEPTED: 202,
        Verdict.DUPLICATE: 200,
        Verdict.INVALID: 422,
        Verdict.UNKNOWN_UNIT: 422,
        Verdict.FORBIDDEN: 403,
        Verdict.CONFLICT: 409,
        Verdict.UNAVAILABLE: 503,
    }
)

# The sender must change these reports before sending them again; they are logged.
REJECTED = frozenset({Verdict.INVALID, Verdict.UNKNOWN_UNIT, Verdict.FORBIDDEN, Verdict.CONFLICT})


@dataclass(frozen=True)
class Result:
    """The verdict on one report, with what could be read of it. ``errors`` name each field by
    its path in the report (``loc``, [] for the report as a whole) and the problem (``msg``)."""

    verdict: Verdict
    report_id: str | None = None
    revision: int | None = None
    unit: str | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def message(self) -> str:
        return "; ".join(str(e["msg"]) for e in self.errors)

    @property
    def ids(self) -> dict[str, str | None]:
        """What a log line names the report by."""
        return {"report_id": self.report_id, "unit": self.unit}


def batch_status(results: Iterable[Result]) -> int:
    """A batch is answered 200, or 503 when Kafka did not acknowledge one of its items."""
    unavailable = any(r.verdict is Verdict.UNAVAILABLE for r in results)
    return HTTP_STATUS[Verdict.UNAVAILABLE] if unavailable else 200


def in_body(errors: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``errors`` located in a request body that is the report itself: each field path starts at
    ``body``; an error of the report as a whole keeps an empty one."""
    return [{**e, "loc": ["body", *e["loc"]] if e["loc"] else []} for e in errors]


def clean_errors(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Pydantic errors without the echoed input or URLs: field path, message, type."""
    return [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in errors]


def invalid(errors: Sequence[Mapping[str, Any]], raw: Any) -> Result:
    """The verdict on a report that failed validation; its id and unit when ``raw`` has them."""
    fields = raw if isinstance(raw, dict) else {}
    report_id, unit = fields.get("report_id"), fields.get("unit")
    return Result(
        Verdict.INVALID,
        report_id=report_id if isinstance(report_id, str) else None,
        unit=unit if isinstance(unit, str) else None,
        errors=clean_errors(errors),
    )


def count(metrics: IngestMetrics, verdict: Verdict, errors: Iterable[Mapping[str, Any]] = ()) -> None:
    """One report of ``verdict``; for an invalid one, each of its errors by type."""
    if verdict is Verdict.INVALID:
        for e in errors:
            metrics.validation_failures.labels(str(e.get("type", "invalid"))).inc()
    metrics.reports.labels(verdict.value).inc()


_TOKEN = re.compile(r"bcv1\.[A-Za-z0-9_.=-]+")
LOGGED_ERRORS = 20  # per rejected report
LOGGED_CHARS = 200  # per message, report id or unit


def _short(value: Any) -> str:
    """Printable, bounded, and with anything that looks like a token blanked out."""
    return _TOKEN.sub("bcv1.<redacted>", str(value))[:LOGGED_CHARS]


def log_rejected(
    route: str,
    reason: str,
    errors: Sequence[Mapping[str, Any]],
    ids: Mapping[str, Any] | None = None,
    index: int | None = None,
) -> None:
    """One JSON log line (WARNING) per rejected report: why, which fields, and its report_id and
    unit when they can be read. Headers, and so tokens, are never logged."""
    fields: dict[str, Any] = {"route": route, "reason": reason}
    if index is not None:
        fields["index"] = index
    for key in ("report_id", "unit"):
        if ids is not None and isinstance(ids.get(key), str):
            fields[key] = _short(ids[key])
    fields["errors"] = [
        {"loc": [_short(part) for part in e.get("loc", ())], "msg": _short(e.get("msg", ""))}
        for e in errors[:LOGGED_ERRORS]
    ]
    if len(errors) > LOGGED_ERRORS:
        fields["errors_not_logged"] = len(errors) - LOGGED_ERRORS
    log.warning("rejected report", extra=fields)
