"""Approval and lock without sockets: who may approve and unapprove (shared/domain/approvals.py),
and ingest refusing what is approved (services/ingest/service.py) with fakes."""

import pytest

from services.ingest.metrics import IngestMetrics
from services.ingest.publisher import InMemoryPublisher
from services.ingest.service import IngestService, LockedError, Status
from services.ingest.submissions import InMemorySubmissionLog
from shared.adapters.approvals import CachedApprovals, InMemoryApprovalStore
from shared.domain.accounts import ROLE_SCOPES, Role
from shared.domain.approvals import Approval, approve, check_unapprove, locked_message
from shared.domain.auth import Forbidden, Principal, Scope
from shared.domain.catalog import load_catalog
from shared.domain.hierarchy import load_vietnam
from shared.domain.reports import REPORT_ADAPTER
from tests.unit.test_ingest_app import report

TREE = load_vietnam(["38"])
OLD = TREE.for_period("2020-12")  # 14923 under district 386 under province 38
AT = 1_607_000_000.0  # 2020-12-03 12:53:20 UTC


def approver(unit: str, *scopes: Scope, account: str | None = None) -> Principal:
    return Principal(f"t-{unit}", unit, frozenset(scopes or {Scope.APPROVE}), 2**40, account=account)


def test_the_reviewer_and_the_admin_approve_the_clerk_and_the_viewer_do_not():
    assert [r for r in Role if Scope.APPROVE in ROLE_SCOPES[r]] == [Role.REVIEWER, Role.ADMIN]


def test_an_approval_is_made_at_the_approvers_level_over_a_unit_it_covers():
    made = approve(approver("386", account="duyet386"), OLD, "14923", "study_session", "2020-12", AT)
    assert (made.unit, made.level, made.approver, made.path) == ("14923", "386", "duyet386", ("14923", "386", "38"))
    assert made.when == "2020-12-03 12:53 UTC"
    with pytest.raises(Forbidden, match="outside this token's unit 14926"):
        approve(approver("14926"), OLD, "14923", "study_session", "2020-12", AT)
    with pytest.raises(Forbidden, match="lacks the 'approve' scope"):
        approve(approver("38", Scope.READ, Scope.SUBMIT), OLD, "14923", "study_session", "2020-12", AT)


def test_only_the_level_that_approved_or_one_above_it_unapproves():
    made = approve(approver("386"), OLD, "14923", "study_session", "2020-12", AT)
    check_unapprove(approver("386"), OLD, made)
    check_unapprove(approver("38"), OLD, made)
    check_unapprove(approver("VN"), OLD, made)
    with pytest.raises(Forbidden, match=r"approved at level 386 .* only an approver of unit 386 or a unit above it"):
        check_unapprove(approver("14923"), OLD, made)
    with pytest.raises(Forbidden, match="lacks the 'approve' scope"):
        check_unapprove(approver("38", Scope.READ), OLD, made)


def service_with(store: InMemoryApprovalStore) -> tuple[IngestService, InMemoryPublisher]:
    publisher = InMemoryPublisher()
    service = IngestService(
        publisher,
        InMemorySubmissionLog(),
        TREE,
        load_catalog(),
        IngestMetrics(),
        approvals=CachedApprovals(store, ttl_s=0),
    )
    return service, publisher


CLERK = Principal("clerk", "14923", frozenset({Scope.SUBMIT}), 2**40)


def item(**changes: object):
    return REPORT_ADAPTER.validate_python(report(**changes))


async def test_an_approved_period_refuses_revisions_withdrawals_and_new_reports_naming_who_and_when():
    store = InMemoryApprovalStore()
    service, publisher = service_with(store)
    assert (await service.submit(item(), CLERK)).status == Status.ACCEPTED
    # the quarter holding December 2020 is approved: December is locked with it
    await store.add(Approval("14923", "study_session", "2020-Q4", "386", "duyet386", AT))
    assert (await service.submit(item(), CLERK)).status == Status.DUPLICATE
    withdrawal = REPORT_ADAPTER.validate_python({**report(rev=3), "withdrawn": True})
    for refused in (item(rev=2, attended=290), withdrawal, item(rid="r-2")):
        with pytest.raises(LockedError) as caught:
            await service.submit(refused, CLERK)
        assert str(caught.value) == locked_message(store.approvals["14923/study_session/2020-Q4"])
        assert "approved by duyet386 (level 386) on 2020-12-03 12:53 UTC" in str(caught.value)
    # another unit, and another series of the same unit, are not locked
    other = Principal("clerk2", "14926", frozenset({Scope.SUBMIT}), 2**40)
    assert (await service.submit(item(unit="14926"), other)).status == Status.ACCEPTED
    assert sum(len(p) for p in publisher.partitions) == 2

    assert await store.remove(store.approvals["14923/study_session/2020-Q4"])
    assert (await service.submit(item(rev=2, attended=290), CLERK)).status == Status.ACCEPTED


async def test_the_refusal_is_a_409_conflict_with_the_message_as_its_error():
    store = InMemoryApprovalStore()
    service, _ = service_with(store)
    await store.add(Approval("14923", "study_session", "2020-12", "38", "token:abc", AT))
    result = await service.take(item(), CLERK)
    assert result.verdict == "conflict"
    assert result.errors[0]["msg"].startswith("study_session of unit 14923 for 2020-12 was approved by token:abc")


async def test_the_cache_answers_within_its_bound_then_reads_again():
    store = InMemoryApprovalStore()
    cached = CachedApprovals(store, ttl_s=3600)
    assert await cached.get("14923", "study_session", "2020-12") is None
    await store.add(Approval("14923", "study_session", "2020-12", "38", "a", AT))
    assert await cached.get("14923", "study_session", "2020-12") is None  # within the bound: the last answer
    assert (await CachedApprovals(store, ttl_s=0).get("14923", "study_session", "2020-12")).approver == "a"
