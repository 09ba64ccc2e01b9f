"""Bad messages straight on Kafka go to the dead-letter topic and never stall the stream; an
agency registered at runtime rolls up its parent chain; metrics move as reports flow."""

import json
import subprocess
import sys

import pytest
from kafka import KafkaConsumer

from tests.conftest import wait_until

pytestmark = pytest.mark.e2e


def good(rid, unit, attended=10, rev=1):
    return {
        "report_id": rid,
        "revision": rev,
        "unit": unit,
        "kind": "study_session",
        "period": "2021-11",
        "submitted_at": "2021-11-06T09:00:00+07:00",
        "body": {
            "resolution": "NQ",
            "held_on": "2021-11-05",
            "format": "online",
            "bridge_points": 1,
            "delegates": 2,
            "members_attended": attended,
            "members_total": 50,
        },
    }


def read_dead_letters(system, expected):
    consumer = KafkaConsumer(
        system.namespace.dead_letter_topic,
        bootstrap_servers=system.namespace.env["KAFKA_BOOTSTRAP_SERVERS"],
        auto_offset_reset="earliest",
        **system.namespace.kafka_options("admin"),
        consumer_timeout_ms=2000,
    )
    seen = []
    try:
        wait_until(lambda: seen.extend(consumer) or len(seen) >= expected, timeout=60, what=f"{expected} dead letters")
    finally:
        consumer.close()
    return [{k: v.decode() for k, v in m.headers} for m in seen]


def test_bad_messages_are_dead_lettered_with_reason_and_source_and_the_stream_goes_on(system):
    env = system.namespace.env
    producer = system.unit_producer()
    topic = system.namespace.reports_topic
    producer.send(topic, key=b"14923", value=b"{not json")
    producer.send(topic, key=b"14923", value=json.dumps(good("bad-1", "14923", attended=999)).encode())
    producer.send(topic, key=b"99999", value=json.dumps(good("bad-2", "99999")).encode())
    producer.send(topic, key=b"14923", value=b"[" + b"1," * 200_000 + b"1]")
    producer.send(topic, key=b"14923", value=json.dumps(good("ok-1", "14923", attended=7)).encode())
    producer.flush()
    producer.close()

    system.wait_for_metric("38", "2021-11", "study_session.members_attended", 7)
    headers = read_dead_letters(system, 4)
    assert sorted(h["baocao-reason"] for h in headers) == [
        "invalid_json",
        "invalid_report",
        "too_large",
        "unknown_unit",
    ]
    assert all(h["baocao-source"].startswith(topic + "/") for h in headers)

    with system.client(system.aggregators[0].url) as http:
        metrics = http.get("/metrics").text
    assert 'baocao_aggregate_dead_letters_total{reason="unknown_unit"} 1.0' in metrics
    assert 'baocao_aggregate_reports_total{outcome="applied"} 1.0' in metrics

    # The CLI lists them; after the agency for unit 99999 cannot exist, replay sends them back
    # and the aggregator dead-letters them again (replay is idempotent for the totals).
    cli = [sys.executable, "-m", "tools.cli", "dead-letters"]
    listed = subprocess.run(
        [*cli, "list"], env={**env, "PATH": ""}, capture_output=True, text=True, check=True, timeout=60
    )
    assert listed.stdout.count('"reason"') == 4
    replayed = subprocess.run(
        [*cli, "replay"], env={**env, "PATH": ""}, capture_output=True, text=True, check=True, timeout=60
    )
    assert "4 dead letters replayed" in replayed.stderr
    read_dead_letters(system, 8)
    assert system.totals("38", "2021-11")["metrics"]["study_session.members_attended"] == 7


def test_an_agency_registered_at_runtime_rolls_up_to_its_province(system):
    with system.client(system.api.url) as api:
        r = api.post(
            "/v1/admin/agencies", json={"code": "38-bvdk", "name": "Đảng bộ Bệnh viện Đa khoa tỉnh", "parent": "38"}
        )
        assert r.status_code == 201
        assert (
            api.post(
                "/v1/admin/agencies", json={"code": "38-bvdk", "name": "Đảng bộ Bệnh viện Đa khoa tỉnh", "parent": "38"}
            ).status_code
            == 200
        )
        assert (
            api.post("/v1/admin/agencies", json={"code": "38-bvdk", "name": "Another", "parent": "38"}).status_code
            == 409
        )
        district_admin = system.token("386", *("admin",))
        with system.client(system.api.url, district_admin) as limited:
            assert (
                limited.post("/v1/admin/agencies", json={"code": "38-x", "name": "X", "parent": "38"}).status_code
                == 403
            )
    hospital = system.token("38-bvdk", "submit", "read")
    with system.client(system.ingest.url, hospital) as http:
        r = http.post("/v1/reports", json=good("bvdk-1", "38-bvdk", attended=40))
        assert r.status_code == 202, r.text
        assert http.post("/v1/reports", json=good("x", "14923")).status_code == 403
    system.wait_for_metric("38", "2021-11", "study_session.members_attended", 40)
    with system.client(system.api.url, hospital) as http:
        assert (
            http.get("/v1/units/38-bvdk/totals", params={"period": "2021"}).json()["metrics"][
                "study_session.members_attended"
            ]
            == 40
        )
        assert http.get("/v1/units/38/totals", params={"period": "2021"}).status_code == 403


def test_tokens_minted_and_revoked_with_the_cli(system):
    env = {**system.namespace.env, "PATH": ""}
    cli = [sys.executable, "-m", "tools.cli", "token"]
    token = subprocess.run(
        [*cli, "mint", "--unit", "386", "--scopes", "read", "--ttl-days", "1"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    with system.client(system.api.url, token) as http:
        assert http.get("/v1/units/386", params={"tree": "legacy"}).status_code == 200
        assert http.get("/v1/units/388").status_code == 403
        subprocess.run(
            [*cli, "revoke", token, "--reason", "test"], env=env, capture_output=True, text=True, check=True, timeout=60
        )
        wait_until(
            lambda: http.get("/v1/units/386", params={"tree": "legacy"}).status_code == 401,
            timeout=30,
            what="the revocation to take effect",
        )


def test_a_unit_submits_a_report_file_with_the_cli_over_http_and_straight_to_kafka(system, tmp_path):
    env = {
        **system.namespace.env,
        "PATH": "",
        "BAOCAO_INGEST_URL": system.ingest.url,
        "BAOCAO_TOKEN": system.token("14923", "submit"),
    }
    one = tmp_path / "one.json"
    one.write_text(json.dumps(good("cli-http", "14923", attended=3)))
    many = tmp_path / "many.json"
    many.write_text(json.dumps([good("cli-kafka", "14923", attended=4)]))
    cli = [sys.executable, "-m", "tools.cli", "submit"]
    http = subprocess.run([*cli, str(one)], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert http.returncode == 0 and '"accepted": 1' in http.stdout, http.stderr
    kafka = subprocess.run(
        [*cli, str(many), "--kafka"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert kafka.returncode == 0 and "1 reports produced" in kafka.stdout, kafka.stderr
    system.wait_for_metric("38", "2021-11", "study_session.members_attended", 7)
