"""The time-series chart: which periods it shows around the one asked, and the chart itself as
inline SVG (no JavaScript library; the same figures are also given as a table for screen readers)."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from markupsafe import Markup

from shared.domain.periods import MIN_YEAR, Granularity, parse_period

WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 84, 12, 20, 40


def chart_periods(period: str) -> list[str]:
    """The periods of the same kind that share the period's year (months, quarters, halves), the
    five years up to a year, or the term alone."""
    p = parse_period(period)
    year = p.start.year
    if p.granularity is Granularity.MONTH:
        return [f"{year}-{m:02d}" for m in range(1, 13)]
    if p.granularity is Granularity.QUARTER:
        return [f"{year}-Q{q}" for q in range(1, 5)]
    if p.granularity is Granularity.HALF:
        return [f"{year}-H1", f"{year}-H2"]
    if p.granularity is Granularity.YEAR:
        return [str(y) for y in range(max(MIN_YEAR, year - 4), year + 1)]
    return [p.label]


def short_label(period: str) -> str:
    """Axis label: "T12" for December, the quarter or half as is, the year."""
    p = parse_period(period)
    if p.granularity is Granularity.MONTH:
        return f"T{p.start.month}"
    if p.granularity in (Granularity.QUARTER, Granularity.HALF):
        return period[5:]
    return period


@dataclass(frozen=True)
class Point:
    period: str
    value: float | None
    text: str  # the value as the page writes it


def bar_chart(points: list[Point], label: str, current: str) -> Markup:
    """Bars, one per period; the current period's bar is darker. Empty periods get no bar."""
    values = [p.value for p in points if p.value is not None]
    top = max([*values, 0.0]) or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(points), 1)
    bar_w = step * 0.6
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="chart-title" '
        f'preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="chart-title">{escape(label)}</title>',
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" y2="{TOP + plot_h}" class="axis"/>',
        f'<text x="{LEFT - 6}" y="{TOP + 6}" class="tick" text-anchor="end">{escape(_axis(top, points))}</text>',
        f'<text x="{LEFT - 6}" y="{TOP + plot_h}" class="tick" text-anchor="end">0</text>',
    ]
    for i, p in enumerate(points):
        x = LEFT + i * step + (step - bar_w) / 2
        cls = "bar current" if p.period == current else "bar"
        if p.value is not None and p.value > 0:
            h = plot_h * p.value / top
            parts.append(
                f'<rect class="{cls}" x="{x:.1f}" y="{TOP + plot_h - h:.1f}" width="{bar_w:.1f}" height="{h:.1f}">'
                f"<title>{escape(p.period)}: {escape(p.text)}</title></rect>"
            )
        parts.append(
            f'<text x="{x + bar_w / 2:.1f}" y="{HEIGHT - BOTTOM + 24}" class="tick" text-anchor="middle">'
            f"{escape(short_label(p.period))}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def _axis(top: float, points: list[Point]) -> str:
    for p in points:
        if p.value == top:
            return p.text
    return ""
