"""Demo data drawn from the five seed news reports (../shared/seeds), as real reports.

Units: Bá Thước 386 and Lang Chánh 388 (Thanh Hóa 38), Thanh Sơn 238 (Phú Thọ 25), Bình Đại 835
(Bến Tre 83), Đakrông 467 (Quảng Trị 45), plus the agencies the seeds name. After the reform of
1 July 2025 (no districts): the communes of the former Bá Thước district in the new Thanh Hóa 38,
Xã Bá Thước 14923 among them, report for 2025-Q4 (:func:`reform_2025_study_sessions`).

Where a seed gives a total (5,962 of 6,600 members at Bá Thước's conference), the demo splits it
over the communes so that the district total is exactly the seed's figure; where it gives none,
figures are deterministic and plausible, never random.

Timeliness: each report's ``submitted_at`` is when its unit sent it, mostly a couple of days after
the event, so on time (a report is due by the 15th day after its period ends: shared/domain/catalog.py);
a few of Đakrông's communes send late (:data:`LATE_SENDERS`). ``make run`` submits the reports
through ingest's own use case with that time as the receipt time (:func:`send_as_sent`), as if
ingest had received each then; ``baocao demo load`` sends them to a running ingest, which
stamps its own clock, so there every report of a past period counts as late. The current
month's reports (:func:`current_study_sessions`) are sent now and are on time either way.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from shared.domain.catalog import load_catalog
from shared.domain.hierarchy import OrgTree
from shared.domain.periods import VIETNAM_TZ, parse_period
from shared.domain.targets import Target, parse_target, target_metric, unit_path

BA_THUOC, LANG_CHANH, THANH_SON, BINH_DAI, DAKRONG = "386", "388", "238", "835", "467"
# Đakrông's communes (by their position in the district) that send some yearly reports weeks after
# the deadline (15 January for a year, 31 January for the year-end rating)
LATE_SENDERS = (1, 4, 7, 9, 12)
RESOLUTION_38 = "Nghị quyết Đại hội Đảng bộ tỉnh Thanh Hóa lần thứ XIX, nhiệm kỳ 2020-2025"
# The provincial committee's online conferences that units joined as bridge points (seeds 000 and
# 001): <organiser>/<organiser's report id>. The organiser reports the whole conference; each point
# names it, so every level counts its points and delegates once (shared/domain/conferences.py).
CONFERENCE_2020_12 = "38/38-hn-2020-12-25"
CONFERENCE_2021_11 = "38/38-hn-2021-11-05"


def split(total: int, parts: int) -> list[int]:
    """``total`` in ``parts`` integers that differ by at most one and add up exactly."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def _stamp(day: date, days_after: int = 2) -> str:
    return datetime.combine(day + timedelta(days=days_after), time(9, 0), VIETNAM_TZ).isoformat()


def communes_of(tree: OrgTree, district: str) -> list[str]:
    return [u.code for u in tree.children(district) if u.level == "commune"]


def seed_000_study_sessions(tree: OrgTree) -> list[dict[str, Any]]:
    """25 Dec 2020: Bá Thước's members study the provincial resolution online; 5,962 of 6,600
    members took part, at 313 study points; 110 delegates at the district's own point. Every
    point was one of the province's conference (seed 000: "trực tuyến từ tỉnh"): the district
    shows its 314 points and 110 delegates, and the province, whose own report of that
    conference the seed does not give, adds none of them to its own."""
    communes = communes_of(tree, BA_THUOC)
    held = date(2020, 12, 25)
    attended = split(5962, len(communes))
    total = split(6600, len(communes))
    points = split(313, len(communes))
    reports = [
        {
            "report_id": f"{code}-study-2020-12",
            "revision": 1,
            "unit": code,
            "kind": "study_session",
            "period": "2020-12",
            "submitted_at": _stamp(held),
            "body": {
                "resolution": RESOLUTION_38,
                "held_on": held.isoformat(),
                "format": "online",
                "bridge_points": points[i],
                "delegates": 0,
                "members_attended": attended[i],
                "members_total": total[i],
                "joined": CONFERENCE_2020_12,
            },
        }
        for i, code in enumerate(communes)
    ]
    reports.append(
        {
            "report_id": f"{BA_THUOC}-study-2020-12",
            "revision": 1,
            "unit": BA_THUOC,
            "kind": "study_session",
            "period": "2020-12",
            "submitted_at": _stamp(held),
            "body": {
                "resolution": RESOLUTION_38,
                "held_on": held.isoformat(),
                "format": "online",
                "bridge_points": 1,
                "delegates": 110,
                "members_attended": 0,
                "members_total": 0,
                "joined": CONFERENCE_2020_12,
            },
        }
    )
    return reports


def agencies() -> list[dict[str, str]]:
    """Seed 001's provincial hospital, and Bá Thước's 22 agency and enterprise units (seed 003:
    43 grassroots units = 21 communes + 22 agencies)."""
    out = [{"code": "38-bvdk", "name": "Đảng bộ Bệnh viện Đa khoa tỉnh Thanh Hóa", "parent": "38"}]
    out += [
        {
            "code": f"{BA_THUOC}-cq{i:02d}",
            "name": f"Đảng bộ, chi bộ cơ quan, doanh nghiệp số {i} huyện Bá Thước",
            "parent": BA_THUOC,
        }
        for i in range(1, 23)
    ]
    return out


def seed_001_hospital_conference() -> list[dict[str, Any]]:
    """5 Nov 2021: the provincial committee's online conference, 827 bridge points and 32,637
    delegates from the province down to villages, reported once by its organiser (Thanh Hóa, 38);
    the provincial hospital was one of its points and names it. The seed gives no figure for the
    hospital's own point: its 60 delegates are made up."""
    held = date(2021, 11, 5)
    resolution = "Chương trình trọng tâm, khâu đột phá thực hiện " + RESOLUTION_38
    conference = {"resolution": resolution, "held_on": held.isoformat(), "format": "online"}
    return [
        {
            "report_id": CONFERENCE_2021_11.split("/", 1)[1],
            "revision": 1,
            "unit": "38",
            "kind": "study_session",
            "period": "2021-11",
            "submitted_at": _stamp(held),
            "body": {**conference, "bridge_points": 827, "delegates": 32637, "members_attended": 0, "members_total": 0},
        },
        {
            "report_id": "38-bvdk-study-2021-11",
            "revision": 1,
            "unit": "38-bvdk",
            "kind": "study_session",
            "period": "2021-11",
            "submitted_at": _stamp(held),
            "body": {
                **conference,
                "bridge_points": 1,
                "delegates": 60,
                "members_attended": 0,
                "members_total": 0,
                "joined": CONFERENCE_2021_11,
            },
        },
    ]


def seed_003_action_programs(tree: OrgTree) -> list[dict[str, Any]]:
    """100% of Bá Thước's 43 grassroots units built their action programme; the districts'
    own programmes carry the seeds' counts of key programmes and breakthroughs."""
    adopted = date(2021, 3, 10)
    units = communes_of(tree, BA_THUOC) + [a["code"] for a in agencies() if a["parent"] == BA_THUOC]
    reports = [
        {
            "report_id": f"{code}-ap-2021-03",
            "revision": 1,
            "unit": code,
            "kind": "action_program",
            "period": "2021-03",
            "submitted_at": _stamp(adopted),
            "body": {
                "resolution": "Nghị quyết Đại hội Đảng bộ huyện Bá Thước lần thứ XXIII",
                "adopted_on": adopted.isoformat(),
                "key_programs": 2,
                "breakthroughs": 3,
                "indicators": 10 + i % 5,
            },
        }
        for i, code in enumerate(units)
    ]
    district_programs = [
        (BA_THUOC, 6, 3, 27, "2021-01"),  # seed 000
        (LANG_CHANH, 3, 2, 20, "2021-01"),  # seed 002
        (BINH_DAI, 6, 3, 4, "2021-01"),  # seed 003: 6 key tasks, 3 breakthroughs, 4 plans
        (THANH_SON, 3, 3, 25, "2021-02"),  # seed 003
    ]
    for unit, key, brk, ind, period in district_programs:
        day = date(int(period[:4]), int(period[5:]), 15)
        reports.append(
            {
                "report_id": f"{unit}-ap-{period}",
                "revision": 1,
                "unit": unit,
                "kind": "action_program",
                "period": period,
                "submitted_at": _stamp(day),
                "body": {
                    "resolution": "Nghị quyết Đại hội Đảng bộ huyện nhiệm kỳ 2020-2025",
                    "adopted_on": day.isoformat(),
                    "key_programs": key,
                    "breakthroughs": brk,
                    "indicators": ind,
                },
            }
        )
    return reports


def _indicator(unit: str, code: str, period: str, submitted: date, **values: int) -> dict[str, Any]:
    return {
        "report_id": f"{unit}-{code}-{period}",
        "revision": 1,
        "unit": unit,
        "kind": "indicator",
        "period": period,
        "submitted_at": _stamp(submitted, 0),
        "body": {"indicator": code, **values},
    }


def seed_002_004_indicators(tree: OrgTree) -> list[dict[str, Any]]:
    """Lang Chánh collected 136% of its budget plan (seed 002); Đakrông's targets (seed 004):
    120 hospital beds and 9.96 doctors per 10,000 people by 2025, new party members each year,
    communes meeting the new-rural standard, schools meeting the national standard."""
    reports = [
        _indicator(
            LANG_CHANH, "budget_revenue_vs_plan", "2023", date(2024, 1, 10), numerator=136_000, denominator=100_000
        )
    ]
    for year, beds, doctors in [(2021, 100, 36), (2022, 105, 38), (2023, 112, 41), (2024, 118, 43)]:
        reports.append(_indicator(DAKRONG, "hospital_beds", str(year), date(year, 12, 10), value=beds))
        reports.append(
            _indicator(DAKRONG, "doctors_per_10k", str(year), date(year, 12, 10), numerator=doctors, denominator=43_500)
        )
    communes = communes_of(tree, DAKRONG)
    for i, code in enumerate(communes):
        for year in (2021, 2022, 2023, 2024):
            sent = date(year + 1, 2, 20) if i in LATE_SENDERS and year == 2022 else date(year, 12, 5)
            reports.append(_indicator(code, "new_party_members", str(year), sent, value=6 + (i + year) % 5))
        reports.append(_indicator(code, "new_rural_communes", "2024", date(2024, 12, 5), value=1 if i < 3 else 0))
        reports.append(
            _indicator(code, "schools_national_standard", "2024", date(2024, 12, 5), numerator=2 + i % 2, denominator=4)
        )
    return reports


def member_ratings(tree: OrgTree) -> list[dict[str, Any]]:
    """Đakrông's year-end ratings for 2023; the target is over 85% good or better (seed 004)."""
    reports = []
    for i, code in enumerate(communes_of(tree, DAKRONG)):
        total = 60 + 7 * i
        excellent, good = total // 8, total * 3 // 4
        not_completed = i % 2
        reports.append(
            {
                "report_id": f"{code}-rating-2023",
                "revision": 1,
                "unit": code,
                "kind": "member_rating",
                "period": "2023",
                "submitted_at": _stamp(date(2024, 2, 5) if i in LATE_SENDERS else date(2024, 1, 5), 0),
                "body": {
                    "excellent": excellent,
                    "good": good,
                    "completed": total - excellent - good - not_completed,
                    "not_completed": not_completed,
                },
            }
        )
    return reports


# Seed 004: the targets of Đakrông's 6th congress (term 2020-2025) whose metric the catalog has, as
# (metric, period, what the resolution writes). "By 2025" is the term's end: the term's figure of a
# stock is its latest. The schools' targets (60 % of kindergartens and of primary schools, 45 % of
# lower-secondary schools) are per school level, and the catalog's schools indicator is not.
SEED_004_TARGETS: tuple[tuple[str, str, str], ...] = (
    ("indicator.hospital_beds.value", "2020-2025", "120"),
    ("indicator.doctors_per_10k.rate", "2020-2025", "9,96"),
    ("indicator.new_rural_communes.value", "2020-2025", "03 - 04"),
    ("indicator.new_party_members.value", "2020-2025", "450-500"),
    *(("indicator.new_party_members.value", str(year), "90-100") for year in (2021, 2022, 2023, 2024)),
    *(("member_rating.good_or_better_rate", str(year), "85%") for year in (2021, 2022, 2023, 2024)),
    *(("organisation_rating.good_or_better_rate", str(year), "85%") for year in (2021, 2022, 2023, 2024)),
)


def seed_004_targets(tree: OrgTree, at: float) -> list[Target]:
    """Đakrông's targets (:data:`SEED_004_TARGETS`), parsed as the API parses what officials type."""
    catalog = load_catalog()
    targets = []
    for metric, period, typed in SEED_004_TARGETS:
        low, high = parse_target(typed, target_metric(catalog, metric))
        path = unit_path(tree.for_period(period), DAKRONG)
        targets.append(Target(DAKRONG, metric, period, low, high, "demo (seed 004)", at, path=path))
    return targets


async def write_targets(targets: list[Target], uri: str, database: str) -> None:
    """The targets straight into the API's store (``make run``: the demo is loaded by its operator)."""
    from shared.adapters.mongo import make_client
    from shared.adapters.targets import MongoTargetStore

    client = make_client(uri, "baocao-demo")
    try:
        store = MongoTargetStore(client, database)
        await store.ensure_indexes()
        for target in targets:
            await store.put(target)
    finally:
        await client.close()


def seed_002_training_course() -> list[dict[str, Any]]:
    """26 March 2024: Lang Chánh's district party committee holds a course in party work
    (lớp bồi dưỡng nghiệp vụ công tác Đảng) for the secretaries of its village, hamlet and
    neighbourhood party cells (seed 002). The seed gives the date and who took part, not how
    many: the length and the learners are plausible, not from the seed."""
    started, ended = date(2024, 3, 26), date(2024, 3, 27)
    return [
        {
            "report_id": f"{LANG_CHANH}-course-2024-03-bi-thu-chi-bo",
            "revision": 1,
            "unit": LANG_CHANH,
            "kind": "training_course",
            "period": "2024-03",
            "submitted_at": _stamp(ended),
            "body": {
                "title": "Lớp bồi dưỡng nghiệp vụ công tác Đảng cho bí thư chi bộ thôn, bản, khu phố",
                "topic": "Nhiệm vụ trọng tâm, khâu đột phá trong xây dựng Đảng và hệ thống chính trị; "
                "nghiệp vụ công tác Đảng của bí thư chi bộ",
                "started_on": started.isoformat(),
                "ended_on": ended.isoformat(),
                "days": 2,
                "learners_enrolled": 77,
                "learners_completed": 75,
            },
        }
    ]


def organisation_ratings() -> list[dict[str, Any]]:
    """Bá Thước's district committee rates its 43 grassroots party organisations for 2023 (seed
    003: 21 commune party committees and 22 agency and enterprise units); the split over the four
    categories is plausible, not from a seed."""
    return [
        {
            "report_id": f"{BA_THUOC}-org-rating-2023",
            "revision": 1,
            "unit": BA_THUOC,
            "kind": "organisation_rating",
            "period": "2023",
            "submitted_at": _stamp(date(2024, 1, 12), 0),
            "body": {"excellent": 8, "good": 29, "completed": 5, "not_completed": 1},
        }
    ]


# Communes of the 2025 tree in Thanh Hóa 38 that took over the former Bá Thước district's
# communes (the conversion table of 2025-07-01), Xã Bá Thước first.
BA_THUOC_AREA_2025 = ["14923", "14932", "14950", "14953", "14956", "14959", "14974", "14980"]


def reform_2025_study_sessions(tree: OrgTree) -> list[dict[str, Any]]:
    """After the reform: the communes of the former Bá Thước district, now directly under the new
    Thanh Hóa 38, study the resolution of the province's 21st congress (term 2025-2030) in
    November 2025 and report for 2025-Q4; and, before it, Thị trấn Cành Nàng (the old 14923, in
    Bá Thước district 386) reports its June 2025 session. Figures are plausible, not from a seed:
    7,040 members, 6,512 of them attended (92.5%)."""
    new = tree.for_period("2025-Q4")
    communes = [c for c in BA_THUOC_AREA_2025 if c in new and new.get(c).parent == "38"]
    held = date(2025, 11, 20)
    attended = split(6512, len(communes))
    total = split(7040, len(communes))
    reports = [
        {
            "report_id": f"{code}-study-2025-Q4",
            "revision": 1,
            "unit": code,
            "kind": "study_session",
            "period": "2025-Q4",
            "submitted_at": _stamp(held),
            "body": {
                "resolution": "Nghị quyết Đại hội Đảng bộ tỉnh Thanh Hóa lần thứ XXI, nhiệm kỳ 2025-2030",
                "held_on": held.isoformat(),
                "format": "hybrid",
                "bridge_points": 3 + i % 3,
                "delegates": 0,
                "members_attended": attended[i],
                "members_total": total[i],
            },
        }
        for i, code in enumerate(communes)
    ]
    june = date(2025, 6, 10)
    reports.append(
        {
            "report_id": "14923-study-2025-06",
            "revision": 1,
            "unit": "14923",  # Thị trấn Cành Nàng, in the tree before July 2025
            "kind": "study_session",
            "period": "2025-06",
            "submitted_at": _stamp(june),
            "body": {
                "resolution": RESOLUTION_38,
                "held_on": june.isoformat(),
                "format": "in_person",
                "bridge_points": 1,
                "delegates": 12,
                "members_attended": 402,
                "members_total": 431,
            },
        }
    )
    return reports


def current_study_sessions(tree: OrgTree, now: datetime) -> list[dict[str, Any]]:
    """This month (in Vietnam time, so the first page a clerk opens has figures): the communes of
    the former Bá Thước district but the last hold a study session on the 1st (no later than
    today) and send it at ``now``. Figures are plausible, not from a seed."""
    local = now.astimezone(VIETNAM_TZ)
    period = f"{local.year}-{local.month:02d}"
    held = parse_period(period).start
    version = tree.for_period(period)
    communes = [c for c in BA_THUOC_AREA_2025 if c in version][:-1]
    return [
        {
            "report_id": f"{code}-study-{period}",
            "revision": 1,
            "unit": code,
            "kind": "study_session",
            "period": period,
            "submitted_at": now.isoformat(),
            "body": {
                "resolution": "Nghị quyết Đại hội Đảng bộ tỉnh Thanh Hóa lần thứ XXI, nhiệm kỳ 2025-2030",
                "held_on": held.isoformat(),
                "format": "in_person",
                "bridge_points": 1,
                "delegates": 0,
                "members_attended": 780 + 11 * i,
                "members_total": 860 + 9 * i,
            },
        }
        for i, code in enumerate(communes)
    ]


def all_reports(tree: OrgTree, now: datetime | None = None) -> list[dict[str, Any]]:
    return (
        seed_000_study_sessions(tree)
        + reform_2025_study_sessions(tree)
        + seed_001_hospital_conference()
        + seed_003_action_programs(tree)
        + seed_002_004_indicators(tree)
        + member_ratings(tree)
        + seed_002_training_course()
        + organisation_ratings()
        + current_study_sessions(tree, now or datetime.now(UTC))
    )


async def send_as_sent(reports: list[dict[str, Any]], settings: Any) -> dict[str, int]:
    """Submit ``reports`` through ingest's own use case (validation, the unit's tree, the
    submission log, a stamped envelope on ``reports``), each with its ``submitted_at`` as the
    receipt time: the demo's history as if ingest had received each report when it was sent.
    Only the operator of the stack can do this (the services' secret, ingest's Kafka login and
    the database); ``settings`` are ingest's (services.ingest.settings.IngestSettings)."""
    from services.ingest.metrics import IngestMetrics
    from services.ingest.publisher import KafkaPublisher
    from services.ingest.service import IngestService
    from services.ingest.submissions import MongoSubmissionLog
    from shared.adapters.mongo import make_client
    from shared.adapters.registry import AgencyRegistry
    from shared.domain.auth import Scope, mint, verify
    from shared.domain.catalog import load_catalog
    from shared.domain.hierarchy import COUNTRY, load_vietnam
    from shared.domain.reports import REPORT_ADAPTER
    from shared.domain.stamps import stamp_key

    secret = settings.auth_secret.get_secret_value()
    org = load_vietnam(settings.province_codes)
    mongo = make_client(settings.mongodb_uri, "baocao-demo")
    registry = AgencyRegistry(mongo, settings.mongodb_database, org)
    await registry.refresh()  # the demo's agencies, registered through the API before
    publisher = KafkaPublisher(
        settings.kafka_bootstrap_servers,
        settings.reports_topic,
        settings.produce_timeout_seconds,
        credentials=settings.kafka_credentials,
        stamp_key=stamp_key(secret),
    )
    await publisher.start()
    sent_at: list[datetime] = []
    service = IngestService(
        publisher,
        MongoSubmissionLog(mongo, settings.mongodb_database),
        org,
        load_catalog(),
        IngestMetrics(),
        registry.lookup,
        clock=lambda: sent_at[-1],
    )
    principal = verify(secret, mint(secret, COUNTRY, (Scope.SUBMIT,), 3600))
    counts: dict[str, int] = {}
    try:
        for raw in reports:
            sent_at.append(datetime.fromisoformat(raw["submitted_at"]).astimezone(UTC))
            outcome = await service.submit(REPORT_ADAPTER.validate_python(raw), principal, source="demo")
            counts[outcome.status.value] = counts.get(outcome.status.value, 0) + 1
    finally:
        await publisher.stop()
        await mongo.close()
    return counts


DEMO_ADMIN = "admin"


async def ensure_admin_account(uri: str, database: str, password_kept: bool) -> str | None:
    """The demo's account for the whole country, ``DEMO_ADMIN`` (role admin): created with a
    random password on the first run, and given a new one when the account is gone (a fresh
    database) or its password is no longer kept (``password_kept`` False). Never a fixed
    password: anyone who reads the code would know it. Returns the new password, for the caller
    to write owner-only, or None when nothing changed."""
    from services.api.web.accounts import AccountService, cli_actor
    from shared.adapters.accounts import MongoAccountStore
    from shared.adapters.mongo import make_client
    from shared.adapters.revocations import MongoRevocations
    from shared.domain.hierarchy import load_vietnam

    client = make_client(uri, "baocao-demo")
    try:
        store = MongoAccountStore(client, database)
        existing = await store.get(DEMO_ADMIN)
        if existing is not None and password_kept:
            return None
        password = secrets.token_urlsafe(18)
        tree = load_vietnam()
        accounts = AccountService(store, MongoRevocations(client, database), lambda: tree)
        if existing is None:
            await accounts.create(
                cli_actor(),
                username=DEMO_ADMIN,
                display_name="Quản trị toàn quốc (demo)",
                unit="VN",
                roles=["admin"],
                password=password,
            )
        else:
            await accounts.reset_password(cli_actor(), DEMO_ADMIN, password)
        return password
    finally:
        await client.close()


if __name__ == "__main__":  # python -m tools.demo: what `make run` calls, with ingest's environment
    from services.ingest.settings import IngestSettings
    from shared.domain.hierarchy import load_vietnam

    settings = IngestSettings()  # type: ignore[call-arg]  # from the environment, as the service reads it
    org = load_vietnam()
    counts = asyncio.run(send_as_sent(all_reports(org), settings))
    targets = seed_004_targets(org, datetime.now(UTC).timestamp())
    asyncio.run(write_targets(targets, settings.mongodb_uri, settings.mongodb_database))
    print(json.dumps(counts))
