"""The completeness gauges per province and series (services/api/completeness_gauge.py), with the
in-memory totals reader, and on the API's /metrics."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from datetime import date, datetime

from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from services.api.app import create_app
from services.api.completeness_gauge import CompletenessGauge
from services.api.repository import InMemoryTotalsReader
from services.api.settings import ApiSettings
from shared.domain.catalog import load_catalog
from shared.domain.hierarchy import load_vietnam
from shared.domain.periods import VIETNAM_TZ
from shared.domain.totals_docs import stored_from_views
from tests.conftest import TEST_SECRET

TREE = load_vietnam(["38", "01"])
DOCS = stored_from_views(
    [
        {
            "unit": "38",
            "series": "study_session",
            "period": "2025-03",
            "parents": ["38"],
            "sums": {"members_attended": 1, "members_total": 1},
            "reports": 150,
            "units_reported": 150,
        }
    ]
)


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith(("baocao_completeness", "baocao_deadline"))
    }


def test_ratio_per_province_and_days_left_for_the_period_being_collected() -> None:
    gauge = CompletenessGauge(InMemoryTotalsReader(DOCS), load_catalog(), TREE)
    registry = CollectorRegistry()
    registry.register(gauge)
    asyncio.run(gauge.refresh(date(2025, 4, 12)))  # 2025-03 is due by 15 April (legacy tree)
    samples = _samples(registry)
    expected_38 = TREE.count("38", ["commune", "agency"])
    key = ("province", "38"), ("period", "2025-03"), ("series", "study_session")
    assert samples[("baocao_completeness_ratio", tuple(sorted(key)))] == 150 / expected_38
    assert (
        samples[("baocao_completeness_ratio", (("period", "2025-03"), ("province", "01"), ("series", "study_session")))]
        == 0
    )
    deadline = datetime(2025, 4, 15, 23, 59, 59, 999999, VIETNAM_TZ).timestamp()
    assert (
        samples[("baocao_deadline_timestamp_seconds", (("period", "2025-03"), ("series", "study_session")))] == deadline
    )
    # the yearly kind is collecting 2025 (due 2026-01-31); 2025 ends in the 2025 tree
    year_end = datetime(2026, 1, 31, 23, 59, 59, 999999, VIETNAM_TZ).timestamp()
    assert samples[("baocao_deadline_timestamp_seconds", (("period", "2025"), ("series", "member_rating")))] == year_end
    assert (
        "baocao_completeness_ratio",
        (("period", "2025"), ("province", "38"), ("series", "member_rating")),
    ) in samples
    # hospital beds are expected of districts: the legacy tree of 2025-03 has them in both provinces
    beds = [k for k in samples if ("series", "indicator.hospital_beds") in k[1] and k[0] == "baocao_completeness_ratio"]
    assert {dict(k[1])["province"] for k in beds} == {"38", "01"}


def test_a_new_period_replaces_the_old_one() -> None:
    gauge = CompletenessGauge(InMemoryTotalsReader(DOCS), load_catalog(), TREE)
    registry = CollectorRegistry()
    registry.register(gauge)
    asyncio.run(gauge.refresh(date(2025, 4, 15)))
    asyncio.run(gauge.refresh(date(2025, 4, 16)))  # 2025-03 is past its deadline: 2025-04 now
    periods = {dict(labels)["period"] for name, labels in _samples(registry) if ("series", "study_session") in labels}
    assert periods == {"2025-04"}


def test_the_exposition_passes_promtool() -> None:
    gauge = CompletenessGauge(InMemoryTotalsReader(DOCS), load_catalog(), TREE)
    registry = CollectorRegistry()
    registry.register(gauge)
    asyncio.run(gauge.refresh(date(2025, 4, 12)))
    tool = shutil.which("promtool")
    assert tool, "promtool is missing: deploy/install.sh installs Debian's prometheus package"
    checked = subprocess.run(
        [tool, "check", "metrics"],
        input=generate_latest(registry).decode(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_api_exports_the_gauges() -> None:
    settings = ApiSettings(
        kafka_bootstrap_servers="unused:9092", mongodb_uri="mongodb://unused", auth_secret=SecretStr(TEST_SECRET)
    )
    with TestClient(create_app(settings, reader=InMemoryTotalsReader(DOCS), tree=TREE)) as client:
        text = client.get("/metrics").text
    assert 'baocao_completeness_ratio{period="' in text and 'province="38"' in text
    assert "baocao_deadline_timestamp_seconds{" in text
