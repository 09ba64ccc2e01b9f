"""Prometheus configuration, alert rules and dashboard are checked by promtool, as CI runs them."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.ingest.app import create_app
from services.ingest.publisher import InMemoryPublisher
from services.ingest.settings import IngestSettings
from services.ingest.submissions import InMemorySubmissionLog
from shared.domain.hierarchy import load_vietnam
from tests.conftest import TEST_SECRET

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy" / "prometheus"


def promtool() -> str:
    tool = shutil.which("promtool") or str(ROOT / ".cache" / "bin" / "promtool")
    if not Path(tool).exists():
        pytest.fail("promtool is missing: deploy/install.sh installs Debian's prometheus package")
    return tool


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], input=stdin, capture_output=True, text=True, timeout=60, check=False)


def test_the_compose_prometheus_config_is_valid():
    r = run("check", "config", str(PROM / "prometheus.yml"))
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_local_prometheus_config_is_valid_once_filled_in(tmp_path):
    from deploy.run import prometheus_config

    path = tmp_path / "prometheus.yml"
    path.write_text(prometheus_config("127.0.0.1:8001", "127.0.0.1:8002", "127.0.0.1:6066"))
    r = run("check", "config", str(path))
    assert r.returncode == 0, r.stdout + r.stderr


def test_alert_rules_are_valid_and_their_unit_tests_pass():
    assert run("check", "rules", str(PROM / "alerts.yml")).returncode == 0
    r = run("test", "rules", str(PROM / "alerts_test.yml"))
    assert r.returncode == 0, r.stdout + r.stderr


def test_metric_names_follow_prometheus_conventions():
    settings = IngestSettings(kafka_bootstrap_servers="x:1", mongodb_uri="mongodb://x", auth_secret=TEST_SECRET)
    app = create_app(
        settings, publisher=InMemoryPublisher(), submissions=InMemorySubmissionLog(), tree=load_vietnam(["38"])
    )
    with TestClient(app) as client:
        client.get("/healthz")
        text = client.get("/metrics").text
    from prometheus_client import CollectorRegistry, generate_latest

    from services.aggregate.metrics import AggregateMetrics
    from services.api.cache import CacheCollector, TotalsCache

    api_cache = CollectorRegistry()
    api_cache.register(CacheCollector(TotalsCache(10)))
    for exposition in (
        text,
        generate_latest(AggregateMetrics().registry).decode(),
        generate_latest(api_cache).decode(),
    ):
        r = run("check", "metrics", stdin=exposition)
        assert r.returncode == 0, r.stdout + r.stderr


def test_the_grafana_dashboard_is_json_with_panels():
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "baocao-dashboard.json").read_text())
    assert len(dashboard["panels"]) >= 6
