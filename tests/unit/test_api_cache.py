"""The read API's document cache: filled by the stream only, never behind a version it has seen,
and what it lacks read from the database (only the periods asked for), never kept."""

from services.api.cache import CachedTotalsReader, TotalsCache
from services.api.repository import InMemoryTotalsReader
from shared.domain.totals_docs import stored_from_views


def view(unit: str, attended: int, series: str = "study_session", parents: tuple[str, ...] = ("14923", "389", "38")):
    return {
        "unit": unit,
        "series": series,
        "period": "2020-12",
        "parents": list(parents),
        "sums": {"members_attended": attended},
        "reports": 1,
        "own": 1,
    }


def stored(unit: str, attended: int, version: int, series: str = "study_session") -> dict:
    return stored_from_views([view(unit, attended, series)], version=version)[f"{unit}|{series}|2020"]


def message(unit: str, attended: int, version: int, series: str = "study_session") -> dict:
    doc = stored(unit, attended, version, series)
    return {"id": doc["_id"], **{k: doc[k] for k in ("unit", "series", "span", "parents", "version", "periods")}}


class CountingStore(InMemoryTotalsReader):
    def __init__(self, docs: dict) -> None:
        super().__init__(docs)
        self.asked: list[list[str]] = []

    async def figures(self, units, series, period):
        self.asked.append([f"{u}|{s}|{period}" for u in units for s in series])
        return await super().figures(units, series, period)


def setup(max_documents: int = 100):
    store = CountingStore(
        {
            "14923|study_session|2020": stored("14923", 5, version=10),
            "14923|conference|2020": stored("14923", 40, version=10, series="conference"),
        }
    )
    cache = TotalsCache(max_documents)
    return store, cache, CachedTotalsReader(store, cache)


TOTAL = "14923|study_session|2020-12"


async def attended(reader, unit: str = "14923", series: str = "study_session") -> int | None:
    got = await reader.figures([unit], [series], "2020-12")
    return got[(unit, series)]["sums"]["members_attended"] if got else None


async def test_without_a_live_follower_every_read_goes_to_the_database():
    store, cache, reader = setup()
    assert await attended(reader) == 5
    cache.offer_message(message("14923", 7, version=11))  # not following: nothing is kept
    assert await attended(reader) == 5
    assert len(store.asked) == 2


async def test_a_published_version_is_served_before_the_database_has_it_and_without_reading_it():
    store, cache, reader = setup()
    cache.follower_started()
    cache.offer_message(message("14923", 7, version=11))
    assert await attended(reader) == 7
    assert store.asked == []


async def test_what_the_stream_has_not_brought_is_read_from_the_database_every_time_and_not_kept():
    store, cache, reader = setup()
    cache.follower_started()
    assert await attended(reader) == 5
    assert await attended(reader) == 5
    assert store.asked == [[TOTAL], [TOTAL]]
    assert len(cache) == 0


async def test_cached_and_uncached_totals_come_back_together_and_the_database_never_replaces_the_cache():
    store, cache, reader = setup()
    cache.follower_started()
    cache.offer_message(message("14926", 3, version=1))
    cache.offer_message(message("14923", 41, version=11, series="conference"))  # newer than the database's 40
    got = await reader.figures(["14926", "14923", "14929"], ["study_session", "conference"], "2020-12")
    assert {k: v["sums"]["members_attended"] for k, v in got.items()} == {
        ("14926", "study_session"): 3,
        ("14923", "study_session"): 5,
        ("14923", "conference"): 41,
    }
    # one read for what the cache lacks (units x series: 14923's conference is read but not used)
    assert len(store.asked) == 1
    assert set(store.asked[0]) >= {
        "14926|conference|2020-12", "14923|study_session|2020-12", "14929|study_session|2020-12",
        "14929|conference|2020-12",
    }  # fmt: skip


async def test_an_older_version_never_replaces_a_newer_one():
    _, cache, reader = setup()
    cache.follower_started()
    cache.offer_message(message("14923", 7, version=11))
    cache.offer_message(message("14923", 6, version=9))  # a stale duplicate from the stream
    assert await attended(reader) == 7
    cache.offer_message(message("14923", 8, version=12))
    assert await attended(reader) == 8


async def test_a_withdrawn_document_from_the_stream_has_no_totals():
    _, cache, reader = setup()
    cache.follower_started()
    cache.offer_message({**message("14923", 5, version=11), "periods": {}})
    assert await attended(reader) is None


async def test_losing_the_stream_empties_the_cache_and_a_restart_does_too():
    _, cache, reader = setup()
    cache.follower_started()
    cache.offer_message(message("14923", 7, version=11))
    cache.follower_lost()
    assert len(cache) == 0
    assert await attended(reader) == 5  # from the database again
    cache.follower_started()
    cache.offer_message(message("14923", 7, version=11))
    cache.follower_started()
    assert len(cache) == 0


async def test_the_least_recently_used_documents_go_first_past_the_limit():
    _, cache, _ = setup(max_documents=2)
    cache.follower_started()
    for unit in ("14923", "14926", "14929"):
        cache.offer_message(message(unit, 1, version=1))
    assert len(cache) == 2
    assert cache.get("14923|study_session|2020") is None
    assert cache.get("14929|study_session|2020") is not None


def test_the_cache_s_size_and_lookups_are_metrics():
    from prometheus_client import CollectorRegistry, generate_latest

    from services.api.cache import CacheCollector

    _, cache, _ = setup()
    cache.follower_started()
    cache.offer_message(message("14926", 3, version=1))
    registry = CollectorRegistry()
    registry.register(CacheCollector(cache))
    cache.hits, cache.misses = 7, 2
    text = generate_latest(registry).decode()
    assert "baocao_api_cache_documents 1.0" in text
    assert 'baocao_api_cache_lookups_total{result="hit"} 7.0' in text
    assert 'baocao_api_cache_lookups_total{result="miss"} 2.0' in text


# ---------------------------------------------------------------- answers built once, until changed


def drill_down_setup():
    from shared.domain.catalog import load_catalog
    from shared.domain.hierarchy import load_vietnam

    tree = load_vietnam(["38"])
    path = tuple(tree.path("14923"))  # commune, district, province
    store = CountingStore(stored_from_views([view("14923", 5, parents=path)], version=10))
    cache = TotalsCache(100, answer_bytes=1 << 20)
    cache.follower_started()
    reader = CachedTotalsReader(store, cache)
    return tree, load_catalog(), path, cache, reader


def msg(path: tuple[str, ...], attended: int, version: int) -> dict:
    doc = stored_from_views([view(path[0], attended, parents=path)], version=version)[f"{path[0]}|study_session|2020"]
    return {"id": doc["_id"], **{k: doc[k] for k in ("unit", "series", "span", "parents", "version", "periods")}}


def child_attended(body: bytes, code: str) -> int | None:
    import json

    for row in json.loads(body)["children"]:
        if row["unit"]["code"] == code:
            return row["metrics"].get("study_session.members_attended")
    raise AssertionError(f"{code} is not among the children")


async def test_a_drill_down_is_built_once_and_rebuilt_when_a_child_document_changes():
    from services.api.views import children_totals

    tree, catalog, path, cache, reader = drill_down_setup()
    district = path[1]
    built = 0

    async def build():
        nonlocal built
        built += 1
        return await children_totals(reader, catalog, tree, district, "2020-12")

    key = ("children", district, "2020-12", str(tree.version))
    assert child_attended(await cache.answer(key, build), "14923") == 5
    assert child_attended(await cache.answer(key, build), "14923") == 5
    assert built == 1 and cache.answers.hits == 1

    other = tuple(tree.path(next(u.code for u in tree.children("38") if u.code != district and tree.children(u.code))))
    cache.offer_message(msg((tree.children(other[0])[0].code, *other), 3, version=5))  # another district's commune
    await cache.answer(key, build)
    assert built == 1

    cache.offer_message(msg(path, 7, version=11))  # the child's document changed: rebuilt, new figure
    assert child_attended(await cache.answer(key, build), "14923") == 7
    assert built == 2
    cache.offer_message(msg(path, 6, version=11))  # a duplicate version changes nothing
    await cache.answer(key, build)
    assert built == 2


async def test_an_answer_built_while_a_document_it_shows_changed_is_not_kept():
    from services.api.views import unit_totals

    tree, catalog, path, cache, reader = drill_down_setup()
    key = ("totals", path[0], "2020-12", str(tree.version))

    async def build_while_the_stream_moves():
        answer = await unit_totals(reader, catalog, tree, path[0], "2020-12")  # 5, from the database
        cache.offer_message(msg(path, 9, version=12))  # arrives before the answer is kept
        return answer

    first = await cache.answer(key, build_while_the_stream_moves)
    assert b'"study_session.members_attended":5' in first
    assert cache.answers.bytes == 0  # not kept: it may show an older document than the cache has

    async def build():
        return await unit_totals(reader, catalog, tree, path[0], "2020-12")

    assert b'"study_session.members_attended":9' in await cache.answer(key, build)
    assert cache.answers.bytes > 0


async def test_answers_are_dropped_with_the_follower_and_bounded_by_bytes():
    from services.api.views import unit_totals

    tree, catalog, path, cache, reader = drill_down_setup()

    async def build():
        return await unit_totals(reader, catalog, tree, path[0], "2020-12")

    key = ("totals", path[0], "2020-12", "0")
    await cache.answer(key, build)
    assert cache.answers.bytes > 0
    cache.follower_lost()
    assert cache.answers.bytes == 0
    await cache.answer(key, build)  # not following: built each time, never kept
    assert cache.answers.bytes == 0

    cache.follower_started()
    size = len(await cache.answer(key, build))
    cache.answers.max_bytes = 2 * size + size // 2  # room for two answers of this size
    for period in ("2020-10", "2020-11", "2020-12"):
        await cache.answer(("totals", path[0], period, "0"), build)
    assert cache.answers.bytes <= cache.answers.max_bytes
    assert cache.answers.get(("totals", path[0], "2020-10", "0")) is None  # the least recently used went
    assert cache.answers.get(("totals", path[0], "2020-12", "0")) is not None


async def test_answers_built_as_dicts_are_what_the_declared_response_models_serialize():
    from pydantic_core import to_json

    from services.api.views import ChildrenTotalsOut, UnitTotalsOut, children_totals_data, unit_totals_data

    tree, catalog, path, _, reader = drill_down_setup()
    for code in path:
        for period in ("2020-12", "2020-Q4", "2020"):
            unit = await unit_totals_data(reader, catalog, tree, code, period)
            assert to_json(unit) == UnitTotalsOut.model_validate(unit).model_dump_json().encode()
    rows = await children_totals_data(reader, catalog, tree, path[1], "2020-12")
    assert child_attended(to_json(rows), path[0]) == 5
    assert to_json(rows) == ChildrenTotalsOut.model_validate(rows).model_dump_json().encode()


async def test_the_country_answer_is_dropped_when_a_province_document_changes():
    from services.api.views import unit_totals_data

    tree, catalog, path, cache, reader = drill_down_setup()
    province = (path[-1],)
    cache.offer_message(msg(province, 5, version=20))

    async def build():
        return await unit_totals_data(reader, catalog, tree, "VN", "2020-12")

    key = ("totals", "VN", "2020-12", "0")
    assert b'"study_session.members_attended":5' in await cache.answer(key, build)
    cache.offer_message(msg(province, 8, version=21))  # the province's document: VN adds it up
    assert b'"study_session.members_attended":8' in await cache.answer(key, build)


# ---------------------------------------------------------------- after a replay: what exists is known


async def test_after_a_replay_what_was_never_published_is_absent_without_reading_the_database():
    store, cache, reader = setup(max_documents=1)
    cache.follower_replaying()
    cache.offer_message(message("14923", 5, version=10))
    cache.offer_message(message("14926", 3, version=1))  # pushes 14923's out of memory
    assert await attended(reader) == 5  # not served while replaying: from the database
    assert store.asked == [[TOTAL]]
    cache.follower_replayed()
    store.asked.clear()
    assert await attended(reader, "14926") == 3  # in memory
    assert await attended(reader) == 5  # exists, out of memory: from the database
    assert store.asked == [[TOTAL]]
    store.asked.clear()
    store.docs["14929|study_session|2020"] = stored("14929", 9, version=1)  # never published
    assert await attended(reader, "14929") is None
    assert store.asked == []
    assert (cache.hits, cache.misses, cache.absent) == (1, 1, 1)


async def test_a_document_emptied_on_the_stream_is_absent_and_one_published_later_exists():
    store, cache, reader = setup(max_documents=1)
    cache.follower_replaying()
    cache.offer_message(message("14923", 5, version=10))
    cache.follower_replayed()
    cache.offer_message({**message("14923", 5, version=11), "periods": {}})
    cache.offer_message(message("14926", 3, version=1))  # pushes the emptied one out of memory
    assert not cache.exists("14923|study_session|2020")
    assert await attended(reader) is None
    assert store.asked == []
    cache.offer_message(message("14929", 2, version=1))
    assert cache.exists("14929|study_session|2020") and cache.exists("14926|study_session|2020")


async def test_without_a_replay_nothing_is_known_absent():
    _, cache, reader = setup()
    cache.follower_started()  # from the end of the topic: earlier documents are unknown
    assert cache.exists("14929|study_session|2020")
    assert await attended(reader) == 5
    cache.follower_replaying()
    cache.follower_replayed()
    cache.follower_lost()
    assert cache.exists("14929|study_session|2020") and not cache.serving


async def test_answers_are_kept_per_kind_and_tree_version_so_a_registered_agency_builds_them_again():
    from services.api.cache import answer_json
    from services.api.views import children_totals_data, unit_totals_data

    tree, catalog, path, cache, reader = drill_down_setup()
    district = path[1]
    built: list[str] = []

    def counted(kind, make):
        async def build():
            built.append(kind)
            return await make(reader, catalog, tree, district, "2020-12")

        return build

    totals, children = counted("totals", unit_totals_data), counted("children", children_totals_data)
    first = await answer_json(cache, "totals", district, "2020-12", tree, totals)
    assert await answer_json(cache, "totals", district, "2020-12", tree, totals) == first
    await answer_json(cache, "children", district, "2020-12", tree, children)  # another kind: its own answer
    assert built == ["totals", "children"]

    tree.add_agency(f"{district}-bv", "Bệnh viện huyện", district)  # the tree's version changes
    await answer_json(cache, "children", district, "2020-12", tree, children)
    assert built == ["totals", "children", "children"]

    await answer_json(None, "totals", district, "2020-12", tree, totals)  # no cache: built every time
    await answer_json(None, "totals", district, "2020-12", tree, totals)
    assert built[3:] == ["totals", "totals"]
