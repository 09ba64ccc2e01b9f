"""record(): the pages' audit writes, and what a failed write does (services/api/web/audit.py)."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from services.api.components import ApiMetrics
from services.api.web.audit import record
from services.api.web.errors import PageError
from shared.adapters.audit import InMemoryAuditLog
from shared.domain.audit import Action, AuditQuery
from shared.domain.auth import Principal, Scope
from shared.domain.hierarchy import load_vietnam

TREE = load_vietnam(["38"])
ADMIN = Principal("s1", "38", frozenset({Scope.ADMIN}), 2**40, account="admin1", origin="10.0.0.1")


class Away(InMemoryAuditLog):
    async def append(self, entry):  # type: ignore[no-untyped-def]
        raise ConnectionError("the database is away")


def web_with(audit: InMemoryAuditLog) -> SimpleNamespace:
    return SimpleNamespace(tree=TREE, api=SimpleNamespace(audit=audit, metrics=ApiMetrics()))


REQUEST = SimpleNamespace(client=SimpleNamespace(host="192.0.2.7"))


async def test_an_entry_is_placed_in_the_tree_in_force_with_the_requests_address():
    audit = InMemoryAuditLog()
    await record(web_with(audit), REQUEST, ADMIN, Action.ACCOUNT_CREATE, "14923", subject="clerk1", after={"a": 1})
    (entry,) = (await audit.page(AuditQuery("VN"))).items
    assert (entry.actor, entry.origin, entry.subject) == ("admin1", "192.0.2.7", "clerk1")
    assert entry.scope == ("2025:14923", "2025:38", "VN")  # Xã Bá Thước, today's unit of the code


async def test_an_abolished_district_and_a_new_agency_are_placed_where_they_are_held():
    audit = InMemoryAuditLog()
    await record(web_with(audit), REQUEST, ADMIN, Action.AGENCY_REGISTER, "386")
    await record(web_with(audit), REQUEST, ADMIN, Action.AGENCY_REGISTER, "38-newagency")
    old, agency = reversed((await audit.page(AuditQuery("VN"))).items)
    assert old.scope == ("legacy:386", "legacy:38", "VN")
    assert agency.scope == ("2025:38-newagency", "2025:38", "VN")


async def test_a_failed_login_names_who_tried_without_a_principal():
    audit = InMemoryAuditLog()
    await record(web_with(audit), REQUEST, None, Action.LOGIN_FAILED, "38", actor="someone", detail="wrong password")
    (entry,) = (await audit.page(AuditQuery("2025:38"))).items
    assert (entry.actor, entry.detail) == ("someone", "wrong password")


async def test_an_account_change_that_cannot_be_recorded_fails_and_is_logged_and_counted(caplog):
    web = web_with(Away())
    with caplog.at_level(logging.ERROR), pytest.raises(PageError) as refused:
        await record(web, REQUEST, ADMIN, Action.TOKEN_ISSUE, "38", subject="tok9")
    assert refused.value.status == 503
    assert "audit entry not written" in caplog.text
    assert caplog.records[-1].audit_entry["subject"] == "tok9"
    assert (
        web.api.metrics.registry.get_sample_value("baocao_audit_write_failures_total", {"action": "token.issue"}) == 1
    )


async def test_a_login_that_cannot_be_recorded_goes_on_and_is_counted():
    web = web_with(Away())
    await record(web, REQUEST, ADMIN, Action.LOGIN, "38")
    assert web.api.metrics.registry.get_sample_value("baocao_audit_write_failures_total", {"action": "login"}) == 1
