"""Which partition of ``reports`` counts a province: a balanced table, the same everywhere.

Contract. ``partition_for(province, n)`` is a pure function of the province code and the
partition count ``n``: the same answer in every process, on every machine, at every start (no
hash randomisation, no dependence on the provinces a deployment loads: the table is built from
the packaged trees, whole). Ingest's publishers (services/ingest/publisher.py) write a report to
that partition, and the aggregator (services/aggregate/routing.py) counts it there.

One table serves both administrative trees: the 2025 tree's 34 province codes are codes of the
tree before July 2025 (a merged province kept one of its old codes), so a province code is
assigned once, and the partition of a report is still that of its province in the tree of its
period. The table is balanced by communes in both trees at once: each province weighs its
communes in each tree, and the packing keeps every partition's communes within about 10 % of
the mean in each tree (``SUPPORTED``: checked by tests/unit/test_partitions.py).

How. Longest-processing-time first (provinces by combined weight, largest first, ties by code,
each to the partition with the least combined weight, ties by number), then a local search that
moves one province or swaps two while that lowers the sum over both trees of each partition's
squared relative distance from the mean (the best such step each round; integers only, so the
result cannot depend on floating point).

Limit. A province is never split: all its reports are in one partition, in order, counted by one
worker. So a partition holds at least its largest province, and the balance cannot hold once
that is more than 10 % above the mean: from 21 partitions on (in the tree before July 2025, 38
has 549 of 10,051 communes; 10,051 / 21 * 1.1 = 526). From 17 to 20 partitions this packing does
not reach it either (the 2025 tree's 34 provinces, 38 to 168 communes each, then come one or two
to a partition). Counts outside ``SUPPORTED`` still get a deterministic table, not a
balanced one.

A code the trees do not have (an agency registered a moment ago, not yet in ingest's copy of
the tree, is keyed by its own code) goes to CRC-32 of the code modulo ``n``; the aggregator then
forwards the report to its province's partition.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Mapping, Sequence
from functools import cache
from math import prod
from types import MappingProxyType

from shared.domain.hierarchy import Level, OrgTree, load_vietnam_2025, load_vietnam_legacy

# Partition counts for which every partition's communes are within BALANCE of the mean in
# both trees (tests/unit/test_partitions.py checks each).
SUPPORTED = range(1, 17)
BALANCE = 0.10


def commune_counts() -> Mapping[str, tuple[int, ...]]:
    """Province code -> its communes in each tree (the tree before July 2025, then the 2025
    tree; 0 where the code is not a province of that tree), from the packaged trees."""
    return _commune_counts()


@cache
def _commune_counts() -> Mapping[str, tuple[int, ...]]:
    trees = (load_vietnam_legacy(), load_vietnam_2025())
    per_tree = [_communes_per_province(t) for t in trees]
    codes = sorted(set().union(*per_tree))
    return MappingProxyType({c: tuple(counts.get(c, 0) for counts in per_tree) for c in codes})


def _communes_per_province(tree: OrgTree) -> dict[str, int]:
    out: dict[str, int] = {}
    for province in tree.provinces():
        out[province.code] = sum(1 for u in tree.subtree(province.code) if u.level is Level.COMMUNE)
    return out


def balanced(weights: Mapping[str, Sequence[int]], partitions: int) -> dict[str, int]:
    """Each key of ``weights`` (a province code) -> a partition in ``range(partitions)``, so that
    in every dimension of the weights (communes per tree) the partitions' sums are close to
    their mean. Deterministic: depends on the contents of ``weights`` only, not on their order."""
    if partitions < 1:
        raise ValueError(f"partitions must be at least 1, not {partitions}")
    codes = sorted(weights)
    if not codes:
        return {}
    dims = len(weights[codes[0]])
    if any(len(weights[c]) != dims for c in codes):
        raise ValueError("every province needs a weight in each tree")
    totals = [sum(weights[c][t] for c in codes) or 1 for t in range(dims)]
    # the cost is sum over dims t and partitions p of ((n * load[p][t] - total[t]) / total[t])^2;
    # multiplied by the product of the totals squared, it is a sum of integers:
    scale = [prod(totals[s] ** 2 for s in range(dims) if s != t) for t in range(dims)]
    n = partitions
    w = {c: tuple(weights[c]) for c in codes}
    # distance from the mean, times n, per partition and dimension
    dev = [[-totals[t] for t in range(dims)] for _ in range(n)]
    where: dict[str, int] = {}

    def combined(vector: Sequence[int]) -> int:  # sum over dims of vector[t] / total[t], scaled
        return sum(vector[t] * prod(totals[s] for s in range(dims) if s != t) for t in range(dims))

    load = [0] * n
    for c in sorted(codes, key=lambda c: (-combined(w[c]), c)):
        p = min(range(n), key=lambda i: (load[i], i))
        where[c] = p
        load[p] += combined(w[c])
        for t in range(dims):
            dev[p][t] += n * w[c][t]

    def gain(v: Sequence[int], p: int, q: int) -> int:
        """Change of the cost when weight ``v`` goes from partition p to q."""
        return sum(scale[t] * 2 * n * v[t] * (n * v[t] + dev[q][t] - dev[p][t]) for t in range(dims))

    while True:
        best: tuple[int, str, str | None, int] | None = None  # (change, code, swapped with, to)
        for i, c in enumerate(codes):
            p = where[c]
            for q in range(n):
                if q != p and (d := gain(w[c], p, q)) < (best[0] if best else 0):
                    best = (d, c, None, q)
            for e in codes[i + 1 :]:
                q = where[e]
                if q != p:
                    v = [w[c][t] - w[e][t] for t in range(dims)]
                    if (d := gain(v, p, q)) < (best[0] if best else 0):
                        best = (d, c, e, q)
        if best is None:
            return where
        _, mover, partner, to = best
        origin = where[mover]
        moved = list(w[mover]) if partner is None else [w[mover][t] - w[partner][t] for t in range(dims)]
        for t in range(dims):
            dev[origin][t] -= n * moved[t]
            dev[to][t] += n * moved[t]
        where[mover] = to
        if partner is not None:
            where[partner] = origin


@cache
def assignment(partitions: int) -> Mapping[str, int]:
    """The table for ``partitions`` partitions: province code -> partition (read-only). Built
    once per process and count."""
    return MappingProxyType(balanced(commune_counts(), partitions))


def partition_for(province: str, partitions: int) -> int:
    """The partition of ``reports`` (and of its changelog) that counts ``province``."""
    table = assignment(partitions)
    found = table.get(province)
    return found if found is not None else zlib.crc32(province.encode()) % partitions


def fingerprint(partitions: int) -> str:
    """A short digest of the whole placement at ``partitions`` (every province's partition): what
    state saved per partition must carry to be used again, since the same count under another
    placement (the CRC-32 one of earlier versions) puts other provinces in a partition."""
    table = ",".join(f"{code}:{p}" for code, p in sorted(assignment(partitions).items()))
    return hashlib.sha256(f"{partitions}|{table}".encode()).hexdigest()[:16]


def communes_per_partition(partitions: int) -> list[tuple[int, ...]]:
    """Per partition, its communes in each tree (as commune_counts), under ``assignment``."""
    counts = commune_counts()
    dims = len(next(iter(counts.values())))
    out = [[0] * dims for _ in range(partitions)]
    for code, p in assignment(partitions).items():
        for t in range(dims):
            out[p][t] += counts[code][t]
    return [tuple(x) for x in out]
