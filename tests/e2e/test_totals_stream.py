"""The rolled-up stream: a mirror built only from the compacted totals topic equals the totals."""

import json
import sqlite3
import time
from pathlib import Path

import pytest
from pymongo import MongoClient

from shared.domain.hierarchy import load_vietnam
from shared.domain.rollup import COUNTERS
from shared.domain.totals_stream import SCHEMA_PATH
from tests.conftest import wait_until
from tools import demo
from tools.mirror import mirror, read_mirror

pytestmark = pytest.mark.e2e


def period_view(stored, period):
    """One period of a stored document, as the stream names it: ``_id`` the total's id
    (unit|series|period), ``sums`` and the counters. None when it has no figures."""
    figures = (stored.get("periods") or {}).get(period)
    if not figures:
        return None
    view = {
        "_id": f"{stored['unit']}|{stored['series']}|{period}",
        "unit": stored["unit"],
        "series": stored["series"],
        "period": period,
        "parents": list(stored.get("parents", ())),
        "version": int(stored.get("version", 0)),
        "sums": dict(figures.get("sums") or {}),
    }
    for c in COUNTERS:
        view[c] = int(figures.get(c, 0))
    return view


def test_a_province_mirror_from_the_stream_equals_the_stored_totals(system, tmp_path: Path):
    tree = load_vietnam()
    reports = [r for r in demo.seed_000_study_sessions(tree) if r["unit"] != demo.BA_THUOC]
    corrections = [
        {**r, "revision": 2, "body": {**r["body"], "members_attended": r["body"]["members_attended"] - 1}}
        for r in reports[:5]
    ]
    with system.client(system.ingest.url) as http:
        assert http.post("/v1/reports/batch", json=reports).json()["accepted"] == 21
        assert http.post("/v1/reports/batch", json=corrections).json()["accepted"] == 5
    system.wait_for_metric("38", "2020-12", "study_session.members_attended", 5962 - 5)

    env = system.namespace.env
    db = str(tmp_path / "mirror.sqlite")

    def stored_totals():
        """Every period of every stored document under province 38, as the stream names them."""
        mongo: MongoClient = MongoClient(env["MONGODB_URI"])
        try:
            docs = list(mongo[system.namespace.database]["totals"].find({"parents": "38"}))
        finally:
            mongo.close()
        return {v["_id"]: v for d in docs for p in d["periods"] if (v := period_view(d, p)) is not None}

    def mirror_differences():
        """Totals whose mirrored state differs from the stored one: id -> (mirrored, stored)."""
        mirror(
            env["KAFKA_BOOTSTRAP_SERVERS"],
            env["BAOCAO_TOTALS_TOPIC"],
            "38",
            db,
            credentials=system.namespace.credentials("reader"),
        )
        got, stored = read_mirror(db), stored_totals()

        def figures(m):
            if m is None or not (m.get("reports") or m.get("sums")):
                return None  # emptied periods stream zeros; the store leaves them out
            return (m.get("sums", {}), m.get("reports", 0), m.get("units_reported", 0), m["version"])

        return {
            i: (figures(got.get(i)), figures(stored.get(i)))
            for i in set(got) | set(stored)
            if figures(got.get(i)) != figures(stored.get(i))
        }

    diff = mirror_differences()
    deadline = time.monotonic() + 60
    while diff and time.monotonic() < deadline:
        time.sleep(1)
        diff = mirror_differences()
    assert not diff, f"{len(diff)} totals differ between the mirror and the store, e.g. {list(diff.items())[:4]}"
    got = read_mirror(db)
    assert got["38|study_session|2020-12"]["sums"]["members_attended"] == 5957
    assert got["386|study_session|2020-Q4"]["units_reported"] == 21
    api = system.totals("38", "2020-12")["metrics"]
    assert api["study_session.members_attended"] == got["38|study_session|2020-12"]["sums"]["members_attended"]
    schema = json.loads(SCHEMA_PATH.read_text())
    raw = sqlite3.connect(db).execute("SELECT message FROM totals WHERE id = '38|study_session|2020'").fetchone()
    message = json.loads(raw[0])
    assert set(schema["required"]) <= set(message) and set(message) <= set(schema["properties"])
    assert message["schema_version"] == 2 and "2020-Q4" in message["periods"]


def test_server_sent_events_carry_changes_of_the_subtree_only(system):
    import threading

    import httpx

    received: list[str] = []
    token = system.token("386", "stream")

    def listen():
        with httpx.Client(base_url=system.api.url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
            with http.stream("GET", "/v1/units/386/stream", params={"tree": "legacy"}) as r:
                for line in r.iter_lines():
                    if line.startswith("data: "):
                        received.append(line[6:])
                    if '"id":"386|study_session|2020"' in line.replace(" ", "") or len(received) >= 50:
                        return

    with system.client(system.api.url, token) as http:
        assert http.get("/v1/units/388/stream").status_code == 403
    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    wait_until(
        lambda: "baocao_api_sse_clients 1.0" in httpx.get(system.api.url + "/metrics").text,
        timeout=30,
        what="the SSE client",
    )
    reports = [r for r in demo.seed_000_study_sessions(load_vietnam()) if r["unit"] != demo.BA_THUOC][:1]
    other = {**reports[0], "report_id": "lc-1", "unit": "15031"}  # a commune of Lang Chánh (388)
    with system.client(system.ingest.url) as http:
        assert http.post("/v1/reports/batch", json=[other, *reports]).json()["accepted"] == 2
    wait_until(
        lambda: any('"386|study_session|2020"' in m for m in received),
        timeout=60,
        what="the district's change event",
    )
    messages = [json.loads(m) for m in received]
    assert all("386" in m["parents"] for m in messages)
    assert any(m["id"] == "386|study_session|2020" and "2020-12" in m["periods"] for m in messages)
