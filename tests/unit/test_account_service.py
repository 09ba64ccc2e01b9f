"""Accounts managed through AccountService (services/api/web/accounts.py): who may change which
account, what a disabled account leaves in the revoked list, whose sessions end; and the argon2id
passwords (shared/domain/passwords.py)."""

import time

import pytest

from services.api.web.accounts import AccountService, UnknownAccount, account_scope, cli_actor
from shared.adapters.accounts import AccountExists, InMemoryAccountStore
from shared.adapters.revocations import InMemoryRevocations, refused
from shared.domain import passwords
from shared.domain.accounts import AccountError, Role
from shared.domain.audit import Action
from shared.domain.auth import Forbidden, Principal, Scope, account_key
from shared.domain.hierarchy import load_vietnam

TREE = load_vietnam(["38"])
PASSWORD = "correct horse battery"


class Sessions:
    def __init__(self) -> None:
        self.ended: list[tuple[str, str | None]] = []

    async def end_account(self, username: str, keep: str | None = None) -> None:
        self.ended.append((username, keep))


def service() -> tuple[AccountService, InMemoryAccountStore, InMemoryRevocations, Sessions]:
    store, revoked, sessions = InMemoryAccountStore(), InMemoryRevocations(), Sessions()
    return AccountService(store, revoked, lambda: TREE, sessions, clock=lambda: 1000.0), store, revoked, sessions


def admin_at(unit: str, username: str = "admin.38") -> Principal:
    return Principal("s1", unit, frozenset({Scope.ADMIN, Scope.READ, Scope.STREAM}), int(time.time()) + 60, username)


async def test_an_admin_creates_a_clerk_under_its_unit_with_a_hashed_password():
    accounts, store, _, _ = service()
    change = await accounts.create(
        admin_at("38"), username="clerk.14923", display_name=" Nguyễn  Văn A ", unit="14923", roles=["clerk"],
        password=PASSWORD,
    )  # fmt: skip
    stored = store.accounts["clerk.14923"]
    assert change.action is Action.ACCOUNT_CREATE and change.before is None and change.after == stored
    assert stored.display_name == "Nguyễn Văn A" and stored.roles == {Role.CLERK} and stored.created_by == "admin.38"
    assert stored.password_hash is not None and stored.password_hash.startswith("$argon2id$")
    assert passwords.verify(stored.password_hash, PASSWORD) and not passwords.verify(stored.password_hash, "x" * 12)
    assert "password_hash" not in change.audit_after  # the audit never sees the hash
    assert change.audit_after["password"] is True
    # 14923 is a commune of district 386 in the old tree and of province 38 in the 2025 tree
    assert stored.scope == ("legacy:14923", "legacy:386", "legacy:38", "2025:14923", "2025:38", "VN")


async def test_a_taken_username_and_bad_fields_are_refused_naming_the_field():
    accounts, _, _, _ = service()
    actor = admin_at("38")
    await accounts.create(actor, username="clerk.a", display_name="A", unit="38", roles=["clerk"], password=PASSWORD)
    with pytest.raises(AccountExists):
        await accounts.create(actor, username="clerk.a", display_name="A", unit="38", roles=["viewer"])
    cases = [
        ({"username": "A!"}, "username"),
        ({"display_name": "  "}, "display_name"),
        ({"unit": "99999"}, "unit"),
        ({"roles": ["boss"]}, "roles"),
        ({"roles": []}, "roles"),
        ({"password": "short"}, "password"),
        ({"password": "my-clerk.b-password"}, "password"),
    ]
    for changed, field in cases:
        fields = {"username": "clerk.b", "display_name": "B", "unit": "38", "roles": ["clerk"], "password": PASSWORD}
        with pytest.raises(AccountError) as caught:
            await accounts.create(actor, **(fields | changed))  # type: ignore[arg-type]
        assert caught.value.field == field


async def test_an_admin_manages_only_units_it_covers_in_every_tree_holding_them():
    accounts, _, _, _ = service()
    fields = {"display_name": "X", "roles": ["viewer"]}
    # district 386 exists only in the old tree; 14923 is also a commune of province 38 in 2025
    with pytest.raises(Forbidden):
        await accounts.create(admin_at("386"), username="v.14923", unit="14923", **fields)
    await accounts.create(admin_at("386"), username="v.386", unit="386", **fields)
    with pytest.raises(Forbidden):
        await accounts.create(admin_at("386"), username="v.38", unit="38", **fields)
    with pytest.raises(Forbidden):
        await accounts.create(admin_at("38"), username="v.vn", unit="VN", **fields)
    reader = Principal("s2", "VN", frozenset({Scope.READ}), int(time.time()) + 60, "reader")
    with pytest.raises(Forbidden):
        await accounts.create(reader, username="v.x", unit="38", **fields)
    await accounts.create(cli_actor(), username="root", unit="VN", display_name="Root", roles=["admin"])
    with pytest.raises(Forbidden):
        await accounts.disable(admin_at("38"), "root")


async def test_disabling_revokes_the_account_everywhere_and_ends_its_sessions_and_enabling_lifts_it():
    accounts, store, revoked, sessions = service()
    actor = admin_at("38")
    await accounts.create(actor, username="clerk.a", display_name="A", unit="38", roles=["clerk"], password=PASSWORD)
    minted = Principal("t-ingest", "38", frozenset({Scope.SUBMIT}), int(time.time()) + 300, account="clerk.a")
    assert not await refused(revoked, minted)
    change = await accounts.disable(actor, "clerk.a")
    assert change.before is not None and not change.before.disabled and change.after.disabled
    assert store.accounts["clerk.a"].disabled and store.accounts["clerk.a"].version == 2
    assert account_key("clerk.a") in revoked.revoked and await refused(revoked, minted)
    assert sessions.ended == [("clerk.a", None)]
    await accounts.enable(actor, "clerk.a")
    assert not store.accounts["clerk.a"].disabled and not await refused(revoked, minted)
    with pytest.raises(UnknownAccount):
        await accounts.disable(actor, "nobody")


async def test_nobody_disables_themselves_or_changes_their_own_roles():
    accounts, _, _, _ = service()
    actor = admin_at("38", "admin.38")
    await accounts.create(cli_actor(), username="admin.38", display_name="A", unit="38", roles=["admin"])
    with pytest.raises(Forbidden):
        await accounts.disable(actor, "admin.38")
    with pytest.raises(Forbidden):
        await accounts.set_roles(actor, "admin.38", ["viewer"])


async def test_roles_and_passwords_change_and_sessions_end_as_documented():
    accounts, store, _, sessions = service()
    actor = admin_at("38")
    await accounts.create(actor, username="clerk.a", display_name="A", unit="38", roles=["clerk"], password=PASSWORD)
    change = await accounts.set_roles(actor, "clerk.a", ["viewer", "reviewer"])
    assert change.audit_before is not None and change.audit_before["roles"] == ["clerk"]
    assert change.audit_after["roles"] == ["reviewer", "viewer"]
    await accounts.reset_password(actor, "clerk.a", "a new password 1")
    assert sessions.ended == [("clerk.a", None)]
    with pytest.raises(AccountError) as caught:
        await accounts.change_password("clerk.a", PASSWORD, "another password 2")
    assert caught.value.field == "current_password"
    await accounts.change_password("clerk.a", "a new password 1", "another password 2", keep_session="k1")
    assert sessions.ended[-1] == ("clerk.a", "k1")
    assert passwords.verify(store.accounts["clerk.a"].password_hash, "another password 2")
    assert store.accounts["clerk.a"].version == 4


def test_account_scope_of_the_country_and_of_an_unknown_unit():
    assert account_scope(TREE, "VN") == ("VN",)
    assert account_scope(TREE, "386") == ("legacy:386", "legacy:38", "VN")
    with pytest.raises(AccountError):
        account_scope(TREE, "nope")


def test_passwords_verify_only_their_own_and_an_unknown_user_costs_a_verification():
    hashed = passwords.hash_password(PASSWORD)
    assert hashed.startswith("$argon2id$v=19$") and hashed != passwords.hash_password(PASSWORD)  # salted
    assert passwords.verify(hashed, PASSWORD)
    assert not passwords.verify(hashed, PASSWORD + "!")
    assert not passwords.verify(None, PASSWORD)
    assert not passwords.verify("not a hash", PASSWORD)
    assert not passwords.needs_rehash(hashed)
    weaker = "$argon2id$v=19$m=8,t=1,p=1$" + hashed.split("$")[-2] + "$" + hashed.split("$")[-1]
    assert passwords.needs_rehash(weaker) and passwords.needs_rehash("not a hash")
    started = time.perf_counter()
    passwords.verify(hashed, "wrong password")
    known = time.perf_counter() - started
    started = time.perf_counter()
    passwords.verify(None, "wrong password")
    unknown = time.perf_counter() - started
    assert unknown > known / 3  # the unknown user is not answered without the work


def test_the_command_line_reads_a_password_from_stdin_or_twice_from_a_prompt_never_an_argument():
    import io

    from tools.cli import AccountCommandError, build_parser, read_password

    assert read_password(io.StringIO("một mật khẩu dài\nnext line\n")) == "một mật khẩu dài"

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    typed = iter(["first entry 123", "first entry 123", "one", "two"])
    assert read_password(Terminal(), prompt=lambda _: next(typed)) == "first entry 123"
    with pytest.raises(AccountCommandError):
        read_password(Terminal(), prompt=lambda _: next(typed))
    with pytest.raises(SystemExit):  # there is no such flag
        build_parser().parse_args(["account", "create", "--username", "a.b", "--unit", "38", "--role", "admin",
                                   "--name", "A", "--password", "x"])  # fmt: skip
