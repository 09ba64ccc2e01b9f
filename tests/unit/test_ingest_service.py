"""The ingest use case decides whether a token may submit for a unit once the unit is known, so an
agency registered (through the API) while a request was under way cannot slip through: the
lookup that loads it and the subtree check see the same tree."""

import asyncio

import pytest

from services.ingest.metrics import IngestMetrics
from services.ingest.publisher import InMemoryPublisher
from services.ingest.service import IngestService, OutsideSubtreeError, Status
from services.ingest.submissions import InMemorySubmissionLog
from shared.domain.auth import Principal, Scope
from shared.domain.catalog import load_catalog
from shared.domain.hierarchy import load_vietnam
from shared.domain.reports import REPORT_ADAPTER
from tests.unit.test_ingest_app import report


def commune_token(unit: str) -> Principal:
    return Principal("t1", unit, frozenset({Scope.SUBMIT}), 2**40)


def service_registering(agency: str, parent: str) -> tuple[IngestService, InMemoryPublisher]:
    """A service whose registry lookup finds ``agency`` registered a moment ago (under
    ``parent``) and loads it into the tree, as AgencyRegistry.lookup does."""
    tree = load_vietnam(["38"])
    publisher = InMemoryPublisher()

    async def lookup(code: str) -> bool:
        await asyncio.sleep(0)  # the database round trip, during which anything may run
        if code == agency and code not in tree:
            tree.add_agency(agency, "Doanh nghiệp X", parent)
        return code in tree

    service = IngestService(publisher, InMemorySubmissionLog(), tree, load_catalog(), IngestMetrics(), lookup)
    return service, publisher


async def test_a_neighbours_agency_registered_meanwhile_is_refused_and_nothing_is_published():
    service, publisher = service_registering("14926-dnx", "14926")
    item = REPORT_ADAPTER.validate_python(report(unit="14926-dnx"))
    with pytest.raises(OutsideSubtreeError, match="unit 14926-dnx is outside this token's unit 14923"):
        await service.submit(item, commune_token("14923"))
    assert publisher.partitions == [[] for _ in publisher.partitions]


async def test_many_at_once_none_slips_through():
    service, publisher = service_registering("14926-dnx", "14926")
    items = [REPORT_ADAPTER.validate_python(report(unit="14926-dnx", rid=f"r{i}")) for i in range(200)]
    outcomes = await asyncio.gather(
        *(service.submit(item, commune_token("14923")) for item in items), return_exceptions=True
    )
    assert all(isinstance(o, OutsideSubtreeError) for o in outcomes)
    assert sum(len(p) for p in publisher.partitions) == 0


async def test_an_agency_of_ones_own_unit_registered_meanwhile_is_accepted():
    service, publisher = service_registering("14923-dnx", "14923")
    item = REPORT_ADAPTER.validate_python(report(unit="14923-dnx"))
    outcome = await service.submit(item, commune_token("14923"))
    assert outcome.status == Status.ACCEPTED
    assert sum(len(p) for p in publisher.partitions) == 1


async def test_each_report_is_recorded_with_its_scope_in_the_tree_of_its_period():
    # 14923 is Thị trấn Cành Nàng under district 386 before July 2025, Xã Bá Thước under province
    # 38 after: the same code, a scope per tree
    service, _ = service_registering("14923-dnx", "14923")
    old = REPORT_ADAPTER.validate_python(report(rid="old"))
    new = REPORT_ADAPTER.validate_python(
        {**report(rid="new"), "period": "2025-10", "submitted_at": "2025-10-26T09:00:00+07:00"}
        | {"body": {**report()["body"], "held_on": "2025-10-25"}}
    )
    agency = REPORT_ADAPTER.validate_python(report(unit="14923-dnx", rid="dnx"))
    for item in (old, new, agency):
        assert (await service.submit(item, Principal("t", "38", frozenset({Scope.SUBMIT}), 2**40))).status == "accepted"
    log = service.submissions
    assert (await log.get("14923", "old")).scope == ("legacy:14923", "legacy:386", "legacy:38")
    assert (await log.get("14923", "new")).scope == ("2025:14923", "2025:38")
    assert (await log.get("14923-dnx", "dnx")).scope == ("legacy:14923-dnx", "legacy:14923", "legacy:386", "legacy:38")


def in_month(item: dict, month: str) -> dict:
    return {**item, "period": month, "submitted_at": f"{month}-26T09:00:00+07:00"} | {
        "body": {**item["body"], "held_on": f"{month}-25"}
    }


async def test_a_closed_agency_reports_the_periods_before_its_closing_and_none_after():
    from datetime import date

    from services.ingest.service import UnknownUnitError

    service, publisher = service_registering("14923-dnx", "14923")
    await service.known("14923-dnx")
    service.tree.close_agency("14923-dnx", date(2025, 10, 1))
    token = commune_token("14923")
    september = REPORT_ADAPTER.validate_python(in_month(report(unit="14923-dnx", rid="sep"), "2025-09"))
    october = REPORT_ADAPTER.validate_python(in_month(report(unit="14923-dnx", rid="oct"), "2025-10"))
    assert (await service.submit(september, token)).status == Status.ACCEPTED
    with pytest.raises(UnknownUnitError, match="agency 14923-dnx is closed from 2025-10-01"):
        await service.submit(october, token)
    assert sum(len(p) for p in publisher.partitions) == 1
    service.tree.close_agency("14923-dnx", None)  # reopened: October is taken
    assert (await service.submit(october, token)).status == Status.ACCEPTED
