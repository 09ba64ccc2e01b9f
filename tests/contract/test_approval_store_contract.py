"""One contract, two adapters: the approvals, in memory and in MongoDB (shared/adapters/approvals.py)."""

import asyncio

import pytest

from shared.adapters.approvals import InMemoryApprovalStore, MongoApprovalStore
from shared.domain.approvals import AlreadyApproved, Approval, Unapproval
from tests.contract.conftest import MEMORY_AND_MONGODB, fresh_database

AT = 1_765_000_000.5


@pytest.fixture(params=MEMORY_AND_MONGODB)
async def store(request):
    if request.param == "memory":
        yield InMemoryApprovalStore()
        return
    async with fresh_database(request) as (client, database):
        mongo = MongoApprovalStore(client, database)
        await mongo.ensure_indexes()
        yield mongo


def approval(unit="14923", series="study_session", period="2020-12", level="386", approver="duyet386"):
    paths = {"14923": ("14923", "386", "38"), "14926": ("14926", "386", "38"), "386": ("386", "38")}
    return Approval(unit, series, period, level, approver, AT, path=paths.get(unit, (unit, "38")))


async def test_an_approval_is_kept_as_made_and_read_back(store):
    made = approval()
    await store.add(made)
    found = await store.get("14923", "study_session", "2020-12")
    assert found == made and found.path == made.path and found.nonce == made.nonce
    assert await store.get("14923", "study_session", "2020-11") is None
    assert await store.get("14923", "conference", "2020-12") is None


async def test_a_triple_is_approved_once_and_the_refusal_names_the_standing_approval(store):
    await store.add(approval())
    with pytest.raises(AlreadyApproved, match="already approved by duyet386 \\(level 386\\) on 2025-12-06 05:46 UTC"):
        await store.add(approval(level="38", approver="duyet38"))
    assert (await store.get("14923", "study_session", "2020-12")).approver == "duyet386"


async def test_two_approvers_racing_get_one_approval(store):
    outcomes = await asyncio.gather(*(store.add(approval(approver=f"a{i}")) for i in range(5)), return_exceptions=True)
    assert sum(o is None for o in outcomes) == 1
    assert sum(isinstance(o, AlreadyApproved) for o in outcomes) == 4


async def test_a_removal_takes_only_the_approval_it_was_decided_on(store):
    first = approval()
    await store.add(first)
    assert await store.remove(first)
    assert not await store.remove(first)  # gone
    again = approval(level="38", approver="duyet38")
    await store.add(again)
    assert not await store.remove(first)  # the earlier approval, replaced meanwhile
    assert (await store.get("14923", "study_session", "2020-12")).approver == "duyet38"


async def test_a_listing_holds_the_subtree_of_one_period_by_unit_and_series(store):
    for made in (
        approval("14926"),
        approval("14923", series="conference"),
        approval("14923"),
        approval("386", level="38"),
        approval("14923", period="2020-11"),
        approval("16279", level="38"),
    ):
        await store.add(made)
    listed = [(a.unit, a.series) for a in await store.listing("386", "2020-12")]
    assert listed == [
        ("14923", "conference"),
        ("14923", "study_session"),
        ("14926", "study_session"),
        ("386", "study_session"),
    ]
    assert [a.unit for a in await store.listing("14923", "2020-11")] == ["14923"]
    assert len(await store.listing("38", "2020-12")) == 5
    assert await store.listing("14925", "2020-12") == []


async def test_a_units_approvals_of_a_series_are_read_at_once_whatever_their_period(store):
    for made in (
        approval(period="2020-Q4"),
        approval(period="2020-11"),
        approval(series="conference"),
        approval("14926"),
    ):
        await store.add(made)
    assert [a.period for a in await store.of_unit("14923", "study_session")] == ["2020-11", "2020-Q4"]
    assert await store.of_unit("14923", "reflection") == []


async def test_every_approval_and_unapproval_waits_in_the_outbox_until_marked_published(store):
    made = approval()
    await store.add(made)
    (waiting,) = await store.unpublished(10)
    assert isinstance(waiting, Approval) and waiting.nonce == made.nonce
    assert await store.mark_published(waiting)
    assert await store.unpublished(10) == []
    assert await store.remove(made, by="duyet38", at=AT + 60)
    (undone,) = await store.unpublished(10)
    assert isinstance(undone, Unapproval)
    assert (undone.approval.nonce, undone.by, undone.at) == (made.nonce, "duyet38", AT + 60)
    assert await store.get("14923", "study_session", "2020-12") is None
    assert await store.listing("386", "2020-12") == []
    assert await store.of_unit("14923", "study_session") == []
    assert await store.mark_published(undone)
    assert await store.unpublished(10) == []


async def test_an_unapproved_id_may_be_approved_again(store):
    first = approval()
    await store.add(first)
    assert await store.remove(first, by="duyet38")
    again = approval(level="38", approver="duyet38")
    await store.add(again)
    assert (await store.get("14923", "study_session", "2020-12")).nonce == again.nonce
    (waiting,) = await store.unpublished(10)
    assert isinstance(waiting, Approval) and waiting.nonce == again.nonce


async def test_a_state_published_after_it_changed_leaves_the_current_one_to_publish_again(store):
    made = approval()
    await store.add(made)
    (read,) = await store.unpublished(10)
    assert await store.remove(made, by="duyet38")  # unapproved while ``read`` was being sent
    (newer,) = await store.unpublished(10)
    assert await store.mark_published(newer)  # another publisher sent the unapproval first
    assert not await store.mark_published(read)  # then the approval's message landed after it
    (again,) = await store.unpublished(10)  # so the unapproval goes out again, last
    assert isinstance(again, Unapproval) and again.approval.nonce == made.nonce


async def test_many_units_approvals_are_read_in_one_call(store):
    for made in (approval(period="2020-Q4"), approval(series="conference"), approval("14926")):
        await store.add(made)
    await store.remove(await store.get("14926", "study_session", "2020-12"), by="duyet38")
    found = await store.of_units({("14923", "study_session"), ("14926", "study_session"), ("14929", "conference")})
    assert {pair: [a.period for a in got] for pair, got in found.items()} == {("14923", "study_session"): ["2020-Q4"]}


async def test_an_approval_stored_before_the_stream_existed_is_published_once(request):
    """Not a contract of both adapters: the fake has no documents from before the outbox."""
    async with fresh_database(request) as (client, database):
        mongo = MongoApprovalStore(client, database)
        await mongo.ensure_indexes()
        await mongo.add(approval())
        await client[database]["approvals"].update_one({}, {"$unset": {"published": "", "approved": ""}})
        [state] = await mongo.unpublished(10)
        assert state.id == "14923/study_session/2020-12"
        assert await mongo.mark_published(state)
        assert await mongo.unpublished(10) == []
