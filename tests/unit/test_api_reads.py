"""The read API's reads (services/api/reads.py): rationing per token, the re-mapped view's rules,
and the errors that name what was wrong, with the in-memory totals reader."""

import json
import time

import pytest

from services.api.reads import NotALegacyPeriod, NoTree2025, Reads, SourcesOutsideToken, TooManyReads, UnknownSeries
from services.api.repository import InMemoryTotalsReader
from services.api.settings import ApiSettings
from shared.domain.auth import COUNTRY, Principal, Scope
from shared.domain.catalog import load_catalog
from shared.domain.hierarchy import LEGACY, OrgTree, load_vietnam
from shared.domain.periods import PeriodError
from tests.conftest import TEST_SECRET

# Hà Giang 02 and Tuyên Quang 08 merged into the new Tuyên Quang 08
TREES = load_vietnam(["02", "08", "38"])


def reads(per_second: float = 20.0, burst: int = 60) -> Reads:
    settings = ApiSettings(
        kafka_bootstrap_servers="unused:9092",
        mongodb_uri="mongodb://unused",
        auth_secret=TEST_SECRET,
        expensive_reads_per_second=per_second,
        expensive_reads_burst=burst,
    )
    return Reads(InMemoryTotalsReader({}), load_catalog(), None, settings)


def token(unit: str, token_id: str = "t1") -> Principal:
    return Principal(token_id, unit, frozenset({Scope.READ}), int(time.time()) + 3600)


def test_expensive_reads_are_rationed_per_token_with_the_wait_until_the_next():
    r = reads(per_second=0.5, burst=2)
    r.ration(token("386"))
    r.ration(token("386"))
    with pytest.raises(TooManyReads, match=r"at most 0\.5 a second, BAOCAO_API_EXPENSIVE_READS_PER_SECOND") as exc:
        r.ration(token("386"))
    assert 0 < exc.value.wait <= 2
    r.ration(token("386", token_id="t2"))  # another token has its own share


def test_a_search_finds_only_units_in_the_tokens_subtree():
    tree = TREES.version_named(LEGACY)
    found = reads().search(tree, token("386"), "xa", None, 1000)
    assert found.units and all("386" in tree.path(u.code) for u in found.units)


async def test_totals_of_a_period_that_is_not_one_are_refused_before_any_read():
    tree = TREES.version_named(LEGACY)
    with pytest.raises(PeriodError):
        await reads().totals(tree, "386", "2020-13")
    with pytest.raises(PeriodError):
        await reads().children(tree, "386", "someday")
    body = json.loads(await reads().totals(tree, "386", "2020-12"))
    assert body["unit"]["code"] == "386" and body["metrics"] == {}


async def test_the_remapped_view_needs_the_2025_tree_and_a_period_before_it():
    with pytest.raises(NoTree2025):
        reads().tree_2025(OrgTree())
    assert reads().tree_2025(TREES).tree_id == "2025"
    with pytest.raises(NotALegacyPeriod, match="period 2025-Q4 is in tree 2025: its totals are at /v1/units/08/totals"):
        await reads().remapped(TREES, token(COUNTRY), "08", "2025-Q4")


async def test_the_remapped_view_shows_only_what_the_token_could_read_in_the_old_tree():
    # the new Tuyên Quang adds up the old Hà Giang (02) and Tuyên Quang (08): a token of the old 08
    # does not cover 02
    with pytest.raises(SourcesOutsideToken, match=r"adds up 2 units .* 1 of them are outside this token's unit 08"):
        await reads().remapped(TREES, token("08"), "08", "2024")
    shown = await reads().remapped(TREES, token(COUNTRY), "08", "2024")
    assert sorted(s.code for s in shown.sources) == ["02", "08"]


async def test_completeness_names_the_series_it_knows_and_then_checks_the_period():
    tree = TREES.version_named(LEGACY)
    with pytest.raises(UnknownSeries, match=r"unknown series; one of \[.*'study_session'"):
        await reads().missing(tree, "386", "nothing", "not a period")
    with pytest.raises(PeriodError):
        await reads().missing(tree, "386", "study_session", "not a period")
    missing = await reads().missing(tree, "386", "study_session", "2020-12")
    assert missing.completeness.units_reported == 0 and missing.not_reported
