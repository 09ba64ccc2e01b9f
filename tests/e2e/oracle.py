"""An independent oracle: the totals a careful person gets by hand from the messages sent.

Written apart from shared/rollup.py on purpose (it shares only the unit tree, which is data):
for each report, the highest revision sent wins, whatever the order of arrival; withdrawn
reports count nowhere; flows add up, stocks take each unit's latest month; a unit counts once
per (series, period) however many reports it sent.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from shared.hierarchy import OrgTree

STOCK_SERIES = {"indicator.hospital_beds"}
EXPECTED_LEVELS = {
    "study_session": {"commune", "agency"},
    "reflection": {"commune", "agency"},
    "indicator.hospital_beds": {"district"},
}


def buckets(month: str) -> list[str]:
    year, mm = int(month[:4]), int(month[5:])
    start = year - (year - 2000) % 5
    return [month, f"{year}-Q{(mm - 1) // 3 + 1}", f"{year}-H{(mm - 1) // 6 + 1}", str(year), f"{start}-{start + 5}"]


def series_of(report: dict[str, Any]) -> str:
    return report["kind"] if report["kind"] != "indicator" else f"indicator.{report['body']['indicator']}"


def numbers(report: dict[str, Any]) -> dict[str, int]:
    return {k: v for k, v in report["body"].items() if isinstance(v, int) and not isinstance(v, bool)}


def expected_totals(sent: list[dict[str, Any]], tree: OrgTree, on_time_periods: set[str]) -> dict[str, dict[str, int]]:
    """Document id -> non-zero fields ("sums.x", "reports", "units_reported", ...)."""
    final: dict[str, dict[str, Any]] = {}
    for r in sent:
        if r["report_id"] not in final or r["revision"] > final[r["report_id"]]["revision"]:
            final[r["report_id"]] = r
    # unit -> series -> bucket -> list of effective reports
    by_unit: dict[str, dict[str, dict[str, list[dict[str, Any]]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    for r in final.values():
        if r.get("withdrawn"):
            continue
        for b in buckets(r["period"]):
            by_unit[r["unit"]][series_of(r)][b].append(r)

    out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for unit, per_series in by_unit.items():
        level = tree.get(unit).level.value
        path = tree.path(unit)
        for series, per_bucket in per_series.items():
            for bucket, reports in per_bucket.items():
                if series in STOCK_SERIES:
                    latest = max(reports, key=lambda r: (r["period"], r["report_id"]))
                    own = numbers(latest)
                    own.pop("indicator", None)
                else:
                    own = defaultdict(int)
                    for r in reports:
                        for k, v in numbers(r).items():
                            own[k] += v
                expected = level in EXPECTED_LEVELS[series]
                on_time = any(r["period"] in on_time_periods for r in reports)
                for depth, code in enumerate(path):
                    doc = out[f"{code}|{series}|{bucket}"]
                    for k, v in own.items():
                        doc[f"sums.{k}"] += v
                    doc["reports"] += len(reports)
                    if expected:
                        doc["units_reported"] += 1
                        doc["units_on_time"] += int(on_time)
                    if depth == 0:
                        doc["own"] += 1
                        doc["own_on_time"] += int(on_time)
    return {k: {f: v for f, v in d.items() if v} for k, d in out.items()}


def flatten(doc: dict[str, Any]) -> dict[str, int]:
    """A stored totals document as the oracle writes it: counters and sums.x, zeros left out."""
    out = {f"sums.{k}": v for k, v in (doc.get("sums") or {}).items()}
    for k in ("reports", "units_reported", "units_on_time", "own", "own_on_time"):
        out[k] = doc.get(k, 0)
    return {k: v for k, v in out.items() if v}


def differences(mongodb_uri: str, database: str, expected: dict[str, dict[str, int]]) -> dict[str, tuple[Any, Any]]:
    """Stored totals documents that differ from the oracle: id -> (stored, expected)."""
    from pymongo import MongoClient

    mongo: MongoClient[dict[str, Any]] = MongoClient(mongodb_uri)
    try:
        stored = {d["_id"]: flatten(d) for d in mongo[database]["totals"].find({})}
    finally:
        mongo.close()
    stored = {k: v for k, v in stored.items() if v}
    return {
        k: (stored.get(k), expected.get(k)) for k in set(stored) | set(expected) if stored.get(k) != expected.get(k)
    }
