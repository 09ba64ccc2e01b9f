"""A conference counted once: the organiser reports it, its points name it.

An online conference is held at many bridge points at once (seed 001: 827 points, 32,637
delegates, from the province down to villages). Its organiser (the provincial committee, unit
``38``) reports the whole conference. A unit that was one of its points (the provincial hospital)
reports its own point and names the conference in its kind's conference field (catalog ``joins``):
``"38/38-hn-2021-11-05"``, the organiser's unit and report id.

The joined report's *shared* figures (bridge points, delegates) are part of the organiser's
figures. They count at the joining unit and its ancestors up to, not including, the first ancestor
that also contains the organiser: there the organiser's report counts them. So Bá Thước district,
whose 313 study points all joined the province's conference (seed 000), shows its 313 points, and
the province shows the conference once. The report's other figures (its own members' attendance)
count all the way up as usual.

The organiser's report need not have arrived, or exist, for a joined report to count: where it
counts depends on the organiser's place in the tree only, so totals do not depend on the order of
arrival. Until the organiser reports, the levels that contain it show the conference's own figures
as missing, not counted twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shared.domain.catalog import Catalog
from shared.domain.hierarchy import OrgTree


def organiser(joined: str) -> str:
    """The organiser's unit code of a conference reference ``<unit>/<report_id>``."""
    return joined.split("/", 1)[0]


def joined_problem(tree: OrgTree, unit: str, period: str, field: str, joined: str | None) -> dict[str, Any] | None:
    """What is wrong with a report of ``unit`` naming ``joined`` in ``field``, in ``tree`` (the
    tree of the report's period), as a validation error relative to the report; None if nothing."""
    if joined is None:
        return None
    code = organiser(joined)
    if code not in tree:
        msg = (
            f"body.{field}: the conference's organiser {code!r} is not a unit of {tree.validity()}, "
            f"the tree of period {period}"
        )
        return {"loc": ["body", field], "msg": msg, "type": "unknown_organiser"}
    if unit in tree.path(code):
        msg = (
            f"body.{field}: unit {unit} cannot have joined a conference organised by {code}, which is "
            f"{'itself' if code == unit else 'a unit under it'}: the organiser reports its conference "
            f"without {field}"
        )
        return {"loc": ["body", field], "msg": msg, "type": "joined_own_conference"}
    return None


def joined_problem_of(report: Any, tree: OrgTree, catalog: Catalog) -> dict[str, Any] | None:
    """:func:`joined_problem` of a validated report (a ReportIn model) of its kind's conference
    field, in ``tree``, the tree of its period; None for a kind without one or a withdrawal."""
    kind = catalog.kinds.get(report.kind)
    body = getattr(report, "body", None)
    if kind is None or kind.joins is None or body is None or report.withdrawn:
        return None
    return joined_problem(tree, report.unit, report.period, kind.joins.field, getattr(body, kind.joins.field, None))


def shared_depth(path: Sequence[str], organiser_path: Sequence[str]) -> int:
    """How many units of ``path`` (a joining unit, then its ancestors) count the joined report's
    shared figures: those before the first that is also on the organiser's path (an ancestor of
    the organiser or the organiser itself). The whole path when the organiser is in another
    province."""
    holding = set(organiser_path)
    for depth, code in enumerate(path):
        if code in holding:
            return depth
    return len(path)
