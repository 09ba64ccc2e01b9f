"""Reading a service's /metrics page: counter totals and histogram buckets, and their change."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Scrape:
    """All samples of one /metrics page: (sample name, sorted label items) -> value."""

    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]

    @classmethod
    def parse(cls, text: str) -> Scrape:
        samples = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                samples[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
        return cls(samples)

    def total(self, name: str) -> float:
        """Sum of a sample over all its label values (e.g. a counter over outcomes)."""
        return sum(v for (n, _), v in self.samples.items() if n == name)

    def by_label(self, name: str, label: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for (n, labels), v in self.samples.items():
            if n == name:
                key = dict(labels).get(label, "")
                out[key] = out.get(key, 0.0) + v
        return out

    def buckets(self, histogram: str) -> list[tuple[float, float]]:
        """Cumulative buckets [(le, count), ...] of an unlabelled histogram, sorted by le."""
        raw = self.by_label(f"{histogram}_bucket", "le")
        return sorted(((float(le), count) for le, count in raw.items()), key=lambda b: b[0])


def bucket_change(before: Scrape, after: Scrape, histogram: str) -> list[tuple[float, float]]:
    """The histogram of what was observed between two scrapes of the same process."""
    earlier = dict(before.buckets(histogram))
    return [(le, count - earlier.get(le, 0.0)) for le, count in after.buckets(histogram)]


async def scrape(client: httpx.AsyncClient, url: str) -> Scrape:
    response = await client.get(url.rstrip("/") + "/metrics", timeout=10)
    response.raise_for_status()
    return Scrape.parse(response.text)
