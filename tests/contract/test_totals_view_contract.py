"""One contract, two adapters: the in-memory fake must behave like the MongoDB view."""

import pytest

from services.aggregate.view import InMemoryTotalsView, MongoTotalsView
from tests.contract.conftest import MEMORY_AND_MONGODB, fresh_database


@pytest.fixture(params=MEMORY_AND_MONGODB)
async def view(request):
    if request.param == "memory":
        yield InMemoryTotalsView()
        return
    async with fresh_database(request) as (client, database):
        yield MongoTotalsView(client, database)


def doc(i="38|study_session|2020", version=10, part=3, attended=7):
    unit, series, span = i.split("|")
    return {
        "_id": i,
        "unit": unit,
        "series": series,
        "span": span,
        "parents": [unit],
        "province": unit,
        "part": part,
        "version": version,
        "periods": {"2020-12": {"sums": {"members_attended": attended}, "reports": 1}},
    }


async def test_a_written_document_reads_back_whole(view):
    await view.write([doc()], [])
    got = await view.read(["38|study_session|2020", "nope"])
    assert list(got) == ["38|study_session|2020"]
    assert got["38|study_session|2020"]["periods"] == doc()["periods"]
    assert got["38|study_session|2020"]["version"] == 10


async def test_a_newer_version_replaces_the_whole_document(view):
    await view.write([doc(version=10, attended=7)], [])
    newer = doc(version=11, attended=9)
    newer["periods"]["2020-Q4"] = {"reports": 1}
    await view.write([newer], [])
    got = (await view.read(["38|study_session|2020"]))["38|study_session|2020"]
    assert got["periods"] == newer["periods"] and got["version"] == 11


async def test_an_older_or_equal_version_never_overwrites_a_newer_one(view):
    await view.write([doc(version=20, attended=9)], [])
    await view.write([doc(version=19, attended=1), doc("38|reflection|2020", version=1)], [])
    await view.write([doc(version=20, attended=2)], [])
    got = await view.read(["38|study_session|2020", "38|reflection|2020"])
    assert got["38|study_session|2020"]["periods"]["2020-12"]["sums"] == {"members_attended": 9}
    assert "38|reflection|2020" in got  # the other write of the same batch still landed


async def test_a_delete_removes_only_what_is_older_than_it(view):
    await view.write([doc("38|study_session|2020", version=5), doc("38|reflection|2020", version=50)], [])
    await view.write([], [("38|study_session|2020", 6), ("38|reflection|2020", 49), ("absent|x|2020", 1)])
    assert list(await view.read(["38|study_session|2020", "38|reflection|2020"])) == ["38|reflection|2020"]


async def test_documents_are_listed_by_partition(view):
    await view.write([doc("38|study_session|2020", part=3), doc("01|study_session|2020", part=4)], [])
    assert list(await view.load_part(3)) == ["38|study_session|2020"]
    assert await view.load_part(7) == {}
