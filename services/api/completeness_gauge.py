"""Completeness per province and series for the period being collected, for Prometheus.

Two gauges on the API's /metrics, for each series' period being collected (of its reminder
cadence, the one with the earliest deadline not yet past: shared/domain/reminders.collecting):

- ``baocao_completeness_ratio{province, series, period}``: units that reported / units expected,
  as the completeness read counts them (services/api/views.completeness);
- ``baocao_deadline_timestamp_seconds{series, period}``: the deadline, the last instant a report
  counts as on time, in Unix seconds (``… - time()`` is the time left; a gauge of days left would
  break Prometheus's rule of base units, which promtool checks).

They are worked out in the background every ``BAOCAO_API_COMPLETENESS_GAUGE_SECONDS`` (60; 0:
never), one read of the provinces' figures per series, and a scrape reads the last result: a
scrape costs nothing and sees one refresh whole (the alert "province far behind near its
deadline" in deploy/prometheus/alerts.yml joins the two). A province expecting no unit has no
ratio.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.api.repository import TotalsReader
from shared.domain.catalog import Catalog
from shared.domain.hierarchy import OrgTree
from shared.domain.periods import parse_period
from shared.domain.reminders import collecting, vietnam_day
from shared.domain.rollup import UNITS_REPORTED

log = logging.getLogger(__name__)


class GaugeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BAOCAO_API_", extra="ignore")

    completeness_gauge_seconds: float = Field(
        default=60.0, ge=0, description="how often the completeness gauges are worked out again (0: never)"
    )


class CompletenessGauge(Collector):
    """The two gauges, from the last :meth:`refresh`."""

    def __init__(self, reader: TotalsReader, catalog: Catalog, tree: OrgTree) -> None:
        self._reader = reader
        self._catalog = catalog
        self._tree = tree
        self._ratios: list[tuple[str, str, str, float]] = []  # province, series, period, ratio
        self._deadlines: list[tuple[str, str, float]] = []  # series, period, Unix seconds

    async def refresh(self, today: date | None = None) -> None:
        day = today or vietnam_day(datetime.now(UTC))
        ratios, deadlines = [], []
        for spec in self._catalog.series.values():
            item = collecting(spec, day)
            tree = self._tree.for_period(item.period)
            provinces = [p.code for p in tree.provinces()]
            found = await self._reader.figures(provinces, [spec.key], item.period)
            last_day = parse_period(item.period).end
            for code in provinces:
                expected = tree.count(code, spec.expected_levels, on=last_day)
                if expected:
                    reported = int((found.get((code, spec.key)) or {}).get(UNITS_REPORTED, 0))
                    ratios.append((code, spec.key, item.period, reported / expected))
            deadlines.append((spec.key, item.period, item.deadline.timestamp()))
        self._ratios, self._deadlines = ratios, deadlines  # a scrape sees one refresh whole

    def collect(self) -> Iterator[GaugeMetricFamily]:
        ratio = GaugeMetricFamily(
            "baocao_completeness_ratio",
            "Units that reported / units expected, per province and series, for the period being collected",
            labels=["province", "series", "period"],
        )
        for province, series, period, value in self._ratios:
            ratio.add_metric([province, series, period], value)
        deadline = GaugeMetricFamily(
            "baocao_deadline_timestamp_seconds",
            "The deadline of the period being collected, per series: the last instant a report counts as on time",
            labels=["series", "period"],
        )
        for series, period, at in self._deadlines:
            deadline.add_metric([series, period], at)
        yield ratio
        yield deadline


async def _refresh_forever(gauge: CompletenessGauge, seconds: float) -> None:
    while True:
        try:
            await gauge.refresh()
        except Exception:
            log.exception("completeness gauge refresh failed")
        await asyncio.sleep(seconds)


@asynccontextmanager
async def completeness_gauge(
    registry: CollectorRegistry, reader: TotalsReader, catalog: Catalog, tree: OrgTree
) -> AsyncIterator[CompletenessGauge | None]:
    """The gauges registered on ``registry`` and refreshed in the background while the block runs
    (None when the setting turns them off)."""
    seconds = GaugeSettings().completeness_gauge_seconds
    if not seconds:
        yield None
        return
    gauge = CompletenessGauge(reader, catalog, tree)
    registry.register(gauge)
    task = asyncio.create_task(_refresh_forever(gauge, seconds))
    try:
        yield gauge
    finally:
        task.cancel()
        registry.unregister(gauge)
