"""Re-keying the changelog for a new partition count (tools/partitions.py ``plan_rekey``), checked
on a model of the topic: the plan applied, each partition restored as the aggregator restores it
(services/aggregate/state.py: every record from the log start to the end, the higher revision
wins) holds exactly the reports of its provinces, each at its latest revision, and a second plan
changes nothing."""

from __future__ import annotations

import json
import random
import zlib
from collections.abc import Callable

from services.aggregate.state import encode_entry
from shared.domain.partitions import partition_for
from shared.domain.rollup import Entry
from tools.partitions import Plan, plan_rekey

Placement = Callable[[str, int], int]

# provinces and where the table puts them: 46 and 48 move from 4 to 6 partitions, 38 and 01 do not
assert [partition_for(p, 4) for p in ("46", "48", "38", "01")] == [1, 0, 0, 1]
assert [partition_for(p, 6) for p in ("46", "48", "38", "01")] == [3, 2, 0, 1]


class Log:
    """A topic's partitions: records with offsets, and a log start that deletion raises."""

    def __init__(self, partitions: int) -> None:
        self.records: dict[int, list[tuple[int, bytes, bytes | None]]] = {p: [] for p in range(partitions)}
        self.start: dict[int, int] = {p: 0 for p in range(partitions)}

    def end(self, p: int) -> int:
        return len(self.records[p])

    def append(self, p: int, key: bytes, value: bytes | None) -> None:
        self.records.setdefault(p, [])
        self.start.setdefault(p, 0)
        self.records[p].append((self.end(p), key, value))

    def read(self) -> list[tuple[int, int, bytes, bytes | None]]:
        return [(p, o, k, v) for p, rs in self.records.items() for o, k, v in rs if o >= self.start[p]]

    def apply(self, plan: Plan) -> None:
        for p, key, value in plan.writes:
            self.append(p, key, value)
        for p, offset in plan.truncate.items():
            self.start[p] = max(self.start[p], offset)

    def plan(self, partitions: int) -> Plan:
        for p in range(partitions):
            self.records.setdefault(p, [])
            self.start.setdefault(p, 0)
        return plan_rekey(self.read(), {p: self.end(p) for p in self.records}, partitions)

    def restored(self, p: int) -> dict[bytes, int]:
        """Key -> revision, as the aggregator's restore keeps them (null values skipped)."""
        out: dict[bytes, int] = {}
        for offset, key, value in self.records[p]:
            if offset >= self.start[p] and value is not None:
                rev = entry_rev(value)
                if out.get(key, 0) < rev:
                    out[key] = rev
        return out


def entry(province: str, unit: str, rev: int) -> bytes:
    e = Entry(
        rev, "reflection", "reflection", "2026-10", {"members_required": rev}, False, True, (unit, province), True
    )
    return encode_entry(0, f"{unit}/r", e)[2]


def entry_rev(value: bytes) -> int:
    return int(json.loads(value)["rev"])


def crc32_placement(province: str, partitions: int) -> int:
    """Where versions before the balanced table put a province."""
    return zlib.crc32(province.encode()) % partitions


def put(log: Log, partitions: int, province: str, unit: str, rev: int, place: Placement = partition_for) -> None:
    log.append(place(province, partitions), f"{unit}/r".encode(), entry(province, unit, rev))


def test_a_moved_province_leaves_its_old_partition_and_its_neighbours_are_written_again():
    log = Log(4)
    put(log, 4, "46", "46-a", 1)  # partition 1 -> 3
    put(log, 4, "46", "46-a", 2)
    put(log, 4, "01", "01-a", 1)  # partition 1, stays
    put(log, 4, "38", "38-a", 1)  # partition 0, stays; 0 loses nothing
    plan = log.plan(6)
    assert (plan.moved, plan.provinces, plan.truncate) == (1, {"46"}, {1: 3})
    assert sorted((p, k) for p, k, _ in plan.writes) == [(1, b"01-a/r"), (3, b"46-a/r")]
    log.apply(plan)
    assert [log.restored(p) for p in range(6)] == [{b"38-a/r": 1}, {b"01-a/r": 1}, {}, {b"46-a/r": 2}, {}, {}]


def test_the_highest_revision_is_moved_even_when_a_lower_one_came_later():
    log = Log(4)
    put(log, 4, "48", "48-a", 3)
    put(log, 4, "48", "48-a", 2)  # out of order: a restore keeps 3
    plan = log.plan(6)
    assert [(p, entry_rev(v)) for p, _, v in plan.writes] == [(2, 3)]


def test_a_tombstone_removes_the_report_as_compaction_would():
    log = Log(4)
    put(log, 4, "48", "48-a", 1)
    log.append(0, b"48-a/r", None)
    put(log, 4, "48", "48-b", 1)
    plan = log.plan(6)
    assert [k for _, k, _ in plan.writes] == [b"48-b/r"]


def test_nothing_to_do_when_every_report_is_in_place():
    log = Log(6)
    put(log, 6, "46", "46-a", 1)
    put(log, 6, "38", "38-a", 4)
    plan = log.plan(6)
    assert (plan.writes, plan.truncate, plan.moved) == ([], {}, 0)


def test_random_logs_restore_exactly_and_a_second_run_changes_nothing():
    rng = random.Random(7)
    provinces = ["01", "38", "40", "46", "48", "79", "31", "92"]
    for trial in range(40):
        # the state as the table at 4 placed it, or as CRC-32 did at 8 (re-keyed at the same count)
        place, count = (partition_for, 4) if trial % 2 else (crc32_placement, 8)
        log = Log(count)
        latest: dict[bytes, tuple[str, int]] = {}
        for _ in range(rng.randint(1, 60)):
            province = rng.choice(provinces)
            unit = f"{province}-u{rng.randint(0, 5)}"
            rev = rng.randint(1, 5)
            put(log, count, province, unit, rev, place)
            key = f"{unit}/r".encode()
            latest[key] = (province, max(rev, latest.get(key, ("", 0))[1]))
        grown = rng.choice([n for n in (4, 6, 8, 12) if n >= count])
        first = log.plan(grown)
        if rng.random() < 0.5:  # interrupted after its writes, before deleting: run again
            log.apply(Plan(grown, writes=first.writes))
            first = log.plan(grown)
        log.apply(first)
        for p in range(grown):
            want = {k: rev for k, (prov, rev) in latest.items() if partition_for(prov, grown) == p}
            assert log.restored(p) == want, (trial, p)
        again = log.plan(grown)
        assert (again.writes, again.truncate, again.moved) == ([], {}, 0), trial
