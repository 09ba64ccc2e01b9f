"""Realistic reports over the real administrative tree, generated deterministically from a seed.

Reports are plain dicts in the shape ingest's ``ReportIn.model_dump(mode="json")`` produces, so
the same dicts can be POSTed to ingest or wrapped in the envelope ingest puts on Kafka
(:func:`envelope`). Report ids carry the run id, so runs never collide.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from shared.domain.hierarchy import Level, OrgTree

Report = dict[str, Any]

# background traffic, in the tree before July 2025 (the workload's units are its communes and
# districts; a 2025 month after June belongs to the 2025 tree); probes use earlier years
YEAR = 2024
MONTHS = [f"{YEAR}-{m:02d}" for m in range(1, 13)]
READ_PERIODS = [*MONTHS, f"{YEAR}-Q1", f"{YEAR}-Q2", f"{YEAR}-H1", str(YEAR), "2020-2025"]
PROBE_MONTHS = [f"{y}-{m:02d}" for y in range(2000, YEAR) for m in range(1, 13)]
RESOLUTION = "Nghị quyết Đại hội Đảng bộ tỉnh lần thứ XX, nhiệm kỳ 2025-2030"
FORMATS = ("in_person", "online", "hybrid")
# Shares of the mixed backlog: kind -> weight. Corrections and withdrawals come on top.
MIX = {
    "study_session": 50,
    "reflection": 15,
    "action_program": 10,
    "indicator": 15,
    "member_rating": 5,
}
CORRECTION_SHARE = 0.08
WITHDRAWAL_SHARE = 0.01
RECENT = 20_000  # earlier reports a correction or withdrawal may revise


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def envelope(report: Report, received_at: str | None = None, source: str = "bench") -> bytes:
    """The JSON ingest publishes for an accepted report (services/ingest/service.py)."""
    doc = {"report": report, "received_at": received_at or now_iso(), "source": source}
    return json.dumps(doc, ensure_ascii=False).encode()


def kafka_message(report: Report, tree: OrgTree) -> tuple[bytes, bytes]:
    """(key, value) as ingest produces them: keyed by province code (bench.kafka_limits sends
    each to that province's partition, as ingest does)."""
    return tree.path(report["unit"])[-1].encode(), envelope(report)


class Workload:
    """Generates reports for one run. ``run_id`` makes report ids unique across runs."""

    def __init__(self, tree: OrgTree, run_id: str, seed: int = 1) -> None:
        self.tree = tree
        self.run_id = run_id
        self.rng = random.Random(seed)
        units = [u for p in tree.provinces() for u in tree.subtree(p.code)]
        self.communes = [u.code for u in units if u.level == Level.COMMUNE]
        self.districts = [u.code for u in units if u.level == Level.DISTRICT]
        self.provinces = [p.code for p in tree.provinces()]
        self._serial = 0
        self._recent: list[Report] = []
        self._probe_communes: dict[str, list[str]] = {}

    # ------------------------------------------------------------------ ids and bodies

    def _next_id(self, tag: str) -> str:
        self._serial += 1
        return f"b{self.run_id}-{tag}-{self._serial}"

    def _base(self, tag: str, unit: str, kind: str, period: str, body: dict[str, Any]) -> Report:
        return {
            "report_id": self._next_id(tag),
            "revision": 1,
            "unit": unit,
            "period": period,
            "submitted_at": now_iso(),
            "withdrawn": False,
            "kind": kind,
            "body": body,
        }

    def _day(self, month: str) -> str:
        return f"{month}-{self.rng.randint(1, 28):02d}"

    def study_body(self, month: str, delegates: int | None = None) -> dict[str, Any]:
        total = self.rng.randint(30, 600)
        return {
            "resolution": RESOLUTION,
            "held_on": self._day(month),
            "format": self.rng.choice(FORMATS),
            "bridge_points": self.rng.randint(0, 12),
            "delegates": self.rng.randint(0, 60) if delegates is None else delegates,
            "members_attended": self.rng.randint(total * 3 // 4, total),
            "members_total": total,
        }

    def _kind_body(self, kind: str, period: str) -> dict[str, Any]:
        """A body for every kind but ``indicator``; ``period`` is a month except for ratings."""
        rng = self.rng
        if kind == "study_session":
            return self.study_body(period)
        if kind == "reflection":
            required = rng.randint(20, 500)
            submitted = rng.randint(0, required)
            return {
                "resolution": RESOLUTION,
                "members_submitted": submitted,
                "members_required": required,
            }
        if kind == "action_program":
            return {
                "resolution": RESOLUTION,
                "adopted_on": self._day(period),
                "key_programs": rng.randint(1, 8),
                "breakthroughs": rng.randint(0, 3),
                "indicators": rng.randint(5, 40),
            }
        if kind == "member_rating":
            good = rng.randint(50, 400)
            return {
                "excellent": good // 5,
                "good": good,
                "completed": rng.randint(0, 50),
                "not_completed": rng.randint(0, 5),
            }
        raise ValueError(f"no generator for kind {kind!r}")

    def _fresh(self, kind: str) -> tuple[str, str, dict[str, Any]]:
        """(unit, period, body) of a new report of ``kind`` from a random unit."""
        month = self.rng.choice(MONTHS)
        if kind == "indicator":
            return self._indicator_body(month)
        period = str(YEAR) if kind == "member_rating" else month
        return self.rng.choice(self.communes), period, self._kind_body(kind, period)

    def _indicator_body(self, month: str) -> tuple[str, str, dict[str, Any]]:
        """(unit, period, body) of an indicator report: new members or schools (a ratio) from a
        commune, hospital beds from a district."""
        rng = self.rng
        which = rng.random()
        if which < 0.5:
            return (
                rng.choice(self.communes),
                month,
                {"indicator": "new_party_members", "value": rng.randint(0, 9)},
            )
        if which < 0.8:
            den = rng.randint(1, 6)
            body = {
                "indicator": "schools_national_standard",
                "numerator": rng.randint(0, den),
                "denominator": den,
            }
            return rng.choice(self.communes), month, body
        return (
            rng.choice(self.districts),
            month,
            {"indicator": "hospital_beds", "value": rng.randint(80, 900)},
        )

    # ------------------------------------------------------------------ streams of reports

    def study_sessions(self, n: int, tag: str = "ss") -> list[Report]:
        """``n`` first revisions of study_session reports from random communes, months of YEAR."""
        out = []
        for _ in range(n):
            month = self.rng.choice(MONTHS)
            out.append(
                self._base(
                    tag,
                    self.rng.choice(self.communes),
                    "study_session",
                    month,
                    self.study_body(month),
                )
            )
        return out

    def mixed(self, n: int, tag: str = "mx") -> Iterator[Report]:
        """``n`` reports of every kind; about 8 % correct and 1 % withdraw an earlier one."""
        kinds, weights = list(MIX), list(MIX.values())
        for _ in range(n):
            roll = self.rng.random()
            if self._recent and roll < CORRECTION_SHARE + WITHDRAWAL_SHARE:
                yield self._revise(withdraw=roll < WITHDRAWAL_SHARE)
                continue
            kind = self.rng.choices(kinds, weights)[0]
            unit, period, body = self._fresh(kind)
            report = self._base(tag, unit, kind, period, body)
            self._remember(report)
            yield report

    def _remember(self, report: Report) -> None:
        if len(self._recent) < RECENT:
            self._recent.append(report)
        else:
            self._recent[self.rng.randrange(RECENT)] = report

    def _revise(self, withdraw: bool) -> Report:
        """The next revision of a recent report: a correction of its figures, or a withdrawal."""
        slot = self.rng.randrange(len(self._recent))
        prior = self._recent[slot]
        revised = {**prior, "revision": prior["revision"] + 1, "submitted_at": now_iso()}
        if withdraw:
            revised["withdrawn"] = True
            self._recent[slot] = self._recent[-1]
            self._recent.pop()
            return revised
        if prior["kind"] == "indicator":
            revised["body"] = _nudged_indicator(prior["body"])
        else:
            revised["body"] = self._kind_body(prior["kind"], prior["period"])
        self._recent[slot] = revised
        return revised

    # ------------------------------------------------------------------ freshness probes

    def probe_target(self, group: int) -> tuple[str, str]:
        """(province, month) reserved for probe group ``group``: no other report touches it."""
        province = self.provinces[group % len(self.provinces)]
        return province, PROBE_MONTHS[(group // len(self.provinces)) % len(PROBE_MONTHS)]

    def probe(self, group: int, bit: int) -> Report:
        """A study_session report whose ``delegates`` is 2**bit, from the bit-th commune of the
        group's province, in the group's reserved month."""
        province, month = self.probe_target(group)
        if province not in self._probe_communes:
            self._probe_communes[province] = [u.code for u in self.tree.subtree(province) if u.level == Level.COMMUNE]
        commune = self._probe_communes[province][bit]
        return self._base(f"p{group}", commune, "study_session", month, self.study_body(month, delegates=2**bit))


def _nudged_indicator(body: dict[str, Any]) -> dict[str, Any]:
    """A corrected indicator body: same indicator, figures moved a little, still valid."""
    if "value" in body:
        return {**body, "value": body["value"] + 1}
    return {**body, "denominator": body["denominator"] + 1}
