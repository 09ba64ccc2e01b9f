"""The aggregator with in-memory fakes: forwarding to the province's partition, exactly once in
effect through crashes and restores, hostile messages, and the view repaired after a crash."""

import json
from datetime import UTC, datetime

import pytest

from services.aggregate import aggregator as aggregator_module
from services.aggregate.aggregator import Aggregator
from services.aggregate.decode import Trust
from services.aggregate.entries import EntryFiles
from services.aggregate.metrics import AggregateMetrics
from services.aggregate.routing import partition_for
from services.aggregate.state import InMemoryChangelog
from services.aggregate.view import InMemoryTotalsView
from services.aggregate.worker import RawMessage
from shared.domain.auth import COUNTRY, Scope, mint
from shared.domain.catalog import load_catalog
from shared.domain.hierarchy import load_vietnam
from shared.domain.stamps import TOKEN_HEADER
from shared.domain.totals_stream import periods_of
from tests.conftest import TEST_SECRET
from tests.e2e.oracle import flatten

CATALOG = load_catalog()
TREE = load_vietnam(["38", "01"])
AT = datetime(2020, 12, 26, tzinfo=UTC)
PARTITIONS = 4
TRUST = Trust.from_secret(TEST_SECRET)
# the whole country's submit token, valid when the fake broker appends the messages (2020)
PRODUCER_TOKEN = mint(TEST_SECRET, COUNTRY, [Scope.SUBMIT], 10**9, now=1_500_000_000)


def report(rid, attended, rev=1, unit="14923", withdrawn=False, period="2020-12", kind="study_session"):
    body = (
        {"members_submitted": attended, "members_required": attended}
        if kind == "reflection"
        else {
            "resolution": "NQ",
            "held_on": f"{period}-05",
            "format": "online",
            "bridge_points": 0,
            "delegates": 0,
            "members_attended": attended,
            "members_total": attended,
        }
    )
    r = {
        "report_id": rid,
        "revision": rev,
        "unit": unit,
        "kind": kind,
        "period": period,
        "submitted_at": AT.isoformat(),
        "body": body,
    }
    if withdrawn:
        r["withdrawn"] = True
    return r


@pytest.fixture(autouse=True, params=["entries in memory", "entries in sqlite"])
def entries_kept(request, tmp_path, monkeypatch):
    """Every test here runs twice: with the roll-up's entries in a dict, and in SQLite files."""
    if request.param == "entries in memory":
        yield
        return
    files = EntryFiles(tmp_path, cache_mb=1)
    monkeypatch.setattr(Pipeline, "entries", staticmethod(files.open))
    yield
    files.close()


class Pipeline:
    """The aggregator over lists standing in for the partitions of ``reports`` (forwarded
    reports are appended to them, as the broker would), with in-memory fakes for the rest."""

    entries = None  # where its aggregators keep entries: in memory, or SQLite files (fixture below)

    def __init__(self, changelog=None, view=None):
        self.metrics = AggregateMetrics()
        self.changelog = changelog or InMemoryChangelog()
        self.view = view or InMemoryTotalsView()
        self.topic: dict[int, list[tuple[bytes | None, int | None, tuple]]] = {p: [] for p in range(PARTITIONS)}
        self.published: list[tuple[bytes, bytes]] = []
        self.dead: list[tuple[bytes | None, dict[str, bytes]]] = []
        self.aggregator = self.new_aggregator()
        self.applied_upto: dict[int, int] = {}

    def new_aggregator(self):
        return Aggregator(
            CATALOG,
            TREE,
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
        )

    async def _forward(self, records):
        for p, _key, value, headers in records:
            self.topic[p].append((value, None, tuple(headers)))

    async def _publish(self, messages):
        self.published.extend(messages)

    async def _dead_letter(self, key, value, headers):
        self.dead.append((value, dict(headers)))

    def produce(self, value: bytes, partition=0, timestamp_ms=1_610_000_000_000, headers=None):  # after 2020-12 began
        """A message as a unit's system produces it (with its token; the broker sets the time)."""
        if headers is None:
            headers = ((TOKEN_HEADER, PRODUCER_TOKEN.encode()),)
        self.topic[partition].append((value, timestamp_ms, headers))

    async def send(self, reports, partition=0):
        """Reports produced straight to one partition of ``reports`` (not necessarily their
        province's: the aggregator forwards those)."""
        for r in reports:
            self.produce(json.dumps(r).encode(), partition)

    def batch(self, partition, start=0, end=None):
        values = self.topic[partition][start:end]
        return [
            RawMessage("reports", partition, start + i, b"k", v, ts, h, log_append_time=True)
            for i, (v, ts, h) in enumerate(values)
        ]

    async def apply(self, aggregator=None, from_start=False):
        """Hand the aggregator every message it has not seen, partition by partition, until
        nothing new arrives (forwarded reports come back on other partitions); then flush."""
        aggregator = aggregator or self.aggregator
        seen = {} if from_start else dict(self.applied_upto)
        while any(len(v) > seen.get(p, 0) for p, v in self.topic.items()):
            for p, values in self.topic.items():
                start = seen.get(p, 0)
                if len(values) > start:
                    end = len(values)
                    await aggregator.handle(self.batch(p, start, end))
                    seen[p] = end
        self.applied_upto = seen
        await aggregator.flush()

    def stored(self):
        return {k: v for d in self.view.docs.values() for k, v in flatten(d).items() if v}

    def total(self, total_id, field="sums.members_total"):
        return self.stored().get(total_id, {}).get(field, 0)

    def streamed(self):
        """The stream as a mirror keeps it (per key, the message with the highest version), as
        totals per period."""
        latest: dict[str, dict] = {}
        for key, value in self.published:
            m = json.loads(value)
            if key.decode() not in latest or m["version"] >= latest[key.decode()]["version"]:
                latest[key.decode()] = m
        return {k: v for m in latest.values() for k, v in periods_of(m).items()}


async def test_a_stream_of_corrections_duplicates_and_withdrawals_gives_the_hand_computed_totals():
    p = Pipeline()
    await p.send([report("a", 10), report("b", 20, unit="14926"), report("a", 15, rev=2)])
    await p.send(
        [
            report("c", 5, unit="14929"),
            report("b", 20, unit="14926"),
            report("c", 0, rev=2, unit="14929", withdrawn=True),
        ]
    )
    await p.apply()
    assert p.total("38|study_session|2020-12") == 15 + 20
    assert p.total("38|study_session|2020-2025", "units_reported") == 2
    assert p.total("14929|study_session|2020-12", "reports") == 0


async def test_a_unit_whose_messages_come_on_two_partitions_is_counted_once():
    """Issue 13: S rev 1 (5) over HTTP, R rev 1 (10) straight to Kafka on another partition,
    R rev 2 (20) over HTTP: 25, not 35."""
    p = Pipeline()
    home = partition_for("38", PARTITIONS)
    other = (home + 1) % PARTITIONS
    await p.send([report("S", 5)], partition=home)
    await p.send([report("R", 10)], partition=other)
    await p.send([report("R", 20, rev=2)], partition=home)
    await p.apply()
    for unit in ("14923", "386", "38"):
        assert p.total(f"{unit}|study_session|2020-12") == 25
    (moved, _ts, _headers), *rest = p.topic[home][2:]
    assert not rest
    assert json.loads(moved)["source"] == f"forwarded from reports/{other}/0"
    assert json.loads(moved)["received_at"] == "2021-01-07T06:13:20+00:00"  # the original's broker time


async def test_undecodable_messages_are_dead_letters_and_the_rest_of_their_batch_counts():
    p = Pipeline()
    hostile = [b"[" * 100_000, b'{"report_id": ' + b"9" * 5000 + b"}", b"\xff\xfe", b"null", b""]
    await p.send([report("g0", 10)])
    for v in hostile:
        p.produce(v)
    await p.send([report("g1", 10), report("g2", 10)])
    await p.apply()
    assert p.total("38|study_session|2020-12") == 30
    assert len(p.dead) == len(hostile)
    assert all(h["baocao-reason"] in (b"invalid_json", b"invalid_report") for _, h in p.dead)


async def test_a_worker_killed_after_its_changelog_but_before_its_flush_leaves_nothing_stale():
    p = Pipeline()
    await p.send([report("a", 10), report("b", 20, unit="14926")])
    await p.apply()
    home = partition_for("38", PARTITIONS)
    mark = len(p.topic[home])
    await p.send([report("a", 15, rev=2), report("c", 7, unit="14929")], partition=home)
    await p.aggregator.handle(p.batch(home, mark))  # applied and in the changelog, then SIGKILL: no flush
    assert p.total("38|study_session|2020-12") == 30  # the view is behind
    restarted = p.new_aggregator()
    await p.apply(restarted, from_start=True)  # offsets were not committed: all read again
    assert p.total("38|study_session|2020-12") == 15 + 20 + 7
    assert p.streamed()["38|study_session|2020-12"]["sums"]["members_total"] == 42
    assert p.streamed()["38|study_session|2020-Q4"]["reports"] == 3


async def test_a_restored_partition_with_nothing_new_to_read_still_repairs_the_view():
    p = Pipeline()
    home = partition_for("38", PARTITIONS)
    await p.send([report("a", 10)], partition=home)
    await p.aggregator.handle(p.batch(home))
    assert p.stored() == {}  # killed before any flush
    restarted = p.new_aggregator()
    restarted.assign([home])
    await restarted.ensure_loaded([home])
    await restarted.flush()
    assert p.total("38|study_session|2020-12") == 10
    assert p.streamed()["14923|study_session|2020-12"]["own"] == 1


async def test_a_withdrawal_the_view_missed_is_removed_after_a_restore():
    p = Pipeline()
    home = partition_for("38", PARTITIONS)
    await p.send([report("a", 10)], partition=home)
    await p.apply()
    await p.send([report("a", 0, rev=2, withdrawn=True)], partition=home)
    await p.aggregator.handle(p.batch(home, 1))
    restarted = p.new_aggregator()
    await p.apply(restarted, from_start=True)
    assert p.view.docs == {}
    assert "38|study_session|2020-12" not in p.streamed()  # the document streamed with no periods left


async def test_a_changelog_that_fails_part_way_is_retried_without_counting_twice():
    p = Pipeline()
    await p.send([report(f"r{i}", 1) for i in range(10)])
    p.changelog.fail_next = 4
    await p.apply()
    assert p.total("38|study_session|2020-12") == 10
    restarted = p.new_aggregator()
    await p.apply(restarted, from_start=True)
    assert p.total("38|study_session|2020-12") == 10


async def test_two_workers_that_both_applied_a_partition_restore_the_same_state():
    p = Pipeline()
    other = p.new_aggregator()
    await p.send([report("a", 10), report("a", 12, rev=2), report("b", 3, unit="14926")])
    await p.apply()
    await p.apply(other, from_start=True)  # a zombie that kept the partition a moment too long
    restarted = p.new_aggregator()
    await p.apply(restarted, from_start=True)
    assert p.total("38|study_session|2020-12") == 15
    assert p.total("38|study_session|2020-12", "reports") == 2


async def test_a_report_cannot_change_kind_and_the_refused_revision_is_a_dead_letter():
    p = Pipeline()
    await p.send([report("a", 10), report("a", 4, rev=2, kind="reflection")])
    await p.apply()
    assert p.total("38|study_session|2020-12") == 10
    assert p.total("38|reflection|2020-12", "reports") == 0
    assert [h["baocao-reason"] for _, h in p.dead] == [b"rejected"]


async def test_provinces_are_routed_to_their_own_partition_and_totals_stay_apart():
    p = Pipeline()
    hanoi_commune = next(u.code for u in TREE.subtree("01") if u.level.value == "commune")
    await p.send([report("a", 10), report("h", 4, unit=hanoi_commune)])
    await p.apply()
    assert p.total("38|study_session|2020-12") == 10
    assert p.total("01|study_session|2020-12") == 4
    parts = {d["_id"].split("|")[0]: d["part"] for d in p.view.docs.values() if d["unit"] in ("01", "38")}
    assert parts == {"38": partition_for("38", PARTITIONS), "01": partition_for("01", PARTITIONS)}


async def test_a_publication_takes_at_most_its_limit_and_the_rest_follow_in_the_next(monkeypatch):
    monkeypatch.setattr(aggregator_module, "PUBLICATION_LIMIT", 4)
    p = Pipeline()
    await p.send([report("a", 10), report("b", 20, unit="14926"), report("c", 5, unit="14929")])
    for m in range(len(p.topic)):
        if p.topic[m]:
            await p.aggregator.handle(p.batch(m))
    changed = p.aggregator.pending
    assert changed > 4  # three communes, their district and province: two documents each
    assert await p.aggregator.publish_changes() == 4
    assert p.aggregator.pending == changed - 4
    await p.aggregator.flush()
    assert p.aggregator.pending == 0
    assert p.total("38|study_session|2020-12") == 35
    assert p.streamed()["38|study_session|2020-12"]["sums"]["members_total"] == 35


async def test_publications_coalesce_more_while_the_agent_drains_a_backlog():
    p = Pipeline()
    p.aggregator.full_batch = 2
    await p.send([report("a", 10)])
    await p.aggregator.handle(p.batch(0))
    assert not p.aggregator.in_backlog  # batches smaller than the agent's batch_max: reports as sent
    await p.send([report("b", 20), report("c", 5)])
    await p.aggregator.handle(p.batch(0, 1))
    assert p.aggregator.in_backlog  # full batches: a backlog, publications pause nine builds, not three
    assert aggregator_module.PAUSE_PER_BUILD_IN_BACKLOG > aggregator_module.PAUSE_PER_BUILD
    await p.apply()
    assert p.total("38|study_session|2020-12") == 35


def _histogram_count(metrics: AggregateMetrics, bound: str) -> float:
    return metrics.registry.get_sample_value("baocao_aggregate_freshness_seconds_bucket", {"le": bound}) or 0.0


def test_receipt_times_waiting_for_publication_stay_bounded_and_are_all_observed():
    metrics = AggregateMetrics()
    times = aggregator_module.ReceiptTimes(metrics.freshness, 300.0, limit=10)
    now = datetime.now(UTC).timestamp()
    for i in range(40):  # a backlog of old reports, each received at another moment
        times.add(datetime.fromtimestamp(now - 3600 - i, UTC))
    for _ in range(5):
        times.add(datetime.fromtimestamp(now - 0.02, UTC))
    assert len(times.counts) <= 11  # the old ones went to the histogram's last bucket already
    times.observe_all(now)
    assert times.counts == {}
    assert _histogram_count(metrics, "+Inf") == 45
    assert _histogram_count(metrics, "300.0") == 5  # only the five recent ones, within 50 ms
    assert _histogram_count(metrics, "0.05") == 5


def test_messages_sent_in_batches_go_to_the_partition_kafka_s_default_partitioner_picks():
    from aiokafka.partitioner import DefaultPartitioner

    from shared.adapters.kafka_batches import partition_of_key

    for key in (b"38|study_session|2024", b"14923|indicator.hospital_beds|2020-2025", "Hà Nội".encode()):
        for partitions in (1, 3, 8):
            assert partition_of_key(key, partitions) == DefaultPartitioner()(key, list(range(partitions)), [])


def test_the_worker_s_garbage_collections_are_timed_by_generation():
    import gc

    metrics = AggregateMetrics()
    metrics.watch_gc()
    try:
        gc.collect()
    finally:
        gc.callbacks.remove(metrics._on_gc)
    count = metrics.registry.get_sample_value("baocao_aggregate_gc_pause_seconds_count", {"generation": "2"})
    assert count == 1


async def test_survivors_are_frozen_and_everything_is_collected_once_per_full_period(monkeypatch):
    import asyncio
    import gc

    from shared import startup

    calls: list[str] = []
    sleeps = 0
    # the start, then each round's check; after the full collection (at 40 s) its time is noted
    clock = iter([0.0, 10.0, 20.0, 30.0, 40.0, 40.0, 50.0])

    async def sleep(seconds: float) -> None:
        nonlocal sleeps
        sleeps += 1
        if sleeps == 6:
            raise asyncio.CancelledError
        calls.append("sleep")

    monkeypatch.setattr(startup.gc, "freeze", lambda: calls.append("freeze"))
    monkeypatch.setattr(startup.gc, "unfreeze", lambda: calls.append("unfreeze"))
    monkeypatch.setattr(startup.gc, "collect", lambda *a: calls.append("collect"))
    with pytest.raises(asyncio.CancelledError):
        await startup.freeze_survivors_forever(10.0, 35.0, clock=lambda: next(clock), sleep=sleep)
    # frozen every round without a forced collection; past 35 s, unfrozen and collected once
    assert calls == [
        *("sleep", "freeze") * 3,
        *("sleep", "unfreeze", "collect", "freeze"),
        *("sleep", "freeze"),
    ]
    assert gc.isenabled()
