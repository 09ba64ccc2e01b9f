"""The reminder job (tools/reminders.py) with fakes: who is reminded, once per step, by which
channel, and what a failure or a dry run leaves. The job as a process against the running
services, a local SMTP server and a webhook receiver is tests/e2e/test_reminders.py."""

from __future__ import annotations

import asyncio
import json
from datetime import date
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.mime.text import MIMEText
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from services.api.repository import InMemoryTotalsReader
from shared.adapters.accounts import InMemoryAccountStore
from shared.domain.accounts import Account, Role
from shared.domain.catalog import Catalog, load_catalog
from shared.domain.hierarchy import LEGACY, Level, OrgTree
from shared.domain.totals_docs import stored_from_views
from tools.reminders import InMemorySentLog, Job, ReminderSettings, Webhook, signature

SECRET = "w" * 40
STUDY = load_catalog().series["study_session"]
CATALOG = Catalog(kinds={}, indicators={}, series={"study_session": STUDY})


def _tree() -> OrgTree:
    tree = OrgTree(LEGACY)
    tree.add("38", "Tỉnh Thanh Hóa", Level.PROVINCE, None)
    tree.add("386", "Huyện Thọ Xuân", Level.DISTRICT, "38")
    tree.add("14923", "Thị trấn Cành Nàng", Level.COMMUNE, "386")
    tree.add("14926", "Xã Điền Thượng", Level.COMMUNE, "386")
    tree.add("14929", "Xã Điền Hạ", Level.COMMUNE, "386")
    return tree


def _account(username: str, unit: str, role: Role, email: str | None, disabled: bool = False) -> Account:
    scope = tuple(f"{LEGACY}:{c}" for c in _tree().path(unit))
    return Account(username, username, unit, frozenset({role}), email=email, disabled=disabled, scope=scope)


def _accounts() -> InMemoryAccountStore:
    store = InMemoryAccountStore()
    for account in (
        _account("van.thu.1", "14926", Role.CLERK, "vanthu1@dienthuong.gov.vn"),
        _account("van.thu.2", "14926", Role.CLERK, "vanthu2@dienthuong.gov.vn"),
        _account("nguoi.xem", "14926", Role.VIEWER, "xem@dienthuong.gov.vn"),  # not a clerk
        _account("da.nghi", "14926", Role.CLERK, "nghi@dienthuong.gov.vn", disabled=True),
        _account("khong.thu", "14926", Role.CLERK, None),  # no address
        _account("huyen", "386", Role.CLERK, "huyen@thoxuan.gov.vn"),  # the district: not its communes'
    ):
        store.accounts[account.username] = account
    return store


# Thị trấn Cành Nàng has sent its March study session report; its two neighbours have not
DOCS = stored_from_views(
    [
        {
            "unit": "14923",
            "series": "study_session",
            "period": "2025-03",
            "parents": ["14923", "386", "38"],
            "sums": {"members_attended": 5, "members_total": 6},
            "reports": 1,
            "units_reported": 1,
            "own": 1,
        }
    ]
)


class Mailbox:
    def __init__(self, fail: bool = False) -> None:
        self.mails: list[EmailMessage] = []
        self.fail = fail

    async def send(self, mail: MIMEText) -> None:
        if self.fail:
            raise ConnectionRefusedError("the SMTP server is down")
        parsed = message_from_bytes(mail.as_bytes(), policy=policy.default)  # as a mail client reads it
        assert isinstance(parsed, EmailMessage)
        self.mails.append(parsed)

    async def close(self) -> None:
        pass


def _settings(**more: Any) -> ReminderSettings:
    base: dict[str, Any] = {
        "mongodb_uri": "mongodb://unused",
        "smtp_host": "smtp.test",
        "smtp_from": "baocao@tinh.gov.vn",
    }
    return ReminderSettings(**{**base, **more})


def _job(mailbox: Mailbox | None, webhook: Webhook | None = None, log: InMemorySentLog | None = None) -> Job:
    return Job(
        catalog=CATALOG,
        trees=_tree(),
        reader=InMemoryTotalsReader(DOCS),
        accounts=_accounts(),
        log=log or InMemorySentLog(),
        mailer=mailbox,
        webhook=webhook,
        smtp_from="baocao@tinh.gov.vn",
    )


def test_each_clerk_of_each_unit_not_reported_gets_one_mail() -> None:
    mailbox, log = Mailbox(), InMemorySentLog()
    outcome = asyncio.run(_job(mailbox, log=log).run(date(2025, 4, 8)))  # 7 days before 15 April
    assert outcome.summary() == {"sent": 1, "already_sent": 0, "no_recipient": 1, "failed": 0}  # 14929: no clerk
    [mail] = mailbox.mails
    assert mail["To"] == "vanthu1@dienthuong.gov.vn, vanthu2@dienthuong.gov.vn"
    assert mail["Date"] and mail["Message-ID"].endswith("@tinh.gov.vn>")
    assert mail["From"].addresses[0].addr_spec == "baocao@tinh.gov.vn"
    assert mail["From"].addresses[0].display_name == "Hệ thống báo cáo baocao"
    assert mail["Subject"].startswith("[baocao] Nhắc nộp báo cáo Hội nghị học tập, quán triệt nghị quyết")
    assert "kỳ 2025-03: hạn 15/04/2025 (còn 7 ngày)" in mail["Subject"]
    body = mail.get_content()
    assert "Kính gửi Xã Điền Thượng (mã 14926)" in body and "hết ngày 15/04/2025 (giờ Việt Nam)" in body
    assert log.records["legacy:14926|study_session|2025-03|7"]["state"] == "sent"
    assert log.records["legacy:14926|study_session|2025-03|7"]["emails"] == [
        "vanthu1@dienthuong.gov.vn",
        "vanthu2@dienthuong.gov.vn",
    ]


def test_a_second_run_sends_nothing_twice_and_the_next_step_once() -> None:
    mailbox, log = Mailbox(), InMemorySentLog()
    for day in (8, 8, 10):  # step 7 on the 8th; the 10th (5 days left) is still step 7
        asyncio.run(_job(mailbox, log=log).run(date(2025, 4, day)))
    assert len(mailbox.mails) == 1
    again = asyncio.run(_job(mailbox, log=log).run(date(2025, 4, 10)))
    assert (again.sent, again.already) == (0, 1)
    asyncio.run(_job(mailbox, log=log).run(date(2025, 4, 12)))  # 3 days left: step 3
    asyncio.run(_job(mailbox, log=log).run(date(2025, 4, 15)))  # the last day: step 1
    asyncio.run(_job(mailbox, log=log).run(date(2025, 4, 16)))  # past the deadline: nothing
    assert ["còn 7 ngày" in m["Subject"] for m in mailbox.mails] == [True, False, False]
    assert "còn 3 ngày" in mailbox.mails[1]["Subject"] and "hôm nay là ngày cuối" in mailbox.mails[2]["Subject"]


def test_a_missed_day_is_made_up_once_with_the_latest_step() -> None:
    mailbox = Mailbox()
    asyncio.run(_job(mailbox).run(date(2025, 4, 13)))  # no run from the 8th: 2 days left, step 3
    [mail] = mailbox.mails
    assert "còn 2 ngày" in mail["Subject"]


def test_nothing_before_the_first_step() -> None:
    mailbox = Mailbox()
    outcome = asyncio.run(_job(mailbox).run(date(2025, 4, 7)))  # 8 days left
    assert outcome.summary() == {"sent": 0, "already_sent": 0, "no_recipient": 0, "failed": 0}


def test_a_failed_mail_is_released_for_the_next_run() -> None:
    log = InMemorySentLog()
    outcome = asyncio.run(_job(Mailbox(fail=True), log=log).run(date(2025, 4, 8)))
    assert (outcome.sent, outcome.failed) == (0, 1)
    assert log.records == {}
    mailbox = Mailbox()
    assert asyncio.run(_job(mailbox, log=log).run(date(2025, 4, 8))).sent == 1
    assert len(mailbox.mails) == 1


def test_dry_run_sends_and_records_nothing() -> None:
    mailbox, log = Mailbox(), InMemorySentLog()
    job = _job(mailbox, log=log)
    job.dry_run = True
    outcome = asyncio.run(job.run(date(2025, 4, 8)))
    assert mailbox.mails == [] and log.records == {}
    [would] = outcome.would_send
    assert would["unit"]["code"] == "14926" and would["emails"] == [
        "vanthu1@dienthuong.gov.vn",
        "vanthu2@dienthuong.gov.vn",
    ]


class Hook:
    """A webhook receiver behind httpx.MockTransport: answers ``statuses`` in turn, then 200."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(self.statuses.pop(0) if self.statuses else 200)


def _webhook(hook: Hook, attempts: int = 3) -> Webhook:
    settings = _settings(
        webhook_url="https://chat.tinh.gov.vn/hook",
        webhook_secret=SecretStr(SECRET),
        webhook_backoff_seconds=0,
        webhook_attempts=attempts,
    )
    return Webhook(settings, transport=httpx.MockTransport(hook))


def test_the_webhook_gets_every_unit_signed_and_retries_a_5xx() -> None:
    hook = Hook(503, 503)
    mailbox = Mailbox()
    outcome = asyncio.run(_job(mailbox, _webhook(hook)).run(date(2025, 4, 8)))
    # 14929 has no clerk but the webhook: both units are reminded
    assert (outcome.sent, outcome.no_recipient, outcome.failed) == (2, 0, 0)
    assert len(hook.requests) == 4  # two refused, then one per unit
    bodies = [json.loads(r.content) for r in hook.requests[2:]]
    assert sorted(b["unit"]["code"] for b in bodies) == ["14926", "14929"]
    first = bodies[0]
    assert (first["series"], first["period"], first["days_before"], first["days_left"]) == (
        "study_session",
        "2025-03",
        7,
        7,
    )
    assert first["province"] == {"code": "38", "name": "Tỉnh Thanh Hóa"}
    assert first["deadline"] == "2025-04-15T23:59:59.999999+07:00"
    for request in hook.requests:
        assert request.headers["X-Baocao-Signature"] == signature(SECRET, request.content)
        assert request.headers["Content-Type"] == "application/json; charset=utf-8"
    assert len(mailbox.mails) == 1  # e-mail to 14926's clerks as well


def test_the_webhook_only_for_the_provinces_named() -> None:
    hook, mailbox = Hook(), Mailbox()
    job = _job(mailbox, _webhook(hook))
    job.webhook_provinces = frozenset({"01"})  # not Thanh Hóa: its units get e-mail only
    outcome = asyncio.run(job.run(date(2025, 4, 8)))
    assert (outcome.sent, outcome.no_recipient) == (1, 1) and hook.requests == [] and len(mailbox.mails) == 1
    job = _job(Mailbox(), _webhook(hook))
    job.webhook_provinces = frozenset({"38"})
    assert asyncio.run(job.run(date(2025, 4, 8))).sent == 2 and len(hook.requests) == 2
    assert _settings(webhook_provinces=" 38, 01 ").webhook_province_codes == frozenset({"38", "01"})


def test_the_webhook_gives_up_after_its_attempts_and_the_claim_is_released() -> None:
    hook, log = Hook(500, 500, 500, 500, 500, 500), InMemorySentLog()
    outcome = asyncio.run(_job(None, _webhook(hook), log=log).run(date(2025, 4, 8)))
    assert (outcome.sent, outcome.failed) == (0, 2) and len(hook.requests) == 6
    assert log.records == {}


def test_the_webhook_does_not_retry_a_refusal() -> None:
    hook = Hook(400, 400)
    outcome = asyncio.run(_job(None, _webhook(hook)).run(date(2025, 4, 8)))
    assert outcome.failed == 2 and len(hook.requests) == 2


@pytest.mark.parametrize(
    ("more", "names"),
    [
        ({"smtp_host": ""}, "BAOCAO_SMTP_HOST"),
        ({"smtp_from": ""}, "BAOCAO_SMTP_FROM"),
        ({"smtp_user": "u"}, "BAOCAO_SMTP_PASSWORD"),
        ({"webhook_url": "https://x.vn/h"}, "BAOCAO_REMINDER_WEBHOOK_SECRET"),
        ({"webhook_url": "ftp://x.vn/h", "webhook_secret": SecretStr(SECRET)}, "http:// or https://"),
    ],
)
def test_settings_name_what_is_missing(more: dict[str, Any], names: str) -> None:
    with pytest.raises(ValueError, match=names):
        _settings(**more)
