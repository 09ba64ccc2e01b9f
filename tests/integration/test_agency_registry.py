"""The agency registry on the real database: a rename and a closing made through one service
reach another service's tree at its next refresh, and so does a reopening."""

from datetime import date

import pytest

from shared.adapters.registry import AgencyRegistry
from shared.domain.hierarchy import LEGACY, TREE_2025, load_vietnam
from shared.domain.periods import parse_period
from tests.contract.conftest import fresh_database

pytestmark = pytest.mark.integration


async def test_a_rename_a_closing_and_a_reopening_reach_the_other_services(request):
    async with fresh_database(request) as (client, database):
        here = AgencyRegistry(client, database, load_vietnam(["38"]).version_named(LEGACY))
        there = AgencyRegistry(client, database, load_vietnam(["38"]).version_named(LEGACY))
        assert await here.register("38-bv", "Bệnh viện", "38") is True
        await here.rename("38-bv", "Bệnh viện tỉnh")
        await here.close("38-bv", date(2025, 10, 1))
        assert await there.refresh() == 1
        new = there.tree.version_named(TREE_2025)
        assert new.get("38-bv").name == "Bệnh viện tỉnh" and new.closed_from("38-bv") == date(2025, 10, 1)
        assert new.count("38", ["agency"], on=parse_period("2025-10").end) == 0
        await here.close("38-bv", None)
        assert await there.refresh() == 0  # nothing new: the reopening is a change of a known agency
        assert new.closed_from("38-bv") is None and new.count("38", ["agency"], on=date(2026, 1, 1)) == 1
        # registering again under the new name is the same registration, not a conflict
        assert await there.register("38-bv", "Bệnh viện tỉnh", "38") is False
