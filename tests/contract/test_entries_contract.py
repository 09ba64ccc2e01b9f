"""One contract, two places for the roll-up's entries: a dict, and a SQLite file (entries.py).
The roll-up only needs a mutable mapping; the file must behave as the dict does. The same for the
stocks' figures (shared.domain.rollup.StockValues): in memory, and in a table of the same file."""

import dataclasses
import fcntl
import os

import pytest

from services.aggregate.entries import DiskEntries, EntryFiles
from shared.domain.rollup import Entry, InMemoryStockValues, stock_rank


def entry(revision: int, attended: int = 5, withdrawn: bool = False) -> Entry:
    return Entry(
        revision=revision,
        kind="study_session",
        series="study_session",
        period="2025-03",
        values={"members_attended": attended, "members_total": 9},
        withdrawn=withdrawn,
        on_time=True,
        path=("14923", "389", "38"),
        expected=True,
    )


@pytest.fixture(params=["dict", "sqlite"])
def entries(request, tmp_path):
    if request.param == "dict":
        yield {}
        return
    disk = DiskEntries(tmp_path / "p0.sqlite", cache_mb=1)
    yield disk
    disk.close()


@pytest.fixture(params=["memory", "sqlite"])
def stocks(request, tmp_path):
    if request.param == "memory":
        yield InMemoryStockValues()
        return
    disk = DiskEntries(tmp_path / "p0.sqlite", cache_mb=1)
    yield disk.stocks
    disk.close()


def test_a_stock_cell_s_latest_is_its_highest_ranked_report_and_follows_removals(stocks):
    cell = "386|indicator.hospital_beds|2024"
    assert stocks.latest(cell) is None
    stocks.put(cell, stock_rank("386/a", "2024-11"), (310,))
    stocks.put(cell, stock_rank("386/c", "2024-07"), (300,))
    assert stocks.latest(cell) == (310,)
    stocks.put(cell, stock_rank("386/b", "2024-Q4"), (320,))  # ends later than November
    assert stocks.latest(cell) == (320,)
    stocks.put(cell, stock_rank("386/d", "2024-12"), (330,))  # same end as Q4, starts later
    assert stocks.latest(cell) == (330,)
    stocks.put(cell, stock_rank("386/e", "2024-12"), (340,))  # same period: the higher key wins
    assert stocks.latest(cell) == (340,)
    stocks.put(cell, stock_rank("386/e", "2024-12"), (345,))  # a correction replaces its figures
    assert stocks.latest(cell) == (345,)
    stocks.remove(cell, stock_rank("386/e", "2024-12"))
    stocks.remove(cell, stock_rank("386/d", "2024-12"))
    assert stocks.latest(cell) == (320,)
    stocks.remove(cell, stock_rank("386/b", "2024-Q4"))
    assert stocks.latest(cell) == (310,)
    stocks.remove(cell, stock_rank("386/zz", "2024-01"))  # not there: nothing happens
    assert stocks.latest("387|indicator.hospital_beds|2024") is None  # cells are apart
    stocks.remove(cell, stock_rank("386/a", "2024-11"))
    stocks.remove(cell, stock_rank("386/c", "2024-07"))
    assert stocks.latest(cell) is None


def test_an_entry_written_is_read_back_equal_and_a_missing_key_is_none(entries):
    entries["14923/a"] = entry(1)
    assert entries.get("14923/a") == entry(1)
    assert entries["14923/a"] == entry(1)
    assert entries.get("14923/b") is None
    with pytest.raises(KeyError):
        entries["14923/b"]


def test_a_later_revision_replaces_the_entry_and_the_count_counts_keys(entries):
    entries["14923/a"] = entry(1)
    entries["14923/a"] = entry(2, attended=7, withdrawn=True)
    entries["14926/a"] = entry(1)
    assert entries["14923/a"] == entry(2, attended=7, withdrawn=True)
    assert len(entries) == 2
    assert sorted(entries) == ["14923/a", "14926/a"]
    del entries["14926/a"]
    assert len(entries) == 1
    with pytest.raises(KeyError):
        del entries["14926/a"]


def test_vietnamese_text_and_large_figures_survive(entries):
    e = dataclasses.replace(entry(1), values={"value": 10**15}, period="2020-2025")
    entries["38-bvđk/Báo cáo-1"] = e
    assert entries["38-bvđk/Báo cáo-1"] == e


def test_a_worker_s_entry_files_are_its_own_and_those_of_dead_workers_are_removed(tmp_path):
    dead = tmp_path / "entries-999999999"
    dead.mkdir()
    (dead / "owner.lock").write_text("")
    (dead / "partition-0.sqlite").write_bytes(b"left by a worker killed with SIGKILL")
    alive = tmp_path / "entries-1"
    alive.mkdir()
    with (alive / "owner.lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another worker, still running
        files = EntryFiles(tmp_path, cache_mb=1)
    assert not dead.exists()
    assert alive.exists()
    assert files.dir.name == f"entries-{os.getpid()}"
    part = files.open(3)
    part["14923/a"] = entry(1)
    assert (files.dir / "partition-3.sqlite").exists()
    part.close()
    assert not (files.dir / "partition-3.sqlite").exists()
    files.close()
    assert not files.dir.exists()
