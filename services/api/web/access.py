"""What a token may do on the pages, checked as the HTTP API checks it: a scope, then the unit's
place in the token's subtree, decided in the tree of the period concerned."""

from __future__ import annotations

from services.api.web.errors import PageError
from shared.domain.auth import Placement, Principal, Scope
from shared.domain.hierarchy import COUNTRY, LEGACY, OrgTree, Unit
from shared.domain.periods import PeriodError

MAX_SELECT_UNITS = 400  # more units than this: a code to type, not a list to scroll
SCOPES_VI = {
    Scope.READ: "xem số liệu",
    Scope.SUBMIT: "gửi báo cáo",
    Scope.STREAM: "nhận cập nhật trực tiếp",
    Scope.ADMIN: "quản trị",
    Scope.APPROVE: "duyệt số liệu",
}
OUTSIDE = "Đơn vị này không có hoặc nằm ngoài phạm vi của mã truy cập."


def lacks(scope: Scope) -> PageError:
    return PageError(403, f"Mã truy cập này không có quyền {SCOPES_VI[scope]}.")


def need(principal: Principal, scope: Scope) -> None:
    if scope not in principal.scopes:
        raise lacks(scope)


def allow(principal: Principal, tree: OrgTree, scope: Scope, code: str) -> None:
    """A PageError unless ``principal`` holds ``scope`` and may see ``code`` in ``tree``: 404 only for
    a code the token could see if it existed, so no token probes for units outside its subtree."""
    need(principal, scope)
    if not principal.may_see(tree, code):
        raise PageError(403, f"Đơn vị {code} nằm ngoài phạm vi của mã truy cập này.")
    if code not in tree:
        raise PageError(404, f"Không có đơn vị mã {code}.")


def may_stream(principal: Principal, tree: OrgTree, code: str) -> bool:
    return code in tree and Scope.STREAM in principal.scopes and principal.covers(tree, code)


def may_list_submissions(principal: Principal) -> bool:
    return bool(principal.scopes & {Scope.SUBMIT, Scope.READ})


def unit_error(org: OrgTree, principal: Principal, unit: str, period: str) -> str | None:
    """Why the token may not send a report of ``period`` for ``unit``, decided in the tree of the
    period (codes are reused across trees); None when it may, or when the period itself is not
    valid (its own error says so)."""
    try:
        placement = principal.may_report(org, unit, period)
    except PeriodError:
        return None
    if placement is Placement.ALLOWED:
        return None
    if placement is Placement.CLOSED:
        own = org.for_period(period)
        return (
            f"Đơn vị {unit} không có trong cây đơn vị của kỳ {period} "
            f"({'trước' if own.tree_id == LEGACY else 'từ'} 1/7/2025): chọn đơn vị hoặc kỳ khác."
        )
    return OUTSIDE


def submit_units(principal: Principal, tree: OrgTree, chosen: str) -> list[Unit] | None:
    """The units of ``tree`` a form offers, or None when a code is typed instead: too many to
    list, the token's unit not in this tree, or a chosen unit the list does not hold."""
    if principal.unit not in tree:
        return None
    units = []
    for u in tree.subtree(principal.unit):
        units.append(u)
        if len(units) > MAX_SELECT_UNITS:
            return None
    if chosen and chosen not in {u.code for u in units}:
        return None
    return units


def own_in_tree(principal: Principal, tree: OrgTree) -> bool:
    return principal.unit == COUNTRY or principal.unit in tree


def crumbs(principal: Principal, tree: OrgTree, code: str) -> list[Unit]:
    """The path from the top down to ``code``, of the units the token covers."""
    return [tree.get(u) for u in reversed(tree.path(code)) if principal.covers(tree, u)]
