"""Snapshots of a partition's state, so whoever takes a partition replays only the changelog's tail.

Restoring a partition from the whole changelog (state.py) costs time in proportion to every report
the partition ever counted: the roll-up is derived again, report by report. So the owner of a
partition saves, every ``snapshot_every`` changelog records, the whole state (entries, stock
values, each unit's own figures, the totals documents) with the changelog offset it stands for;
the next owner loads the latest snapshot and replays only the records from that offset on.

The contract: a snapshot at offset ``O`` reflects every record of the changelog partition before
``O``. The aggregator (aggregator.py, ``PartitionState.covered``) guarantees it: a restore
covers everything up to the end it read to, and an append extends that only when its records came
right after (a record someone else wrote in between is read back and merged first). A record both
in the snapshot and in the tail is merged again, which changes nothing (the higher revision wins),
so the offset may be low, never high.

A snapshot also says which of the partition's documents MongoDB may hold in another form than
its state (``unsettled``: changed and not yet published, or published and not yet written, at the
moment it was copied) and the version last given to each document. Every other document was
written as the state has it, so the next owner compares with MongoDB only those and the ones the
changelog's tail changes, not all the partition's documents (aggregator.py).

A snapshot is used only for the same changelog topic, partition count and placement of provinces,
and state format (the catalog included: its series decide the derived figures); anything else, or a snapshot whose
chunks are missing or do not match their digest (a save that died half-way), means a restore from
the beginning: slower, never wrong.

The JSON is compressed (zlib) and stored in MongoDB in chunks under 16 MB (a document's limit):
``aggregate_snapshots`` holds one head per (topic, partition) naming the chunks in
``aggregate_snapshot_chunks``. A head is replaced only by a snapshot at a higher offset.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import struct
import uuid
import zlib
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic_core import from_json, to_json
from pymongo import AsyncMongoClient, ReturnDocument
from pymongo.errors import DuplicateKeyError

from shared.domain.catalog import Catalog
from shared.domain.partitions import fingerprint as placement_fingerprint
from shared.domain.rollup import Entry, InMemoryStockValues, Rollup, StockValues

log = logging.getLogger(__name__)

FORMAT = 3  # raised whenever what a snapshot holds, or what the roll-up derives, changes
HEADS = "aggregate_snapshots"
CHUNKS = "aggregate_snapshot_chunks"
CHUNK_BYTES = 8 * 1024 * 1024


def fingerprint(catalog: Catalog, partitions: int) -> str:
    """What a snapshot depends on besides its entries: the format, the placement of provinces in
    partitions, and each series' totalled fields, how they combine and which are a conference's
    (the same in every process: no set order)."""
    series = [
        [
            key,
            [[f.name, str(f.combine), str(f.over_time)] for f in spec.totalled_fields],
            *([spec.shared] if spec.shared else []),
        ]
        for key, spec in sorted(catalog.series.items())
    ]
    placed = placement_fingerprint(partitions)
    return hashlib.sha256(json.dumps([FORMAT, placed, series]).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Snapshot:
    topic: str  # the changelog's
    partition: int
    partitions: int  # the topic's partition count when it was taken
    fingerprint: str
    offset: int  # every changelog record before it is in the state
    payload: bytes  # compressed JSON (capture / rebuild)


@dataclass(frozen=True)
class ViewMarks:
    """What a snapshot says of the view (MongoDB) at the moment it was copied: every document of
    the partition not in ``unsettled`` was stored as the state has it, with the version in
    ``versions`` (the last one given to it)."""

    versions: dict[str, int]
    unsettled: frozenset[str]


class SnapshotStore(Protocol):
    async def load(self, topic: str, partition: int) -> Snapshot | None:
        """The latest whole snapshot of the partition, or None (none, or its chunks damaged)."""
        ...

    async def save(self, snapshot: Snapshot) -> bool:
        """Store it unless one at the same or a higher offset is stored; returns whether it was."""
        ...


# ---------------------------------------------------------------------- the state as bytes


@dataclass(frozen=True)
class Captured:
    """A partition's state copied at once: the entry file's image (entries and stock values,
    when they are on disk) and the rest as JSON."""

    data: bytes
    image: bytes | None


def capture(rollup: Rollup, marks: ViewMarks) -> Captured:
    """The roll-up's whole state and what it says of the view, copied at once (no await): the
    caller compresses it."""
    entries: Any = rollup.entries
    stocks: Any = rollup.stocks
    view = {"versions": marks.versions, "unsettled": sorted(marks.unsettled)}
    if hasattr(entries, "image"):  # an entry file (entries.py): its stock values are in it too
        return Captured(to_json({**rollup.derived(), **view}), entries.image())
    if not isinstance(stocks, InMemoryStockValues):
        raise TypeError(f"cannot snapshot stock values kept in {type(stocks).__name__}")
    entry_rows = [(k, e.to_json()) for k, e in entries.items()]
    stock_rows = [(c, *rank, list(v)) for c, ranks in stocks.cells.items() for rank, v in ranks.items()]
    return Captured(to_json({"entries": entry_rows, "stocks": stock_rows, **rollup.derived(), **view}), None)


def compress(captured: Captured) -> bytes:
    """[length of the compressed JSON: 4 bytes][compressed JSON][compressed image, if any]."""
    data = zlib.compress(captured.data, 1)
    image = zlib.compress(captured.image, 1) if captured.image is not None else b""
    return struct.pack(">I", len(data)) + data + image


def decode(payload: bytes) -> tuple[dict[str, Any], bytes | None]:
    """The captured state from a snapshot's payload (for :func:`rebuild`)."""
    (length,) = struct.unpack(">I", payload[:4])
    data: dict[str, Any] = from_json(zlib.decompress(payload[4 : 4 + length]))
    rest = payload[4 + length :]
    return data, zlib.decompress(rest) if rest else None


def rebuild(
    catalog: Catalog,
    decoded: tuple[dict[str, Any], bytes | None],
    entries: MutableMapping[str, Entry] | None,
    stocks: StockValues | None,
) -> Rollup:
    """A roll-up holding the state :func:`decode` gave, its entries and stock values put into the
    (empty) stores given: an entry file takes the image, memory takes the rows."""
    data, image = decoded
    if image is not None:
        load_image: Callable[[bytes], None] | None = getattr(entries, "load_image", None)
        if load_image is None:
            raise TypeError("a snapshot of an entry file restores into an entry file")
        load_image(image)
        stocks = getattr(entries, "stocks")  # noqa: B009 - a new object after load_image
    else:
        if entries is None:
            entries = {}
        if hasattr(entries, "load_image"):
            raise TypeError("a snapshot of entries in memory restores into memory")
        if stocks is None:
            stocks = InMemoryStockValues()
        for key, doc in data["entries"]:
            entries[key] = Entry.from_json(doc)
        for cell, end, start, key, values in data["stocks"]:
            stocks.put(cell, (end, start, key), tuple(values))
    rollup = Rollup(catalog, entries, stocks)
    rollup.load_derived(data)
    return rollup


def view_marks(decoded: tuple[dict[str, Any], bytes | None]) -> ViewMarks:
    """What the snapshot :func:`decode` gave says of the view."""
    data, _ = decoded
    return ViewMarks(dict(data["versions"]), frozenset(data["unsettled"]))


# ---------------------------------------------------------------------- stores


class InMemorySnapshotStore:
    """The fake: the latest snapshot per (topic, partition); ``damaged`` ones load as None."""

    def __init__(self) -> None:
        self.snapshots: dict[tuple[str, int], Snapshot] = {}
        self.damaged: set[tuple[str, int]] = set()
        self.saves = 0

    async def load(self, topic: str, partition: int) -> Snapshot | None:
        await asyncio.sleep(0)
        if (topic, partition) in self.damaged:
            return None
        return self.snapshots.get((topic, partition))

    async def save(self, snapshot: Snapshot) -> bool:
        await asyncio.sleep(0)
        key = (snapshot.topic, snapshot.partition)
        stored = self.snapshots.get(key)
        if stored is not None and stored.offset >= snapshot.offset:
            return False
        self.snapshots[key] = snapshot
        self.damaged.discard(key)
        self.saves += 1
        return True


class MongoSnapshotStore:
    def __init__(self, client: AsyncMongoClient[dict[str, Any]], database: str) -> None:
        self.heads = client[database][HEADS]
        self.chunks = client[database][CHUNKS]

    async def ensure_indexes(self) -> None:
        await self.chunks.create_index([("snap", 1), ("n", 1)])
        await self.chunks.create_index([("head", 1)])

    async def load(self, topic: str, partition: int) -> Snapshot | None:
        head = await self.heads.find_one({"_id": f"{topic}/{partition}"})
        if head is None:
            return None
        parts = [doc async for doc in self.chunks.find({"snap": head["snap"]}).sort("n", 1)]
        payload = b"".join(bytes(doc["data"]) for doc in parts)
        if len(parts) != head["chunks"] or hashlib.sha256(payload).hexdigest() != head["sha256"]:
            log.warning("snapshot damaged: restoring from the changelog", extra={"partition": partition})
            return None
        return Snapshot(topic, partition, head["partitions"], head["fingerprint"], head["offset"], payload)

    async def save(self, snapshot: Snapshot) -> bool:
        head_id = f"{snapshot.topic}/{snapshot.partition}"
        snap = uuid.uuid4().hex
        pieces = [snapshot.payload[i : i + CHUNK_BYTES] for i in range(0, len(snapshot.payload), CHUNK_BYTES)]
        for n, piece in enumerate(pieces):  # one at a time: each is a message of up to CHUNK_BYTES
            await self.chunks.insert_one({"_id": f"{snap}/{n}", "head": head_id, "snap": snap, "n": n, "data": piece})
        head = {
            "snap": snap,
            "chunks": len(pieces),
            "sha256": hashlib.sha256(snapshot.payload).hexdigest(),
            "partitions": snapshot.partitions,
            "fingerprint": snapshot.fingerprint,
            "offset": snapshot.offset,
            "bytes": len(snapshot.payload),
        }
        try:
            await self.heads.find_one_and_update(
                {"_id": head_id, "offset": {"$lt": snapshot.offset}},
                {"$set": head},
                upsert=True,
                return_document=ReturnDocument.BEFORE,
            )
        except DuplicateKeyError:  # a head at the same or a higher offset is there: keep it
            await self.chunks.delete_many({"snap": snap})
            return False
        # the chunks of the snapshot replaced, and of any save that died before its head
        await self.chunks.delete_many({"head": head_id, "snap": {"$ne": snap}})
        return True
