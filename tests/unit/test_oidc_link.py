"""Linking an account to an OpenID Connect identity (AccountService.link_oidc, `baocao account
link-oidc`): the identity's spelling, one account per identity, an admin only under its unit."""

import pytest

from shared.adapters.accounts import AccountExists
from shared.domain.accounts import AccountError, check_oidc_subject
from shared.domain.audit import Action
from shared.domain.auth import Forbidden
from tests.unit.test_account_service import PASSWORD, admin_at, service
from tools.cli import build_parser

ISSUER = "https://id.thanhhoa.example.vn"


def test_an_identity_is_the_issuer_one_space_and_the_subject():
    assert check_oidc_subject(f" {ISSUER}/ 248289761001 ") == f"{ISSUER} 248289761001"
    for bad in ("248289761001", f"{ISSUER}", f"{ISSUER}  248289761001", f"{ISSUER} " + "x" * 256, "id.vn 1"):
        with pytest.raises(AccountError) as caught:
            check_oidc_subject(bad)
        assert caught.value.field == "oidc_subject"


async def test_an_admin_links_and_unlinks_an_account_under_its_unit():
    accounts, store, _, _ = service()
    admin = admin_at("38")
    await accounts.create(admin, username="hoa.le", display_name="Hoa", unit="386", roles=["viewer"], password=PASSWORD)
    change = await accounts.link_oidc(admin, "hoa.le", f"{ISSUER} 248289761001")
    assert change.action is Action.ACCOUNT_LINK_OIDC
    assert await store.by_oidc(f"{ISSUER} 248289761001") == store.accounts["hoa.le"]
    await accounts.link_oidc(admin, "hoa.le", None)
    assert await store.by_oidc(f"{ISSUER} 248289761001") is None
    with pytest.raises(Forbidden):
        await accounts.link_oidc(admin_at("388", "admin.388"), "hoa.le", f"{ISSUER} 1")


async def test_one_identity_opens_one_account_only():
    accounts, _, _, _ = service()
    admin = admin_at("38")
    for name in ("hoa.le", "hoa.le2"):
        await accounts.create(admin, username=name, display_name="Hoa", unit="386", roles=["viewer"], password=PASSWORD)
    await accounts.link_oidc(admin, "hoa.le", f"{ISSUER} 248289761001")
    with pytest.raises(AccountExists):
        await accounts.link_oidc(admin, "hoa.le2", f"{ISSUER} 248289761001")


def test_the_command_takes_a_subject_or_unlink_not_both():
    parser = build_parser()
    args = parser.parse_args(["account", "link-oidc", "hoa.le", "--subject", f"{ISSUER} 248289761001"])
    assert (args.action, args.username, args.subject, args.unlink) == (
        "link-oidc",
        "hoa.le",
        f"{ISSUER} 248289761001",
        False,
    )
    assert parser.parse_args(["account", "link-oidc", "hoa.le", "--unlink"]).unlink
    for wrong in (["hoa.le"], ["hoa.le", "--unlink", "--subject", "x y"]):
        with pytest.raises(SystemExit):
            parser.parse_args(["account", "link-oidc", *wrong])
