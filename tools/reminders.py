"""Reminders before the deadline: ``python -m tools.reminders send [--today YYYY-MM-DD] [--dry-run]``.

A job for cron or a Kubernetes CronJob (deploy/helm), run once a day or more often. For every
series and period with a reminder step due today (shared/domain/reminders.py), every unit
expected to send it that has not is reminded once per (unit, series, period, step):

- by e-mail over SMTP (``BAOCAO_SMTP_*``), one message to the e-mail addresses of the unit's
  accounts with the clerk role (the "accounts" collection, through the AccountStore port);
- and/or by a webhook (``BAOCAO_REMINDER_WEBHOOK_URL``): a JSON POST per reminder, for the chat
  tools some provinces use (``BAOCAO_REMINDER_WEBHOOK_PROVINCES``: only theirs; the payload names
  the province, for a bridge that posts to each province's channel), its body signed with HMAC-SHA256 under
  ``BAOCAO_REMINDER_WEBHOOK_SECRET`` in the header ``X-Baocao-Signature: sha256=<hex>``, retried on
  a timeout, a refused connection, 429 or 5xx.

Each reminder is claimed in MongoDB ("reminders_sent", ``_id`` the reminder's key) before it is
sent, so two runs at once or one after the other never send it twice; a claim whose sending
failed is given back, so the next run tries again. A run that dies between claiming and sending
leaves the claim: that reminder is not sent (at most once, never twice). ``--dry-run`` reads
everything, sends and records nothing, and prints what it would send.

Exit status: 0 when every due reminder was sent (or had already been), 1 when one could not be
sent, 2 for a setting that is wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import smtplib
import ssl
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.header import Header
from email.mime.text import MIMEText
from email.utils import formataddr, formatdate, make_msgid
from typing import Any, Protocol

import httpx
from pydantic import AliasChoices, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.api.repository import TotalsReader
from shared.adapters.accounts import AccountStore
from shared.domain.accounts import Role
from shared.domain.catalog import Catalog, SeriesSpec, load_catalog
from shared.domain.hierarchy import OrgTree, Unit
from shared.domain.reminders import Due, Message, due, expected_units, message, reminder_key, vietnam_day
from shared.settings import describe_missing

REMINDERS_SENT = "reminders_sent"
SIGNATURE_HEADER = "X-Baocao-Signature"


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class ReminderSettings(BaseSettings):
    """Where the job reads (MongoDB) and how it sends (SMTP, a webhook). Neither channel is required
    on its own; a run with neither stops at once and says so."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    mongodb_uri: str = Field(validation_alias=_env("MONGODB_URI", "mongodb_uri"))
    mongodb_database: str = Field(default="baocao", validation_alias=_env("MONGODB_DATABASE", "mongodb_database"))
    provinces: str = Field(default="", validation_alias=_env("BAOCAO_PROVINCES", "provinces"))
    smtp_host: str = Field(default="", validation_alias=_env("BAOCAO_SMTP_HOST", "smtp_host"))
    smtp_port: int = Field(default=587, ge=1, le=65535, validation_alias=_env("BAOCAO_SMTP_PORT", "smtp_port"))
    smtp_user: str = Field(default="", validation_alias=_env("BAOCAO_SMTP_USER", "smtp_user"))
    smtp_password: SecretStr = Field(
        default=SecretStr(""), validation_alias=_env("BAOCAO_SMTP_PASSWORD", "smtp_password")
    )
    smtp_from: str = Field(default="", validation_alias=_env("BAOCAO_SMTP_FROM", "smtp_from"))
    smtp_starttls: bool = Field(default=True, validation_alias=_env("BAOCAO_SMTP_STARTTLS", "smtp_starttls"))
    smtp_timeout_seconds: float = Field(default=30.0, gt=0, validation_alias=_env("BAOCAO_SMTP_TIMEOUT_SECONDS"))
    webhook_url: str = Field(default="", validation_alias=_env("BAOCAO_REMINDER_WEBHOOK_URL", "webhook_url"))
    webhook_secret: SecretStr = Field(
        default=SecretStr(""), validation_alias=_env("BAOCAO_REMINDER_WEBHOOK_SECRET", "webhook_secret")
    )
    webhook_timeout_seconds: float = Field(
        default=10.0, gt=0, validation_alias=_env("BAOCAO_REMINDER_WEBHOOK_TIMEOUT_SECONDS", "webhook_timeout_seconds")
    )
    webhook_attempts: int = Field(
        default=3, ge=1, le=10, validation_alias=_env("BAOCAO_REMINDER_WEBHOOK_ATTEMPTS", "webhook_attempts")
    )
    webhook_backoff_seconds: float = Field(
        default=2.0, ge=0, validation_alias=_env("BAOCAO_REMINDER_WEBHOOK_BACKOFF_SECONDS", "webhook_backoff_seconds")
    )
    webhook_provinces: str = Field(
        default="",
        validation_alias=_env("BAOCAO_REMINDER_WEBHOOK_PROVINCES", "webhook_provinces"),
        description="comma-separated codes of the provinces whose units' reminders go to the webhook (empty: all)",
    )

    @model_validator(mode="after")
    def _channels(self) -> ReminderSettings:
        if not self.smtp_host and not self.webhook_url:
            raise ValueError("set BAOCAO_SMTP_HOST (e-mail) or BAOCAO_REMINDER_WEBHOOK_URL (webhook), or both")
        if self.smtp_host and not self.smtp_from:
            raise ValueError("BAOCAO_SMTP_FROM is required with BAOCAO_SMTP_HOST (the sender's address)")
        if self.smtp_user and not self.smtp_password.get_secret_value():
            raise ValueError("BAOCAO_SMTP_PASSWORD is required with BAOCAO_SMTP_USER")
        if self.webhook_url and len(self.webhook_secret.get_secret_value()) < 32:
            raise ValueError(
                "BAOCAO_REMINDER_WEBHOOK_SECRET (at least 32 characters) is required with BAOCAO_REMINDER_WEBHOOK_URL"
            )
        if self.webhook_url and not self.webhook_url.startswith(("https://", "http://")):
            raise ValueError("BAOCAO_REMINDER_WEBHOOK_URL must be an http:// or https:// URL")
        return self

    @property
    def province_codes(self) -> list[str] | None:
        return [c.strip() for c in self.provinces.split(",") if c.strip()] or None

    @property
    def webhook_province_codes(self) -> frozenset[str] | None:
        return frozenset(c.strip() for c in self.webhook_provinces.split(",") if c.strip()) or None


# ---------------------------------------------------------------------------- the ports


class SentLog(Protocol):
    async def sent(self, key: str) -> bool:
        """Whether the reminder ``key`` was sent (or claimed by a run now sending it)."""
        ...

    async def claim(self, key: str, record: dict[str, Any]) -> bool:
        """Claim ``key`` for sending: False when it is already claimed."""
        ...

    async def done(self, key: str, channels: list[str]) -> None: ...

    async def release(self, key: str) -> None:
        """Give a claim back after its sending failed, for the next run."""
        ...


class InMemorySentLog:
    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}

    async def sent(self, key: str) -> bool:
        return key in self.records

    async def claim(self, key: str, record: dict[str, Any]) -> bool:
        if key in self.records:
            return False
        self.records[key] = {**record, "state": "claimed"}
        return True

    async def done(self, key: str, channels: list[str]) -> None:
        self.records[key].update(state="sent", channels=channels)

    async def release(self, key: str) -> None:
        self.records.pop(key, None)


class MongoSentLog:
    """``reminders_sent``: one document per reminder, ``_id`` its key; the insert of the claim is
    what decides who sends (a duplicate key: someone has)."""

    def __init__(self, client: Any, database: str) -> None:
        self._col = client[database][REMINDERS_SENT]

    async def sent(self, key: str) -> bool:
        return await self._col.find_one({"_id": key}, projection={"_id": 1}) is not None

    async def claim(self, key: str, record: dict[str, Any]) -> bool:
        from pymongo.errors import DuplicateKeyError

        try:
            await self._col.insert_one({"_id": key, **record, "state": "claimed"})
        except DuplicateKeyError:
            return False
        return True

    async def done(self, key: str, channels: list[str]) -> None:
        await self._col.update_one(
            {"_id": key}, {"$set": {"state": "sent", "channels": channels, "sent_at": time.time()}}
        )

    async def release(self, key: str) -> None:
        await self._col.delete_one({"_id": key, "state": "claimed"})


class Mailer(Protocol):
    async def send(self, mail: MIMEText) -> None: ...

    async def close(self) -> None: ...


class SmtpMailer:
    """One SMTP connection per run, opened at the first message (STARTTLS and a login when set),
    opened again if the server dropped it."""

    def __init__(self, settings: ReminderSettings) -> None:
        self._settings = settings
        self._smtp: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        s = self._settings
        smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_seconds)
        if s.smtp_starttls:
            smtp.starttls(context=ssl.create_default_context())
        if s.smtp_user:
            smtp.login(s.smtp_user, s.smtp_password.get_secret_value())
        return smtp

    def _send(self, mail: MIMEText) -> None:
        for attempt in (1, 2):
            if self._smtp is None:
                self._smtp = self._connect()
            try:
                self._smtp.send_message(mail)
                return
            except smtplib.SMTPServerDisconnected:
                self._smtp = None
                if attempt == 2:
                    raise

    async def send(self, mail: MIMEText) -> None:
        await asyncio.to_thread(self._send, mail)

    async def close(self) -> None:
        if self._smtp is not None:
            smtp, self._smtp = self._smtp, None
            try:
                await asyncio.to_thread(smtp.quit)
            except smtplib.SMTPException:
                pass


class WebhookFailed(Exception):
    pass


def signature(secret: str, body: bytes) -> str:
    """The value of ``X-Baocao-Signature`` for ``body``: a receiver computes it again and compares."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Webhook:
    """POSTs a reminder as JSON with its HMAC signature; retried on a timeout, a connection error,
    429 or 5xx, ``attempts`` times in all, waiting ``backoff`` x the attempt between."""

    def __init__(self, settings: ReminderSettings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._url = settings.webhook_url
        self._secret = settings.webhook_secret.get_secret_value()
        self._attempts = settings.webhook_attempts
        self._backoff = settings.webhook_backoff_seconds
        self._client = httpx.AsyncClient(timeout=settings.webhook_timeout_seconds, transport=transport)

    async def post(self, payload: dict[str, Any]) -> None:
        body = json.dumps(payload, ensure_ascii=False, sort_keys=True).encode()
        headers = {"Content-Type": "application/json; charset=utf-8", SIGNATURE_HEADER: signature(self._secret, body)}
        last = ""
        for attempt in range(1, self._attempts + 1):
            try:
                answer = await self._client.post(self._url, content=body, headers=headers)
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if answer.status_code < 300:
                    return
                last = f"HTTP {answer.status_code}"
                if answer.status_code != 429 and answer.status_code < 500:
                    break  # the receiver refuses it: sending it again would not help
            if attempt < self._attempts:
                await asyncio.sleep(self._backoff * attempt)
        raise WebhookFailed(f"webhook {self._url}: {last} after {attempt} attempt(s)")

    async def close(self) -> None:
        await self._client.aclose()


# ---------------------------------------------------------------------------- the run


@dataclass
class Outcome:
    sent: int = 0
    already: int = 0  # sent by an earlier run
    no_recipient: int = 0  # no clerk with an e-mail address, and no webhook
    failed: int = 0
    would_send: list[dict[str, Any]] = field(default_factory=list)  # --dry-run

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "sent": self.sent,
            "already_sent": self.already,
            "no_recipient": self.no_recipient,
            "failed": self.failed,
        }
        if self.would_send:
            out["would_send"] = len(self.would_send)
        return out


@dataclass
class Job:
    """One run's parts: what it reads, what it records in, how it sends (``mailer`` or ``webhook``
    may be None: that channel is not set up)."""

    catalog: Catalog
    trees: OrgTree
    reader: TotalsReader
    accounts: AccountStore
    log: SentLog
    mailer: Mailer | None
    webhook: Webhook | None
    smtp_from: str = ""
    webhook_provinces: frozenset[str] | None = None  # None: every province's units go to the webhook
    dry_run: bool = False
    outcome: Outcome = field(default_factory=Outcome)
    _clerks: dict[str, list[str]] = field(default_factory=dict)

    async def clerks(self, tree: OrgTree, code: str) -> list[str]:
        """The e-mail addresses of the enabled accounts at ``code`` (in ``tree``) with the clerk role."""
        scope = f"{tree.tree_id}:{code}"
        if scope not in self._clerks:
            found: list[str] = []
            after: str | None = None
            while True:
                page = await self.accounts.page(scope, after)
                found += [
                    a.email
                    for a in page.items
                    if a.unit == code and Role.CLERK in a.roles and not a.disabled and a.email
                ]
                if page.next is None:
                    break
                after = page.next
            self._clerks[scope] = sorted(set(found))
        return self._clerks[scope]

    async def run(self, today: date) -> Outcome:
        for spec in self.catalog.series.values():
            for item in due(spec, today, max(spec.reminder_days)):
                if item.step is not None:
                    await self._series_period(spec, item)
        return self.outcome

    async def _series_period(self, spec: SeriesSpec, item: Due) -> None:
        tree = self.trees.for_period(item.period)
        for province in sorted(tree.provinces(), key=lambda u: u.code):
            units = expected_units(tree, province.code, spec, item.period)
            reported = await self.reader.reporting_units([u.code for u in units], spec.key, item.period)
            for unit in units:
                if unit.code not in reported:
                    await self._remind(tree, province, unit, spec, item)

    async def _remind(self, tree: OrgTree, province: Unit, unit: Unit, spec: SeriesSpec, item: Due) -> None:
        assert item.step is not None
        key = reminder_key(tree.tree_id, unit.code, spec.key, item.period, item.step)
        if await self.log.sent(key):
            self.outcome.already += 1
            return
        emails = await self.clerks(tree, unit.code) if self.mailer else []
        webhook = self.webhook if self.webhook_provinces is None or province.code in self.webhook_provinces else None
        if not emails and webhook is None:
            self.outcome.no_recipient += 1
            return
        text = message(unit, spec.title, item)
        payload = _payload(key, tree, province, unit, spec, item, text)
        if self.dry_run:
            self.outcome.would_send.append({**payload, "emails": emails})
            return
        if not await self.log.claim(key, _record(payload, emails)):
            self.outcome.already += 1
            return
        try:
            channels = await self._send(text, emails, payload, webhook)
        except Exception as exc:  # noqa: BLE001 - one reminder's failure must not stop the others
            await self.log.release(key)
            self.outcome.failed += 1
            print(json.dumps({"reminder": key, "error": f"{type(exc).__name__}: {exc}"}), file=sys.stderr)
            return
        await self.log.done(key, channels)
        self.outcome.sent += 1

    async def _send(
        self, text: Message, emails: list[str], payload: dict[str, Any], webhook: Webhook | None
    ) -> list[str]:
        channels = []
        if emails and self.mailer is not None:
            await self.mailer.send(_mail(self.smtp_from, emails, text))
            channels.append("email")
        if webhook is not None:
            await webhook.post(payload)
            channels.append("webhook")
        return channels


def _payload(
    key: str, tree: OrgTree, province: Unit, unit: Unit, spec: SeriesSpec, item: Due, text: Message
) -> dict[str, Any]:
    return {
        "type": "baocao.reminder",
        "id": key,
        "tree": tree.tree_id,
        "province": {"code": province.code, "name": province.name},
        "unit": {"code": unit.code, "name": unit.name, "level": unit.level.value},
        "series": spec.key,
        "title": spec.title,
        "period": item.period,
        "deadline": item.deadline.isoformat(),
        "days_left": item.days_left,
        "days_before": item.step,
        "subject": text.subject,
        "text": text.body,
    }


def _record(payload: dict[str, Any], emails: list[str]) -> dict[str, Any]:
    keep = ("tree", "series", "period", "deadline", "days_before")
    return {
        **{k: payload[k] for k in keep},
        "unit": payload["unit"]["code"],
        "emails": emails,
        "claimed_at": time.time(),
    }


def _mail(sender: str, emails: list[str], text: Message) -> MIMEText:
    """The e-mail, 7-bit throughout (any server takes it). Built with the compat32 classes: the
    default policy's folding of a long Vietnamese subject drops the space between two encoded words
    ("loại đảng" arrives as "loạiđảng"); Header keeps each space inside an encoded word."""
    mail = MIMEText(text.body, "plain", "utf-8")  # base64 body
    mail["From"] = formataddr(("Hệ thống báo cáo baocao", sender), charset="utf-8")
    mail["To"] = ", ".join(emails)
    mail["Subject"] = Header(text.subject, "utf-8")  # type: ignore[assignment]  # compat32 takes a Header
    mail["Date"] = formatdate(usegmt=True)
    mail["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    return mail


# ---------------------------------------------------------------------------- the command


async def send(settings: ReminderSettings, today: date, dry_run: bool) -> Outcome:
    """A run against MongoDB and the channels ``settings`` set up."""
    from services.api.repository import MongoTotalsReader
    from shared.adapters.accounts import MongoAccountStore
    from shared.adapters.mongo import make_client
    from shared.adapters.registry import AgencyRegistry
    from shared.domain.hierarchy import load_vietnam

    mongo: Any = make_client(settings.mongodb_uri, "baocao-reminders")
    registry = AgencyRegistry(mongo, settings.mongodb_database, load_vietnam(settings.province_codes))
    await registry.refresh()  # the agencies registered at runtime are expected too
    job = Job(
        catalog=load_catalog(),
        trees=registry.tree,
        reader=MongoTotalsReader(mongo, settings.mongodb_database),
        accounts=MongoAccountStore(mongo, settings.mongodb_database),
        log=MongoSentLog(mongo, settings.mongodb_database),
        mailer=SmtpMailer(settings) if settings.smtp_host else None,
        webhook=Webhook(settings) if settings.webhook_url else None,
        smtp_from=settings.smtp_from,
        webhook_provinces=settings.webhook_province_codes,
        dry_run=dry_run,
    )
    try:
        return await job.run(today)
    finally:
        for channel in (job.mailer, job.webhook):
            if channel is not None:
                await channel.close()
        await mongo.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.reminders", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("send", help="send the reminders due today (once each)")
    run.add_argument(
        "--today", type=date.fromisoformat, help="the day to act as, YYYY-MM-DD (default: today in Vietnam)"
    )
    run.add_argument("--dry-run", action="store_true", help="print what would be sent; send and record nothing")
    args = parser.parse_args(argv)
    try:
        settings = ReminderSettings()  # type: ignore[call-arg]  # read from the environment
    except ValidationError as exc:
        print(describe_missing(exc), file=sys.stderr)
        return 2
    today = args.today or vietnam_day(datetime.now(UTC))
    outcome = asyncio.run(send(settings, today, args.dry_run))
    for item in outcome.would_send:
        print(json.dumps(item, ensure_ascii=False))
    print(json.dumps({"today": today.isoformat(), "dry_run": args.dry_run, **outcome.summary()}))
    return 1 if outcome.failed else 0


if __name__ == "__main__":
    sys.exit(main())
