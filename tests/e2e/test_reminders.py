"""Reminders against the running services' data: the year-end member rating of 2025 (due at the
end of 2026-01-31, reminded 14, 7 and 1 days before) in province 38 of the 2025 tree, three
communes having reported. `python -m tools.reminders send` reminds every other commune once, by
e-mail to its clerks (a local SMTP server) and by the webhook (a local receiver, first answering
503), and a second run sends nothing. The API lists the same units, and an old district 386 of
the legacy tree in January 2025."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Any

import pytest
from pymongo import MongoClient

from shared.adapters.accounts import MongoAccountStore
from shared.adapters.mongo import make_client
from shared.domain.accounts import Account, Role
from shared.domain.hierarchy import TREE_2025, load_vietnam
from tests.conftest import wait_until
from tests.mail_receivers import SmtpReceiver, WebhookReceiver
from tools.reminders import REMINDERS_SENT, SIGNATURE_HEADER, signature

pytestmark = pytest.mark.e2e

SECRET = "webhook-secret-" + "s" * 32
TODAY = "2026-01-17"  # 14 days before the deadline of the year 2025's member rating
TREE = load_vietnam(["38"]).version_named(TREE_2025)
COMMUNES = [u.code for u in TREE.children("38")]
REPORTED = COMMUNES[:3]
WITH_CLERK = COMMUNES[3]  # has not reported: its clerk gets a mail
CLERK_OF_REPORTED = REPORTED[0]  # has reported: its clerk gets none


def _rating(unit: str) -> dict[str, Any]:
    return {
        "report_id": f"{unit}-rating-2025",
        "revision": 1,
        "unit": unit,
        "kind": "member_rating",
        "period": "2025",
        "submitted_at": "2026-01-05T09:00:00+07:00",
        "body": {"excellent": 10, "good": 50, "completed": 30, "not_completed": 2},
    }


async def _clerks(uri: str, database: str) -> None:
    mongo: Any = make_client(uri, "test-reminders")
    store = MongoAccountStore(mongo, database)
    for name, unit in (("van.thu.a", WITH_CLERK), ("van.thu.b", CLERK_OF_REPORTED)):
        scope = tuple(f"{TREE_2025}:{c}" for c in TREE.path(unit))
        await store.create(
            Account(name, name, unit, frozenset({Role.CLERK}), email=f"{name}@xa{unit}.gov.vn", scope=scope)
        )
    await mongo.close()


def _send(env: dict[str, str], smtp: SmtpReceiver, hook: WebhookReceiver) -> subprocess.CompletedProcess[str]:
    settings = {
        **os.environ,
        "MONGODB_URI": env["MONGODB_URI"],
        "MONGODB_DATABASE": env["MONGODB_DATABASE"],
        "BAOCAO_PROVINCES": "38",
        "BAOCAO_SMTP_HOST": "127.0.0.1",
        "BAOCAO_SMTP_PORT": str(smtp.port),
        "BAOCAO_SMTP_FROM": "baocao@thanhhoa.gov.vn",
        "BAOCAO_SMTP_STARTTLS": "false",
        "BAOCAO_REMINDER_WEBHOOK_URL": hook.url,
        "BAOCAO_REMINDER_WEBHOOK_SECRET": SECRET,
        "BAOCAO_REMINDER_WEBHOOK_BACKOFF_SECONDS": "0.1",
    }
    command = [sys.executable, "-m", "tools.reminders", "send", "--today", TODAY]
    return subprocess.run(command, env=settings, capture_output=True, text=True, timeout=300, check=False)


def test_each_unit_not_reported_is_reminded_once(system: Any) -> None:
    env = system.namespace.env
    with system.client(system.ingest.url) as http:
        answer = http.post("/v1/reports/batch", json=[_rating(u) for u in REPORTED]).json()
        assert answer["accepted"] == 3, answer
    wait_until(
        lambda: system.totals("38", "2025")["completeness"]["member_rating"]["units_reported"] == 3,
        timeout=90,
        what="three member ratings counted in province 38",
    )
    asyncio.run(_clerks(env["MONGODB_URI"], env["MONGODB_DATABASE"]))
    expected = TREE.count("38", ["commune", "agency"])
    missing = expected - 3

    with system.client(system.api.url) as http:
        listed = http.get("/v1/reminders/due", params={"unit": "38", "on": TODAY, "within_days": 14}).json()
        [rating] = [d for d in listed["due"] if d["series"] == "member_rating"]
        assert (rating["period"], rating["tree"], rating["days_left"], rating["reminder_step"]) == (
            "2025",
            "2025",
            14,
            14,
        )
        assert rating["completeness"]["units_reported"] == 3 and len(rating["not_reported"]) == missing
        # the rating of party organisations falls due with it (the same deadline and steps): expected
        # of the province itself in the 2025 tree, which has no districts
        [organisations] = [d for d in listed["due"] if d["series"] == "organisation_rating"]
        assert organisations["reminder_step"] == 14 and [u["code"] for u in organisations["not_reported"]] == ["38"]
        # the legacy tree: district 386, the year 2024, nobody has reported
        old = http.get("/v1/reminders/due", params={"unit": "386", "on": "2025-01-17", "within_days": 14}).json()
        [old_rating] = [d for d in old["due"] if d["series"] == "member_rating"]
        assert (old_rating["period"], old_rating["tree"]) == ("2024", "legacy")
        assert len(old_rating["not_reported"]) == load_vietnam(["38"]).count("386", ["commune", "agency"])

    with SmtpReceiver() as smtp, WebhookReceiver(fail_first=1) as hook:
        first = _send(env, smtp, hook)
        assert first.returncode == 0, first.stderr
        due = missing + 1  # the communes for the members' rating, the province for the organisations'
        assert f'"sent": {due}' in first.stdout and '"failed": 0' in first.stdout
        [mail] = smtp.messages
        assert mail.rcpt_to == [f"van.thu.a@xa{WITH_CLERK}.gov.vn"]
        assert mail.message["Subject"] == (
            "[baocao] Nhắc nộp báo cáo Xếp loại đảng viên cuối năm (year-end rating of party members) "
            "kỳ 2025: hạn 31/01/2026 (còn 14 ngày)"
        )
        assert "hết ngày 31/01/2026 (giờ Việt Nam)" in mail.message.get_content()
        assert hook.attempts == due + 1  # the first was answered 503 and sent again
        units = sorted(b["unit"]["code"] for b in hook.bodies())
        assert units == sorted([c for c in COMMUNES if c not in REPORTED] + ["38"])
        for headers, body in hook.posts:
            assert headers[SIGNATURE_HEADER.lower()] == signature(SECRET, body)

        second = _send(env, smtp, hook)
        assert second.returncode == 0, second.stderr
        assert '"sent": 0' in second.stdout and f'"already_sent": {due}' in second.stdout
        assert len(smtp.messages) == 1 and len(hook.posts) == due

    mongo: MongoClient[dict[str, Any]]
    with MongoClient(env["MONGODB_URI"]) as mongo:
        sent: list[dict[str, Any]] = list(mongo[env["MONGODB_DATABASE"]][REMINDERS_SENT].find({}))
    assert len(sent) == due and {d["state"] for d in sent} == {"sent"}
    assert {d["_id"] for d in sent if "email" in d["channels"]} == {f"2025:{WITH_CLERK}|member_rating|2025|14"}
