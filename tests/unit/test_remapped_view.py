"""The re-mapped view: units of the 2025 tree shown with the history of the old units they took
over (the conversion table of 1 July 2025): a commune merged whole goes to its one successor, a
split one to its primary successor (flagged approximate), each old unit counted once.

The expected figures are recomputed here from the reports themselves and from the package's raw
conversion table (its name-keyed JSON, joined to codes by its SQLite tables), not through
shared/domain/hierarchy.py's loader nor the roll-up."""

import json
import random
import sqlite3
from collections import defaultdict
from datetime import UTC, datetime
from importlib import util
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.api.app import create_app
from services.api.repository import InMemoryTotalsReader
from services.api.settings import ApiSettings
from shared.domain.auth import COUNTRY, Scope, mint
from shared.domain.catalog import load_catalog
from shared.domain.hierarchy import LEGACY, TREE_2025, Level, load_vietnam
from shared.domain.rollup import Rollup, report_from_input
from shared.domain.totals_docs import to_stored
from tests.conftest import TEST_SECRET
from tests.unit.test_rollup import where

CATALOG = load_catalog()
# Hà Giang 02 and Tuyên Quang 08 merged into the new Tuyên Quang 08; Thanh Hóa 38 stayed whole
TREE = load_vietnam(["02", "08", "38"])
OLD = TREE.version_named(LEGACY)
NEW = TREE.version_named(TREE_2025)
AT = datetime(2025, 1, 20, tzinfo=UTC)
PERIODS = ["2024-02", "2024-Q1", "2024-H2", "2024", "2020-2025"]


def raw_table() -> tuple[dict[str, str], dict[str, bool], dict[str, str]]:
    """old commune -> primary new commune, old commune -> split, old province -> new province."""
    spec = util.find_spec("vietnamadminunits")
    assert spec is not None and spec.submodule_search_locations
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    with sqlite3.connect(data / "dataset.db") as db:
        old = {
            "_".join((p, d, w)): (c, pc)
            for c, pc, p, d, w in db.execute(
                "SELECT wardCode, provinceCode, provinceKey, districtKey, wardKey FROM admin_units_legacy"
                " WHERE wardCode IS NOT NULL"
            )
        }
        new = {(p, w): c for c, p, w in db.execute("SELECT wardCode, provinceKey, wardKey FROM admin_units")}
        new_province = dict(db.execute("SELECT DISTINCT provinceKey, provinceCode FROM admin_units").fetchall())
        old_province = dict(db.execute("SELECT DISTINCT provinceKey, provinceCode FROM admin_units_legacy").fetchall())
    table = json.loads((data / "converter_2025.json").read_text(encoding="utf-8"))
    primary, split = {}, {}
    for pkey, wards in table["DICT_PROVINCE_WARD_NO_DIVIDED"].items():
        for wkey, olds in wards.items():
            for okey in olds:
                if okey in old:
                    primary[old[okey][0]], split[old[okey][0]] = new[(pkey, wkey)], False
    for pkey, olds in table["DICT_PROVINCE_WARD_DIVIDED"].items():
        for okey, options in olds.items():
            [default] = [o for o in options if o["isDefaultNewWard"]]
            primary[old[okey][0]], split[old[okey][0]] = new[(pkey, default["newWardKey"])], True
    provinces = {old_province[o]: new_province[n] for n, olds in table["DICT_PROVINCE"].items() for o in olds}
    return primary, split, provinces


PRIMARY, SPLIT, PROVINCES = raw_table()


def workload(seed: int = 7, n: int = 600) -> list[dict]:
    """Reports of 2024 from old communes (every split one of the three provinces among them),
    districts and provinces, with corrections and withdrawals."""
    rng = random.Random(seed)
    communes = [u.code for u in OLD._units.values() if u.level == Level.COMMUNE]
    split = [c for c in communes if SPLIT.get(c)]
    others = [u.code for u in OLD._units.values() if u.level in (Level.DISTRICT, Level.PROVINCE)]
    out = []
    for i in range(n):
        unit = rng.choice(split if i % 4 == 0 else others if i % 9 == 0 else communes)
        month = f"2024-{rng.randint(1, 12):02d}"
        for rev in range(1, rng.choice([1, 1, 2]) + 1):
            if i % 3:
                total = rng.randint(10, 500)
                kind, body = (
                    "study_session",
                    {
                        "resolution": "NQ",
                        "held_on": f"{month}-05",
                        "format": "online",
                        "bridge_points": 1,
                        "delegates": rng.randint(0, 9),
                        "members_attended": rng.randint(0, total),
                        "members_total": total,
                    },
                )
            else:
                required = rng.randint(10, 300)
                kind, body = (
                    "reflection",
                    {
                        "members_submitted": rng.randint(0, required),
                        "members_required": required,
                    },
                )
            out.append(
                {
                    "report_id": f"r{i}",
                    "revision": rev,
                    "unit": unit,
                    "kind": kind,
                    "period": month,
                    "submitted_at": "2024-12-20T09:00:00+07:00",
                    "body": body,
                    **({"withdrawn": True} if rev == 2 and rng.random() < 0.2 else {}),
                }
            )
    return out


def in_period(month: str, period: str) -> bool:
    if period == "2020-2025":
        return "2020" <= month[:4] <= "2024"
    if "-Q" in period:
        return month[:4] == period[:4] and (int(month[5:]) - 1) // 3 + 1 == int(period[-1])
    if "-H" in period:
        return month[:4] == period[:4] and (int(month[5:]) - 1) // 6 + 1 == int(period[-1])
    return month.startswith(period)


def recompute(messages: list[dict]) -> dict[tuple[str, str], dict[str, int]]:
    """(new unit or VN, period) -> summed fields and report count, from the final revisions."""
    final: dict[str, dict] = {}
    for m in messages:
        if m["report_id"] not in final or m["revision"] > final[m["report_id"]]["revision"]:
            final[m["report_id"]] = m
    out: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in final.values():
        if r.get("withdrawn"):
            continue
        old_province = OLD.path(r["unit"])[-1]
        targets = [PROVINCES[old_province], COUNTRY]
        if OLD.get(r["unit"]).level == Level.COMMUNE and r["unit"] in PRIMARY:
            targets.append(PRIMARY[r["unit"]])
        for period in PERIODS:
            if not in_period(r["period"], period):
                continue
            for target in targets:
                figures = out[(target, period)]
                figures["reports"] += 1
                for k, v in r["body"].items():
                    if isinstance(v, int):
                        figures[f"{r['kind']}.{k}"] += v
    return out


@pytest.fixture(scope="module")
def api():
    messages = workload()
    rollup = Rollup(CATALOG)
    for m in messages:
        report = report_from_input(m, AT, CATALOG)
        rollup.apply(report, *where(report, TREE, CATALOG))
    stored = {d.id: to_stored(d, 1, 0, AT) for d in rollup.docs.values()}
    settings = ApiSettings(
        kafka_bootstrap_servers="unused:9092",
        mongodb_uri="mongodb://unused",
        auth_secret=TEST_SECRET,
        # every old commune's view in a loop, with one token: the per-token read budget is not under test
        expensive_reads_burst=1_000_000,
    )
    with TestClient(create_app(settings, reader=InMemoryTotalsReader(stored), tree=TREE)) as client:
        yield client, recompute(messages)


HEADERS = {"Authorization": f"Bearer {mint(TEST_SECRET, COUNTRY, (Scope.READ,), 3600)}"}
FIELDS = [
    "study_session.members_attended",
    "study_session.members_total",
    "study_session.delegates",
    "reflection.members_submitted",
    "reflection.members_required",
]


def shown(client, code, period):
    r = client.get(f"/v1/units/{code}/remapped/totals", params={"period": period}, headers=HEADERS)
    assert r.status_code == 200, r.text
    return r.json()


def as_figures(body):
    figures = {f: body["metrics"][f] for f in FIELDS if f in body["metrics"]}
    reports = sum(c["reports"] for c in body["completeness"].values())
    return {**figures, **({"reports": reports} if reports else {})}


@pytest.mark.parametrize("period", PERIODS)
def test_the_remapped_view_equals_an_independent_recomputation(api, period):
    client, expected = api
    units = [
        COUNTRY,
        *(p.code for p in NEW.provinces()),
        *(u.code for u in NEW._units.values() if u.level == Level.COMMUNE),
    ]
    wrong = {}
    for code in units:
        got = as_figures(shown(client, code, period))
        want = {k: v for k, v in expected.get((code, period), {}).items() if v and (k in FIELDS or k == "reports")}
        if got != want:
            wrong[code] = (got, want)
    assert wrong == {}
    assert expected[(COUNTRY, period)]["reports"] > 0


def test_each_old_commune_is_counted_once_so_the_communes_add_up_to_the_old_communes(api):
    client, _ = api
    communes = [u.code for u in NEW._units.values() if u.level == Level.COMMUNE]
    shown_total = sum(shown(client, c, "2024")["metrics"].get("study_session.members_total", 0) for c in communes)
    old_communes = [u.code for u in OLD._units.values() if u.level == Level.COMMUNE and u.code in PRIMARY]
    body = client.get("/v1/units/VN/totals", params={"period": "2024"}, headers=HEADERS).json()
    assert body["unit"]["code"] == COUNTRY
    old_total = 0
    for code in old_communes:
        r = client.get(f"/v1/units/{code}/totals", params={"period": "2024"}, headers=HEADERS).json()
        old_total += r["metrics"].get("study_session.members_total", 0)
    assert shown_total == old_total > 0


def test_a_split_commune_shows_on_its_primary_successor_flagged_approximate(api):
    client, _ = api
    old = next(c for c in sorted(SPLIT) if SPLIT[c] and c in OLD)
    primary = PRIMARY[old]
    body = shown(client, primary, "2024")
    assert body["approximate"] is True
    assert {"code": old, "split": True} in [{"code": s["code"], "split": s["split"]} for s in body["sources"]]
    others = [
        n for n in NEW._units if n != primary and any(s["code"] == old for s in shown(client, n, "2024")["sources"])
    ]
    assert others == []  # on the primary successor only
    whole = next(c for c in sorted(PRIMARY) if c in OLD and not SPLIT[c] and c == PRIMARY[c])
    assert [s["code"] for s in shown(client, whole, "2024")["sources"]].count(whole) == 1


def test_the_remapped_view_is_for_periods_before_the_reform_and_units_of_the_new_tree(api):
    client, _ = api
    r = client.get("/v1/units/38/remapped/totals", params={"period": "2025-Q4"}, headers=HEADERS)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "period"]
    r = client.get("/v1/units/386/remapped/totals", params={"period": "2024"}, headers=HEADERS)
    assert r.status_code == 404 and "tree 2025" in r.json()["detail"]
    province = shown(client, "08", "2024")
    assert sorted(s["code"] for s in province["sources"]) == ["02", "08"]  # Hà Giang and Tuyên Quang
    assert province["approximate"] is False
