"""Targets: what a unit sets out to reach for one metric in one period ("120 hospital beds by
2025", "03–04 communes meeting the new-rural standard", "over 85 % of members rated good or
better"), rolled up the tree like the figures they target, and the achievement against them.

A target is of (unit, metric, period). The metric is ``<series>.<field>`` (a totalled field of
the catalog) or ``<series>.<rate>`` (a rate of the series). Its value is a number or a range
low–high (0 ≤ low ≤ high): a field's target is a whole number; a rate's is a decimal in the
rate's own unit (numerator / denominator × scale: 9.96 doctors per 10,000 people, 0.85 for 85 %
of a share of scale 1, 60 for 60 % of a rate of scale 100). Values are ``Decimal``; nothing is a
float before the final rounding.

The rules:

- **Who sets or removes one.** A principal with the ``submit`` or ``approve`` scope whose unit
  covers the target's unit in the tree of the period (the unit itself or an ancestor).
- **Roll-up, per exact period** (never over time). At a unit, its own target when one is set;
  else, for a field that adds up the tree (combine ``sum``), the sum of its children's rolled-up
  targets, lows and highs summed: that is, the sum of the targets set at the highest units
  under it that have one. It is there as soon as one unit under it has a target, and says from
  how many units it was summed, so a partial sum is visible. Rates and fields kept at the
  reporting unit (combine ``none``) do not add up: only a unit's own target counts.
- **Achievement.** actual / target (the range's low), rounded half-up to 4 decimals; ``met``
  when actual ≥ low, ``above`` when actual > high.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from fractions import Fraction

from shared.domain.auth import Forbidden, Principal, Scope
from shared.domain.catalog import Catalog, Combine
from shared.domain.hierarchy import COUNTRY, OrgTree
from shared.domain.rollup import round_rate

# the scopes that may set and remove targets: a unit's own staff and its approvers
SETTERS = (Scope.SUBMIT, Scope.APPROVE)
MAX_TARGET = Decimal(10) ** 15  # above any figure the catalog allows (its largest max is 10**12)
MAX_DECIMALS = 6  # a rate's target: more places than this is a typing error, not a target


class TargetError(ValueError):
    """A target that cannot be one; ``field`` names what is wrong (metric, value, period, unit)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class TargetMetric:
    """What a metric is, as targets need it: a field or a rate of a series."""

    key: str  # <series>.<name>
    series: str
    name: str
    rate_scale: int | None  # the rate's scale; None for a field
    adds_up: bool  # a field whose combine is sum: its targets roll up the tree

    @property
    def is_rate(self) -> bool:
        return self.rate_scale is not None


def target_metric(catalog: Catalog, metric: str) -> TargetMetric:
    """The metric named ``metric`` (``<series>.<field or rate>``); TargetError naming ``metric``
    when the catalog has no such totalled field or rate."""
    series, dot, name = metric.rpartition(".")
    spec = catalog.series.get(series) if dot else None
    if spec is None:
        raise TargetError("metric", f"unknown series in metric {metric!r}: write <series>.<field or rate>")
    for f in spec.totalled_fields:
        if f.name == name:
            return TargetMetric(metric, series, name, None, f.combine is Combine.SUM)
    for r in spec.rates:
        if r.name == name:
            return TargetMetric(metric, series, name, r.scale, False)
    names = [f.name for f in spec.totalled_fields] + [r.name for r in spec.rates]
    raise TargetError("metric", f"series {series} has no field or rate {name!r}; one of {names}")


@dataclass(frozen=True)
class Target:
    unit: str
    metric: str  # <series>.<field or rate>
    period: str
    low: Decimal
    high: Decimal  # equal to low for a single number
    set_by: str = ""  # who set it, as the audit log names them (Principal.actor)
    at: float = 0.0  # unix seconds, the API server's clock
    # the unit, its ancestors in the period's tree, then VN: what a listing of a subtree selects on
    path: tuple[str, ...] = field(default=(), compare=False)

    @property
    def id(self) -> str:
        return target_id(self.unit, self.metric, self.period)

    @property
    def text(self) -> str:
        """The value as the pages write it: ``120``, ``3–4``, ``9,96``."""
        return range_text(self.low, self.high)


def target_id(unit: str, metric: str, period: str) -> str:
    return f"{unit}/{metric}/{period}"


def range_text(low: Decimal, high: Decimal) -> str:
    def one(d: Decimal) -> str:
        return format(d.normalize(), "f").replace(".", ",")

    return one(low) if low == high else f"{one(low)}–{one(high)}"


# ------------------------------------------------------------------ what officials type

_DASHES = re.compile("[\u2010-\u2015\u2212]")  # hyphens, en and em dashes, the minus sign
_RANGE = re.compile(r"^(?P<low>[^-]+?)\s*-\s*(?P<high>[^-]+)$")
_THOUSANDS = re.compile(r"^\d{1,3}(\.\d{3})+$")


def parse_target(text: str, metric: TargetMetric) -> tuple[Decimal, Decimal]:
    """(low, high) from what an official types: ``120``, ``03–04``, ``3-4``, ``450 - 500``,
    ``9,96`` (the Vietnamese decimal comma), ``6.600`` (dots between thousands, for a field),
    ``85%`` (0.85 for a share of scale 1; 85 for a rate of scale 100). TargetError naming
    ``value`` with what is wrong."""
    cleaned = _DASHES.sub("-", text.strip())
    if not cleaned:
        raise TargetError("value", "the target is empty: write a number (120) or a range (3–4)")
    found = _RANGE.match(cleaned)
    parts = (found.group("low"), found.group("high")) if found else (cleaned, cleaned)
    percent = cleaned.endswith("%")  # "60-70%": the sign covers both ends
    low, high = (_number(p.strip(), metric, text, percent) for p in parts)
    if low > high:
        raise TargetError("value", f"{text!r}: the range's low {low} is above its high {high}")
    return low, high


def _number(part: str, metric: TargetMetric, whole: str, percent: bool) -> Decimal:
    percent = percent or part.endswith("%")
    digits = part.removesuffix("%").strip()
    if "," in digits:  # a decimal comma; dots, if any, separate thousands
        head, _, tail = digits.rpartition(",")
        digits = head.replace(".", "") + "." + tail if _THOUSANDS.match(head) else head + "." + tail
    elif _THOUSANDS.match(digits) and not metric.is_rate:
        digits = digits.replace(".", "")
    if not re.fullmatch(r"\d+(\.\d+)?", digits):
        raise TargetError("value", f"{whole!r}: {part!r} is not a number ≥ 0 (write 120, 3–4, 9,96 or 85%)")
    try:
        value = Decimal(digits)
    except InvalidOperation:  # pragma: no cover - the pattern above admits only decimals
        raise TargetError("value", f"{whole!r}: {part!r} is not a number") from None
    if percent:
        value = _from_percent(value, metric, whole)
    return _checked(value, metric, whole)


def _from_percent(value: Decimal, metric: TargetMetric, whole: str) -> Decimal:
    if metric.rate_scale == 1:
        return value / 100
    if metric.rate_scale == 100:
        return value
    unit = "a whole number" if not metric.is_rate else f"a number per {metric.rate_scale:,}"
    raise TargetError("value", f"{whole!r}: {metric.key} is {unit}, not a percentage")


def _checked(value: Decimal, metric: TargetMetric, whole: str) -> Decimal:
    if value > MAX_TARGET:
        raise TargetError("value", f"{whole!r}: above the largest target, {MAX_TARGET:,}")
    if not metric.is_rate and value != value.to_integral_value():
        raise TargetError("value", f"{whole!r}: {metric.key} counts whole units; its target is a whole number")
    exponent = value.normalize().as_tuple().exponent
    if metric.is_rate and isinstance(exponent, int) and -exponent > MAX_DECIMALS:
        raise TargetError("value", f"{whole!r}: at most {MAX_DECIMALS} decimals")
    return value.normalize() if metric.is_rate else Decimal(int(value))


# ------------------------------------------------------------------ who may


def check_may_set(principal: Principal, tree: OrgTree, unit: str) -> None:
    """:class:`Forbidden` unless ``principal`` may set or remove a target of ``unit``: the submit
    or approve scope, and a unit that covers ``unit`` in the period's ``tree``."""
    if not any(s in principal.scopes for s in SETTERS):
        raise Forbidden("this token lacks the 'submit' or 'approve' scope that setting a target needs")
    if not principal.covers(tree, unit):
        raise Forbidden(f"unit {unit} is outside this token's unit {principal.unit}")


def set_target(
    principal: Principal, tree: OrgTree, unit: str, metric: TargetMetric, period: str, text: str, at: float
) -> Target:
    """The target ``principal`` sets for (unit, metric, period) from ``text`` (parse_target),
    ``tree`` being the period's tree holding ``unit``."""
    check_may_set(principal, tree, unit)
    low, high = parse_target(text, metric)
    return Target(unit, metric.key, period, low, high, principal.actor, at, path=unit_path(tree, unit))


def unit_path(tree: OrgTree, unit: str) -> tuple[str, ...]:
    """The unit, its ancestors, then VN: a listing of any of them holds the unit's targets."""
    return (COUNTRY,) if unit == COUNTRY else (*tree.path(unit), COUNTRY)


# ------------------------------------------------------------------ roll-up and achievement

OWN = "own"
SUMMED = "summed"


@dataclass(frozen=True)
class RolledTarget:
    metric: str
    low: Decimal
    high: Decimal
    source: str  # OWN, or SUMMED from ``units`` units' own targets
    units: int  # how many units' own targets it holds (1 for OWN)


def rolled_up(targets: Iterable[Target], unit: str, catalog: Catalog, period: str) -> dict[str, RolledTarget]:
    """The targets of ``unit`` for ``period``, by metric, from ``targets`` (those of its subtree:
    each target's ``path`` places it). See the module's text for the rule."""
    by_metric: dict[str, list[Target]] = {}
    for t in targets:
        if t.period == period and unit in t.path:
            by_metric.setdefault(t.metric, []).append(t)
    out: dict[str, RolledTarget] = {}
    for metric, found in sorted(by_metric.items()):
        own = next((t for t in found if t.unit == unit), None)
        if own is not None:
            out[metric] = RolledTarget(metric, own.low, own.high, OWN, 1)
            continue
        try:
            if not target_metric(catalog, metric).adds_up:
                continue
        except TargetError:  # a metric the catalog no longer has is not shown
            continue
        holders = {t.unit for t in found}
        # the highest units under ``unit`` with a target: none of their ancestors below ``unit`` has one
        top = [t for t in found if not holders.intersection(t.path[1 : t.path.index(unit)])]
        out[metric] = RolledTarget(
            metric, sum((t.low for t in top), Decimal(0)), sum((t.high for t in top), Decimal(0)), SUMMED, len(top)
        )
    return out


def by_child(targets: Iterable[Target], parent: str) -> dict[str, list[Target]]:
    """The targets of ``parent``'s subtree grouped by the child of ``parent`` they lie under (those
    of ``parent`` itself in none): a drill-down rolls each child up from its group alone."""
    groups: dict[str, list[Target]] = {}
    for t in targets:
        if parent in t.path:
            at = t.path.index(parent)
            if at > 0:
                groups.setdefault(t.path[at - 1], []).append(t)
    return groups


@dataclass(frozen=True)
class Achievement:
    actual: Fraction | None  # None: nothing reported (a rate of 0/0)
    achievement: float | None  # actual / low, 4 decimals; None without an actual or when low is 0
    met: bool | None  # actual ≥ low; None without an actual
    above: bool | None  # actual > high; None without an actual


def achievement(target: RolledTarget, actual: Fraction | None) -> Achievement:
    """How ``actual`` (exact: a sum, or a rate's numerator × scale / denominator) stands against
    ``target``."""
    if actual is None:
        return Achievement(None, None, None, None)
    low, high = Fraction(target.low), Fraction(target.high)
    ratio = None
    if low != 0:
        share = actual / low
        ratio = round_rate(share.numerator, share.denominator)
    return Achievement(actual, ratio, actual >= low, actual > high)


def decimal_out(value: Decimal) -> int | float:
    """A target's bound in a JSON answer: an int for a whole number, else its float (the decimal
    text round-trips: Decimal('9.96') -> 9.96)."""
    return int(value) if value == value.to_integral_value() else float(value)
