"""The pages of issue 29's slice B, with fakes: a revision form that starts from the previous
figures, a read-only view of what was sent, and the audit page with its CSV."""

from __future__ import annotations

import codecs
import html
import re
from datetime import UTC, datetime

from services.api.web.listing import InMemorySubmissionListing
from shared.domain.accounts import Account, Role
from shared.domain.audit import Action, AuditEntry
from shared.domain.auth import Scope
from tests.unit.test_web_trees import client, login  # noqa: F401 - the fixture and the login form

OLD_SCOPE = ["legacy:14923", "legacy:386", "legacy:38"]
FIRST = {
    "report_id": "r1",
    "revision": 1,
    "unit": "14923",
    "kind": "study_session",
    "period": "2020-12",
    "submitted_at": "2020-12-26T09:00:00+07:00",
    "body": {
        "resolution": "NQ",
        "held_on": "2020-12-25",
        "format": "online",
        "bridge_points": 1,
        "delegates": 0,
        "members_attended": 280,
        "members_total": 6600,
    },
}
SECOND = {**FIRST, "revision": 2, "body": {**FIRST["body"], "members_attended": 290}}


def with_report(client, bodies=None):  # noqa: F811
    listing = InMemorySubmissionListing()
    when = datetime(2026, 12, 1, tzinfo=UTC)
    listing.add("14923", "r1", "study_session", [1, 2], when, OLD_SCOPE, bodies={1: FIRST, 2: SECOND} | (bodies or {}))
    listing.add(
        "14926", "r9", "study_session", [1], when, ["legacy:14926", "legacy:386", "legacy:38"], bodies={1: FIRST}
    )
    client.app.state.web.submissions = listing
    return client


def value(page: str, name: str) -> str | None:
    found = re.search(rf'id="f-{name}" name="{name}"[^>]*value="([^"]*)"', page)
    return html.unescape(found.group(1)) if found else None


def test_sua_opens_the_form_filled_from_the_latest_revision(client):  # noqa: F811
    with_report(client)
    login(client, "386", Scope.SUBMIT)
    listing = client.get("/web/submissions").text
    row = re.search(r'<tr data-report="r1">.*?</tr>', listing, re.S).group(0)
    link = html.unescape(re.search(r'<a class="revise" href="([^"]+)"', row).group(1))
    assert "from=latest" in link
    form = client.get(link)
    assert form.status_code == 200
    page = form.text
    assert (value(page, "revision"), value(page, "report_id"), value(page, "period")) == ("3", "r1", "2020-12")
    assert value(page, "members_attended") == "290" and value(page, "held_on") == "2020-12-25"
    assert '<option value="online" selected>' in page


def test_a_report_outside_the_subtree_is_not_prefilled(client):  # noqa: F811
    with_report(client)
    login(client, "14923", Scope.SUBMIT)
    refused = client.get("/web/submit?kind=study_session&unit=14926&report_id=r9&from=latest")
    assert refused.status_code == 404
    assert client.get("/web/submissions/view?unit=14926&report_id=r9").status_code == 404


def test_a_report_sent_before_bodies_were_kept_gets_only_the_next_number(client):  # noqa: F811
    listing = InMemorySubmissionListing()
    listing.add("14923", "old", "study_session", [1, 2], datetime(2026, 1, 1, tzinfo=UTC), OLD_SCOPE)
    client.app.state.web.submissions = listing
    login(client, "14923", Scope.SUBMIT)
    page = client.get("/web/submit?kind=study_session&unit=14923&report_id=old&from=latest").text
    assert value(page, "revision") == "3" and value(page, "members_attended") == ""
    view = client.get("/web/submissions/view?unit=14923&report_id=old")
    assert view.status_code == 200 and 'id="no-body"' in view.text


def test_a_clerk_sees_each_revision_as_it_was_sent(client):  # noqa: F811
    with_report(client)
    login(client, "14923", Scope.READ)
    latest = client.get("/web/submissions/view?unit=14923&report_id=r1").text
    assert re.search(r'data-field="members_attended"><th scope="row">[^<]+</th><td>290</td>', latest)
    assert re.search(r'data-field="members_total"><th scope="row">[^<]+</th><td>6.600</td>', latest)
    assert 'id="revise"' not in latest  # no submit scope: nothing to correct with
    first = client.get("/web/submissions/view?unit=14923&report_id=r1&revision=1").text
    assert re.search(r'data-field="members_attended"><th scope="row">[^<]+</th><td>280</td>', first)
    assert client.get("/web/submissions/view?unit=14923&report_id=r1&revision=7").status_code == 422


def entry(at, action=Action.REVISE, actor="clerk1", **more):
    fields = dict(
        unit="14923",
        scope=("legacy:14923", "legacy:386", "legacy:38", "VN"),
        origin="10.0.0.9",
        period="2020-12",
        subject="14923/r1",
        before=FIRST,
        after=SECOND,
        detail="revision 2",
    )
    return AuditEntry(at=at, actor=actor, action=action, **(fields | more))


def filled_log(client):  # noqa: F811
    audit = client.app.state.components.audit
    client.portal.call(audit.append, entry(1_608_950_000, Action.SUBMIT, before=None, after=FIRST, detail="revision 1"))
    client.portal.call(audit.append, entry(1_608_960_000))
    client.portal.call(
        audit.append,
        entry(
            1_608_970_000,
            Action.ACCOUNT_CREATE,
            actor="admin1",
            period=None,
            subject="clerk1",
            before=None,
            after={"roles": ["clerk"]},
        ),
    )
    accounts = client.app.state.web.accounts
    clerk = Account("clerk1", "Nguyễn Thị Lan", "14923", frozenset({Role.CLERK}), password_hash="x")
    client.portal.call(accounts.create, clerk)


def test_the_audit_page_shows_who_when_where_and_the_figures_before_and_after(client):  # noqa: F811
    filled_log(client)
    login(client, "386", Scope.READ)
    page = client.get("/web/audit?unit=14923&period=2020-12")
    assert page.status_code == 200
    text = page.text
    assert text.count('class="entry"') == 2  # the account's entry needs admin
    assert "Nguyễn Thị Lan (clerk1)" in text and "10.0.0.9" in text and "Sửa báo cáo" in text
    changed = r'<tr class="changed"><th scope="row">[^<]+</th><td class="before">280</td>'
    assert re.search(changed + r'<td class="after"><strong>290</strong></td>', text)
    assert "26/12/2020" in text  # Vietnam's time


def test_the_audit_page_refuses_outside_the_subtree_and_bad_input(client):  # noqa: F811
    filled_log(client)
    login(client, "14926", Scope.READ)
    assert client.get("/web/audit?unit=14923").status_code == 403
    assert client.get("/web/audit?unit=14926&period=2020-13").status_code == 422
    assert client.get("/web/audit?unit=14926&after=x").status_code == 422
    login(client, "14926", Scope.SUBMIT)
    assert client.get("/web/audit").status_code == 403


def test_an_admin_reads_the_account_entries_and_the_csv(client):  # noqa: F811
    filled_log(client)
    login(client, "386", Scope.READ, Scope.ADMIN)
    assert client.get("/web/audit?unit=14923").text.count('class="entry"') == 3
    csv = client.get("/web/audit.csv?unit=14923&period=2020-12")
    assert csv.status_code == 200 and csv.content.startswith(codecs.BOM_UTF8)
    lines = csv.content.decode("utf-8-sig").splitlines()
    assert lines[0].startswith("at,actor,action") and len(lines) == 3


class Unanswering:
    """A store whose database does not answer (every call raises what PyMongo raises then)."""

    def __getattr__(self, name):
        async def call(*args, **kwargs):
            from pymongo.errors import ServerSelectionTimeoutError

            raise ServerSelectionTimeoutError("no servers")

        return call


def test_a_database_that_does_not_answer_is_a_503_page_and_a_503_answer_never_a_500(client):  # noqa: F811
    login(client, "386", Scope.READ, Scope.SUBMIT)
    client.app.state.web.submissions = Unanswering()
    client.app.state.components.audit = Unanswering()
    for path in ("/web/audit?unit=14923", "/web/submissions"):
        page = client.get(path)
        assert page.status_code == 503, path
        assert "Cơ sở dữ liệu tạm thời không trả lời" in page.text and page.headers["retry-after"] == "5"
    answer = client.get("/v1/audit", headers={"Authorization": f"Bearer {bearer('386')}"})
    assert answer.status_code == 503 and answer.json() == {"detail": "the database did not answer; retry shortly"}


def bearer(unit: str) -> str:
    from shared.domain.auth import mint
    from tests.conftest import TEST_SECRET

    return mint(TEST_SECRET, unit, (Scope.READ,), 3600)
