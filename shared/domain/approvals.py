"""Approval and lock, the reporting cycle's last step: an approver confirms a unit's figures of one
series for one period, and from then on they are locked.

An approval is of (unit, series, period), made by a principal at a *level*: the approver's own
unit, which covers the unit approved (the unit itself or one of its ancestors, in the tree of the
period). The rules:

- **Approve.** A principal with the ``approve`` scope whose unit covers the unit, in the tree of
  the period. A (unit, series, period) is approved once: approving it again is refused naming the
  approval that stands.
- **Lock.** While an approval stands, ingest refuses every new report or revision (a withdrawal
  too) of that unit and series whose period is the approved one or lies inside it (a month of an
  approved quarter), naming who approved and when. A resent copy of what was accepted is still a
  duplicate, not a change. The lock is on the unit's own reports: an approval of a district does
  not lock its communes (each is approved on its own).
- **Unapprove** ("a higher level must unapprove to correct"). A principal with the ``approve``
  scope whose unit covers the approval's level: the level that approved, or any level above it.
  An approver below the level that approved cannot undo it, so a commune's approver cannot unlock
  what its district approved.
- **The Kafka path.** A unit's own system may produce a bare report straight to Kafka with its
  token; the aggregator applies the same lock there (:func:`kafka_lock`), decided by the
  message's broker time (LogAppendTime, its receipt time), not by when a worker reads it: the
  report is refused (dead letter, reason ``approved``, naming who approved and when) when an
  approval of its (unit, series), for its period or one holding it, was made at or before the
  message was appended. A report appended before the approval is applied, however late it is
  read, so a backlog does not change the outcome. A copy of the revision already counted stays
  a duplicate. An envelope written by ingest is never refused there: ingest checked the lock and
  acknowledged it, and refusing it later would lose an acknowledged report (a bare report that a
  worker forwarded to its province's partition is still a bare report).
- **The approvals stream.** Every approval and unapproval is published on a compacted topic of
  its own next to ``totals`` (:func:`approvals_topic`: ``totals.approvals``), keyed by
  :func:`approval_id`, valued :func:`approval_message` (schema
  shared/data/approval-message.schema.json): ``approved: true`` with who approved and when, or
  ``approved: false`` with who unapproved and when (a message, not a tombstone, so that a
  consumer reading the topic from the beginning learns of the unapproval however long after).
  The last message of a key is the current state; shared/adapters/approvals.py says how none is
  lost while Kafka is away.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared.domain.auth import Forbidden, Principal, Scope
from shared.domain.hierarchy import OrgTree
from shared.domain.periods import parse_period

MESSAGE_VERSION = 1  # the approvals stream's schema_version
MESSAGE_SCHEMA_PATH = Path(__file__).parent.parent / "data" / "approval-message.schema.json"


def approvals_topic(totals_topic: str) -> str:
    """The approvals stream's topic, named after the totals stream it accompanies."""
    return f"{totals_topic}.approvals"


def approval_id(unit: str, series: str, period: str) -> str:
    """The id of the approval of (unit, series, period): one per triple."""
    return f"{unit}/{series}/{period}"


def new_nonce() -> str:
    return secrets.token_hex(8)


@dataclass(frozen=True)
class Approval:
    unit: str
    series: str  # a catalog series (report kind or indicator.<code>)
    period: str
    level: str  # the approver's unit, which covers ``unit`` in the period's tree
    approver: str  # who approved, as the audit log names them (Principal.actor)
    at: float  # unix seconds, the API server's clock
    # the unit and its ancestors in the period's tree: what a listing of a subtree selects on
    path: tuple[str, ...] = field(default=(), compare=False)
    # changes with every approval: an unapproval removes only the approval it was decided on
    nonce: str = field(default_factory=new_nonce)

    @property
    def id(self) -> str:
        return approval_id(self.unit, self.series, self.period)

    @property
    def when(self) -> str:
        """The approval's time as people read it, in UTC: ``2026-12-07 14:05 UTC``."""
        return datetime.fromtimestamp(self.at, UTC).strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True)
class Unapproval:
    """``approval`` undone by ``by`` (Principal.actor) at ``at`` (unix seconds, the API's clock)."""

    approval: Approval
    by: str
    at: float

    @property
    def id(self) -> str:
        return self.approval.id


# what the approvals stream says of an approval id: it stands, or it was undone
ApprovalState = Approval | Unapproval


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat()


def approval_message(state: ApprovalState) -> dict[str, Any]:
    """The approvals stream's message for ``state`` (shared/data/approval-message.schema.json)."""
    approval = state.approval if isinstance(state, Unapproval) else state
    message: dict[str, Any] = {
        "schema_version": MESSAGE_VERSION,
        "id": approval.id,
        "unit": approval.unit,
        "series": approval.series,
        "period": approval.period,
        "approved": isinstance(state, Approval),
        "level": approval.level,
        "approver": approval.approver,
        "approved_at": _iso(approval.at),
        "parents": list(approval.path),
    }
    if isinstance(state, Unapproval):
        message |= {"unapproved_by": state.by, "unapproved_at": _iso(state.at)}
    return message


class ApprovalRefused(Exception):
    """An approval or unapproval the rules do not allow; the message says why."""


class AlreadyApproved(ApprovalRefused):
    def __init__(self, approval: Approval) -> None:
        super().__init__(
            f"{approval.series} of unit {approval.unit} for {approval.period} is already approved by "
            f"{approval.approver} (level {approval.level}) on {approval.when}"
        )
        self.approval = approval


def approve(principal: Principal, tree: OrgTree, unit: str, series: str, period: str, at: float) -> Approval:
    """The approval ``principal`` makes of (unit, series, period), ``tree`` being the period's tree
    (holding ``unit``); :class:`Forbidden` without the scope or outside the principal's unit."""
    principal.require_scope(Scope.APPROVE)
    if not principal.covers(tree, unit):
        raise Forbidden(f"unit {unit} is outside this token's unit {principal.unit}")
    return Approval(unit, series, period, principal.unit, principal.actor, at, path=tuple(tree.path(unit)))


def check_unapprove(principal: Principal, tree: OrgTree, approval: Approval) -> None:
    """:class:`Forbidden` unless ``principal`` may undo ``approval``: the ``approve`` scope and a
    unit that is the approval's level or above it, in the period's ``tree``."""
    principal.require_scope(Scope.APPROVE)
    if not principal.covers(tree, approval.unit):
        raise Forbidden(f"unit {approval.unit} is outside this token's unit {principal.unit}")
    if not principal.covers(tree, approval.level):
        raise Forbidden(
            f"approved at level {approval.level} by {approval.approver}: only an approver of unit "
            f"{approval.level} or a unit above it may unapprove (this token's unit is {principal.unit})"
        )


def locked_message(approval: Approval) -> str:
    """Why a report of an approved (unit, series, period) is refused, naming who approved and when."""
    return (
        f"{approval.series} of unit {approval.unit} for {approval.period} was approved by "
        f"{approval.approver} (level {approval.level}) on {approval.when}: it is locked, and a new "
        f"report, revision or withdrawal is refused until an approver of {approval.level} or a "
        "unit above it unapproves it"
    )


def kafka_lock(standing: Iterable[Approval], period: str, received_at: datetime) -> Approval | None:
    """The approval that locks a report of ``period`` produced straight to Kafka and appended at
    ``received_at`` (the broker's time), among ``standing``, the approvals of its (unit, series):
    one of the report's period or of a period of the same tree holding it, made at or before
    ``received_at``. None when the report is not locked."""
    periods = {p.label for p in parse_period(period).enclosing}
    appended = received_at.timestamp()
    for approval in standing:
        if approval.period in periods and approval.at <= appended:
            return approval
    return None


def kafka_locked_message(approval: Approval, received_at: datetime) -> str:
    """Why the aggregator refuses a report produced straight to Kafka: :func:`locked_message`,
    with when the broker appended it (after the approval)."""
    appended = received_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{locked_message(approval)} (the message was appended to Kafka on {appended}, after the approval)"
