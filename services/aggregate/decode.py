"""Turns a raw Kafka message into a Report, or into a reason to dead-letter it.

Messages come from ingest or a forwarding worker (an envelope with a server's receipt time,
stamped: shared/domain/stamps.py) or straight from a unit's or a province's own systems (a bare report
with its producer's token in the ``baocao-token`` header; its receipt time is the broker's
LogAppendTime timestamp, never a field of the message). An envelope without a valid stamp, a
bare report without a valid token with the submit scope, or one for a unit outside the token's
subtree is a dead letter. Every report is validated against the same schema as at ingest, and
whatever a message holds, decoding it returns a Report or a Rejected, never raises (a message of
100,000 "[" made json.loads raise RecursionError, an integer of 5,000 digits ValueError; the
parser now is pydantic-core's, which answers both with a ValueError).

``decode_direct`` also says whether the report was produced straight to Kafka by a unit's system
(a bare report, or one a worker forwarded from another partition as an envelope whose ``source``
is ``forwarded from ...``): only those meet the aggregator's approval lock, since ingest checked
its own envelopes' before acknowledging them (shared/domain/approvals.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from pydantic_core import from_json

from shared.domain.auth import InvalidToken, Placement, Principal, Scope, verify
from shared.domain.catalog import Catalog
from shared.domain.conferences import joined_problem_of
from shared.domain.hierarchy import OrgTree
from shared.domain.reports import REPORT_ADAPTER, ReportEnvelope, ReportInBase, future_problems
from shared.domain.rollup import Report, report_from_model
from shared.domain.stamps import STAMP_HEADER, TOKEN_HEADER, header, is_stamped, stamp_key

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 256 * 1024
# how an envelope forwarded from another partition names its origin (routing.forwarded); only a
# bare report is forwarded as a new envelope (an envelope is forwarded as it is), and the stamp
# of the forwarding worker vouches for the field
FORWARDED_SOURCE = "forwarded from "


@dataclass(frozen=True)
class Rejected:
    # a short machine-readable class: invalid_json, invalid_report, unknown_unit, too_large,
    # rejected, unsigned_envelope, no_token, invalid_token, forbidden_scope, forbidden_unit,
    # producer_time, in_future; and the aggregator's approved (shared/domain/approvals.py)
    reason: str
    detail: str


@dataclass
class Trust:
    """What decoding checks the origin of a message with: the services' secret (tokens), the key
    of ingest's and the workers' stamps derived from it, and the revoked token ids (replaced by
    the worker every few seconds from MongoDB, as the HTTP services read them)."""

    secret: str
    stamp_key: bytes
    revoked: frozenset[str] = frozenset()

    @classmethod
    def from_secret(cls, secret: str) -> Trust:
        return cls(secret, stamp_key(secret))


@dataclass(frozen=True)
class Origin:
    """A message's headers and how its timestamp was set (LogAppendTime: by the broker)."""

    headers: tuple[tuple[str, bytes | None], ...] = ()
    log_append_time: bool = False


def _first_errors(exc: ValidationError, limit: int = 5) -> str:
    parts = []
    for err in exc.errors()[:limit]:
        loc = ".".join(str(x) for x in err["loc"])
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def decode(
    value: bytes | None, timestamp_ms: int | None, catalog: Catalog, tree: OrgTree, origin: Origin, trust: Trust
) -> Report | Rejected:
    return decode_direct(value, timestamp_ms, catalog, tree, origin, trust)[0]


def decode_direct(
    value: bytes | None, timestamp_ms: int | None, catalog: Catalog, tree: OrgTree, origin: Origin, trust: Trust
) -> tuple[Report | Rejected, bool]:
    """:func:`decode`, and whether the report was produced straight to Kafka (bare, or forwarded
    bare) rather than written by ingest."""
    try:
        return _decode(value, timestamp_ms, catalog, tree, origin, trust)
    except Exception as exc:  # noqa: BLE001 - whatever a producer sent, it is a dead letter, not a crash
        log.warning("undecodable message", extra={"error": repr(exc)[:300]})
        return Rejected("invalid_report", f"could not be decoded: {type(exc).__name__}: {str(exc)[:200]}"), False


def _producer(value: bytes, timestamp_ms: int | None, origin: Origin, trust: Trust) -> Principal | Rejected:
    """The token a bare report came with, checked when the broker appended the message."""
    token = header(origin.headers, TOKEN_HEADER)
    if not token:
        return Rejected(
            "no_token",
            f"a report produced straight to Kafka carries its producer's token (bcv1...) in the {TOKEN_HEADER} header",
        )
    if not origin.log_append_time or timestamp_ms is None:
        # Whoever sets the timestamp decides whether the report is on time: only the broker may.
        return Rejected(
            "producer_time",
            "the message's timestamp was set by its producer; the topic must have message.timestamp.type=LogAppendTime",
        )
    try:
        principal = verify(trust.secret, token.decode("ascii"), now=timestamp_ms / 1000)
    except (InvalidToken, UnicodeDecodeError) as exc:
        return Rejected(
            "invalid_token", f"{TOKEN_HEADER}: {exc if isinstance(exc, InvalidToken) else 'malformed token'}"
        )
    if not trust.revoked.isdisjoint(principal.revocation_ids):
        return Rejected("invalid_token", f"{TOKEN_HEADER}: token revoked")
    if Scope.SUBMIT not in principal.scopes:
        return Rejected("forbidden_scope", f"{TOKEN_HEADER}: the token lacks the 'submit' scope")
    return principal


def _decode(
    value: bytes | None, timestamp_ms: int | None, catalog: Catalog, tree: OrgTree, origin: Origin, trust: Trust
) -> tuple[Report | Rejected, bool]:
    checked = _checked(value, timestamp_ms, origin, trust)
    if isinstance(checked, Rejected):
        return checked, False
    raw, producer = checked
    direct = producer is not None
    try:
        if "report" in raw:
            envelope = ReportEnvelope.model_validate(raw)
            payload, received_at = envelope.report, envelope.received_at
            direct = envelope.source.startswith(FORWARDED_SOURCE)
        else:
            payload = raw
            received_at = datetime.fromtimestamp((timestamp_ms or 0) / 1000, UTC)
        model = REPORT_ADAPTER.validate_python(payload)
    except ValidationError as exc:
        return Rejected("invalid_report", _first_errors(exc)), direct
    return _placed(model, received_at, producer, catalog, tree), direct


def _checked(
    value: bytes | None, timestamp_ms: int | None, origin: Origin, trust: Trust
) -> tuple[dict[str, Any], Principal | None] | Rejected:
    """The message as JSON, and the token of a bare report, checked; an envelope must be stamped."""
    if value is None:
        return Rejected("invalid_json", "empty message")
    if len(value) > MAX_MESSAGE_BYTES:
        return Rejected("too_large", f"{len(value)} bytes, limit {MAX_MESSAGE_BYTES}")
    try:
        # pydantic-core's parser: in Rust, and bounded (too deep a nesting is a ValueError)
        raw: Any = from_json(value)
    except (UnicodeDecodeError, RecursionError, ValueError) as exc:
        return Rejected("invalid_json", f"{type(exc).__name__}: {str(exc)[:200]}")
    if not isinstance(raw, dict):
        return Rejected("invalid_report", "a report is a JSON object")
    producer: Principal | None = None
    if not is_stamped(trust.stamp_key, value, header(origin.headers, STAMP_HEADER)):
        if "report" in raw:
            return Rejected(
                "unsigned_envelope",
                f"an envelope (report, received_at) is what ingest writes, with its {STAMP_HEADER} header; "
                "a unit's system sends the bare report with its token",
            )
        checked = _producer(value, timestamp_ms, origin, trust)
        if isinstance(checked, Rejected):
            return checked
        producer = checked
    return raw, producer


def _placed(
    model: ReportInBase, received_at: datetime, producer: Principal | None, catalog: Catalog, tree: OrgTree
) -> Report | Rejected:
    """The validated report, unless it lies in the future, its unit is unknown then, or outside
    the producer's token."""
    # against the receipt time (ingest's, or the broker's), as ingest checks it
    if problems := future_problems(model, received_at, catalog):
        return Rejected("in_future", "; ".join(f"{'.'.join(p['loc'])}: {p['msg']}" for p in problems))
    if not any(model.unit in version for version in tree.versions):
        return Rejected("unknown_unit", f"unit {model.unit!r} is not in the registry")
    # in the tree of the report's period, as ingest decides (Principal.may_report)
    if producer is not None and producer.may_report(tree, model.unit, model.period) is Placement.OUTSIDE:
        return Rejected(
            "forbidden_unit",
            f"{TOKEN_HEADER}: a token of unit {producer.unit} may not submit for unit {model.unit} "
            f"in {tree.for_period(model.period).validity()}, the tree of period {model.period}",
        )
    if model.unit not in tree.for_period(model.period):  # a unit closed (or not yet open) then
        return Rejected("unknown_unit", tree.why_not(model.unit, model.period))
    if problem := joined_problem_of(model, tree.for_period(model.period), catalog):
        return Rejected("invalid_report", problem["msg"])
    return report_from_model(model, received_at, catalog)
