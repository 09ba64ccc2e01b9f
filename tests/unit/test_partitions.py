"""The province -> partition table (shared/domain/partitions.py): balanced in both trees over the
supported counts, the same in every process, and what the publishers and the aggregator use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib

import pytest

from services.aggregate.routing import partition_for as routed
from services.ingest.publisher import InMemoryPublisher
from shared.domain.hierarchy import LEGACY, TREE_2025, load_vietnam
from shared.domain.partitions import (
    BALANCE,
    SUPPORTED,
    assignment,
    balanced,
    commune_counts,
    communes_per_partition,
    fingerprint,
    partition_for,
)


def spread(partitions: int) -> list[float]:
    """Per tree, the largest distance of a partition's communes from the mean, over the mean."""
    loads = communes_per_partition(partitions)
    out = []
    for t in range(len(loads[0])):
        mean = sum(load[t] for load in loads) / partitions
        out.append(max(abs(load[t] - mean) for load in loads) / mean)
    return out


def test_the_weights_are_the_communes_of_each_tree():
    counts = commune_counts()
    assert sum(c[0] for c in counts.values()) == 10_051  # the tree before July 2025
    assert sum(c[1] for c in counts.values()) == 3_321  # the 2025 tree
    assert len(counts) == 63 and sum(1 for c in counts.values() if c[1]) == 34
    tree = load_vietnam()
    assert counts["38"] == (
        tree.version_named(LEGACY).count("38", ["commune"]),
        tree.version_named(TREE_2025).count("38", ["commune"]),
    )


@pytest.mark.parametrize("partitions", list(SUPPORTED))
def test_every_partition_is_within_ten_percent_of_the_mean_in_both_trees(partitions):
    assert BALANCE == 0.10
    legacy, new = spread(partitions)
    assert legacy <= BALANCE and new <= BALANCE, (partitions, legacy, new)


def test_eight_partitions_in_detail():
    loads = communes_per_partition(8)
    assert sum(load[0] for load in loads) == 10_051 and sum(load[1] for load in loads) == 3_321
    assert all(1131 <= legacy <= 1382 and 374 <= new <= 456 for legacy, new in loads), loads  # mean ± 10 %


def test_past_twenty_partitions_the_largest_province_alone_is_too_much():
    # the documented limit: a province is never split
    largest = max(c[0] for c in commune_counts().values())
    assert largest > 1.1 * 10_051 / 21
    assert largest <= 1.1 * 10_051 / 20


def test_every_province_has_a_partition_in_range():
    for n in (1, 3, 8, 16, 40):
        table = assignment(n)
        assert set(table) == set(commune_counts())
        assert all(0 <= p < n for p in table.values())
    assert set(assignment(1).values()) == {0}


def test_the_table_depends_on_the_weights_not_their_order():
    weights = dict(commune_counts())
    backwards = dict(reversed(list(weights.items())))
    assert balanced(backwards, 8) == balanced(weights, 8) == dict(assignment(8))


def test_the_table_is_the_same_in_another_process_with_another_hash_seed():
    script = (
        "import json; from shared.domain.partitions import assignment, fingerprint; "
        "print(json.dumps([dict(assignment(8)), fingerprint(8)]))"
    )
    tables = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
        tables.append(json.loads(out.stdout))
    assert tables[0] == tables[1] == [dict(assignment(8)), fingerprint(8)]


def test_the_fingerprint_tells_placements_apart():
    assert len({fingerprint(n) for n in SUPPORTED}) == len(SUPPORTED)
    assert fingerprint(8) == fingerprint(8) and len(fingerprint(8)) == 16


def test_a_code_the_trees_do_not_have_goes_by_crc32():
    assert partition_for("38-benh-vien-x", 8) == zlib.crc32(b"38-benh-vien-x") % 8
    assert partition_for("38", 8) == assignment(8)["38"]


def test_too_few_partitions_is_an_error_naming_the_count():
    with pytest.raises(ValueError, match="partitions must be at least 1, not 0"):
        balanced({"01": (1, 1)}, 0)


def test_the_aggregator_and_the_fake_publisher_use_the_table():
    assert routed is partition_for


async def test_the_fake_publisher_writes_each_province_to_its_partition():
    publisher = InMemoryPublisher(partitions=8)
    for province in ("01", "38", "79", "96"):
        assert (await publisher.publish(province.encode(), b"{}")).partition == assignment(8)[province]


def test_an_agency_counts_in_the_province_of_the_unit_it_is_registered_under():
    tree = load_vietnam(["38"])
    tree.add_agency("14923-benh-vien", "Bệnh viện", "14923")
    tree.add_agency("38-so-y-te", "Sở Y tế", "38")
    for version in tree.versions:
        assert version.path("14923-benh-vien")[-1] == version.path("14923")[-1] == "38"
        assert version.path("38-so-y-te")[-1] == "38"
