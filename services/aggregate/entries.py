"""Where the roll-up keeps the latest revision of every report: a SQLite file per partition.

The entries, and the figures of every active report of a series with a stock field (which the
roll-up needs to find a stock's latest value again when that report is corrected or withdrawn:
``stocks``, in the same file), are the only parts of the aggregator's state that grow with the
number of reports (the totals and each unit's own figures grow with the tree and the periods
instead). So the worker keeps them on disk and its memory does not follow the report count. The
file is a cache of the changelog (state.py) and the snapshots (snapshots.py), nothing more: it is
rebuilt from them whenever the partition is assigned and deleted when it is revoked, so it needs
no journal and no fsync, and a worker killed with SIGKILL leaves only files that the next worker
started on this data directory removes.

A lookup is one primary-key read (most are for new reports and find nothing); SQLite's own page
cache (``cache_mb``) keeps the recently used pages in memory.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import sqlite3
from collections.abc import Iterator, MutableMapping
from pathlib import Path

from pydantic_core import from_json, to_json

from shared.domain.rollup import Entry, Rank

log = logging.getLogger(__name__)

COMMIT_EVERY = 10_000


class DiskEntries(MutableMapping[str, Entry]):
    """A MutableMapping of entry key (``<unit>/<report_id>``) to Entry, in one SQLite file."""

    def __init__(self, path: Path, cache_mb: int = 8) -> None:
        self.path = path
        self.cache_mb = cache_mb
        path.unlink(missing_ok=True)
        self._open(create=True)

    def _open(self, create: bool) -> None:
        self._db = sqlite3.connect(self.path, isolation_level=None)
        for pragma in (
            "journal_mode=OFF",  # a cache of the changelog: rebuilt, never recovered
            "synchronous=OFF",
            "locking_mode=EXCLUSIVE",
            f"cache_size=-{self.cache_mb * 1024}",
        ):
            self._db.execute(f"PRAGMA {pragma}")
        if create:
            self._db.execute("CREATE TABLE entries (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID")
        self.stocks = DiskStockValues(self._db, create)
        self._count: int = self._db.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
        # Writes go into one long transaction, committed every COMMIT_EVERY writes: a statement
        # that commits on its own costs several times more, and nothing here needs to be durable.
        self._writes = 0
        self._db.execute("BEGIN")

    def image(self) -> bytes:
        """The whole file as it is now (entries and stock values), for a snapshot."""
        self._db.execute("COMMIT")
        try:
            return self._db.serialize()
        finally:
            self._db.execute("BEGIN")

    def load_image(self, image: bytes) -> None:
        """Become the file :meth:`image` gave (what this one held is dropped). Callers holding
        ``stocks`` take it again: it is a new object."""
        self._db.close()
        self.path.write_bytes(image)
        self._open(create=False)

    def get(self, key: str, default: Entry | None = None) -> Entry | None:  # type: ignore[override]
        row = self._db.execute("SELECT value FROM entries WHERE key = ?", (key,)).fetchone()
        return Entry.from_json(json.loads(row[0])) if row is not None else default

    def __getitem__(self, key: str) -> Entry:
        entry = self.get(key)
        if entry is None:
            raise KeyError(key)
        return entry

    def __setitem__(self, key: str, entry: Entry) -> None:
        value = to_json(entry.to_json())
        if self._db.execute("INSERT OR IGNORE INTO entries VALUES (?, ?)", (key, value)).rowcount:
            self._count += 1
        else:
            self._db.execute("UPDATE entries SET value = ? WHERE key = ?", (value, key))
        self._writes += 1
        if self._writes % COMMIT_EVERY == 0:
            self._db.execute("COMMIT")
            self._db.execute("BEGIN")

    def __delitem__(self, key: str) -> None:  # the roll-up never deletes; here for MutableMapping
        if not self._db.execute("DELETE FROM entries WHERE key = ?", (key,)).rowcount:
            raise KeyError(key)
        self._count -= 1

    def __iter__(self) -> Iterator[str]:
        return (row[0] for row in self._db.execute("SELECT key FROM entries").fetchall())

    def __len__(self) -> int:
        return self._count

    def close(self) -> None:
        self._db.close()
        self.path.unlink(missing_ok=True)


class DiskStockValues:
    """shared.domain.rollup.StockValues in a table of an entry file: the latest of a cell is the first row
    of its primary key read backwards, a lookup of a few microseconds however many it holds."""

    def __init__(self, db: sqlite3.Connection, create: bool = True) -> None:
        self._db = db
        if not create:
            return
        self._db.execute(
            "CREATE TABLE stocks (cell TEXT, period_end INTEGER, period_start INTEGER, key TEXT, "
            "value BLOB NOT NULL, PRIMARY KEY (cell, period_end, period_start, key)) WITHOUT ROWID"
        )

    def put(self, cell: str, rank: Rank, values: tuple[int, ...]) -> None:
        self._db.execute("INSERT OR REPLACE INTO stocks VALUES (?, ?, ?, ?, ?)", (cell, *rank, to_json(values)))

    def remove(self, cell: str, rank: Rank) -> None:
        self._db.execute(
            "DELETE FROM stocks WHERE cell = ? AND period_end = ? AND period_start = ? AND key = ?", (cell, *rank)
        )

    def latest(self, cell: str) -> tuple[int, ...] | None:
        row = self._db.execute(
            "SELECT value FROM stocks WHERE cell = ? ORDER BY period_end DESC, period_start DESC, key DESC LIMIT 1",
            (cell,),
        ).fetchone()
        return tuple(from_json(row[0])) if row is not None else None


class EntryFiles:
    """The entry files of one worker process: a directory of its own under the data directory
    (two workers may share one), holding a lock while the worker lives; at start, the directories
    whose lock nobody holds (their worker is gone, even by SIGKILL) are removed."""

    LOCK = "owner.lock"

    def __init__(self, data_dir: str | Path, cache_mb: int) -> None:
        root = Path(data_dir)
        root.mkdir(parents=True, exist_ok=True)
        for old in root.glob("entries-*"):
            if _abandoned(old / self.LOCK):
                shutil.rmtree(old, ignore_errors=True)
        self.dir = root / f"entries-{os.getpid()}"
        self.dir.mkdir(exist_ok=True)
        self._lock = (self.dir / self.LOCK).open("w")
        fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.cache_mb = cache_mb

    def open(self, partition: int) -> DiskEntries:
        return DiskEntries(self.dir / f"partition-{partition}.sqlite", self.cache_mb)

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        self._lock.close()


def _abandoned(lock: Path) -> bool:
    """Whether the lock file exists and nobody holds it (a directory without one may be a worker
    that is just starting: left alone)."""
    try:
        with lock.open("r+") as f:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except (FileNotFoundError, BlockingIOError):
        return False
    return True
