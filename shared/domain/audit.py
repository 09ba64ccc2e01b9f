"""The audit log's entries: who did what, when, from where, to which unit and period, and the
figures before and after.

The log is append-only: an entry is never changed or removed (the stores have no method that
would). Each entry carries the ``scope`` of what it is about (the unit and its ancestors, each
qualified by its tree, as the submissions log keeps them: ``["2025:14923", "2025:38"]``), so a
reader's listing is one equality on ``scope``. Every scope also ends with ``VN`` (the whole
country, in no tree), so the country's reader lists every entry with the same one equality.

Who may read an entry: a reader whose ``read`` scope covers its unit reads the entries about
reports and agencies; entries about accounts, machine tokens and logins need ``admin``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from shared.domain.hierarchy import COUNTRY, OrgTree


class Action(StrEnum):
    SUBMIT = "report.submit"  # a report's first revision
    REVISE = "report.revise"  # a later revision
    WITHDRAW = "report.withdraw"
    AGENCY_REGISTER = "agency.register"
    AGENCY_RENAME = "agency.rename"
    AGENCY_CLOSE = "agency.close"
    ACCOUNT_CREATE = "account.create"
    ACCOUNT_DISABLE = "account.disable"
    ACCOUNT_ENABLE = "account.enable"
    ACCOUNT_RESET = "account.reset_password"
    ACCOUNT_ROLES = "account.roles"
    ACCOUNT_PASSWORD = "account.change_password"
    ACCOUNT_LINK_OIDC = "account.link_oidc"  # linked to an OpenID Connect identity
    TOKEN_ISSUE = "token.issue"
    TOKEN_REVOKE = "token.revoke"
    LOGIN = "login"
    LOGIN_FAILED = "login.failed"
    LOGOUT = "logout"
    APPROVE = "approval.approve"
    UNAPPROVE = "approval.unapprove"
    TARGET_SET = "target.set"  # a target set or replaced (shared/domain/targets.py)
    TARGET_REMOVE = "target.remove"


ADMIN_ONLY_PREFIXES = ("account.", "token.", "login", "logout")

ACTIONS_VI: dict[Action, str] = {
    Action.SUBMIT: "Gửi báo cáo",
    Action.REVISE: "Sửa báo cáo",
    Action.WITHDRAW: "Rút báo cáo",
    Action.AGENCY_REGISTER: "Đăng ký cơ quan",
    Action.AGENCY_RENAME: "Đổi tên cơ quan",
    Action.AGENCY_CLOSE: "Đóng cơ quan",
    Action.ACCOUNT_CREATE: "Tạo tài khoản",
    Action.ACCOUNT_DISABLE: "Khoá tài khoản",
    Action.ACCOUNT_ENABLE: "Mở lại tài khoản",
    Action.ACCOUNT_RESET: "Đặt lại mật khẩu",
    Action.ACCOUNT_ROLES: "Đổi vai trò",
    Action.ACCOUNT_PASSWORD: "Đổi mật khẩu",
    Action.ACCOUNT_LINK_OIDC: "Liên kết đăng nhập qua nhà cung cấp định danh",
    Action.TOKEN_ISSUE: "Cấp mã truy cập",
    Action.TOKEN_REVOKE: "Thu hồi mã truy cập",
    Action.LOGIN: "Đăng nhập",
    Action.LOGIN_FAILED: "Đăng nhập thất bại",
    Action.LOGOUT: "Đăng xuất",
    Action.APPROVE: "Duyệt số liệu",
    Action.UNAPPROVE: "Bỏ duyệt số liệu",
    Action.TARGET_SET: "Đặt chỉ tiêu",
    Action.TARGET_REMOVE: "Bỏ chỉ tiêu",
}


def admin_only(action: Action) -> bool:
    return action.value.startswith(ADMIN_ONLY_PREFIXES)


@dataclass(frozen=True)
class AuditEntry:
    at: float  # unix seconds, this server's clock
    actor: str  # an account's username, or "token:<id>" for a machine token (Principal.actor)
    action: Action
    unit: str  # the unit concerned (a report's, an agency's, an account's or token's)
    scope: tuple[str, ...]  # the unit and its ancestors, tree-qualified (see the module's text)
    origin: str | None = None  # the actor's address
    period: str | None = None  # a report's period
    subject: str | None = None  # what was acted on: "<unit>/<report_id>", a username, a token id
    before: dict[str, Any] | None = None  # the figures or fields before (None: nothing before)
    after: dict[str, Any] | None = None  # ... and after (None: nothing after)
    detail: str | None = None  # a short note: why a login failed, a revision number
    entry_id: str = field(default="", compare=False)  # given by the store: orders entries by time


@dataclass(frozen=True)
class AuditQuery:
    """What a reader asks of the log: entries whose scope holds ``scope`` (tree-qualified code)
    or one of ``also`` (the same unit named with its other trees: ``reader_scopes``), optionally
    of one ``period``, of actions in ``actions`` (None: any)."""

    scope: str
    period: str | None = None
    actions: frozenset[Action] | None = None
    also: tuple[str, ...] = ()

    @property
    def scopes(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((self.scope, *self.also)))


@dataclass(frozen=True)
class AuditPage:
    items: list[AuditEntry]
    next: str | None  # cursor of the next page (newest first); None on the last page


def entry_scope(org: OrgTree, unit: str) -> tuple[str, ...]:
    """The scope of an entry about ``unit``, for an action taken now: the unit's path in the tree
    in force today, else in the newest tree holding it (an abolished district), each code named
    with its tree, then ``VN``. An agency that no tree holds yet (``<parent>-<slug>``, an entry
    written before the registry has it) is placed under its parent; any other unknown code has
    only itself and ``VN``, so only the country's reader lists it."""
    if unit == COUNTRY:
        return (COUNTRY,)
    tree = org.in_force()
    holder = tree if unit in tree else next((t for t in reversed(tree.versions) if unit in t), None)
    if holder is not None:
        return (*(f"{holder.tree_id}:{code}" for code in holder.path(unit)), COUNTRY)
    parent, dash, _ = unit.partition("-")
    if dash and parent != unit and any(parent in t for t in tree.versions):
        above = entry_scope(org, parent)
        tree_id = above[0].partition(":")[0]
        return (f"{tree_id}:{unit}", *above)
    return (unit, COUNTRY)


def reader_scopes(org: OrgTree, unit: str) -> tuple[str, ...]:
    """What a reader at ``unit`` lists: ``VN`` for the country; else the unit named with each
    tree that holds it (an old district's reader lists nothing of the 2025 tree, where its code
    may name another unit)."""
    if unit == COUNTRY:
        return (COUNTRY,)
    return tuple(f"{t.tree_id}:{unit}" for t in org.versions if unit in t)


def readable_actions(can_read: bool, can_admin: bool, wanted: Action | None = None) -> frozenset[Action] | None:
    """The actions a reader lists: with ``read``, those about reports and agencies; with
    ``admin``, those about accounts, tokens and logins; None for every action (both), and an
    empty set for none (neither, or ``wanted`` outside what the reader may read)."""
    allowed = frozenset(a for a in Action if (can_admin if admin_only(a) else can_read))
    if wanted is not None:
        return frozenset({wanted}) & allowed
    return None if allowed == frozenset(Action) else allowed
