"""The ingest use case: accept one validated report, publish it, answer what became of it."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic_core import to_json
from pymongo.errors import PyMongoError

from services.ingest.metrics import IngestMetrics
from services.ingest.publisher import Publisher
from services.ingest.submissions import SubmissionLog, scope_of
from shared.domain.auth import Placement, Principal
from shared.domain.catalog import Catalog
from shared.domain.hierarchy import LEGACY, OrgTree
from shared.domain.reports import ReportInBase, future_problems

log = logging.getLogger(__name__)


class Status(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"


@dataclass(frozen=True)
class Outcome:
    report_id: str
    revision: int
    status: Status


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


class FutureReportError(ValueError):
    """The report's period has not begun, or an event date of it lies ahead, at its receipt
    (answered 422; ``errors`` name each field, relative to the report)."""

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
    ) -> None:
        self.publisher = publisher
        self.submissions = submissions
        self.tree = tree
        self.catalog = catalog
        self.metrics = metrics
        self.lookup_unit = lookup_unit
        self.clock = clock  # the receipt time: this server's clock, never the sender's

    async def known(self, unit: str) -> bool:
        if self.tree.known_anywhere(unit):
            return True
        return self.lookup_unit is not None and await self.lookup_unit(unit)

    async def submit(self, report: ReportInBase, principal: Principal, source: str = "http") -> Outcome:
        received_at = self.clock()
        if problems := future_problems(report, received_at, self.catalog):
            raise FutureReportError(problems)
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
        if prior is not None:
            if prior.series != series_key:
                raise ConflictError(
                    f"report {report.report_id} of unit {report.unit} is a {prior.series} report; "
                    "a revision cannot change its kind, nor move to a period of another administrative "
                    "tree (@2025: the tree from 2025-07-01); use a new report_id"
                )
            if report.revision in prior.revisions:
                if prior.revisions[report.revision] == content:
                    return Outcome(report.report_id, report.revision, Status.DUPLICATE)
                raise ConflictError(
                    f"revision {report.revision} of report {report.report_id} was already accepted "
                    f"with other content; send a correction as revision {max(prior.revisions) + 1}"
                )
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
        # pydantic-core's serializer: compact UTF-8 JSON, in Rust (json.dumps here and in digest()
        # were 18 % of the batch route's time)
        await self.publisher.publish(key.encode(), to_json(envelope))
        self.metrics.produce_seconds.observe(time.perf_counter() - started)
        try:
            # the unit and its ancestors in the period's tree, which holds the unit (placement
            # ALLOWED): what a listing of a subtree selects on
            await self.submissions.record(
                report.report_id, report.unit, series_key, report.revision, content, scope_of(tree, report.unit)
            )
        except PyMongoError:
            log.warning("could not record submission", extra={"report_id": report.report_id})
        return Outcome(report.report_id, report.revision, Status.ACCEPTED)
