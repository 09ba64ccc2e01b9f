"""Coverage counts units (seed 003): "43/43 party units built their action programme" is units
that did / units expected, and the counts inside each programme stay with the unit that adopted
it: a district's 6 key programmes and its 43 units' 2 each are not 92 of anything."""

from datetime import datetime

from services.api.views import completeness
from shared.domain.catalog import load_catalog
from shared.domain.hierarchy import Level, load_vietnam
from shared.domain.rollup import Rollup, report_from_input
from tests.unit.test_rollup import where
from tools import demo

CATALOG = load_catalog()


def rolled_up():
    tree = load_vietnam()
    for agency in demo.agencies():
        tree.add(agency["code"], agency["name"], Level.AGENCY, agency["parent"])
    rollup = Rollup(CATALOG)
    for raw in demo.seed_003_action_programs(tree):
        report = report_from_input(raw, datetime.fromisoformat(raw["submitted_at"]), CATALOG)
        rollup.apply(report, *where(report, tree, CATALOG))
    return tree, rollup


def test_ba_thuoc_covers_43_of_43_units_and_keeps_its_own_six_key_programmes():
    tree, rollup = rolled_up()
    spec = CATALOG.series["action_program"]
    march = completeness(spec, tree, demo.BA_THUOC, "2021-03", rollup.total(demo.BA_THUOC, "action_program", "2021-03"))
    assert (march.units_reported, march.units_expected, march.completeness) == (43, 43, 1.0)
    year = rollup.total(demo.BA_THUOC, "action_program", "2021")
    assert (year["sums.key_programs"], year["sums.breakthroughs"], year["sums.indicators"]) == (6, 3, 27)
    assert year["units_reported"] == 43 and year["reports"] == 44  # the 43 units and the district's own
    commune = demo.communes_of(tree, demo.BA_THUOC)[0]
    assert rollup.total(commune, "action_program", "2021-03")["sums.key_programs"] == 2
    # the province holds Bá Thước and Lang Chánh's programmes but adds up none of their counts
    province = rollup.total("38", "action_program", "2021")
    assert not any(k.startswith("sums.") for k in province) and province["units_reported"] == 43
