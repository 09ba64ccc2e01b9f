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

    @classmethod
    def merged(cls, scrapes: list[Scrape]) -> Scrape:
        """The pages of several processes as one: each sample summed over them (counters and
        histograms of workers sharing the load)."""
        samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for page in scrapes:
            for key, value in page.samples.items():
                samples[key] = samples.get(key, 0.0) + value
        return cls(samples)

    def total(self, name: str) -> float:
        """Sum of a sample over all its label values (e.g. a counter over outcomes)."""
        return sum(v for (n, _), v in self.samples.items() if n == name)

    def by_label(self, name: str, label: str, **where: str) -> dict[str, float]:
        """Values of sample ``name`` summed per value of ``label``, over the samples whose other
        labels match ``where``."""
        out: dict[str, float] = {}
        for (n, items), v in self.samples.items():
            labels = dict(items)
            if n == name and all(labels.get(k) == w for k, w in where.items()):
                key = labels.get(label, "")
                out[key] = out.get(key, 0.0) + v
        return out

    def buckets(self, histogram: str, **where: str) -> list[tuple[float, float]]:
        """Cumulative buckets [(le, count), ...] of a histogram, sorted by le."""
        raw = self.by_label(f"{histogram}_bucket", "le", **where)
        return sorted(((float(le), count) for le, count in raw.items()), key=lambda b: b[0])


def bucket_change(before: Scrape, after: Scrape, histogram: str, **where: str) -> list[tuple[float, float]]:
    """The histogram of what was observed between two scrapes of the same process."""
    earlier = dict(before.buckets(histogram, **where))
    return [(le, n - earlier.get(le, 0.0)) for le, n in after.buckets(histogram, **where)]


async def scrape(client: httpx.AsyncClient, url: str) -> Scrape:
    response = await client.get(url.rstrip("/") + "/metrics", timeout=10)
    response.raise_for_status()
    return Scrape.parse(response.text)


async def scrape_all(client: httpx.AsyncClient, urls: list[str]) -> Scrape:
    """The pages of the processes at ``urls``, summed (Scrape.merged)."""
    return Scrape.merged([await scrape(client, url) for url in urls])
