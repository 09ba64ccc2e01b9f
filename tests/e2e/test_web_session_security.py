"""Web sessions, CSRF and security headers against the services as processes, and in headless
Chromium: the session cookie is an opaque id that logout ends, no other origin (another site or
another port of this host) may post to the pages, every answer carries the security headers, and
the live-update stream ends within seconds of a revocation, an expiry or a logout, at most
``BAOCAO_API_WEB_MAX_STREAMS_PER_SESSION`` at a time.

The timings measured here (how long events still arrive after a revocation or an expiry, how
many streams one session may open) are printed with the prefix ``MEASURE`` for the closing note.
"""

from __future__ import annotations

import base64
import html
import http.server
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

from shared.adapters.revocations import REVOKED
from shared.domain.auth import Scope, mint, verify
from shared.domain.hierarchy import load_vietnam
from tests.conftest import TEST_SECRET, wait_until
from tools import demo

from .browser import Browser
from .system import System, own_system

pytestmark = pytest.mark.e2e

TREE = load_vietnam(["38"])
COMMUNES = demo.communes_of(TREE, demo.BA_THUOC)
HOME = COMMUNES[0]
SEED = next(r for r in demo.seed_000_study_sessions(TREE) if r["unit"] == HOME)
CAP_SECONDS = 20.0  # how long a stream is followed after its token is revoked or has expired
PROMPT_SECONDS = 3.0  # the most an event may still arrive after the session has ended


@pytest.fixture(scope="module")
def system(infra: dict[str, str]) -> Iterator[System]:
    yield from own_system(infra)


class Reports:
    """Sends a report of HOME every half second while running, so a stream of 386 gets events."""

    def __init__(self, system: System) -> None:
        self.system = system
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.sent = 0

    def run(self) -> None:
        token = self.system.token(HOME, Scope.SUBMIT)
        with self.system.client(self.system.ingest.url, token) as http:
            while not self.stop.is_set():
                self.sent += 1
                report = {
                    **SEED,
                    "report_id": f"{HOME}-live-{uuid.uuid4().hex[:10]}",
                    "period": "2021-01",
                    "body": {**SEED["body"], "held_on": "2021-01-20", "members_attended": self.sent % 50 + 1},
                }
                try:
                    http.post("/v1/reports", json=report)
                except httpx.HTTPError:
                    pass
                self.stop.wait(0.5)

    def __enter__(self) -> Reports:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join(10)


def csrf_of(page: str) -> str | None:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    return html.unescape(found.group(1)) if found else None


def web_login(system: System, token: str) -> httpx.Client:
    """An HTTP client holding a web session of ``token``, logged in as the login form does."""
    http = httpx.Client(base_url=system.api.url, timeout=30, follow_redirects=False)
    form = http.get("/web/login")
    data = {"token": token}
    if (csrf := csrf_of(form.text)) is not None:
        data["csrf"] = csrf
    answer = http.post("/web/login", data=data, headers={"Origin": system.api.url})
    assert answer.status_code == 303, answer.text
    return http


class Listener:
    """Follows the web event stream of 386 in a thread, noting when each event arrives."""

    def __init__(self, http: httpx.Client, path: str = "/web/units/386/events") -> None:
        self.http = http
        self.path = path
        self.events: list[float] = []
        self.ended_at: float | None = None
        self.status: int | None = None
        self.end_reason = ""
        self.connected = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        try:
            with self.http.stream("GET", self.path, timeout=httpx.Timeout(30, read=CAP_SECONDS + 30)) as r:
                self.status = r.status_code
                self.connected.set()
                if r.status_code != 200:
                    return
                for line in r.iter_lines():
                    if line.startswith("event: total"):
                        self.events.append(time.time())
                    elif line.startswith("data:") and "reason" in line:
                        self.end_reason = line
        except httpx.HTTPError:
            pass
        finally:
            self.ended_at = time.time()
            self.connected.set()

    def wait_for_event(self, timeout: float = 60) -> None:
        wait_until(lambda: self.events, timeout=timeout, what="a first event on the web stream")

    def after(self, moment: float, cap: float = CAP_SECONDS) -> tuple[float, bool]:
        """Seconds after ``moment`` the last event arrived (0 if none did), waiting until the
        stream ends or ``cap`` seconds have passed, and whether it ended by itself."""
        self.thread.join(max(moment + cap - time.time(), 0))
        ended = self.ended_at is not None and self.ended_at < moment + cap
        late = [t - moment for t in self.events if t > moment]
        return (max(late) if late else 0.0), ended


def revoke(system: System, token: str) -> None:
    mongo: MongoClient[dict[str, Any]] = MongoClient(system.namespace.env["MONGODB_URI"])
    try:
        token_id = verify(TEST_SECRET, token).token_id
        mongo[system.namespace.database][REVOKED].update_one(
            {"_id": token_id}, {"$set": {"reason": "test", "at": time.time()}}, upsert=True
        )
    finally:
        mongo.close()


def test_events_stop_within_seconds_of_a_revocation(system):
    token = system.token("386", Scope.READ, Scope.STREAM)
    with closing(web_login(system, token)) as http, Reports(system):
        listener = Listener(http)
        listener.wait_for_event()
        revoked_at = time.time()
        revoke(system, token)
        late, ended = listener.after(revoked_at)
    print(f"MEASURE revocation: last event {late:.1f} s after, stream ended by itself: {ended}")
    assert ended and late <= PROMPT_SECONDS, (late, ended)


def test_events_stop_at_the_tokens_expiry(system):
    token = mint(TEST_SECRET, "386", [Scope.READ, Scope.STREAM], 25)
    expires = verify(TEST_SECRET, token).expires_at
    with closing(web_login(system, token)) as http, Reports(system):
        listener = Listener(http)
        listener.wait_for_event(timeout=max(expires - time.time() - 1, 1))
        late, ended = listener.after(expires)
    print(f"MEASURE expiry: last event {late:.1f} s after, stream ended by itself: {ended}")
    assert ended and late <= PROMPT_SECONDS, (late, ended)


def test_logout_ends_the_session_its_stream_and_a_replayed_cookie(system):
    token = system.token("386", Scope.READ, Scope.STREAM)
    http = web_login(system, token)
    cookie = http.cookies["baocao_session"]
    assert http.get("/web/units/386").status_code == 200
    with Reports(system):
        listener = Listener(http)
        listener.wait_for_event()
        page = http.get("/web/units/386").text
        out_at = time.time()
        out = http.post("/web/logout", data={"csrf": csrf_of(page) or ""}, headers={"Origin": system.api.url})
        assert out.status_code == 303
        late, ended = listener.after(out_at)
    print(f"MEASURE logout: last event {late:.1f} s after, stream ended by itself: {ended}")
    assert ended and late <= PROMPT_SECONDS, (late, ended)
    with httpx.Client(base_url=system.api.url, cookies={"baocao_session": cookie}) as replay:
        answer = replay.get("/web/units/386", follow_redirects=False)
        assert (answer.status_code, answer.headers["location"]) == (303, "/web/login")
        assert replay.get("/web/units/386/events").status_code == 401
    http.close()


def test_one_session_holds_a_few_streams_and_more_get_429(system):
    token = system.token("386", Scope.READ, Scope.STREAM)
    with closing(web_login(system, token)) as http:
        listeners = []
        for _ in range(12):
            listener = Listener(http)
            listener.connected.wait(30)
            listeners.append(listener)
        statuses = [listener.status for listener in listeners]
        accepted = statuses.count(200)
        print(f"MEASURE streams: {accepted} of 12 accepted on one session, statuses {sorted(set(statuses))}")
        http.post(
            "/web/logout",
            data={"csrf": csrf_of(http.get("/web/units/386").text) or ""},
            headers={"Origin": system.api.url},
        )
        for listener in listeners:
            listener.thread.join(10)
    assert 1 <= accepted <= 3 and statuses.count(429) == 12 - accepted, statuses


def test_the_cookie_is_an_opaque_id_not_a_bearer_token(system):
    token = system.token("386", Scope.READ)
    with closing(web_login(system, token)) as http:
        cookie = http.cookies["baocao_session"]
        set_cookie = http.get("/web/units/386")  # still logged in
        assert set_cookie.status_code == 200
        assert token not in cookie and not cookie.startswith("bcv1.")
        for part in cookie.split("."):  # nor the token encoded in it
            decoded = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
            assert token.encode() not in decoded and b"bcv1." not in decoded
        api = httpx.get(f"{system.api.url}/v1/units/386", headers={"Authorization": f"Bearer {cookie}"})
        assert api.status_code == 401
        # a changed, padded or lengthened cookie is refused
        for bad in (
            cookie + "=",
            cookie + "A",
            cookie[:-1],
            cookie[:-1] + ("A" if cookie[-1] != "A" else "B"),
            cookie + "==",
            cookie + "%3D",
            cookie.swapcase(),
        ):
            with httpx.Client(base_url=system.api.url, cookies={"baocao_session": bad}) as other:
                answer = other.get("/web/units/386", follow_redirects=False)
                assert (answer.status_code, answer.headers.get("location")) == (303, "/web/login"), bad


def test_posts_from_another_origin_or_port_are_refused_with_403(system):
    token = system.token(HOME, Scope.READ, Scope.SUBMIT)
    port = int(system.api.url.rsplit(":", 1)[1])
    other_port = f"http://127.0.0.1:{port + 1}"
    refused = (
        ("/web/login", {"data": {"token": token}}),
        ("/web/logout", {"data": {}}),
        ("/web/submit", {"data": {"kind": "study_session", "unit": HOME}}),
        ("/web/upload/send", {"content": '{"reports": [{}]}', "headers": {"Content-Type": "text/plain"}}),
    )
    with closing(web_login(system, token)) as http:
        for origin in ("https://evil.example", other_port, "null"):
            for path, kwargs in refused:
                headers = {**kwargs.get("headers", {}), "Origin": origin}
                answer = http.post(path, **{k: v for k, v in kwargs.items() if k != "headers"}, headers=headers)
                assert answer.status_code == 403, (origin, path, answer.status_code, answer.text[:200])
                assert "set-cookie" not in answer.headers or path == "/web/logout"
        # same origin, but text/plain where JSON is expected, or no CSRF token
        page = http.get("/web/upload").text
        csrf = csrf_of(page)
        assert csrf
        plain = http.post(
            "/web/upload/send",
            content='{"reports": [{}]}',
            headers={"Origin": system.api.url, "Content-Type": "text/plain", "X-CSRF-Token": csrf},
        )
        assert plain.status_code == 415 or plain.status_code == 403, plain.text
        no_token = http.post(
            "/web/upload/send",
            content='{"reports": [{}]}',
            headers={"Origin": system.api.url, "Content-Type": "application/json"},
        )
        assert no_token.status_code == 403, no_token.text
        still = http.get(f"/web/units/{HOME}")
        assert still.status_code == 200  # the refusals did not end the session


def test_every_answer_carries_the_security_headers(system):
    token = system.token("386", Scope.READ)
    with closing(web_login(system, token)) as http:
        answers = [
            http.get("/web/login"),
            http.get("/web/units/386"),
            http.get("/web/units/99999"),
            http.get("/web/static/app.js"),
            httpx.get(f"{system.api.url}/v1/units/386"),
            httpx.get(f"{system.api.url}/healthz"),
        ]
    for answer in answers:
        h = answer.headers
        csp = h.get("content-security-policy", "")
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, answer.url
        assert "unsafe-inline" not in csp
        assert h.get("x-content-type-options") == "nosniff", answer.url
        assert h.get("referrer-policy") == "same-origin", answer.url
        assert h.get("x-frame-options") == "DENY", answer.url


# --- in Chromium -----------------------------------------------------------------------------


class Attacker:
    """Pages on another origin of this host (another port), which post to the pages' routes."""

    def __init__(self, target: str, token: str) -> None:
        pages = {
            "/login": f"""<!doctype html><form method="post" action="{target}/web/login">
                <input type="hidden" name="token" value="{token}"><button id="go">go</button></form>""",
            "/send": f"""<!doctype html><form method="post" action="{target}/web/upload/send" enctype="text/plain">
                <input type="hidden" name='{{"reports": [{{"x": "' value='"}}], "y": "1"}}'>
                <button id="go">go</button></form>""",
            "/submit": f"""<!doctype html><form method="post" action="{target}/web/submit">
                <input type="hidden" name="kind" value="study_session"><button id="go">go</button></form>""",
        }

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = pages.get(self.path.split("?")[0], "").encode()
                self.send_response(200 if body else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.port = self.server.server_address[1]

    def url(self, host: str, path: str) -> str:
        return f"http://{host}:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def browser(chromium: Any, system: System, tmp_path: Path) -> Browser:
    return Browser(chromium, system.api.url, tmp_path)


def csp_violations(browser: Browser) -> list[str]:
    return [
        entry["message"]
        for entry in browser.driver.get_log("browser")
        if "Content Security Policy" in entry.get("message", "")
    ]


def test_in_chromium_a_login_post_from_another_site_gets_no_session(browser, system):
    victim_session = system.token("386", Scope.READ)
    attacker = Attacker(system.api.url, system.token(HOME, Scope.READ))
    try:
        browser.open("/web/login")
        browser.driver.delete_all_cookies()
        browser.driver.get(attacker.url("localhost", "/login"))  # localhost: another site
        browser.find("#go").click()
        browser.wait(lambda d: d.current_url.startswith(system.api.url), what="the post to arrive")
        assert "Yêu cầu bị từ chối" in browser.find("body").text
        assert browser.driver.get_cookie("baocao_session") is None
        browser.open("/web/")
        assert browser.path == "/web/login"
        del victim_session
    finally:
        attacker.close()


def test_in_chromium_posts_from_another_port_are_refused_and_the_session_survives(browser, system):
    browser.login(system.token(HOME, Scope.READ, Scope.SUBMIT))
    attacker = Attacker(system.api.url, "x")
    try:
        for page in ("/send", "/submit"):
            browser.driver.get(attacker.url("127.0.0.1", page))  # the same site, another port
            browser.find("#go").click()
            browser.wait(lambda d: d.current_url.startswith(system.api.url), what="the post to arrive")
            body = browser.find("body").text
            assert "Yêu cầu bị từ chối" in body and "Request refused" in body, (page, body)
        browser.open(f"/web/units/{HOME}?period=2020-12")
        assert browser.path.startswith(f"/web/units/{HOME}")  # still logged in
    finally:
        attacker.close()


def test_in_chromium_the_pages_work_under_the_csp_and_logout_ends_the_session(browser, system, tmp_path):
    browser.driver.get_log("browser")  # forget earlier messages
    browser.login(system.token("386", Scope.READ, Scope.STREAM, Scope.SUBMIT))
    browser.open("/web/units/386?period=2021-01&series=study_session")
    browser.wait(lambda d: browser.find("#live").get_attribute("data-connected") == "yes", what="the event stream")
    with Reports(system):
        browser.wait(
            lambda d: int(browser.find("#live").get_attribute("data-updates") or 0) >= 1,
            timeout=60,
            what="a live update to redraw the table",
        )
    browser.open("/web/upload")
    path = tmp_path / "mot-dong.csv"
    header = httpx.get(
        f"{system.api.url}/web/templates/study_session.csv", cookies={"baocao_session": browser.session_cookie()}
    ).content
    path.write_bytes(header + f",,{COMMUNES[7]},2021-02,,2021-02-05,online,1,3,30,40\r\n".encode())
    from selenium.webdriver.support.ui import Select

    Select(browser.find("#kind")).select_by_value("study_session")
    browser.find("#file").send_keys(str(path))
    browser.find("#upload-form button[type=submit]").click()
    browser.wait(lambda d: browser.find("#upload-form").get_attribute("data-state") == "done", what="the upload")
    assert [r.get_attribute("data-status") for r in browser.all("#results tbody tr")] == ["accepted"]
    assert csp_violations(browser) == []

    cookie = browser.session_cookie()
    browser.find("form.logout button").click()
    browser.wait(lambda d: d.current_url.endswith("/web/login"), what="the login page after logout")
    with httpx.Client(base_url=system.api.url, cookies={"baocao_session": cookie}) as replay:
        answer = replay.get("/web/units/386", follow_redirects=False)
    assert (answer.status_code, answer.headers["location"]) == (303, "/web/login")
