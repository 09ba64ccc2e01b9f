"""Pieces of the benchmark harness that decide what a figure means (no servers)."""

import pytest

from bench.__main__ import parse_args
from bench.figures import Figures
from bench.promtext import Scrape
from bench.sizes import FULL

PAGE_A = """# TYPE baocao_aggregate_reports counter
baocao_aggregate_reports_total{outcome="applied"} 10.0
baocao_aggregate_reports_total{outcome="duplicate"} 3.0
"""
PAGE_B = """# TYPE baocao_aggregate_reports counter
baocao_aggregate_reports_total{outcome="applied"} 5.0
baocao_aggregate_reports_total{outcome="forwarded"} 2.0
"""


def test_merged_pages_sum_each_sample_over_the_workers():
    merged = Scrape.merged([Scrape.parse(PAGE_A), Scrape.parse(PAGE_B)])
    assert merged.by_label("baocao_aggregate_reports_total", "outcome") == {
        "applied": 15.0,
        "duplicate": 3.0,
        "forwarded": 2.0,
    }
    assert merged.total("baocao_aggregate_reports_total") == 20.0


def test_workers_name_the_aggregation_figure_and_are_checked():
    assert parse_args([]).workers is None
    assert FULL.adjusted(workers=None).workers == 1
    assert FULL.adjusted(workers=2).workers == 2
    two = Figures(200_000, 2).items["aggregate_rate"].title
    assert two == "Aggregation, 2 workers, 200,000 backlog"
    assert Figures(200_000).items["aggregate_rate"].title == "Aggregation, 1 worker, 200,000 backlog"
    for wrong in ("0", "9"):
        with pytest.raises(SystemExit):
            parse_args(["--workers", wrong])  # 8 partitions by default: a ninth worker would idle
