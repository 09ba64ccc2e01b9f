"""The approvals stream (shared/domain/approvals.py, shared/adapters/approvals.py): each approval
and unapproval becomes a message of the published schema, none is lost while Kafka is away, and
the last message of an id is its current state. In-memory fakes."""

import json

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from shared.adapters.approvals import InMemoryApprovalStore, publish_pending
from shared.domain.approvals import MESSAGE_SCHEMA_PATH, Approval, Unapproval, approval_message, approvals_topic

AT = 1_765_000_000.5  # 2025-12-06 05:46:40.5 UTC
MADE = Approval("14923", "study_session", "2020-12", "386", "duyet386", AT, path=("14923", "386", "38"))
SCHEMA = Draft202012Validator(json.loads(MESSAGE_SCHEMA_PATH.read_text()), format_checker=FormatChecker())


class Broker:
    """A sink standing in for Kafka: it keeps what it acknowledged, or fails while ``down``."""

    def __init__(self) -> None:
        self.log: list[tuple[str, dict]] = []
        self.down = False

    async def send(self, messages: list[tuple[bytes, bytes]]) -> None:
        if self.down:
            raise ConnectionError("broker away")
        self.log.extend((k.decode(), json.loads(v)) for k, v in messages)

    def last(self) -> dict[str, dict]:
        return {k: v for k, v in self.log}


def test_the_messages_follow_the_schema_and_say_who_approved_and_who_unapproved():
    approved = approval_message(MADE)
    SCHEMA.validate(approved)
    assert approved == {
        "schema_version": 1,
        "id": "14923/study_session/2020-12",
        "unit": "14923",
        "series": "study_session",
        "period": "2020-12",
        "approved": True,
        "level": "386",
        "approver": "duyet386",
        "approved_at": "2025-12-06T05:46:40.500000+00:00",
        "parents": ["14923", "386", "38"],
    }
    undone = approval_message(Unapproval(MADE, "duyet38", AT + 60))
    SCHEMA.validate(undone)
    assert (undone["approved"], undone["unapproved_by"], undone["unapproved_at"]) == (
        False,
        "duyet38",
        "2025-12-06T05:47:40.500000+00:00",
    )
    assert not SCHEMA.is_valid({k: v for k, v in undone.items() if k != "unapproved_by"})
    assert not SCHEMA.is_valid({**approved, "unapproved_by": "x"})
    assert approvals_topic("totals") == "totals.approvals"


async def test_a_change_made_while_kafka_is_away_is_published_once_it_is_back():
    store, broker = InMemoryApprovalStore(), Broker()
    await store.add(MADE)
    broker.down = True
    with pytest.raises(ConnectionError):
        await publish_pending(store, broker.send)
    assert len(await store.unpublished(10)) == 1  # still waiting
    assert await store.remove(MADE, by="duyet38", at=AT + 60)
    broker.down = False
    assert await publish_pending(store, broker.send) == 1
    assert await publish_pending(store, broker.send) == 0  # nothing left
    assert [(k, m["approved"]) for k, m in broker.log] == [("14923/study_session/2020-12", False)]


async def test_every_change_is_published_in_order_and_the_last_message_is_the_current_state():
    store, broker = InMemoryApprovalStore(), Broker()
    await store.add(MADE)
    await publish_pending(store, broker.send)
    await store.remove(MADE, by="duyet38")
    await publish_pending(store, broker.send)
    again = Approval("14923", "study_session", "2020-12", "38", "duyet38", AT + 120, path=MADE.path)
    await store.add(again)
    await publish_pending(store, broker.send)
    assert [m["approved"] for _, m in broker.log] == [True, False, True]
    assert broker.last()["14923/study_session/2020-12"]["approver"] == "duyet38"


async def test_two_publishers_racing_end_with_the_current_state_last():
    store, broker = InMemoryApprovalStore(), Broker()
    await store.add(MADE)
    (stale,) = await store.unpublished(10)  # publisher A reads the approval...
    await store.remove(MADE, by="duyet38")
    assert await publish_pending(store, broker.send) == 1  # ...B publishes the unapproval
    await broker.send([(stale.id.encode(), json.dumps(approval_message(stale)).encode())])  # A's lands after
    assert not await store.mark_published(stale)
    assert broker.last()[MADE.id]["approved"] is True  # for now the stream is wrong...
    assert await publish_pending(store, broker.send) == 1
    assert broker.last()[MADE.id]["approved"] is False  # ...and the unapproval comes again, last
