"""baocao's command line (kafka-python and httpx; synchronous on purpose).

    baocao token mint --unit 38 --scopes read,submit [--ttl-days 30]   needs BAOCAO_AUTH_SECRET
    baocao token revoke TOKEN [--reason ...]                          needs MONGODB_URI
    baocao account create --username U --unit 38 --role admin --name "..."   needs MONGODB_URI
    baocao account disable U | enable U | reset-password U                  needs MONGODB_URI
    baocao agency register --code 38-bvdk --name "..." --parent 38    via the API, admin token
    baocao submit FILE [--kafka]                                      a JSON report or a list
    baocao demo load                                                  agencies and seed reports
    baocao dead-letters list | replay                                 needs KAFKA_BOOTSTRAP_SERVERS

Kafka commands log in with BAOCAO_KAFKA_USERNAME/BAOCAO_KAFKA_PASSWORD (`submit --kafka` as the
``unit`` principal, with BAOCAO_TOKEN sent in the message's baocao-token header; `dead-letters` as
``admin``), or take that principal's file from BAOCAO_KAFKA_CREDENTIALS_DIR
(.run/<profile>/kafka/credentials for `make run`).

`account` commands act as the whole country's admin (whoever holds MONGODB_URI holds the data);
a password is read from standard input when it is not a terminal (one line), else asked for
twice without echo: never from an argument, which other users of the machine can read.

HTTP commands read BAOCAO_TOKEN (or --token). They find ingest and the API, first found wins:
--ingest-url/--api-url, then BAOCAO_INGEST_URL/BAOCAO_API_URL, then .run/<profile>/urls.env as
written by `make run` (profile from --profile or BAOCAO_PROFILE, default dev), then
http://127.0.0.1:8001 and :8002.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

from deploy.stack import Profile

log = logging.getLogger("baocao.cli")


DEFAULT_URLS = {"BAOCAO_INGEST_URL": "http://127.0.0.1:8001", "BAOCAO_API_URL": "http://127.0.0.1:8002"}


def resolve_url(variable: str, flag: str | None, profile: str | None, environ: Mapping[str, str] | None = None) -> str:
    """``variable`` (BAOCAO_INGEST_URL or BAOCAO_API_URL): the flag, the environment variable,
    the profile's urls.env (written by `make run`), or the default port, in that order."""
    env = os.environ if environ is None else environ
    if flag:
        return flag
    if env.get(variable):
        return env[variable]
    written = Profile(profile or env.get("BAOCAO_PROFILE") or "dev").urls().get(variable)
    return written or DEFAULT_URLS[variable]


def _need(value: str | None, name: str) -> str:
    if not value:
        sys.stderr.write(f"baocao: set {name} (or pass it as a flag)\n")
        raise SystemExit(2)
    return value


def _client(url: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)


def cmd_token_mint(args: argparse.Namespace) -> int:
    from shared.domain.auth import mint

    secret = _need(os.environ.get("BAOCAO_AUTH_SECRET"), "BAOCAO_AUTH_SECRET")
    scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
    print(mint(secret, args.unit, scopes, int(args.ttl_days * 86400)))
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    import asyncio

    from shared.adapters.mongo import make_client
    from shared.adapters.revocations import MongoRevocations
    from shared.domain.auth import verify

    secret = _need(os.environ.get("BAOCAO_AUTH_SECRET"), "BAOCAO_AUTH_SECRET")
    uri = _need(os.environ.get("MONGODB_URI"), "MONGODB_URI")
    token_id = verify(secret, args.token, now=0).token_id  # expired tokens can still be revoked

    async def revoke() -> None:
        client = make_client(uri, "baocao-cli")
        try:
            await MongoRevocations(client, os.environ.get("MONGODB_DATABASE", "baocao")).revoke(token_id, args.reason)
        finally:
            await client.close()

    asyncio.run(revoke())
    print(f"revoked token {token_id}")
    return 0


def read_password(stdin: Any = None, prompt: Callable[[str], str] | None = None) -> str:
    """A new password: the first line of ``stdin`` when it is not a terminal, else typed twice."""
    stream = stdin if stdin is not None else sys.stdin
    if not stream.isatty():
        return str(stream.readline()).rstrip("\r\n")
    ask = prompt or getpass.getpass
    first = ask("Password: ")
    if ask("Again: ") != first:
        raise AccountCommandError("password", "the two entries differ")
    return first


class AccountCommandError(ValueError):
    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")


async def account_command(args: argparse.Namespace, uri: str, database: str) -> str:
    """Runs one ``baocao account`` action on the database and says what it did."""
    from services.api.web.accounts import AccountService, audit_entry, cli_actor
    from services.api.web.session import MongoSessions
    from shared.adapters.accounts import MongoAccountStore
    from shared.adapters.audit import MongoAuditLog
    from shared.adapters.mongo import make_client
    from shared.adapters.registry import AgencyRegistry
    from shared.adapters.revocations import MongoRevocations
    from shared.domain.hierarchy import load_vietnam

    client = make_client(uri, "baocao-cli")
    try:
        registry = AgencyRegistry(client, database, load_vietnam())
        await registry.refresh()  # agencies registered at runtime are units accounts may belong to
        service = AccountService(
            MongoAccountStore(client, database),
            MongoRevocations(client, database),
            lambda: registry.tree,
            MongoSessions(client, database),
        )
        actor = cli_actor()
        if args.action == "create":
            password = None if args.no_password else read_password()
            roles = [r.strip() for value in args.role for r in value.split(",") if r.strip()]
            change = await service.create(
                actor,
                username=args.username,
                display_name=args.name,
                unit=args.unit,
                roles=roles,
                password=password,
                email=args.email or "",
            )
            said = f"created account {args.username} at {args.unit} ({', '.join(sorted(roles))})"
        elif args.action == "disable":
            change = await service.disable(actor, args.username)
            said = f"disabled account {args.username}; its sessions and tokens are refused within seconds"
        elif args.action == "enable":
            change = await service.enable(actor, args.username)
            said = f"enabled account {args.username}"
        elif args.action == "link-oidc":  # OpenID Connect (services/api/web/oidc.py)
            change = await service.link_oidc(actor, args.username, None if args.unlink else args.subject)
            linked = change.after.oidc_subject
            said = f"linked account {args.username} to {linked}" if linked else f"unlinked account {args.username}"
        else:
            change = await service.reset_password(actor, args.username, read_password())
            said = f"set a new password for {args.username}; its sessions ended"
        detail = f"baocao account {args.action}, by {getpass.getuser()} on the command line"
        await MongoAuditLog(client, database).append(audit_entry(registry.tree, change, actor, time.time(), detail))
        return said
    finally:
        await client.close()


def cmd_account(args: argparse.Namespace) -> int:
    import asyncio

    from services.api.web.accounts import UnknownAccount
    from shared.adapters.accounts import AccountExists
    from shared.domain.accounts import AccountError

    uri = _need(os.environ.get("MONGODB_URI"), "MONGODB_URI")
    try:
        print(asyncio.run(account_command(args, uri, os.environ.get("MONGODB_DATABASE", "baocao"))))
    except (AccountError, AccountCommandError) as exc:
        sys.stderr.write(f"baocao: {exc}\n")
        return 2
    except AccountExists as exc:
        if str(exc).startswith("oidc_subject"):
            sys.stderr.write(f"baocao: another account is linked to {args.subject} already\n")
            return 1
        sys.stderr.write(f"baocao: an account named {args.username} exists already\n")
        return 1
    except UnknownAccount:
        sys.stderr.write(f"baocao: no account named {args.username}\n")
        return 1
    return 0


def cmd_agency_register(args: argparse.Namespace) -> int:
    with _client(args.api_url, args.token) as http:
        r = http.post("/v1/admin/agencies", json={"code": args.code, "name": args.name, "parent": args.parent})
    print(json.dumps(r.json(), ensure_ascii=False, indent=2))
    return 0 if r.status_code in (200, 201) else 1


def _load_reports(path: Path) -> list[dict[str, Any]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, list) else [data]


def submit_http(reports: list[dict[str, Any]], ingest_url: str, token: str, batch: int = 1000) -> dict[str, int]:
    counts: dict[str, int] = {}
    with _client(ingest_url, token) as http:
        for i in range(0, len(reports), batch):
            r = http.post("/v1/reports/batch", json=reports[i : i + batch])
            if r.status_code not in (200, 503):
                raise RuntimeError(f"ingest answered {r.status_code}: {r.text[:500]}")
            for item in r.json()["results"]:
                counts[item["status"]] = counts.get(item["status"], 0) + 1
                if item["status"] not in ("accepted", "duplicate"):
                    log.warning("report %s: %s %s", item.get("report_id"), item["status"], item.get("errors"))
    return counts


def _kafka_options(principal: str) -> dict[str, str]:
    from shared.adapters.kafka_credentials import client_options, principal_credentials

    return client_options(principal_credentials(os.environ, principal))


def submit_kafka(reports: list[dict[str, Any]], bootstrap: str, topic: str, token: str) -> int:
    """Straight to Kafka, as a unit's own system would: keyed by unit code, acks=all, the token
    in the baocao-token header (the aggregator checks it; shared/domain/stamps.py)."""
    from kafka import KafkaProducer

    from shared.domain.stamps import TOKEN_HEADER

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, **_kafka_options("unit"))
    headers = [(TOKEN_HEADER, token.encode())]
    try:
        futures = [
            producer.send(
                topic,
                key=str(r.get("unit", "")).encode(),
                value=json.dumps(r, ensure_ascii=False).encode(),
                headers=headers,
            )
            for r in reports
        ]
        for f in futures:
            f.get(timeout=30)
    finally:
        producer.close()
    return len(reports)


def cmd_submit(args: argparse.Namespace) -> int:
    reports = _load_reports(Path(args.file))
    if args.kafka:
        bootstrap = _need(os.environ.get("KAFKA_BOOTSTRAP_SERVERS"), "KAFKA_BOOTSTRAP_SERVERS")
        token = _need(args.token, "BAOCAO_TOKEN")
        n = submit_kafka(reports, bootstrap, os.environ.get("BAOCAO_REPORTS_TOPIC", "reports"), token)
        print(f"{n} reports produced to Kafka")
        return 0
    counts = submit_http(reports, args.ingest_url, args.token)
    print(json.dumps(counts))
    return 0 if set(counts) <= {"accepted", "duplicate"} else 1


def load_demo(api_url: str, ingest_url: str, token: str, ingest_env: Mapping[str, str] | None = None) -> dict[str, int]:
    """Registers the demo's agencies, then submits its reports: to the running ingest, which
    receives them now (every report of a past period is then late), or, given ingest's own
    environment (``make run``), through ingest's use case at the times the units sent them
    (``python -m tools.demo``: tools/demo.send_as_sent)."""
    import subprocess

    from shared.domain.hierarchy import load_vietnam
    from tools import demo

    with _client(api_url, token) as http:
        for agency in demo.agencies():
            # the seeds' agencies, of 2020-2021: their parents are units of the tree before 2025-07-01
            r = http.post("/v1/admin/agencies", params={"tree": "legacy"}, json=agency)
            if r.status_code not in (200, 201):
                raise RuntimeError(f"registering {agency['code']}: {r.status_code} {r.text[:300]}")
    if ingest_env is None:
        return submit_http(demo.all_reports(load_vietnam()), ingest_url, token)
    done = subprocess.run(
        [sys.executable, "-m", "tools.demo"],
        env={**os.environ, **ingest_env},
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        raise RuntimeError(f"demo reports as sent: exit {done.returncode}: {done.stderr[-1000:]}")
    counts: dict[str, int] = json.loads(done.stdout.strip().splitlines()[-1])
    return counts


def cmd_demo_load(args: argparse.Namespace) -> int:
    print(json.dumps(load_demo(args.api_url, args.ingest_url, args.token)))
    return 0


def cmd_dead_letters(args: argparse.Namespace) -> int:
    """List or replay the dead letters present now. Replay remembers how far it got (a consumer
    group's committed offsets), so running it twice does not resend; what fails again comes back
    as a new dead letter, which the next replay picks up after a further fix."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    from shared.domain.stamps import STAMP_HEADER, TOKEN_HEADER

    bootstrap = _need(os.environ.get("KAFKA_BOOTSTRAP_SERVERS"), "KAFKA_BOOTSTRAP_SERVERS")
    dead = os.environ.get("BAOCAO_DEAD_LETTER_TOPIC", "reports.dead-letter")
    reports_topic = os.environ.get("BAOCAO_REPORTS_TOPIC", "reports")
    replay = args.action == "replay"
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id="baocao-dead-letter-replay",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **_kafka_options("admin"),
    )
    producer = (
        KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, **_kafka_options("admin"))
        if replay
        else None
    )
    n = 0
    try:
        parts = [TopicPartition(dead, p) for p in sorted(consumer.partitions_for_topic(dead) or ())]
        consumer.assign(parts)
        end = consumer.end_offsets(parts)  # stop here: replayed letters that fail again come after
        for tp in parts:
            committed = consumer.committed(tp) if replay else None
            consumer.seek(tp, committed or 0)
        while any(consumer.position(tp) < end[tp] for tp in parts):
            for tp, records in consumer.poll(timeout_ms=1000).items():
                for msg in records:
                    if msg.offset >= end[tp]:
                        continue
                    headers = {k: v.decode(errors="replace") for k, v in msg.headers or []}
                    if producer is not None:
                        source = f"{msg.topic}/{msg.partition}/{msg.offset}".encode()
                        # the original's token or stamp, so the replay is checked as the original was
                        kept = [(k, v) for k, v in msg.headers or [] if k in (TOKEN_HEADER, STAMP_HEADER)]
                        producer.send(
                            reports_topic,
                            key=msg.key,
                            value=msg.value,
                            headers=[("baocao-replayed-from", source), *kept],
                        ).get(timeout=30)
                    else:
                        value = (msg.value or b"")[:300].decode(errors="replace")
                        print(
                            json.dumps(
                                {
                                    "offset": msg.offset,
                                    "reason": headers.get("baocao-reason"),
                                    "detail": headers.get("baocao-detail"),
                                    "source": headers.get("baocao-source"),
                                    "value": value,
                                },
                                ensure_ascii=False,
                            )
                        )
                    n += 1
        if replay:
            consumer.commit({tp: _offset_meta(end[tp]) for tp in parts})
    finally:
        consumer.close()
        if producer:
            producer.close()
    print(f"{n} dead letters {'replayed' if replay else 'listed'}", file=sys.stderr)
    return 0


def _offset_meta(offset: int) -> Any:
    from kafka.structs import OffsetAndMetadata

    return OffsetAndMetadata(offset, "", -1)


def account_parsers(sub: Any) -> None:
    account = sub.add_parser("account", help="people's accounts (needs MONGODB_URI)")
    actions = account.add_subparsers(dest="action", required=True)
    c = actions.add_parser("create", help="a new account; its password from stdin or typed twice")
    c.add_argument("--username", required=True)
    c.add_argument("--unit", required=True, help="unit code, or VN for the whole country")
    c.add_argument("--role", required=True, action="append", help="clerk, reviewer, viewer or admin (repeatable)")
    c.add_argument("--name", required=True, help="the person's name, as the pages show it")
    c.add_argument("--email", help="where reminders go (optional)")
    c.add_argument("--no-password", action="store_true", help="signs in only through OpenID Connect")
    c.set_defaults(func=cmd_account)
    for name, help_text in (
        ("disable", "refuse its sessions and tokens everywhere"),
        ("enable", "let it in again"),
        ("reset-password", "a new password from stdin or typed twice; its sessions end"),
    ):
        p = actions.add_parser(name, help=help_text)
        p.add_argument("username")
        p.set_defaults(func=cmd_account)
    link = actions.add_parser("link-oidc", help="sign in through the OpenID Connect provider as this account")
    link.add_argument("username")
    which = link.add_mutually_exclusive_group(required=True)
    which.add_argument("--subject", help='the identity, "<issuer> <sub>" as the ID tokens name it')
    which.add_argument("--unlink", action="store_true", help="no identity signs in as this account any more")
    link.set_defaults(func=cmd_account)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="baocao", description="baocao command line")
    sub = parser.add_subparsers(dest="command", required=True)

    def http_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("--token", default=os.environ.get("BAOCAO_TOKEN"))
        p.add_argument("--api-url", help="default: BAOCAO_API_URL, the profile's urls.env, :8002")
        p.add_argument("--ingest-url", help="default: BAOCAO_INGEST_URL, the profile's urls.env, :8001")
        p.add_argument("--profile", help="whose .run/<profile>/urls.env to read (BAOCAO_PROFILE, dev)")

    token = sub.add_parser("token", help="mint or revoke access tokens").add_subparsers(dest="action", required=True)
    m = token.add_parser("mint")
    m.add_argument("--unit", required=True, help="unit code, or VN for the whole country")
    m.add_argument("--scopes", required=True, help="comma-separated: submit,read,stream,admin,approve")
    m.add_argument("--ttl-days", type=float, default=30)
    m.set_defaults(func=cmd_token_mint)
    r = token.add_parser("revoke")
    r.add_argument("token")
    r.add_argument("--reason", default="revoked by admin")
    r.set_defaults(func=cmd_token_revoke)

    account_parsers(sub)

    agency = sub.add_parser("agency", help="register agencies").add_subparsers(dest="action", required=True)
    a = agency.add_parser("register")
    a.add_argument("--code", required=True)
    a.add_argument("--name", required=True)
    a.add_argument("--parent", required=True)
    http_flags(a)
    a.set_defaults(func=cmd_agency_register)

    s = sub.add_parser("submit", help="submit a report file (one JSON report or a list)")
    s.add_argument("file")
    s.add_argument("--kafka", action="store_true", help="produce straight to Kafka instead of ingest")
    http_flags(s)
    s.set_defaults(func=cmd_submit)

    demo = sub.add_parser("demo", help="demo data").add_subparsers(dest="action", required=True)
    d = demo.add_parser("load")
    http_flags(d)
    d.set_defaults(func=cmd_demo_load)

    dl = sub.add_parser("dead-letters", help="list or replay dead letters")
    dl.add_argument("action", choices=["list", "replay"])
    dl.set_defaults(func=cmd_dead_letters)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)
    # kafka-python says so of every SCRAM login, whose password never crosses the wire
    logging.getLogger("kafka.net.sasl.scram").setLevel(logging.ERROR)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    if hasattr(args, "api_url"):
        args.api_url = resolve_url("BAOCAO_API_URL", args.api_url, args.profile)
        args.ingest_url = resolve_url("BAOCAO_INGEST_URL", args.ingest_url, args.profile)
    if (
        getattr(args, "token", "x") is None
        and args.command in ("agency", "submit", "demo")
        and not getattr(args, "kafka", False)
    ):
        sys.stderr.write("baocao: set BAOCAO_TOKEN or pass --token\n")
        return 2
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
