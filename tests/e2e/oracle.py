"""An independent oracle: the totals a careful person gets by hand from the messages sent.

Written apart from shared/domain/rollup.py on purpose (it shares only the unit tree, which is data):
for each report, the highest revision sent wins, whatever the order of arrival; withdrawn
reports count nowhere; flows add up, stocks take each unit's latest month; a unit counts once
per (series, period) however many reports it sent; a study session that names the conference
it joined (``body.joined``: organiser unit/report id) adds its bridge points and delegates only to
its unit and the ancestors below the first one that also holds the organiser; a report is on time when its first message
arrived by the end of the 14th of its period's last month, Vietnam time (the workloads here use
kinds without grace days).

Nothing here reads the clock: the caller says when the messages arrived.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from shared.domain.hierarchy import OrgTree

STOCK_SERIES = {"indicator.hospital_beds"}
CONFERENCE_FIGURES = {"study_session": ("bridge_points", "delegates")}  # counted once per conference
EXPECTED_LEVELS = {
    "study_session": {"commune", "agency"},
    "reflection": {"commune", "agency"},
    "indicator.hospital_beds": {"district"},
}


REFORM = datetime(2025, 7, 1, tzinfo=timezone(timedelta(hours=7)))  # Resolution 202/2025/QH15


def buckets(month: str) -> list[str]:
    """The month and the coarser periods it counts in: those of the same administrative tree
    (a period belongs to the tree valid at its end: before the reform or after it)."""
    year, mm = int(month[:4]), int(month[5:])
    start = year - (year - 2000) % 5
    chain = [month, f"{year}-Q{(mm - 1) // 3 + 1}", f"{year}-H{(mm - 1) // 6 + 1}", str(year), f"{start}-{start + 5}"]
    after = ends_on(month) >= REFORM.date()  # a period belongs to the tree valid at its end
    return [b for b in chain if (ends_on(b) >= REFORM.date()) == after]


def series_of(report: dict[str, Any]) -> str:
    return report["kind"] if report["kind"] != "indicator" else f"indicator.{report['body']['indicator']}"


def numbers(report: dict[str, Any]) -> dict[str, int]:
    return {k: v for k, v in report["body"].items() if isinstance(v, int) and not isinstance(v, bool)}


DAYS_AFTER_END = 15  # the catalog's deadline of every kind the chaos workload sends


def ends_on(period: str) -> date:
    """The last day of a period."""
    if "-Q" in period:
        year, month = int(period[:4]), 3 * int(period[-1])
    elif "-H" in period:
        year, month = int(period[:4]), 6 * int(period[-1])
    elif len(period) == 4:
        year, month = int(period), 12
    elif len(period) == 9:  # a term A-B: its last year is B-1
        year, month = int(period[5:]) - 1, 12
    else:
        year, month = int(period[:4]), int(period[5:])
    return date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)


def closes_at(period: str) -> datetime:
    """The last instant a report for a period is on time: 23:59:59.999999, UTC+7, on the
    DAYS_AFTER_END-th day after the period's last day."""
    day = ends_on(period) + timedelta(days=DAYS_AFTER_END)
    return datetime(day.year, day.month, day.day, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=7)))


def expected_totals(sent: list[dict[str, Any]], tree: OrgTree, arrived_at: datetime) -> dict[str, dict[str, int]]:
    """Total id (unit|series|period) -> non-zero fields ("sums.x", "reports", "units_reported",
    ...), for messages that all arrived at ``arrived_at``."""
    final: dict[str, dict[str, Any]] = {}
    first: dict[str, dict[str, Any]] = {}
    for r in sent:
        first.setdefault(r["report_id"], r)
        if r["report_id"] not in final or r["revision"] > final[r["report_id"]]["revision"]:
            final[r["report_id"]] = r
    on_time_ids = {rid for rid, r in first.items() if arrived_at.astimezone(UTC) <= closes_at(r["period"])}
    # unit -> series -> bucket -> list of effective reports
    by_unit: dict[tuple[str, str], dict[str, dict[str, list[dict[str, Any]]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    # (unit, tree) -> ...: codes are reused across the trees, each names its own unit
    trees: dict[str, OrgTree] = {}
    for r in final.values():
        if r.get("withdrawn"):
            continue
        version = tree.for_period(r["period"])
        trees[version.tree_id] = version
        for b in buckets(r["period"]):
            by_unit[(r["unit"], version.tree_id)][series_of(r)][b].append(r)

    out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for (unit, tree_id), per_series in by_unit.items():
        level = trees[tree_id].get(unit).level.value
        path = trees[tree_id].path(unit)
        for series, per_bucket in per_series.items():
            for bucket, reports in per_bucket.items():
                # per report, how many units of the path count each figure
                reach: list[tuple[int, dict[str, int]]] = []
                if series in STOCK_SERIES:
                    latest = max(reports, key=lambda r: (r["period"], r["report_id"]))
                    own = numbers(latest)
                    own.pop("indicator", None)
                    reach.append((len(path), own))
                else:
                    for r in reports:
                        reach.extend(reaches(r, series, path, trees[tree_id]))
                expected = level in EXPECTED_LEVELS[series]
                on_time = any(r["report_id"] in on_time_ids for r in reports)
                for depth, code in enumerate(path):
                    doc = out[f"{code}|{series}|{bucket}"]
                    for stop, figures in reach:
                        for k, v in figures.items():
                            if depth < stop:
                                doc[f"sums.{k}"] += v
                    doc["reports"] += len(reports)
                    if expected:
                        doc["units_reported"] += 1
                        doc["units_on_time"] += int(on_time)
                    if depth == 0:
                        doc["own"] += 1
                        doc["own_on_time"] += int(on_time)
    return {k: {f: v for f, v in d.items() if v} for k, d in out.items()}


def reaches(r: dict[str, Any], series: str, path: list[str], tree: OrgTree) -> list[tuple[int, dict[str, int]]]:
    """A report's figures with how many units of its path count them: all of them, but for a
    joined conference's own figures, which stop at the first unit holding the organiser."""
    figures = numbers(r)
    joined = r["body"].get("joined")
    if not joined:
        return [(len(path), figures)]
    holding = set(tree.path(joined.split("/")[0]))
    stop = next((i for i, code in enumerate(path) if code in holding), len(path))
    shared = {k: v for k, v in figures.items() if k in CONFERENCE_FIGURES.get(series, ())}
    return [(len(path), {k: v for k, v in figures.items() if k not in shared}), (stop, shared)]


def flatten(doc: dict[str, Any]) -> dict[str, dict[str, int]]:
    """A stored document (one per unit, series and year or term, with its periods inside) as the
    oracle writes totals: total id -> counters and sums.x, zeros left out."""
    out = {}
    for period, figures in (doc.get("periods") or {}).items():
        flat = {f"sums.{k}": v for k, v in (figures.get("sums") or {}).items()}
        for k in ("reports", "units_reported", "units_on_time", "own", "own_on_time"):
            flat[k] = figures.get(k, 0)
        out[f"{doc['unit']}|{doc['series']}|{period}"] = {k: v for k, v in flat.items() if v}
    return out


def differences(mongodb_uri: str, database: str, expected: dict[str, dict[str, int]]) -> dict[str, tuple[Any, Any]]:
    """Stored totals documents that differ from the oracle: id -> (stored, expected)."""
    from pymongo import MongoClient

    mongo: MongoClient[dict[str, Any]] = MongoClient(mongodb_uri)
    try:
        stored = {k: v for d in mongo[database]["totals"].find({}) for k, v in flatten(d).items()}
    finally:
        mongo.close()
    stored = {k: v for k, v in stored.items() if v}
    return {
        k: (stored.get(k), expected.get(k)) for k in set(stored) | set(expected) if stored.get(k) != expected.get(k)
    }
