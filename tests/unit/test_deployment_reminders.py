"""The chart's optional reminder CronJob (deploy/helm/baocao/templates/reminders.yaml): valid under
the strict schemas, logging in to MongoDB and reading its secrets as every pod must, and refused
without a channel to send by. The tools are the ones tests/unit/test_deployment.py uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.test_deployment import (
    CHART,
    KUBERNETES_VERSIONS,
    RELEASE,
    kubeconform,
    pod_problems,
    rendered,
    run,
    template,
    tool,
)

ENABLED = (
    "reminders.enabled=true",
    "reminders.smtp.host=smtp.thanhhoa.gov.vn",
    "reminders.smtp.from=baocao@thanhhoa.gov.vn",
    "reminders.smtp.user=baocao",
    "reminders.webhookUrl=https://chat.thanhhoa.gov.vn/hook",
    "reminders.webhookProvinces=38\\,01",  # a string: --set reads a lone 38 as a number
)


def _job(*sets: str) -> dict[str, Any]:
    [job] = [d for d in rendered(*sets) if d["kind"] == "CronJob" and d["metadata"]["name"].endswith("-reminders")]
    assert isinstance(job, dict)
    return job


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_reminder_job_is_valid_under_strict_schemas(tmp_path: Path, version: str) -> None:
    text = template(CHART, *ENABLED)
    r = kubeconform(text, version, tmp_path)
    count = sum(1 for d in yaml.safe_load_all(text) if d)
    assert r.returncode == 0 and f"Valid: {count}, Invalid: 0" in r.stdout, r.stdout + r.stderr


def test_the_job_runs_the_tool_daily_in_vietnam_time_with_its_settings() -> None:
    job = _job(*ENABLED)
    assert (job["spec"]["schedule"], job["spec"]["timeZone"]) == ("0 8 * * *", "Asia/Ho_Chi_Minh")
    assert job["spec"]["concurrencyPolicy"] == "Forbid"
    [container] = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["python", "-m", "tools.reminders", "send"]
    env = {e["name"]: e for e in container["env"]}
    assert env["BAOCAO_SMTP_HOST"]["value"] == "smtp.thanhhoa.gov.vn"
    assert env["BAOCAO_SMTP_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "baocao-reminders",
        "key": "smtp-password",
    }
    assert env["BAOCAO_REMINDER_WEBHOOK_SECRET"]["valueFrom"]["secretKeyRef"]["key"] == "webhook-secret"
    assert env["BAOCAO_REMINDER_WEBHOOK_PROVINCES"]["value"] == "38,01"
    assert env["MONGODB_URI"]["value"].startswith("mongodb://baocao:$(BAOCAO_MONGO_PASSWORD)@")
    assert pod_problems(rendered(*ENABLED)) == []


def test_off_by_default_and_a_webhook_alone_needs_no_smtp_settings() -> None:
    assert not [d for d in rendered() if d["metadata"]["name"] == f"{RELEASE}-reminders"]
    job = _job("reminders.enabled=true", "reminders.webhookUrl=https://chat.thanhhoa.gov.vn/hook")
    [container] = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert not [e for e in container["env"] if e["name"].startswith("BAOCAO_SMTP")]


def test_enabled_without_a_channel_or_with_a_bad_url_is_refused() -> None:
    r = run(tool("helm"), "template", RELEASE, str(CHART), "--set", "reminders.enabled=true")
    assert r.returncode != 0 and "reminders.smtp.host or reminders.webhookUrl" in r.stderr
    r = run(tool("helm"), "template", RELEASE, str(CHART), "--set", "reminders.webhookUrl=chat.example")
    assert r.returncode != 0 and "webhookUrl" in r.stderr
