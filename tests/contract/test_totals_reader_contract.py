"""One contract, two adapters: the read API's view of the totals, in memory and in MongoDB."""

import pytest

from services.api.cache import CachedTotalsReader, TotalsCache
from services.api.repository import InMemoryTotalsReader, MongoTotalsReader
from shared.adapters.mongo import TOTALS
from shared.domain.totals_docs import stored_from_views
from tests.contract.conftest import MEMORY_AND_MONGODB, fresh_database

VIEWS = [
    {"_id": "38|study_session|2020-12", "unit": "38", "series": "study_session", "period": "2020-12",
     "parents": ["38"], "sums": {"members_attended": 35}, "reports": 2, "units_reported": 2, "wm": {"0": 4}},
    {"_id": "14923|study_session|2020-12", "unit": "14923", "series": "study_session", "period": "2020-12",
     "parents": ["14923", "389", "38"], "sums": {"members_attended": 15}, "reports": 1, "own": 1},
    {"_id": "14926|study_session|2020-12", "unit": "14926", "series": "study_session", "period": "2020-12",
     "parents": ["14926", "389", "38"], "sums": {"members_attended": 20}, "reports": 1, "own": 1},
    {"_id": "14929|study_session|2020-12", "unit": "14929", "series": "study_session", "period": "2020-12",
     "parents": ["14929", "389", "38"], "sums": {}, "reports": 0, "own": 0},  # withdrawn
    {"_id": "14923|study_session|2021-01", "unit": "14923", "series": "study_session", "period": "2021-01",
     "parents": ["14923", "389", "38"], "sums": {"members_attended": 9}, "reports": 1, "own": 1},
]  # fmt: skip
DOCS = list(stored_from_views(VIEWS).values())


def _message(doc):
    return {"id": doc["_id"], **{k: doc[k] for k in ("unit", "series", "span", "parents", "version", "periods")}}


def cached(store):
    """The API's cache in front of a store: following the stream from its end, and the stream has
    brought one of the documents (the same as stored), so answers come from both."""
    cache = TotalsCache(max_documents=100)
    cache.follower_started()
    cache.offer_message(_message(next(d for d in DOCS if d["_id"] == "14923|study_session|2020")))
    return CachedTotalsReader(store, cache)


def replayed(store):
    """The API's cache after replaying the topic (every stored document was published first), too
    small to keep them all: some answers come from memory, some from the store, and what was never
    published is known to be absent."""
    cache = TotalsCache(max_documents=2)
    cache.follower_replaying()
    for doc in DOCS:
        cache.offer_message(_message(doc))
    cache.follower_replayed()
    return CachedTotalsReader(store, cache)


def _with_and_without_cache():
    for param in MEMORY_AND_MONGODB:
        adapter, marks = (param.values[0], param.marks) if hasattr(param, "values") else (param, ())
        for wrap in ("plain", "cached", "replayed"):
            yield pytest.param((adapter, wrap), marks=marks, id=f"{adapter}-{wrap}")


@pytest.fixture(params=list(_with_and_without_cache()))
async def reader(request):
    adapter, wrap = request.param
    wrapper = {"cached": cached, "replayed": replayed, "plain": lambda store: store}[wrap]
    if adapter == "memory":
        yield wrapper(InMemoryTotalsReader({d["_id"]: dict(d) for d in DOCS}))
        return
    async with fresh_database(request) as (client, database):
        await client[database][TOTALS].insert_many([dict(d) for d in DOCS])
        yield wrapper(MongoTotalsReader(client, database))


async def test_figures_are_one_period_of_their_stored_document(reader):
    got = await reader.figures(["38", "nope"], ["study_session", "conference"], "2020-12")
    assert got == {("38", "study_session"): {"sums": {"members_attended": 35}, "reports": 2, "units_reported": 2}}
    assert await reader.figures(["38"], ["study_session"], "2020-11") == {}
    assert await reader.figures([], ["study_session"], "2020-12") == {}
    communes = ["14923", "14926", "14929"]
    assert {k: v["sums"] for k, v in (await reader.figures(communes, ["study_session"], "2020-12")).items()} == {
        ("14923", "study_session"): {"members_attended": 15},
        ("14926", "study_session"): {"members_attended": 20},
    }  # 14929's report was withdrawn: its period has no figures
    assert await reader.figures(["14923"], ["study_session"], "2021-01") == {
        ("14923", "study_session"): {"sums": {"members_attended": 9}, "reports": 1, "own": 1}
    }


async def test_reporting_units_are_those_asked_about_with_their_own_active_report(reader):
    communes = ["14923", "14926", "14929", "14932"]
    assert await reader.reporting_units(communes, "study_session", "2020-12") == {"14923", "14926"}
    assert await reader.reporting_units(communes, "study_session", "2021-01") == {"14923"}
    assert await reader.reporting_units(["14929"], "study_session", "2020-12") == set()
    assert await reader.reporting_units([], "study_session", "2020-12") == set()
