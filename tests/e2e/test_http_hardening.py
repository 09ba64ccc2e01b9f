"""The HTTP services against slow and curious clients, as processes: a client that sends its
request headers too slowly gets 408 and loses its connection (slowloris), a slow body is not cut
off, and the batch route's OpenAPI schema describes its items."""

from __future__ import annotations

import json
import socket
import time
from urllib.parse import urlparse

import httpx
import pytest

from .system import start_system
from .test_dead_letters_and_agencies import good

pytestmark = pytest.mark.e2e
HEADER_TIMEOUT = 2.0
BODY_GRACE = 5.0  # longer than the slow body below that must not be cut off
SEARCH_BURST = 5


@pytest.fixture
def services(namespace):
    timeouts = {
        "BAOCAO_INGEST_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
        "BAOCAO_API_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
        "BAOCAO_INGEST_BODY_GRACE_SECONDS": str(BODY_GRACE),
        "BAOCAO_API_BODY_GRACE_SECONDS": str(BODY_GRACE),
        "BAOCAO_API_EXPENSIVE_READS_PER_SECOND": "0.2",
        "BAOCAO_API_EXPENSIVE_READS_BURST": str(SEARCH_BURST),
    }
    system = start_system(namespace, aggregators=0, env=timeouts)
    yield system
    system.stop()


def connect(url: str) -> socket.socket:
    parsed = urlparse(url)
    sock = socket.create_connection((parsed.hostname, parsed.port), timeout=30)
    return sock


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def trickle_headers(sock: socket.socket, seconds: float) -> tuple[bytes, float]:
    """Half a request, then a header byte every 0.25 s for up to ``seconds`` or until the server
    answers; returns what the server sent and when (seconds after the first byte)."""
    started = time.monotonic()
    sock.sendall(b"POST /v1/reports HTTP/1.1\r\nHost: baocao\r\nX-Slow: ")
    sock.settimeout(0.25)
    received = b""
    while time.monotonic() - started < seconds and not received:
        try:
            sock.sendall(b"a")
            received += sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:  # the server closed: it has answered, or never will
            break
    answered_after = time.monotonic() - started
    sock.settimeout(5)
    try:
        received += read_all(sock)
    except OSError:
        pass
    return received, answered_after


@pytest.mark.parametrize("service", ["ingest", "api"])
def test_a_client_sending_half_a_header_is_answered_408_and_closed(services, service):
    url = getattr(services, service).url
    with connect(url) as sock:
        received, closed_after = trickle_headers(sock, seconds=HEADER_TIMEOUT * 5)
    assert received.startswith(b"HTTP/1.1 408 "), received[:200]
    assert b"request headers not received in time" in received
    assert HEADER_TIMEOUT - 0.5 <= closed_after < HEADER_TIMEOUT + 3, closed_after
    # the service still answers everyone else
    assert httpx.get(url + "/healthz", timeout=10).status_code == 200


def test_a_silent_connection_is_closed_too(services):
    with connect(services.ingest.url) as sock:
        started = time.monotonic()
        received = read_all(sock)
    assert received.startswith(b"HTTP/1.1 408 ")
    assert time.monotonic() - started < HEADER_TIMEOUT + 3


def test_the_next_request_on_a_kept_alive_connection_has_its_own_deadline(services):
    with connect(services.api.url) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: baocao\r\n\r\n")
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 ")
        head, _, body = first.partition(b"\r\n\r\n")
        length = int(
            next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
        )
        while len(body) < length:  # the whole first answer, so what comes next is the second's
            body += sock.recv(65536)
        time.sleep(HEADER_TIMEOUT + 0.5)  # idle: uvicorn's keep-alive (5 s) owns this time
        received, _ = trickle_headers(sock, seconds=HEADER_TIMEOUT * 5)
    assert received.startswith(b"HTTP/1.1 408 "), received[:200]


def test_a_slow_body_after_prompt_headers_is_not_cut_off(services):
    body = json.dumps(good("slow-body", "14923", attended=3)).encode()
    token = services.token("14923", "submit")
    with connect(services.ingest.url) as sock:
        sock.sendall(
            b"POST /v1/reports HTTP/1.1\r\nHost: baocao\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {token}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        )
        third = len(body) // 3
        for start in range(0, len(body), third):
            time.sleep(HEADER_TIMEOUT * 0.6)  # the body takes longer than the header deadline
            sock.sendall(body[start : start + third])
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 202 "), answer[:300]


def test_the_batch_route_describes_its_items_in_the_served_schema(services):
    schema = httpx.get(services.ingest.url + "/openapi.json", timeout=10).json()
    batch = schema["paths"]["/v1/reports/batch"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    single = schema["paths"]["/v1/reports"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert batch["type"] == "array" and batch["items"] == single and batch["maxItems"] == 1000
    assert {ref["$ref"] for ref in batch["items"]["oneOf"]} >= {"#/components/schemas/StudySessionReportIn"}


def slow_bodies(url: str, head: bytes, count: int, seconds: float) -> list[float | None]:
    """``count`` connections that each send ``head`` (a request's headers declaring a body), then
    a body byte per 0.25 s; for each, when the server closed it (seconds after its headers), or
    None if it was still open after ``seconds``."""
    socks = [connect(url) for _ in range(count)]
    closed: list[float | None] = [None] * count
    started = time.monotonic()
    for sock in socks:
        sock.sendall(head)
        sock.setblocking(False)
    try:
        while time.monotonic() - started < seconds and None in closed:
            for i, sock in enumerate(socks):
                if closed[i] is not None:
                    continue
                try:
                    if sock.recv(65536) == b"":
                        closed[i] = time.monotonic() - started
                        continue
                except BlockingIOError:
                    pass
                except OSError:
                    closed[i] = time.monotonic() - started
                    continue
                try:
                    sock.send(b"a")
                except OSError:
                    closed[i] = time.monotonic() - started
            time.sleep(0.25)
    finally:
        for sock in socks:
            sock.close()
    return closed


def test_twenty_slow_bodies_without_a_token_lose_their_connections_within_the_bound(services):
    # a page that takes a body without a token (the login form): the body deadline ends them
    login = (
        b"POST /web/login HTTP/1.1\r\nHost: baocao\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        + f"Origin: {services.api.url}\r\nContent-Length: 100000\r\n\r\n".encode()
    )
    closed = slow_bodies(services.api.url, login, 20, seconds=BODY_GRACE * 4)
    assert None not in closed, closed
    assert max(c for c in closed if c is not None) < BODY_GRACE + 3, closed
    # a route that needs a token answers 401 before reading any of the body, and closes
    report = (
        b"POST /v1/reports HTTP/1.1\r\nHost: baocao\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
    )
    closed = slow_bodies(services.ingest.url, report, 20, seconds=BODY_GRACE * 4)
    assert None not in closed, closed
    assert max(c for c in closed if c is not None) < BODY_GRACE, closed
    assert httpx.get(services.api.url + "/healthz", timeout=10).status_code == 200


def test_a_tokens_searches_past_its_budget_get_429_and_its_neighbour_still_reads(services):
    with (
        services.client(services.api.url, services.token("14923", "read")) as greedy,
        services.client(services.api.url, services.token("14926", "read")) as neighbour,
    ):
        answers = [greedy.get("/v1/units", params={"q": "zz", "tree": "legacy"}) for _ in range(SEARCH_BURST + 3)]
        statuses = [r.status_code for r in answers]
        assert statuses[:SEARCH_BURST] == [200] * SEARCH_BURST and 429 in statuses, statuses
        refused = next(r for r in answers if r.status_code == 429)
        assert int(refused.headers["Retry-After"]) >= 1
        assert neighbour.get("/v1/units", params={"q": "zz", "tree": "legacy"}).status_code == 200
        totals = neighbour.get("/v1/units/14926/totals", params={"period": "2021-11"})
        assert totals.status_code == 200


@pytest.mark.parametrize(
    "name", ["Bệnh\u2028viện", "Bệnh viện\u200f", "\ufeffBệnh viện", "Bệnh viện\U000e0041", "\u200b", "\u061c"]
)
def test_agency_names_with_invisible_or_separator_characters_get_422_on_the_name(services, name):
    with services.client(services.api.url, services.token("38", "admin")) as admin:
        r = admin.post("/v1/admin/agencies", json={"code": "38-bv_ten", "name": name, "parent": "38"})
    assert r.status_code == 422, r.text
    assert [e["loc"] for e in r.json()["detail"]] == [["body", "name"]]
