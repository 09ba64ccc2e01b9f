"""People's accounts: a username, a unit, roles at that unit, a password hash or a link to an
OpenID Connect identity, and whether the account is disabled.

A role holds at the account's unit and everything under it, in the tree of the period concerned
(as a token's unit does: ``Principal.covers``). What each role may do is a set of the tokens'
scopes, so one check (``Principal``) serves accounts and machine tokens alike:

- clerk: sends the unit's reports, and reads what it sent (submit, read)
- reviewer: reads the subtree and follows it live, and approves its figures (read, stream, approve)
- viewer: reads the subtree (read)
- admin: manages the accounts, agencies and machine tokens under the unit, and approves
  (admin, read, stream, approve)

An admin manages only accounts at its unit or under it, and grants only roles it could hold
itself there: nobody raises anyone above their own place in the tree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from enum import StrEnum

from shared.domain.auth import Principal, Scope

USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{2,63}")
MIN_PASSWORD_CHARS = 10
MAX_PASSWORD_CHARS = 256  # argon2 hashes anything; a cap keeps one login from costing a megabyte
MAX_NAME_CHARS = 120


class Role(StrEnum):
    CLERK = "clerk"
    REVIEWER = "reviewer"
    VIEWER = "viewer"
    ADMIN = "admin"


ROLE_SCOPES: dict[Role, frozenset[Scope]] = {
    Role.CLERK: frozenset({Scope.SUBMIT, Scope.READ}),
    Role.REVIEWER: frozenset({Scope.READ, Scope.STREAM, Scope.APPROVE}),
    Role.VIEWER: frozenset({Scope.READ}),
    Role.ADMIN: frozenset({Scope.ADMIN, Scope.READ, Scope.STREAM, Scope.APPROVE}),
}

ROLES_VI: dict[Role, str] = {
    Role.CLERK: "Văn thư (gửi báo cáo)",
    Role.REVIEWER: "Người duyệt",
    Role.VIEWER: "Người xem",
    Role.ADMIN: "Quản trị",
}


class AccountError(ValueError):
    """A field of an account that is not acceptable; ``field`` names it."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


@dataclass(frozen=True)
class Account:
    username: str
    display_name: str
    unit: str
    roles: frozenset[Role]
    password_hash: str | None = None  # argon2id (shared/domain/passwords.py); None: no password login
    oidc_subject: str | None = None  # "<issuer> <sub>" of a linked OpenID Connect identity
    disabled: bool = False
    email: str | None = None  # where reminders go (the reporting cycle); optional
    created_at: float = 0.0  # unix seconds
    created_by: str = ""  # the admin's username, or "cli"
    version: int = 1  # raised by every change: a store refuses a change made on an older copy
    # the unit and its ancestors, tree-qualified ("2025:14923"), as the submissions log keeps a
    # report's: what an admin's listing selects on
    scope: tuple[str, ...] = field(default=(), compare=False)

    @property
    def scopes(self) -> frozenset[Scope]:
        return frozenset().union(*(ROLE_SCOPES[r] for r in self.roles))

    def principal(self, session_id: str, expires_at: int, origin: str | None = None) -> Principal:
        """What this account may do, as the checks shared with machine tokens read it; the
        principal's token id is the session's, so per-session limits still apply."""
        return Principal(session_id, self.unit, self.scopes, expires_at, account=self.username, origin=origin)

    def changed(self, **changes: object) -> Account:
        return replace(self, version=self.version + 1, **changes)  # type: ignore[arg-type]


def check_username(username: str) -> str:
    if not USERNAME.fullmatch(username):
        raise AccountError(
            "username", "3-64 characters: lowercase letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return username


def check_password(password: str, username: str = "") -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise AccountError("password", f"at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise AccountError("password", f"at most {MAX_PASSWORD_CHARS} characters")
    if username and username.lower() in password.lower():
        raise AccountError("password", "must not contain the username")
    return password


def check_oidc_subject(subject: str) -> str:
    """An OpenID Connect identity as an account links to it: ``"<issuer> <sub>"``, the issuer's
    URL (no trailing slash) and the ``sub`` its ID tokens carry (services/api/web/oidc.py)."""
    issuer, _, sub = subject.strip().partition(" ")
    issuer = issuer.rstrip("/")
    if not issuer.startswith(("https://", "http://")) or not sub or len(sub) > 255 or sub != sub.strip():
        raise AccountError("oidc_subject", 'the issuer\'s URL, one space, then the subject: "<issuer> <sub>"')
    return f"{issuer} {sub}"


def check_display_name(name: str) -> str:
    name = " ".join(name.split())
    if not name or len(name) > MAX_NAME_CHARS:
        raise AccountError("display_name", f"1-{MAX_NAME_CHARS} characters")
    return name


EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{2,63}")


def check_email(email: str) -> str | None:
    email = email.strip()
    if not email:
        return None
    if not EMAIL.fullmatch(email):
        raise AccountError("email", "an e-mail address like ten@donvi.gov.vn")
    return email


def parse_roles(values: list[str]) -> frozenset[Role]:
    roles = set()
    for value in values:
        try:
            roles.add(Role(value))
        except ValueError:
            raise AccountError("roles", f"unknown role {value!r}; one of {', '.join(r.value for r in Role)}") from None
    if not roles:
        raise AccountError("roles", "at least one role")
    return frozenset(roles)
