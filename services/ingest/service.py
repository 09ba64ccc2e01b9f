"""The ingest use case: accept one report, publish it, answer what became of it.

``IngestService.take`` (one report) and ``take_batch`` (a batch's items) answer a ``Result`` for
every report, counted in the metrics; ``submit`` is the step that publishes, and raises for a
report it refuses.

Every report accepted (published and acknowledged) is recorded in the audit log: report.submit
for its first revision, report.revise for a later one, report.withdraw for a withdrawal, with the
previous revision's report as ``before`` and this one as ``after``. A duplicate records nothing.
A batch's entries are written together, in one round trip, once the batch is settled. The
report is accepted whether or not its entry is written (it is in Kafka already): an entry that
cannot be written is logged whole and counted (baocao_audit_write_failures_total).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import ValidationError
from pydantic_core import to_json
from pymongo.errors import PyMongoError

from services.ingest.metrics import IngestMetrics
from services.ingest.outcomes import Result, Verdict, count, invalid
from services.ingest.publisher import Publisher, PublishFailed
from services.ingest.submissions import Submission, SubmissionLog, scope_of
from shared.adapters.approvals import CachedApprovals, InMemoryApprovalStore
from shared.adapters.audit import AuditLog, InMemoryAuditLog
from shared.domain.approvals import locked_message
from shared.domain.audit import Action, AuditEntry
from shared.domain.auth import Forbidden, Placement, Principal, Scope
from shared.domain.catalog import Catalog
from shared.domain.conferences import joined_problem_of
from shared.domain.hierarchy import COUNTRY, LEGACY, OrgTree
from shared.domain.periods import parse_period
from shared.domain.reports import REPORT_ADAPTER, ReportInBase, future_problems

log = logging.getLogger(__name__)
BATCH_CONCURRENCY = 200  # submissions of one batch under way at once


class Status(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"


@dataclass(frozen=True)
class Outcome:
    report_id: str
    revision: int
    status: Status
    entry: AuditEntry | None = None  # what the audit log records of an accepted report


class UnknownUnitError(ValueError):
    def __init__(self, unit: str, reason: str | None = None) -> None:
        super().__init__(
            reason or f"unit {unit!r} is not in the registry of provinces, districts, communes and agencies"
        )
        self.unit = unit


class OutsideSubtreeError(PermissionError):
    """The report's unit is not under the token's unit (answered 403, like any neighbour's)."""

    def __init__(self, unit: str, token_unit: str) -> None:
        super().__init__(f"unit {unit} is outside this token's unit {token_unit}")


class ConflictError(ValueError):
    """The report contradicts what its unit had accepted before under the same report_id."""


class LockedError(ConflictError):
    """Approval and lock: the report's unit, series and period (or a period holding it) are
    approved, so nothing of it may change until it is unapproved (answered 409, naming who
    approved and when)."""


class LocksUnavailable(RuntimeError):
    """The approvals could not be read: the report is not accepted (answered 503), never
    accepted unchecked."""


class RefusedFieldsError(ValueError):
    """A field of the report is refused in the light of the receipt time or the tree: its period
    has not begun, an event date lies ahead, or the conference it names as joined is not one it
    could have joined (answered 422; ``errors`` name each field, relative to the report)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(e["msg"] for e in errors))
        self.errors = errors


def utc_now() -> datetime:
    return datetime.now(UTC)


def digest(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class IngestService:
    def __init__(
        self,
        publisher: Publisher,
        submissions: SubmissionLog,
        tree: OrgTree,
        catalog: Catalog,
        metrics: IngestMetrics,
        lookup_unit: Callable[[str], Awaitable[bool]] | None = None,
        clock: Callable[[], datetime] = utc_now,
        audit: AuditLog | None = None,
        approvals: CachedApprovals | None = None,
    ) -> None:
        self.publisher = publisher
        self.submissions = submissions
        self.tree = tree
        self.catalog = catalog
        self.metrics = metrics
        self.lookup_unit = lookup_unit
        self.clock = clock  # the receipt time: this server's clock, never the sender's
        self.audit: AuditLog = audit if audit is not None else InMemoryAuditLog()
        # approval and lock: what is approved is refused (read through a cache of a few seconds)
        self.approvals = approvals if approvals is not None else CachedApprovals(InMemoryApprovalStore())

    async def known(self, unit: str) -> bool:
        if self.tree.known_anywhere(unit):
            return True
        return self.lookup_unit is not None and await self.lookup_unit(unit)

    async def take(self, report: ReportInBase, principal: Principal, origin: str | None = None) -> Result:
        """Screen ``report`` against the token, then submit it; every outcome is a counted Result,
        never an exception. An accepted report is recorded in the audit log as coming from the
        token's ``origin`` (the person's address, when the pages sent it), else ``origin``."""
        entries: list[AuditEntry] = []
        result = await self._take(report, principal, None, entries, origin)
        await self._record(entries)
        return result

    async def take_batch(self, items: Sequence[Any], principal: Principal, origin: str | None = None) -> list[Result]:
        """``take`` for each item of a batch, validated on its own so that one bad item gets its
        own errors and the others still go through; results in the order of ``items``. The
        accepted reports' audit entries are written together at the end."""
        gate = asyncio.Semaphore(BATCH_CONCURRENCY)
        entries: list[AuditEntry] = []

        async def one(raw: Any) -> Result:
            try:
                report = REPORT_ADAPTER.validate_python(raw)
            except ValidationError as exc:
                result = invalid(exc.errors(), raw)
                count(self.metrics, result.verdict, result.errors)
                return result
            return await self._take(report, principal, gate, entries, origin)

        results = list(await asyncio.gather(*(one(raw) for raw in items)))
        await self._record(entries)
        return results

    async def _take(
        self,
        report: ReportInBase,
        principal: Principal,
        gate: AbstractAsyncContextManager[Any] | None,
        entries: list[AuditEntry],
        origin: str | None,
    ) -> Result:
        result = await self._screen(report, principal) or await self._settle(report, principal, gate, entries, origin)
        count(self.metrics, result.verdict, result.errors)
        return result

    async def _record(self, entries: list[AuditEntry]) -> None:
        """Append ``entries`` to the audit log, in one round trip; a failure is logged with the
        entries and counted, never raised (the reports are accepted already)."""
        if not entries:
            return
        try:
            await self.audit.append_many(entries)
        except Exception:  # any failure of the store is handled the same way
            for entry in entries:
                self.metrics.audit_failures.labels(entry.action.value).inc()
            log.exception(
                "audit entries not written",
                extra={"audit_entries": [[e.action.value, e.actor, e.origin, e.subject, e.detail] for e in entries]},
            )

    def outside_whatever_exists(self, principal: Principal, unit: str) -> bool:
        """Whether ``unit`` is outside the token's subtree in every version of the tree whether
        or not it exists, decided from the token's unit and the code alone (an agency's code
        ``<parent>-<slug>`` names its parent; any other code stands for itself), before the
        registry is asked: a neighbour's registered agency and a missing one take the same path
        and the same work, so the time of the 403 does not tell whether it exists. A code that
        passes is the token's own or under it, and is looked up and checked in full (``_screen``)."""
        if principal.unit == COUNTRY or unit == principal.unit:
            return False
        parent = unit.partition("-")[0]
        return not any(parent in t and principal.covers(t, parent) for t in self.tree.versions)

    async def _screen(self, report: ReportInBase, principal: Principal) -> Result | None:
        """FORBIDDEN unless the token may submit for the report's unit, else None. An unknown unit
        the token could see if it existed passes (``submit`` answers it UNKNOWN_UNIT); any other
        is refused like a neighbour's, so no one can probe for the units outside their subtree."""
        unit = report.unit
        refusal: str | None = None
        if self.outside_whatever_exists(principal, unit):
            refusal = str(OutsideSubtreeError(unit, principal.unit))
        else:
            await self.known(unit)  # loads an agency registered through the API a moment ago
            try:
                principal.require_scope(Scope.SUBMIT)
            except Forbidden as exc:
                refusal = str(exc)
            else:
                if not principal.may_see(self.tree.holding(unit, report.period), unit):
                    refusal = str(OutsideSubtreeError(unit, principal.unit))
        if refusal is None:
            return None
        return self._result(report, Verdict.FORBIDDEN, [{"loc": ["unit"], "msg": refusal}])

    async def _settle(
        self,
        report: ReportInBase,
        principal: Principal,
        gate: AbstractAsyncContextManager[Any] | None,
        entries: list[AuditEntry],
        origin: str | None,
    ) -> Result:
        """``submit``, its refusals as verdicts; the audit entry of an accepted report joins
        ``entries``."""
        async with gate or nullcontext():
            try:
                outcome = await self.submit(report, principal, origin=origin)
            except OutsideSubtreeError as exc:
                return self._result(report, Verdict.FORBIDDEN, [{"loc": ["unit"], "msg": str(exc)}])
            except UnknownUnitError as exc:
                return self._result(report, Verdict.UNKNOWN_UNIT, [{"loc": ["unit"], "msg": str(exc)}])
            except ConflictError as exc:
                return self._result(report, Verdict.CONFLICT, [{"loc": [], "msg": str(exc)}])
            except RefusedFieldsError as exc:
                return self._result(report, Verdict.INVALID, exc.errors)
            except (PublishFailed, LocksUnavailable) as exc:
                return self._result(report, Verdict.UNAVAILABLE, [{"loc": [], "msg": str(exc)}])
        if outcome.entry is not None:
            entries.append(outcome.entry)
        return self._result(report, Verdict(outcome.status.value), [])

    @staticmethod
    def _result(report: ReportInBase, verdict: Verdict, errors: list[dict[str, Any]]) -> Result:
        return Result(verdict, report.report_id, report.revision, report.unit, errors)

    async def submit(
        self, report: ReportInBase, principal: Principal, source: str = "http", origin: str | None = None
    ) -> Outcome:
        received_at = self.clock()
        if problems := future_problems(report, received_at, self.catalog):
            raise RefusedFieldsError(problems)
        if not await self.known(report.unit):
            raise UnknownUnitError(report.unit)
        # Decided here, at the point of use, once the unit is known (a unit is never moved or
        # removed, so nothing between this and the publication can change the answer), and in
        # the tree of the report's period: codes are reused across trees, and a token's subtree
        # in one tree says nothing of the units with the same codes in the other.
        placement = principal.may_report(self.tree, report.unit, report.period)
        if placement is Placement.OUTSIDE:
            raise OutsideSubtreeError(report.unit, principal.unit)
        tree = self.tree.for_period(report.period)  # the tree valid at the period's end
        if placement is Placement.CLOSED:  # closed by the 2025 reform (a district), or not yet created
            raise UnknownUnitError(report.unit, self.tree.why_not(report.unit, report.period))
        closed = tree.closed_from(report.unit)
        if closed is not None and not tree.open_on(report.unit, parse_period(report.period).end):
            # a closed agency is no longer expected from its closing: a report of a period it is
            # closed at the end of would count a unit that the completeness does not
            raise UnknownUnitError(
                report.unit,
                f"agency {report.unit} is closed from {closed.isoformat()}: it reports no period ending on or "
                "after that day (an admin reopens it on the agencies page)",
            )
        if problem := joined_problem_of(report, tree, self.catalog):
            raise RefusedFieldsError([problem])
        payload = report.model_dump(mode="json")
        series = self.catalog.series_for(payload["kind"], payload.get("body")).key
        # codes are reused across trees: the log names the series of a 2025-tree report with its
        # tree, so a revision moving a report to a period of the other tree is refused like a
        # change of kind
        series_key = series if tree.tree_id == LEGACY else f"{series}@{tree.tree_id}"
        content = digest(payload)
        try:
            # (unit, report_id): a report id is the unit's own, so a lookup never finds, and an
            # answer never speaks of, another unit's report
            prior = await self.submissions.get(report.unit, report.report_id)
        except PyMongoError:
            # The duplicate check is a courtesy; the aggregator's state (each report's latest
            # revision) is the guarantee.
            log.warning("submission log unavailable; publishing without duplicate check")
            prior = None
        if prior is not None and duplicate(report, prior, series_key, content):
            return Outcome(report.report_id, report.revision, Status.DUPLICATE)
        await self._check_lock(report.unit, series, report.period)  # approval and lock, after duplicates
        envelope = {
            "report": payload,
            "received_at": received_at.isoformat(),
            "source": source,
        }
        started = time.perf_counter()
        # Keyed by province: the publisher writes it to its province's partition, where the
        # aggregator counts it (services/aggregate/routing.py). An agency registered a moment
        # ago and not yet in our copy of the tree goes by its own code; the aggregator forwards it.
        key = tree.path(report.unit)[-1] if report.unit in tree else report.unit
        # pydantic-core's serializer: compact UTF-8 JSON written in Rust, cheaper than json.dumps
        # on the batch route's path, which serializes every report
        await self.publisher.publish(key.encode(), to_json(envelope))
        self.metrics.produce_seconds.observe(time.perf_counter() - started)
        # the unit and its ancestors in the period's tree, which holds the unit (placement
        # ALLOWED): what a listing of a subtree selects on
        scope = scope_of(tree, report.unit)
        try:
            await self.submissions.record(
                report.report_id, report.unit, series_key, report.revision, content, scope, body=payload
            )
        except PyMongoError:
            log.warning("could not record submission", extra={"report_id": report.report_id})
        entry = audit_entry(report, payload, prior, principal, origin, (*scope, COUNTRY), received_at)
        return Outcome(report.report_id, report.revision, Status.ACCEPTED, entry)

    async def _check_lock(self, unit: str, series: str, period: str) -> None:
        """:class:`LockedError` when (unit, series) is approved for ``period`` or a period of the
        same tree holding it; :class:`LocksUnavailable` when the approvals cannot be read."""
        periods = [p.label for p in parse_period(period).enclosing]
        try:
            approval = await self.approvals.first(unit, series, periods)
        except PyMongoError as exc:
            raise LocksUnavailable(f"approvals unreadable ({type(exc).__name__}); send the report again") from exc
        if approval is not None:
            raise LockedError(locked_message(approval))


def duplicate(report: ReportInBase, prior: Submission, series_key: str, content: str) -> bool:
    """Whether ``report`` is a copy of a revision ``prior`` holds; :class:`ConflictError` when it
    contradicts ``prior`` (another kind or tree, or a revision number accepted with other content)."""
    if prior.series != series_key:
        raise ConflictError(
            f"report {report.report_id} of unit {report.unit} is a {prior.series} report; "
            "a revision cannot change its kind, nor move to a period of another administrative "
            "tree (@2025: the tree from 2025-07-01); use a new report_id"
        )
    if report.revision not in prior.revisions:
        return False
    if prior.revisions[report.revision] == content:
        return True
    raise ConflictError(
        f"revision {report.revision} of report {report.report_id} was already accepted "
        f"with other content; send a correction as revision {max(prior.revisions) + 1}"
    )


def audit_entry(
    report: ReportInBase,
    payload: dict[str, Any],
    prior: Submission | None,
    principal: Principal,
    origin: str | None,
    scope: tuple[str, ...],
    at: datetime,
) -> AuditEntry:
    """The audit entry of an accepted ``report`` (``payload`` as published): its figures before
    are the newest revision below it that the submission log kept a body of (None for a first
    revision, or one whose earlier bodies predate the log keeping them)."""
    earlier = prior.latest_body(before=report.revision) if prior is not None else None
    first = prior is None or not any(r < report.revision for r in prior.revisions)
    action = Action.WITHDRAW if report.withdrawn else Action.SUBMIT if first else Action.REVISE
    return AuditEntry(
        at=at.timestamp(),
        actor=principal.actor,
        action=action,
        unit=report.unit,
        scope=scope,
        origin=principal.origin or origin,
        period=report.period,
        subject=f"{report.unit}/{report.report_id}",
        before=earlier[1] if earlier is not None else None,
        after=payload,
        detail=f"revision {report.revision}",
    )
