"""The approval lock on the Kafka path (shared/domain/approvals.py): the aggregator refuses a
report a unit's system produced straight to Kafka after its (unit, series, period) was approved,
judged by the broker's time; never an envelope ingest wrote. In-memory fakes."""

import json
from datetime import UTC, datetime

from services.aggregate.aggregator import Aggregator
from services.aggregate.decode import Origin, decode_direct
from services.aggregate.routing import forwarded, partition_for
from shared.adapters.approvals import CachedApprovals, InMemoryApprovalStore
from shared.domain.approvals import Approval, kafka_lock
from shared.domain.rollup import Report
from shared.domain.stamps import STAMP_HEADER, TOKEN_HEADER, stamp
from tests.unit.test_aggregator import (
    CATALOG,
    PARTITIONS,
    PRODUCER_TOKEN,
    TREE,
    TRUST,
    Pipeline,
    report,
)

APPENDED_MS = 1_610_000_000_000  # when the fake broker appends (2021-01-07 06:13:20 UTC)
APPENDED = APPENDED_MS / 1000
HOME = partition_for("38", PARTITIONS)


def approval(period="2020-12", at=APPENDED - 3600, unit="14923", series="study_session"):
    return Approval(unit, series, period, "386", "duyet386", at, path=(unit, "386", "38"))


class Locked(Pipeline):
    """The aggregator with an approval store (read with no cache by default: each batch reads it)."""

    def __init__(self, store=None, ttl_s=0.0):
        self.store = store or InMemoryApprovalStore()
        self.ttl_s = ttl_s
        super().__init__()

    def new_aggregator(self):
        plain = super().new_aggregator()
        return Aggregator(
            plain.catalog,
            plain.tree,
            PARTITIONS,
            self.changelog,
            self.view,
            self._publish,
            self._forward,
            self._dead_letter,
            self.metrics,
            retry_pause=0,
            entries=self.entries,
            trust=TRUST,
            approvals=CachedApprovals(self.store, ttl_s=self.ttl_s),
        )

    def direct(self, r, appended_ms=APPENDED_MS, partition=HOME):
        self.produce(json.dumps(r).encode(), partition, appended_ms)

    def from_ingest(self, r, received_at="2021-01-07T06:13:20+00:00"):
        value = json.dumps({"report": r, "received_at": received_at, "source": "http"}).encode()
        self.produce(value, HOME, APPENDED_MS, ((STAMP_HEADER, stamp(TRUST.stamp_key, value)),))

    def reasons(self):
        return [(h["baocao-reason"].decode(), h["baocao-detail"].decode()) for _, h in self.dead]


def test_a_lock_is_an_approval_of_the_period_or_one_holding_it_made_before_the_message_was_appended():
    appended = datetime.fromtimestamp(APPENDED, UTC)
    quarter = approval("2020-Q4")
    assert kafka_lock([quarter], "2020-12", appended) == quarter
    assert kafka_lock([approval("2020-12", at=APPENDED)], "2020-12", appended) is not None  # at the same instant
    assert kafka_lock([approval("2020-12", at=APPENDED + 1)], "2020-12", appended) is None  # approved after
    assert kafka_lock([approval("2020-11"), approval("2021-Q1")], "2020-12", appended) is None
    # a month of the old tree is not locked by the new tree's year 2025 (codes are reused)
    assert kafka_lock([approval("2025")], "2025-06", datetime(2026, 1, 1, tzinfo=UTC)) is None
    assert kafka_lock([approval("2025-H1")], "2025-06", datetime(2026, 1, 1, tzinfo=UTC)) is not None


def test_decoding_tells_a_report_produced_straight_to_kafka_from_ingests_envelope():
    bare = json.dumps(report("a", 10)).encode()
    token = ((TOKEN_HEADER, PRODUCER_TOKEN.encode()),)
    got, direct = decode_direct(bare, APPENDED_MS, CATALOG, TREE, Origin(token, True), TRUST)
    assert isinstance(got, Report) and direct
    moved = forwarded(bare, APPENDED_MS, "reports/3/7")  # a worker forwards it to its province
    got, direct = decode_direct(
        moved, None, CATALOG, TREE, Origin(((STAMP_HEADER, stamp(TRUST.stamp_key, moved)),), True), TRUST
    )
    assert isinstance(got, Report) and direct
    envelope = json.dumps({"report": report("a", 10), "received_at": "2021-01-07T06:13:20+00:00"}).encode()
    got, direct = decode_direct(
        envelope, None, CATALOG, TREE, Origin(((STAMP_HEADER, stamp(TRUST.stamp_key, envelope)),), True), TRUST
    )
    assert isinstance(got, Report) and not direct


async def test_a_direct_revision_of_an_approved_period_is_a_dead_letter_naming_who_approved_and_when():
    p = Locked()
    p.direct(report("a", 10))
    await p.apply()
    await p.store.add(approval("2020-Q4"))
    p.direct(report("a", 15, rev=2))
    p.direct(report("a", 0, rev=3, withdrawn=True))
    p.direct(report("b", 4))  # a new report of the approved quarter
    p.direct(report("c", 6, period="2021-01"))  # another quarter: not locked
    await p.apply()
    assert p.total("38|study_session|2020-12") == 10
    assert p.total("14923|study_session|2021-01") == 6
    assert [r for r, _ in p.reasons()] == ["approved"] * 3
    detail = p.reasons()[0][1]
    assert (
        "study_session of unit 14923 for 2020-Q4 was approved by duyet386 (level 386) on 2021-01-07 05:13 UTC" in detail
    )
    assert "appended to Kafka on 2021-01-07 06:13:20 UTC" in detail
    assert p.metrics.dead_letters.labels("approved")._value.get() == 3


async def test_a_copy_of_the_counted_revision_stays_a_duplicate():
    p = Locked()
    p.direct(report("a", 10))
    await p.apply()
    await p.store.add(approval())
    p.direct(report("a", 10))
    await p.apply()
    assert p.dead == []
    assert p.metrics.reports.labels("duplicate")._value.get() == 1
    assert p.total("38|study_session|2020-12") == 10


async def test_a_message_appended_before_the_approval_is_applied_however_late_it_is_read():
    p = Locked()
    await p.store.add(approval(at=APPENDED + 60))  # approved a minute after the broker appended it
    p.direct(report("a", 10))
    await p.apply()
    assert p.dead == []
    assert p.total("38|study_session|2020-12") == 10


async def test_an_envelope_ingest_acknowledged_is_applied_even_when_read_after_the_approval():
    p = Locked()
    await p.store.add(approval())
    p.from_ingest(report("a", 10))
    await p.apply()
    assert p.dead == []
    assert p.total("38|study_session|2020-12") == 10


async def test_a_direct_report_forwarded_from_another_partition_meets_the_lock_at_its_province():
    p = Locked()
    await p.store.add(approval())
    p.direct(report("a", 10), partition=(HOME + 1) % PARTITIONS)
    await p.apply()
    assert [r for r, _ in p.reasons()] == ["approved"]
    assert p.total("38|study_session|2020-12") == 0


async def test_after_an_unapproval_a_new_direct_revision_is_applied():
    p = Locked()
    p.direct(report("a", 10))
    await p.apply()
    made = approval()
    await p.store.add(made)
    p.direct(report("a", 15, rev=2))
    await p.apply()
    assert await p.store.remove(made)
    p.direct(report("a", 20, rev=3))
    await p.apply()
    assert [r for r, _ in p.reasons()] == ["approved"]
    assert p.total("38|study_session|2020-12") == 20


async def test_another_series_or_unit_is_not_locked():
    p = Locked()
    await p.store.add(approval())
    p.direct(report("a", 10, kind="reflection"))
    p.direct(report("b", 10, unit="14926"))
    await p.apply()
    assert p.dead == []
    assert p.total("38|study_session|2020-12") == 10


async def test_a_batch_of_many_units_reads_the_approvals_once():
    class Counting(InMemoryApprovalStore):
        reads = 0

        async def of_units(self, pairs):
            self.reads += 1
            return await super().of_units(pairs)

        async def of_unit(self, unit, series):
            self.reads += 1
            return await super().of_unit(unit, series)

    p = Locked(Counting(), ttl_s=60)
    await p.store.add(approval())
    for unit in ("14923", "14926", "14929"):
        for rid in ("a", "b"):
            p.direct(report(rid, 10, unit=unit))
    await p.apply()
    assert p.store.reads == 1
    assert [r for r, _ in p.reasons()] == ["approved", "approved"]  # 14923's two
    assert p.total("38|study_session|2020-12") == 40
