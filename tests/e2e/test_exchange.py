"""Exchange with a DHIS2-style system against the running services, with the example mapping: a
data value set imported over HTTP shows in the totals, comes back out of the API as the same
values in JSON and CSV, a second import changes nothing, and a changed value (sent as CSV)
revises its report."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from shared.domain.auth import Scope
from shared.domain.exchange import CSV_COLUMNS

from .system import start_system

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SET = json.loads((EXAMPLES / "dhis2-datavalueset.json").read_text())
PATH = "/v1/exchange/dataValueSets"


def cells(values: list[dict[str, str]]) -> set[tuple[str, str, str, str, str]]:
    return {(v["dataElement"], v.get("categoryOptionCombo", ""), v["orgUnit"], v["period"], v["value"]) for v in values}


def imported(data_value_set: dict) -> set[tuple[str, str, str, str, str]]:
    return cells([{"period": data_value_set["period"], **v} for v in data_value_set["dataValues"]])


def as_csv(data_value_set: dict) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for v in data_value_set["dataValues"]:
        row = [
            v["dataElement"],
            data_value_set["period"],
            v["orgUnit"],
            v.get("categoryOptionCombo", ""),
            "",
            v["value"],
        ]
        writer.writerow(row + [""] * (len(CSV_COLUMNS) - len(row)))
    return out.getvalue()


@pytest.fixture
def system(namespace):
    system = start_system(namespace, env={"BAOCAO_EXCHANGE_MAPPING": str(EXAMPLES / "dhis2-mapping.json")})
    yield system
    system.stop()


def test_a_data_value_set_goes_in_comes_back_the_same_and_is_revised_when_it_changes(system):
    district = system.client(system.ingest.url, system.token("386", Scope.SUBMIT))
    office = system.client(system.api.url, system.token("386", Scope.READ))
    params = {"unit": "386", "period": "2020-12", "series": "study_session", "children": "true"}
    with district, office:
        first = district.post(PATH, json=SET)
        assert first.status_code == 200, first.text
        assert first.json()["importCount"] == {"imported": 8, "updated": 0, "ignored": 0, "deleted": 0}
        totals = system.wait_for_metric("386", "2020-12", "study_session.members_attended", 280 + 152)
        assert totals["metrics"]["study_session.members_total"] == 300 + 160
        assert totals["metrics"]["study_session.delegates"] == 12

        exported = office.get(PATH, params=params)
        assert exported.status_code == 200, exported.text
        values = exported.json()["dataValues"]
        children = [v for v in values if v["orgUnit"] != "BaThuoc0386"]
        assert cells(children) == imported(SET)
        assert cells([v for v in values if v["orgUnit"] == "BaThuoc0386"]) == {
            ("BcHnBridgeP", "", "BaThuoc0386", "202012", "2"),
            ("BcHnDelegat", "", "BaThuoc0386", "202012", "12"),
            ("BcHnMembers", "BcCocAttend", "BaThuoc0386", "202012", "432"),
            ("BcHnMembers", "BcCocTotal1", "BaThuoc0386", "202012", "460"),
        }
        table = office.get(f"{PATH}.csv", params=params)
        assert table.status_code == 200 and table.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(table.text)))
        assert {
            (r["dataelement"], r["categoryoptioncombo"], r["orgunit"], r["period"], r["value"]) for r in rows
        } == cells(values)

        again = district.post(PATH, json=SET).json()
        assert again["importCount"] == {"imported": 0, "updated": 0, "ignored": 8, "deleted": 0}

        changed = json.loads(json.dumps(SET))
        changed["dataValues"][2]["value"] = "290"  # Cành Nàng's members attended
        revised = district.post(PATH, content=as_csv(changed), headers={"Content-Type": "text/csv"})
        assert revised.json()["importCount"] == {"imported": 0, "updated": 4, "ignored": 4, "deleted": 0}
        system.wait_for_metric("386", "2020-12", "study_session.members_attended", 290 + 152)
        assert cells(
            [v for v in office.get(PATH, params=params).json()["dataValues"] if v["orgUnit"] != "BaThuoc0386"]
        ) == (imported(changed))
        # the revision replaced the report: 14923 has one report, at revision 2
        commune = system.totals("14923", "2020-12")
        assert commune["metrics"]["study_session.members_attended"] == 290
        assert commune["completeness"]["study_session"]["reports"] == 1
