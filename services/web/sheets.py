"""Tables in and out: the totals table of a page (drawn, or exported as CSV and .xlsx), the
upload templates of each report kind, and the rows of an uploaded CSV or .xlsx file.

The numbers exported are the API's, unformatted (5962; a share 0.9033), so a spreadsheet can
compute with them; the page formats the same values for reading.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from typing import Any

from openpyxl import Workbook, load_workbook

from services.web.forms import ENVELOPE, body_fields
from services.web.labels import FIELDS, LEVELS, field_label, metric_label, series_title
from shared.catalog import Catalog

MAX_UPLOAD_ROWS = 5000


class SheetError(ValueError):
    """A file that cannot be read as a table of reports; the message is for the person."""


@dataclass(frozen=True)
class Column:
    key: str  # metric name as the API gives it, e.g. study_session.participation_rate
    label: str
    scale: int | None = None  # a rate's scale; None for a summed field


@dataclass
class Row:
    code: str
    name: str
    level: str
    values: dict[str, int | float | None]
    expected: int
    reported: int
    on_time: int


@dataclass
class Table:
    series: str
    title: str
    period: str
    columns: list[Column]
    total: Row
    children: list[Row] = field(default_factory=list)


def columns(catalog: Catalog, series: str) -> list[Column]:
    spec = catalog.series[series]
    cols = [Column(f"{series}.{f.name}", metric_label(spec, f.name)) for f in spec.totalled_fields]
    cols += [Column(f"{series}.{r.name}", metric_label(spec, r.name), r.scale) for r in spec.rates]
    return cols


def _row(totals: dict[str, Any], series: str, cols: list[Column]) -> Row:
    comp = totals.get("completeness", {}).get(series) or {}
    unit = totals["unit"]
    metrics = totals.get("metrics", {})
    values = {c.key: metrics.get(c.key) for c in cols}
    if any(values[c.key] is not None for c in cols if c.scale is None):
        # the stored totals leave zero sums out: a field missing beside others is a zero
        values.update({c.key: 0 for c in cols if c.scale is None and values[c.key] is None})
    return Row(
        code=unit["code"],
        name=unit["name"],
        level=str(unit["level"]),
        values=values,
        expected=int(comp.get("units_expected", 0)),
        reported=int(comp.get("units_reported", 0)),
        on_time=int(comp.get("units_on_time", 0)),
    )


def totals_table(
    catalog: Catalog, series: str, totals: dict[str, Any], children: list[dict[str, Any]] | None = None
) -> Table:
    """The table of one series: the unit's whole subtree, then one row per child, from the API's
    ``/totals`` and ``/children/totals`` answers."""
    cols = columns(catalog, series)
    return Table(
        series=series,
        title=series_title(catalog, series),
        period=totals["period"],
        columns=cols,
        total=_row(totals, series, cols),
        children=[_row(c, series, cols) for c in children or ()],
    )


EXPORT_HEAD = ["Mã đơn vị", "Tên đơn vị", "Cấp"]
EXPORT_TAIL = ["Số đơn vị phải báo cáo", "Số đơn vị đã báo cáo", "Số đơn vị báo cáo đúng hạn"]


def _export_rows(table: Table) -> list[list[Any]]:
    rows = []
    for r in [table.total, *table.children]:
        rows.append(
            [r.code, r.name, LEVELS.get(r.level, r.level)]
            + [r.values.get(c.key) for c in table.columns]
            + [r.expected, r.reported, r.on_time]
        )
    return rows


def export_header(table: Table) -> list[str]:
    return EXPORT_HEAD + [f"{c.label} ({c.key})" for c in table.columns] + EXPORT_TAIL


def table_csv(table: Table) -> bytes:
    """UTF-8 with a byte-order mark, so Excel opens the Vietnamese names correctly."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(export_header(table))
    for row in _export_rows(table):
        writer.writerow(["" if v is None else v for v in row])
    return out.getvalue().encode("utf-8-sig")


def table_xlsx(table: Table) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Tong hop"
    sheet.append([f"{table.title} — kỳ {table.period}"])
    sheet.append(export_header(table))
    for row in _export_rows(table):
        sheet.append(row)
    for i, col in enumerate(table.columns):
        if col.scale == 1:
            for cells in sheet.iter_rows(min_row=3, min_col=4 + i, max_col=4 + i):
                for cell in cells:
                    cell.number_format = "0.00%"
    sheet.column_dimensions["B"].width = 36
    return _save(book)


def _save(book: Workbook) -> bytes:
    data = io.BytesIO()
    book.save(data)
    return data.getvalue()


def template_columns(catalog: Catalog, kind: str) -> list[str]:
    return [*ENVELOPE, *(f.name for f in body_fields(catalog, kind))]


def template_header(catalog: Catalog, kind: str) -> list[str]:
    """ "Số đảng viên tham dự (members_attended)": Vietnamese for the person, the field's name for
    the reader of the file."""
    return [f"{field_label(name)} ({name})" for name in template_columns(catalog, kind)]


def template_csv(catalog: Catalog, kind: str) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerow(template_header(catalog, kind))
    return out.getvalue().encode("utf-8-sig")


def template_xlsx(catalog: Catalog, kind: str) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Bao cao"
    sheet.append(template_header(catalog, kind))
    for i in range(len(template_columns(catalog, kind))):
        sheet.column_dimensions[chr(ord("A") + i)].width = 22
    notes = book.create_sheet("Huong dan")
    notes.append(["Mỗi dòng một báo cáo. Để trống mã báo cáo thì hệ thống tự đặt; bản số để trống là 1."])
    notes.append(["Kỳ báo cáo: 2025-03 (tháng), 2025-Q1 (quý), 2025-H1 (nửa năm), 2025 (năm), 2020-2025 (nhiệm kỳ)."])
    notes.append(["Ngày: dd/mm/yyyy. Số: số nguyên, có thể viết 6.600."])
    for f in body_fields(catalog, kind):
        if f.choices:
            notes.append([f"{f.label} ({f.name}): " + "; ".join(f"{v} = {label}" for v, label in f.choices)])
    return _save(book)


_NAME_IN_HEADER = re.compile(r"\(([a-z_]+)\)\s*$")


def _column_name(header: Any) -> str:
    text = str(header or "").strip()
    m = _NAME_IN_HEADER.search(text)
    if m:
        return m.group(1)
    by_label = {v.lower(): k for k, v in FIELDS.items()}
    return by_label.get(text.lower(), text)


def read_rows(catalog: Catalog, kind: str, filename: str, data: bytes) -> list[tuple[int, dict[str, Any]]]:
    """(row number as the spreadsheet shows it, field name -> value) for every non-empty row of
    a CSV or .xlsx file whose first row names the columns of ``kind``'s template."""
    if filename.lower().endswith(".xlsx"):
        try:
            book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        except Exception as exc:
            raise SheetError("Không đọc được tệp Excel (.xlsx).") from exc
        sheet = book.worksheets[0]
        table = [list(r) for r in sheet.iter_rows(values_only=True)]
        book.close()
    elif filename.lower().endswith(".csv"):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise SheetError("Tệp CSV phải mã hoá UTF-8.") from None
        sample = text.split("\n", 1)[0]
        delimiter = ";" if sample.count(";") > sample.count(",") else ","
        table = [list(r) for r in csv.reader(io.StringIO(text), delimiter=delimiter)]
    else:
        raise SheetError("Chỉ nhận tệp .csv hoặc .xlsx.")
    if not table:
        raise SheetError("Tệp trống.")
    names = [_column_name(h) for h in table[0]]
    known = set(template_columns(catalog, kind))
    unknown = [str(h) for h, n in zip(table[0], names, strict=True) if n and n not in known]
    if unknown:
        raise SheetError(f"Cột không thuộc mẫu báo cáo này: {', '.join(unknown)}. Hãy dùng tệp mẫu.")
    if "unit" not in names or "period" not in names:
        raise SheetError("Thiếu cột mã đơn vị (unit) hoặc kỳ báo cáo (period). Hãy dùng tệp mẫu.")
    rows = []
    for number, cells in enumerate(table[1:], start=2):
        values = {n: v for n, v in zip(names, cells, strict=False) if n and v not in (None, "")}
        if values:
            rows.append((number, values))
    if len(rows) > MAX_UPLOAD_ROWS:
        raise SheetError(f"Tối đa {MAX_UPLOAD_ROWS} dòng mỗi tệp; tệp này có {len(rows)}.")
    return rows
