"""Hostile files in and out of the web pages: uploads stop at the first limit they pass, with the
limit, row and column named; client mistakes are 4xx; exports carry no formula."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import subprocess
import sys
import time
import zipfile
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from openpyxl import Workbook, load_workbook

from services.api.app import create_app
from services.api.repository import InMemoryTotalsReader
from services.api.settings import ApiSettings
from services.api.web.sheets import (
    DEFAULT_LIMITS,
    SheetError,
    UploadLimits,
    read_rows,
    table_csv,
    table_xlsx,
    template_columns,
    totals_table,
)
from services.api.web.uploads import UploadParser, UploadsBusy
from shared.domain.auth import Scope, mint
from shared.domain.catalog import load_catalog
from shared.domain.hierarchy import load_vietnam
from tests.conftest import TEST_SECRET, wait_until
from tests.unit.test_api_app import DOCS

CATALOG = load_catalog()
KIND = "study_session"
HEADER = ",".join(template_columns(load_catalog(), "study_session"))
ROW = ",,14923,2020-12,NQ,25/12/2020,online,15,0,284,315,"  # the last column: the conference joined, none
SMALL = UploadLimits(max_rows=3, max_columns=12, max_cells=60, max_cell_chars=50)


def refused(data: bytes, filename: str = "a.csv", limits: UploadLimits = DEFAULT_LIMITS) -> SheetError:
    with pytest.raises(SheetError) as caught:
        read_rows(CATALOG, KIND, filename, data, limits)
    return caught.value


def csv_file(*rows: str) -> bytes:
    return "\n".join([HEADER, *rows, ""]).encode()


def _cells(values: list[str]) -> str:
    return "".join(f'<c t="inlineStr"><is><t>{v}</t></is></c>' for v in values)


def xlsx(rows_xml: str, dimension: str = "A1:L2", extra: dict[str, bytes] | None = None) -> bytes:
    """An .xlsx whose first sheet is the template's header row and then ``rows_xml``."""
    book = Workbook()
    made = io.BytesIO()
    book.save(made)
    sheet = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        f'<dimension ref="{dimension}"/><sheetData><row r="1">{_cells(HEADER.split(","))}</row>{rows_xml}'
        "</sheetData></worksheet>"
    )
    out = io.BytesIO()
    with zipfile.ZipFile(made) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as dst:
        for item in src.infolist():
            is_sheet = item.filename == "xl/worksheets/sheet1.xml"
            dst.writestr(item.filename, sheet.encode() if is_sheet else src.read(item))
        for name, data in (extra or {}).items():
            dst.writestr(name, data)
    return out.getvalue()


XLSX_ROW = "<row>" + _cells(ROW.split(",")) + "</row>"


# --- limits of a CSV file ---


def test_a_csv_within_the_limits_is_read():
    assert [n for n, _ in read_rows(CATALOG, KIND, "a.csv", csv_file(ROW, ROW, ROW), SMALL)] == [2, 3, 4]


def test_a_csv_stops_at_the_first_row_past_the_limit_without_reading_further():
    # the line after the limit is not CSV at all: it is never read
    error = refused(csv_file(ROW, ROW, ROW, ROW, "\0broken"), limits=SMALL)
    assert error.limit == "max_rows" and "dòng 5" in str(error) and "quá 3 dòng" in str(error)


def test_blank_csv_rows_count_towards_the_row_limit():
    assert refused(csv_file(*[""] * 4), limits=SMALL).limit == "max_rows"


def test_a_million_row_csv_is_refused_quickly():
    data = ("unit,period\n" + "1,\n" * 1_000_000).encode()
    start = time.monotonic()
    error = refused(data)
    assert error.limit == "max_rows" and "dòng 5.002" in str(error)
    assert time.monotonic() - start < 2  # a full parse of the million rows takes several times as long


def test_a_csv_row_with_too_many_columns_names_the_row_and_column():
    error = refused(csv_file(ROW + ",x"), limits=SMALL)
    assert error.limit == "max_columns" and "dòng 2, cột M" in str(error)


def test_a_csv_cell_too_long_names_the_row_and_column():
    error = refused(csv_file(",,14923," + "9" * 51), limits=SMALL)
    assert error.limit == "max_cell_chars" and "dòng 2, cột D" in str(error)


def test_a_200_kb_csv_field_is_a_client_error_not_a_crash():
    error = refused(csv_file(ROW, ",,14923," + "9" * 200_000))
    assert error.limit == "max_cell_chars" and "dòng 3" in str(error) and "2.000 ký tự" in str(error)


def test_a_csv_with_too_many_cells_is_refused():
    assert refused(csv_file(ROW, ROW, ROW), limits=UploadLimits(max_cells=20)).limit == "max_cells"


def test_a_csv_that_is_not_utf8_says_where():
    error = refused(HEADER.encode() + b"\n,,\xff\n")
    assert error.limit is None and "UTF-8" in str(error)


# --- limits of an .xlsx file ---


def test_an_xlsx_within_the_limits_is_read():
    rows = read_rows(CATALOG, KIND, "a.xlsx", xlsx(XLSX_ROW * 3, "A1:L4"), SMALL)
    assert [n for n, _ in rows] == [2, 3, 4] and rows[0][1]["members_total"] == "315"


def test_an_xlsx_declaring_a_huge_dimension_is_refused_before_any_row_is_read():
    start = time.monotonic()
    error = refused(xlsx('<row r="6000"/>', "A1:XFD6000"), "bomb.xlsx")
    assert time.monotonic() - start < 1
    assert error.limit == "max_rows" and "A1:XFD6000" in str(error) and "Trang tính “Sheet”" in str(error)
    assert refused(xlsx("", "A1:XFD2"), "bomb.xlsx").limit == "max_columns"


def test_an_xlsx_row_far_below_is_refused_by_its_number():
    error = refused(xlsx('<row r="1048576"/>', "A1:L1"), "far.xlsx")
    assert error.limit == "max_rows" and "dòng 1.048.576" in str(error)


def test_an_xlsx_of_many_rows_stops_at_the_limit():
    error = refused(xlsx(XLSX_ROW * 10, "A1:L2"), "rows.xlsx", SMALL)
    assert error.limit == "max_rows" and "dòng 5" in str(error)


def test_an_xlsx_cell_past_the_last_column_names_it():
    error = refused(xlsx('<row r="2"><c r="ZZ2"><v>1</v></c></row>', "A1:L2"), "wide.xlsx")
    assert error.limit == "max_columns" and "dòng 2, cột ZZ" in str(error)


def test_an_xlsx_with_too_many_cells_is_refused():
    assert refused(xlsx(XLSX_ROW * 3, "A1:L4"), "a.xlsx", UploadLimits(max_cells=30)).limit == "max_cells"


def test_an_xlsx_cell_too_long_names_it():
    row = '<row r="2">' + _cells(["", "", "14923", "x" * 51]) + "</row>"
    error = refused(xlsx(row, "A1:L2"), "a.xlsx", SMALL)
    assert error.limit == "max_cell_chars" and "dòng 2, cột D" in str(error)


def test_an_xlsx_part_decompressing_past_the_limit_is_refused_before_it_is_decompressed():
    rows = XLSX_ROW * 40_000  # about 9 MB of XML in some 40 KB
    error = refused(xlsx(rows, "A1:K40001"), "zip.xlsx")
    assert error.limit == "max_member_bytes" and "xl/worksheets/sheet1.xml" in str(error)
    small_parts = UploadLimits(max_member_bytes=10**9, max_unzipped_bytes=1_000_000)
    assert refused(xlsx(rows, "A1:K40001"), "zip.xlsx", small_parts).limit == "max_unzipped_bytes"


def test_an_xlsx_of_too_many_parts_is_refused():
    extra = {f"junk/{i}.xml": b"<a/>" for i in range(70)}
    assert refused(xlsx(XLSX_ROW, extra=extra), "parts.xlsx").limit == "max_zip_members"


def test_an_xlsx_with_entity_expansion_is_refused():
    laughs = '<!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">' + "".join(
        f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(8)
    )
    out = io.BytesIO()  # a well-formed file, then its sheet given the entities
    with zipfile.ZipFile(io.BytesIO(xlsx(XLSX_ROW))) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            body = src.read(item)
            if item.filename == "xl/worksheets/sheet1.xml":
                body = body.replace(b"?><worksheet", f"?>{laughs}]><worksheet".encode()).replace(
                    b"<t>NQ</t>", b"<t>&i;</t>"
                )
            dst.writestr(item.filename, body)
    start = time.monotonic()
    error = refused(out.getvalue(), "laughs.xlsx")
    assert time.monotonic() - start < 2 and error.limit is None


# --- the parse runs in worker processes ---


def test_the_parse_workers_return_rows_and_limits_cross_back_intact():
    parser = UploadParser(workers=1, queue=0)
    now = datetime(2021, 1, 1, tzinfo=UTC)
    try:
        rows = asyncio.run(parser.check(KIND, "a.csv", csv_file(ROW), SMALL, now))
        with pytest.raises(SheetError) as caught:
            asyncio.run(parser.check(KIND, "a.csv", csv_file(ROW + ",x"), SMALL, now))
    finally:
        parser.close()
    [(number, unit, period, report, errors)] = rows
    assert (number, unit, period, errors) == (2, "14923", "2020-12", {})
    assert report is not None and report["body"]["members_total"] == 315
    assert caught.value.limit == "max_columns" and parser.pending == 0


def test_past_the_workers_and_the_queue_an_upload_is_refused_as_busy():
    parser = UploadParser(workers=1, queue=1)
    parser.pending = 2
    with pytest.raises(UploadsBusy):
        asyncio.run(parser.check(KIND, "a.csv", csv_file(ROW), SMALL, datetime.now(UTC)))


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] in "ZX"
    except (OSError, IndexError):
        return True


def test_the_workers_stop_with_the_app():
    parser = UploadParser(workers=1, queue=0)

    @asynccontextmanager
    async def lifespan(app):
        yield

    async def serve() -> list[int]:
        async with parser.closing(lifespan)(None):
            await parser.check(KIND, "a.csv", csv_file(ROW), SMALL, datetime.now(UTC))
            return list(parser._pool._processes)

    workers = asyncio.run(serve())
    assert workers and parser._pool is None
    wait_until(lambda: all(_gone(pid) for pid in workers), timeout=20, what="the parse workers to stop")


def test_a_worker_ends_when_the_api_process_is_killed():
    script = (
        "import asyncio, os\n"
        "from datetime import UTC, datetime\n"
        "from services.api.web.uploads import UploadParser\n"
        "from services.api.web.sheets import DEFAULT_LIMITS\n"
        "p = UploadParser(1, 0)\n"
        f"asyncio.run(p.check({KIND!r}, 'a.csv', {csv_file(ROW)!r}, DEFAULT_LIMITS, datetime.now(UTC)))\n"
        "print(*p._pool._processes, flush=True)\n"
        "os._exit(0)  # as if killed: the pool is never shut down\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    workers = [int(pid) for pid in out.stdout.split()]
    assert workers
    wait_until(lambda: all(_gone(pid) for pid in workers), timeout=20, what="the orphaned worker to exit")


# --- over HTTP ---


@pytest.fixture
def client():
    settings = ApiSettings(
        kafka_bootstrap_servers="unused:9092",
        mongodb_uri="mongodb://unused",
        auth_secret=TEST_SECRET,
        ingest_url="http://127.0.0.1:9",
        upload_max_rows=3,
    )
    app = create_app(settings, reader=InMemoryTotalsReader(DOCS), tree=load_vietnam(["38"]))
    with TestClient(app, follow_redirects=False, headers={"Origin": "http://testserver"}) as c:
        login(c)
        yield c


def login(client) -> None:
    """A session as the login form opens one, its CSRF proofs (when the pages have them) sent
    as the pages' script sends them."""
    proof = re.search(r'name="csrf" value="([^"]+)"', client.get("/web/login").text)
    token = mint(TEST_SECRET, "14923", [Scope.SUBMIT], 3600)
    answer = client.post("/web/login", data={"token": token, **({"csrf": proof.group(1)} if proof else {})})
    assert answer.status_code == 303, answer.text
    meta = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/web/upload").text)
    if meta:
        client.headers["X-CSRF-Token"] = meta.group(1)


def test_an_upload_past_a_limit_is_a_413_naming_it_and_a_broken_file_a_422(client):
    past = client.post("/web/upload/check", data={"kind": KIND}, files={"file": ("a.csv", csv_file(*[ROW] * 4))})
    assert past.status_code == 413 and past.json()["limit"] == "max_rows" and "dòng 5" in past.json()["detail"]
    broken = client.post("/web/upload/check", data={"kind": KIND}, files={"file": ("a.xlsx", b"PK not a zip")})
    assert broken.status_code == 422 and "Excel" in broken.json()["detail"]
    fine = client.post("/web/upload/check", data={"kind": KIND}, files={"file": ("a.csv", csv_file(ROW))})
    assert fine.status_code == 200 and fine.json()["rows"][0]["errors"] == {}


@pytest.mark.parametrize(
    ("body", "says"),
    [(b"[" * 100_000, "lồng quá sâu"), (b'{"reports": [', "JSON không hợp lệ"), (b"\xff", "JSON không hợp lệ")],
)
def test_a_body_to_upload_send_that_is_not_json_is_a_400_that_says_so(client, body, says):
    answer = client.post("/web/upload/send", content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400 and says in answer.json()["detail"]


# --- exports carry no formula ---

HOSTILE_NAMES = ['=HYPERLINK("http://evil.example","x")', "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1", "＝1+1"]


def hostile_table():
    unit = {"code": "386", "name": "Huyện Bá Thước", "level": "district"}
    totals = {"unit": unit, "period": "2020-12", "metrics": {"study_session.members_total": -5}, "completeness": {}}
    children = [
        {"unit": {"code": f"386-{i}", "name": name, "level": "agency"}, "period": "2020-12", "metrics": {}}
        for i, name in enumerate(HOSTILE_NAMES)
    ]
    return totals_table(CATALOG, KIND, totals, children)


def test_a_csv_export_writes_text_that_looks_like_a_formula_as_text():
    rows = list(csv.reader(io.StringIO(table_csv(hostile_table()).decode("utf-8-sig"))))
    assert [r[1] for r in rows[2:]] == ["'" + name for name in HOSTILE_NAMES]
    members_total = rows[0].index(next(h for h in rows[0] if "(study_session.members_total)" in h))
    assert rows[1][members_total] == "-5"  # a negative number stays a number


def test_an_xlsx_export_has_no_formula_cell_and_keeps_numbers_numeric():
    data = table_xlsx(hostile_table())
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        sheet_xml = archive.read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in sheet_xml and "<f " not in sheet_xml
    sheet = load_workbook(io.BytesIO(data)).active
    names = [sheet.cell(row=r, column=2) for r in range(4, 4 + len(HOSTILE_NAMES))]
    assert [c.value for c in names] == [n.replace("\r", "\n") for n in HOSTILE_NAMES]  # XML reads CR as LF
    assert all(c.data_type == "s" and c.quotePrefix for c in names)
    numbers = [c for c in sheet[3] if c.value == -5]
    assert numbers and numbers[0].data_type == "n"
