"""The sending deadline ("hạn nộp") as the pages show it: the end of the catalog's
``deadline.days_after_end``-th day after the period's last day, Vietnam time (shared/domain/periods.py)."""

from __future__ import annotations

from shared.domain.catalog import INDICATOR_KIND, load_catalog
from shared.domain.periods import PeriodError, deadline, parse_period

EXAMPLE_PERIOD = "2025-03"


def deadline_of(series: str, period: str) -> str | None:
    """ "hết ngày 15/04/2025 (giờ Việt Nam)" for a series and a period; None when either is unknown."""
    spec = load_catalog().series.get(series)
    try:
        p = parse_period(period)
    except PeriodError:
        return None
    if spec is None:
        return None
    return f"hết ngày {deadline(p, spec.days_after_end):%d/%m/%Y} (giờ Việt Nam)"


def deadline_rule(kind: str) -> str:
    """The rule for a report kind, with an example, for the report form ("" for an unknown kind)."""
    catalog = load_catalog()
    if kind == INDICATOR_KIND:
        days = {ind.series.days_after_end for ind in catalog.indicators.values()}
        if len(days) != 1:
            return "theo từng chỉ tiêu, tính từ ngày cuối của kỳ (giờ Việt Nam)"
        n, example = days.pop(), EXAMPLE_PERIOD
    else:
        spec = catalog.kinds.get(kind)
        if spec is None or spec.series is None:
            return ""
        n = spec.series.days_after_end
        example = EXAMPLE_PERIOD if "month" in spec.periods else "2025"
    due = deadline(parse_period(example), n)
    return f"hết ngày thứ {n} sau ngày cuối của kỳ, giờ Việt Nam (vd. kỳ {example}: hết ngày {due:%d/%m/%Y})"
