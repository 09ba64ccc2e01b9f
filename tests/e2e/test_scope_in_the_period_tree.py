"""Every scope check in the tree of the report's period, through the running services.

Codes are reused across the two trees: Tuyên Quang 08 of the 2025 tree took in Hà Giang 02, so
00691 (a Hà Giang commune before July 2025) is now under 08; 14923 was Thị trấn Cành Nàng under
district 386 and is now Xã Bá Thước under Thanh Hóa 38. A 2025 province's token submits for every
one of its communes, over HTTP, in a batch and straight to Kafka; the token of an abolished
district (386) or of a merged province (02) is refused for every unit of the 2025 tree on every
path, and reads nothing across trees.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from shared.adapters.kafka_credentials import CREDENTIALS_DIR, read_env_file
from shared.domain.auth import COUNTRY, Scope
from shared.domain.hierarchy import load_vietnam

from .test_dead_letters_and_agencies import read_dead_letters

pytestmark = pytest.mark.e2e

TREES = load_vietnam()
NEW = TREES.version_named("2025")
OLD = TREES.version_named("legacy")


def study(unit: str, period: str, tag: str, attended: int = 9) -> dict[str, Any]:
    year, month = (int(x) for x in period.split("-"))
    return {
        "report_id": f"{unit}-{tag}-{period}",
        "revision": 1,
        "unit": unit,
        "kind": "study_session",
        "period": period,
        "submitted_at": f"{year}-{month:02d}-20T09:00:00+07:00",
        "body": {
            "resolution": "Nghị quyết Đại hội XIV",
            "held_on": f"{year}-{month:02d}-10",
            "format": "in_person",
            "bridge_points": 1,
            "delegates": 0,
            "members_attended": attended,
            "members_total": 10,
        },
    }


def reported(system: Any, unit: str, period: str) -> int:
    body = system.totals(unit, period)
    return int(body["completeness"].get("study_session", {}).get("units_reported", 0))


def test_a_2025_province_token_submits_for_every_one_of_its_communes_on_every_path(system):
    communes = [u.code for u in NEW.children("08")]
    assert "00691" in communes and len(communes) == 124  # 73 of them were Hà Giang's
    token = system.token("08", Scope.SUBMIT, Scope.READ)
    with system.client(system.ingest.url, token) as http:
        for code in communes:
            r = http.post("/v1/reports", json=study(code, "2026-09", "http"))
            assert r.status_code == 202, (code, r.status_code, r.text)
        batch = http.post("/v1/reports/batch", json=[study(c, "2026-10", "batch") for c in communes]).json()
    assert batch["accepted"] == len(communes), [r for r in batch["results"] if r["status"] != "accepted"][:3]
    producer = system.unit_producer(token=token)
    for code in communes:
        producer.send(system.namespace.reports_topic, json.dumps(study(code, "2026-11", "kafka")).encode(), b"08")
    producer.flush()
    producer.close()
    for period in ("2026-09", "2026-10", "2026-11"):
        body = system.wait_for_metric("08", period, "study_session.members_attended", 9 * len(communes))
        assert body["completeness"]["study_session"]["units_reported"] == len(communes)


def test_an_old_district_or_merged_province_token_is_refused_for_every_2025_unit_on_every_path(system):
    # the units of the 2025 tree whose codes were under district 386 or province 02 before July 2025
    reused = {old: [u.code for u in OLD.subtree(old) if u.code in NEW] for old in ("386", "02")}
    assert len(reused["386"]) == 8 and len(reused["02"]) == 73
    sent = 0
    for old, codes in reused.items():
        token = system.token(old, Scope.SUBMIT)
        with system.client(system.ingest.url, token) as http:
            for code in codes:
                r = http.post("/v1/reports", json=study(code, "2026-11", f"http-{old}"))
                assert r.status_code == 403, (old, code, r.status_code, r.text)
            batch = http.post("/v1/reports/batch", json=[study(c, "2026-11", f"batch-{old}") for c in codes]).json()
        assert [r["status"] for r in batch["results"]] == ["forbidden"] * len(codes), batch["results"][:3]
        producer = system.unit_producer(token=token)
        for code in codes:
            producer.send(system.namespace.reports_topic, json.dumps(study(code, "2026-11", f"kafka-{old}")).encode())
        producer.flush()
        producer.close()
        sent += len(codes)
    letters = read_dead_letters(system, sent)
    assert len(letters) == sent and {h["baocao-reason"] for h in letters} == {"forbidden_unit"}
    # the same token still submits in its own tree: 14923 is under 386 before July 2025
    with system.client(system.ingest.url, system.token("386", Scope.SUBMIT)) as http:
        assert http.post("/v1/reports", json=study("14923", "2025-06", "own")).status_code == 202
    system.wait_for_metric("386", "2025-06", "study_session.members_attended", 9)
    # and nothing refused counted: after a country token's report, province 38 and 08 hold only it
    with system.client(system.ingest.url) as http:
        assert http.post("/v1/reports", json=study("00691", "2026-11", "country", attended=5)).status_code == 202
    system.wait_for_metric("08", "2026-11", "study_session.members_attended", 5)
    assert reported(system, "38", "2026-11") == 0


def test_a_token_reads_nothing_across_trees(system):
    # seed-000-like history of the old communes that became Xã Bá Thước (14923 and its neighbours)
    sources = ["14923", "14962", "14971"]
    with system.client(system.ingest.url) as http:
        for code in sources:
            assert http.post("/v1/reports", json=study(code, "2020-12", "old", attended=7)).status_code == 202
    system.wait_for_metric("386", "2020-12", "study_session.members_attended", 21)

    def remapped(unit_token: str) -> Any:
        with system.client(system.api.url, system.token(unit_token, Scope.READ)) as http:
            return http.get("/v1/units/14923/remapped/totals", params={"period": "2020-12"})

    # the commune's token reads its own old figures directly, not its old neighbours' through the view
    with system.client(system.api.url, system.token("14923", Scope.READ)) as http:
        assert http.get("/v1/units/14962/totals", params={"period": "2020-12"}).status_code == 403
    refused = remapped("14923")
    assert refused.status_code == 403 and "14962" in refused.json()["detail"], refused.text
    for reader in ("38", COUNTRY):  # the province covers every old source in the old tree too
        body = remapped(reader).json()
        assert sorted(s["code"] for s in body["sources"]) == sources
        assert body["metrics"]["study_session.members_attended"] == 21, body

    # district 386's admin token registers under the old 14923 only, never under the 2025 commune
    expected_before = system.totals("14923", "2026-11")["completeness"]["study_session"]["units_expected"]
    agency = {"code": "14923-htx", "name": "Hợp tác xã Cành Nàng", "parent": "14923"}
    with system.client(system.api.url, system.token("386", Scope.ADMIN, Scope.READ)) as http:
        assert http.post("/v1/admin/agencies", json=agency, params={"tree": "2025"}).status_code == 403
        assert http.post("/v1/admin/agencies", json=agency).status_code == 403  # today's tree by default
        created = http.post("/v1/admin/agencies", json=agency, params={"tree": "legacy"})
        assert created.status_code == 201, created.text
        old = http.get("/v1/units/386/totals", params={"period": "2020-12"}).json()
    assert old["completeness"]["study_session"]["units_expected"] == 21 + 1
    with system.client(system.api.url) as http:
        assert http.get("/v1/units/14923-htx", params={"tree": "2025"}).status_code == 404
        assert http.get("/v1/units/14923-htx", params={"tree": "legacy"}).json()["parent"]["code"] == "14923"
    after = system.totals("14923", "2026-11")["completeness"]["study_session"]["units_expected"]
    assert after == expected_before
    # ingest refuses the agency for a 2025 period (not a unit of that tree), whoever asks
    with system.client(system.ingest.url) as http:
        r = http.post("/v1/reports", json=study("14923-htx", "2026-11", "agency"))
    assert r.status_code == 422 and "tree 2025" in r.text, r.text


def test_the_root_points_at_the_pages_and_the_api_description(system):
    with system.client(system.api.url) as http:
        page = http.get("/", headers={"Accept": "text/html"}, follow_redirects=False)
        assert (page.status_code, page.headers["location"]) == (303, "/web/")
        assert http.get("/").json() == {"web": "/web/", "docs": "/docs", "openapi": "/openapi.json"}
        assert http.get("/docs").status_code == 200


def test_reads_without_period_or_tree_are_in_the_tree_in_force_today(system):
    with system.client(system.api.url) as http:
        assert http.get("/v1/units/14923").json()["name"] == "Xã Bá Thước"
        assert http.get("/v1/units/386").status_code == 404
        found = http.get("/v1/units", params={"q": "ba thuoc"}).json()
    assert found["tree"] == "2025" and [u["code"] for u in found["units"]] == ["14923"]


def test_a_units_env_file_is_all_baocao_submit_kafka_needs(system, tmp_path):
    """`set -a; . unit.env; set +a` then `baocao submit FILE --kafka`, as the README and `make run` say."""
    folder = system.namespace.endpoints.get(CREDENTIALS_DIR)
    if folder is None:
        pytest.skip("external servers: no credentials folder of ours")
    env = read_env_file(Path(folder) / "unit.env")
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == system.namespace.env["KAFKA_BOOTSTRAP_SERVERS"]
    report = tmp_path / "report.json"
    report.write_text(json.dumps(study("00691", "2026-11", "cli", attended=4)), encoding="utf-8")
    done = subprocess.run(
        [str(Path(sys.executable).with_name("baocao")), "submit", str(report), "--kafka"],
        env={
            "PATH": os.environ["PATH"],
            **env,
            "BAOCAO_TOKEN": system.token("08", Scope.SUBMIT),
            "BAOCAO_REPORTS_TOPIC": system.namespace.reports_topic,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    system.wait_for_metric("00691", "2026-11", "study_session.members_attended", 4)
