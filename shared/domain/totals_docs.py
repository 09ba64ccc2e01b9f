"""The stored shape of the totals: one MongoDB document per (unit, series, span).

    {"_id": "38|study_session|2020", "unit": "38", "series": "study_session", "span": "2020",
     "parents": ["38"], "province": "38", "part": 5, "version": 1764..., "updated_at": ...,
     "periods": {"2020-12": {"sums": {"members_attended": 5962, ...}, "reports": 1,
                             "units_reported": 1, "units_on_time": 1},
                 "2020-Q4": {...}, "2020-H2": {...}, "2020": {...}}}

The span is the period's year (months, quarters, half-years, the year) or its congress term, so
a report touches two documents per unit and ancestor, not one per enclosing period. Every figure
of every period is computed by the aggregator (a quarter's units_reported is not the sum of its
months'). Zero figures and empty periods are left out. The read API reads one period's figures
of them at a time (services/api/repository.py).
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

from shared.domain.periods import span_of
from shared.domain.rollup import COUNTERS, TotalsDoc, doc_id


@lru_cache(maxsize=256)
def _layout(names: tuple[str, ...]) -> tuple[tuple[bool, str], ...]:
    """Per position of a figures vector: (is a summed field, its stored name)."""
    return tuple((n.startswith("sums."), n[5:] if n.startswith("sums.") else n) for n in names)


def to_stored(doc: TotalsDoc, version: int, part: int, updated_at: datetime) -> dict[str, Any]:
    layout = _layout(doc.names)
    periods: dict[str, dict[str, Any]] = {}
    for period, vector in doc.periods.items():
        out: dict[str, Any] = {}
        sums: dict[str, int] = {}
        for (summed, name), value in zip(layout, vector, strict=True):
            if value:
                (sums if summed else out)[name] = value
        if sums:
            out["sums"] = sums
        periods[period] = out
    return {
        "_id": doc.id,
        "unit": doc.unit,
        "series": doc.series,
        "span": doc.span,
        "parents": list(doc.parents),
        "province": doc.province,
        "part": part,
        "version": version,
        "updated_at": updated_at,
        "periods": periods,
    }


def stored_from_views(views: list[dict[str, Any]], part: int = 0, version: int = 1) -> dict[str, dict[str, Any]]:
    """Stored documents holding the given per-period figures (each with unit, series, period,
    parents, sums and counters): how fixtures are written in the shape the aggregator stores."""
    out: dict[str, dict[str, Any]] = {}
    for v in views:
        span = span_of(v["period"])
        did = doc_id(v["unit"], v["series"], span)
        doc = out.setdefault(
            did,
            {
                "_id": did,
                "unit": v["unit"],
                "series": v["series"],
                "span": span,
                "parents": list(v["parents"]),
                "province": v["parents"][-1],
                "part": part,
                "version": version,
                "periods": {},
            },
        )
        figures: dict[str, Any] = {c: v[c] for c in COUNTERS if v.get(c)}
        if v.get("sums"):
            figures["sums"] = dict(v["sums"])
        if figures:
            doc["periods"][v["period"]] = figures
    return out
