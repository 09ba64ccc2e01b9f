"""The page of submitted reports lists them a page at a time, newest first, through the
submissions listing (services/api/web/listing.py)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from services.api.web.listing import PAGE_SIZE, InMemorySubmissionListing
from shared.domain.auth import Scope
from tests.unit.test_web_trees import client, login  # noqa: F401 - the fixture and the login form


def rows(html: str) -> list[str]:
    return re.findall(r'<tr data-report="([^"]+)">', html)


def next_link(html: str) -> str | None:
    found = re.search(r'id="next-page" rel="next" href="([^"]+)"', html)
    return found.group(1).replace("&amp;", "&") if found else None


def _filled(n: int) -> InMemorySubmissionListing:
    """``n`` reports of 14923 recorded a second apart, then a sibling's."""
    listing, start = InMemorySubmissionListing(), datetime(2026, 12, 1, tzinfo=UTC)
    for i in range(n):
        scope = ["legacy:14923", "legacy:386", "legacy:38"]
        listing.add("14923", f"r{i:03d}", "study_session", [1], start + timedelta(seconds=i), scope)
    # a sibling's, never listed for 14923
    scope = ["legacy:14926", "legacy:386", "legacy:38"]
    listing.add("14926", "r-other", "study_session", [1], start + timedelta(seconds=n), scope)
    return listing


def test_the_submissions_page_pages_newest_first_and_each_report_once(client):  # noqa: F811
    client.app.state.web.submissions = _filled(2 * PAGE_SIZE + 7)
    login(client, "14923", Scope.SUBMIT)
    seen: list[list[str]] = []
    url: str | None = "/web/submissions"
    while url is not None:
        page = client.get(url)
        assert page.status_code == 200
        seen.append(rows(page.text))
        url = next_link(page.text)
    assert [len(p) for p in seen] == [PAGE_SIZE, PAGE_SIZE, 7]
    everything = [r for p in seen for r in p]
    assert everything == [f"r{i:03d}" for i in reversed(range(2 * PAGE_SIZE + 7))]
    assert 'id="first-page"' in client.get(next_link(client.get("/web/submissions").text)).text


def test_a_submissions_page_cursor_the_log_did_not_give_is_422_not_500(client):  # noqa: F811
    client.app.state.web.submissions = InMemorySubmissionListing()
    login(client, "14923", Scope.SUBMIT)
    page = client.get("/web/submissions", params={"after": "not-a-cursor"})
    assert page.status_code == 422 and "after" in page.text
