"""Ingest records every accepted report in the audit log: who, from where, the figures before and
after; a duplicate records nothing; a batch's entries go in one write; a log that fails loses no
report."""

from services.ingest.metrics import IngestMetrics
from services.ingest.publisher import InMemoryPublisher
from services.ingest.service import IngestService
from services.ingest.submissions import InMemorySubmissionLog
from shared.adapters.audit import InMemoryAuditLog
from shared.domain.audit import Action, AuditQuery
from shared.domain.auth import Principal, Scope
from shared.domain.catalog import load_catalog
from shared.domain.hierarchy import load_vietnam
from shared.domain.reports import REPORT_ADAPTER
from tests.unit.test_ingest_app import report

CLERK = Principal("tok1", "14923", frozenset({Scope.SUBMIT}), 2**40, account="clerk1", origin="10.1.2.3")
MACHINE = Principal("tok2", "386", frozenset({Scope.SUBMIT}), 2**40)


class CountingLog(InMemoryAuditLog):
    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.calls = 0
        self.fail = fail

    async def append_many(self, entries):  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.fail:
            raise ConnectionError("the audit log is away")
        return await super().append_many(entries)


def service(audit: InMemoryAuditLog) -> IngestService:
    tree = load_vietnam(["38"])
    return IngestService(
        InMemoryPublisher(), InMemorySubmissionLog(), tree, load_catalog(), IngestMetrics(), audit=audit
    )


def item(**kw):  # type: ignore[no-untyped-def]
    return REPORT_ADAPTER.validate_python(report(**kw))


async def entries(audit: InMemoryAuditLog, scope: str = "legacy:14923"):  # type: ignore[no-untyped-def]
    return list(reversed((await audit.page(AuditQuery(scope))).items))


async def test_submit_then_revise_records_both_with_before_and_after():
    audit = CountingLog()
    ingest = service(audit)
    assert (await ingest.take(item(attended=280), CLERK, "192.0.2.9")).verdict == "accepted"
    assert (await ingest.take(item(rev=2, attended=290), CLERK, "192.0.2.9")).verdict == "accepted"
    first, second = await entries(audit)
    assert (first.action, first.actor, first.origin, first.subject, first.detail) == (
        Action.SUBMIT,
        "clerk1",
        "10.1.2.3",  # the person's address the pages put in the token, not the pages' own
        "14923/r-1",
        "revision 1",
    )
    assert first.before is None and first.after["body"]["members_attended"] == 280
    assert (second.action, second.detail, second.period) == (Action.REVISE, "revision 2", "2020-12")
    assert second.before["body"]["members_attended"] == 280 and second.after["body"]["members_attended"] == 290
    assert second.scope == ("legacy:14923", "legacy:386", "legacy:38", "VN")


async def test_a_machine_tokens_report_names_the_token_and_the_requests_address():
    audit = InMemoryAuditLog()
    await service(audit).take(item(), MACHINE, "192.0.2.9")
    (only,) = await entries(audit)
    assert (only.actor, only.origin) == ("token:tok2", "192.0.2.9")


async def test_a_duplicate_records_nothing_and_a_withdrawal_is_its_own_action():
    audit = InMemoryAuditLog()
    ingest = service(audit)
    await ingest.take(item(), CLERK)
    assert (await ingest.take(item(), CLERK)).verdict == "duplicate"
    withdrawal = REPORT_ADAPTER.validate_python({**report(rev=2), "withdrawn": True})
    assert (await ingest.take(withdrawal, CLERK)).verdict == "accepted"
    assert [e.action for e in await entries(audit)] == [Action.SUBMIT, Action.WITHDRAW]


async def test_a_refused_report_records_nothing():
    audit = InMemoryAuditLog()
    ingest = service(audit)
    outsider = Principal("tok3", "14926", frozenset({Scope.SUBMIT}), 2**40)
    assert (await ingest.take(item(), outsider)).verdict == "forbidden"
    assert await entries(audit, "VN") == []


async def test_a_batch_writes_its_entries_in_one_call():
    audit = CountingLog()
    ingest = service(audit)
    raws = [report(rid=f"b{i}") for i in range(30)] + [{"report_id": "bad"}]
    results = await ingest.take_batch(raws, MACHINE, "192.0.2.9")
    assert [r.verdict for r in results].count("accepted") == 30
    assert audit.calls == 1
    assert sorted(e.subject for e in await entries(audit)) == sorted(f"14923/b{i}" for i in range(30))


async def test_a_failed_audit_write_is_counted_and_the_report_still_accepted():
    audit = CountingLog(fail=True)
    ingest = service(audit)
    assert (await ingest.take(item(), CLERK)).verdict == "accepted"
    failures = ingest.metrics.registry.get_sample_value(
        "baocao_audit_write_failures_total", {"action": "report.submit"}
    )
    assert failures == 1.0
