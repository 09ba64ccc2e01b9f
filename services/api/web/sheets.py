"""Tables in and out: the totals table of a page (drawn, or exported as CSV and .xlsx), the
upload templates of each report kind, and the rows of an uploaded CSV or .xlsx file.

The numbers exported are the API's, unformatted (5962; a share 0.9033), so a spreadsheet can
compute with them; the page formats the same values for reading.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any
from xml.etree.ElementTree import ParseError, iterparse

# openpyxl's types come from types-openpyxl (a dev dependency); where it is not installed its
# objects are Any instead, and these ignores are not needed
from openpyxl import Workbook, load_workbook  # type: ignore[import-untyped,unused-ignore]
from openpyxl.utils import (  # type: ignore[import-untyped,unused-ignore]
    column_index_from_string,
    get_column_letter,
    range_boundaries,
)

from services.api.web.forms import ENVELOPE, body_fields
from services.api.web.labels import (
    FIELDS,
    field_label,
    fmt_achievement,
    fmt_int,
    level_label,
    metric_label,
    series_title,
    target_label,
)
from shared.domain.approvals import Approval
from shared.domain.catalog import Catalog
from shared.domain.targets import Target, achievement, by_child, decimal_out, rolled_up


class SheetError(ValueError):
    """A file that cannot be read as a table of reports; the message is for the person. ``limit``
    names the upload limit the file passed (an UploadLimits field), None for a malformed file."""

    def __init__(self, message: str, limit: str | None = None) -> None:
        super().__init__(message)
        self.limit = limit

    def __reduce__(self) -> tuple[Any, ...]:  # crosses from the parse worker process intact
        return (SheetError, (str(self), self.limit))


@dataclass(frozen=True)
class UploadLimits:
    """What one uploaded file may hold. The reader checks each limit as it reads, before the
    part past it is parsed, and stops at the first one passed (SheetError with ``limit`` set).
    The defaults fit a province's real files (a few thousand rows of a dozen columns) several
    times over; the API settings (BAOCAO_API_UPLOAD_*) set them."""

    max_rows: int = 5000  # rows under the header, by row number: blank rows count
    max_columns: int = 64
    max_cells: int = 100_000  # cells present in the sheet, empty ones included
    max_cell_chars: int = 2000
    max_zip_members: int = 64  # parts of an .xlsx
    max_member_bytes: int = 8 * 1024 * 1024  # one part of an .xlsx, decompressed
    max_unzipped_bytes: int = 32 * 1024 * 1024  # all parts of an .xlsx together, decompressed


DEFAULT_LIMITS = UploadLimits()


@dataclass(frozen=True)
class Column:
    key: str  # metric name as the API gives it, e.g. study_session.participation_rate
    label: str
    scale: int | None = None  # a rate's scale; None for a summed field


@dataclass(frozen=True)
class TargetCell:
    """A row's target for one column (shared/domain/targets.py), rolled up, and how far it is met."""

    text: str  # as the page writes it: "120", "3–4", "85,00 %"
    exported: int | float | str  # as the exports write it: 120, 9.96, or "90–100" for a range
    achievement: float | None  # actual / low, 4 decimals
    achieved: str  # as the page writes it: "0,8500", "—"
    met: bool | None
    own: bool  # set at the row's unit; else summed from ``units`` units under it
    units: int


@dataclass
class Row:
    code: str
    name: str
    level: str
    values: dict[str, int | float | None]
    expected: int
    reported: int
    on_time: int
    approved: str = ""  # who approved the row's figures of the series and when; "" when not approved
    # a rate's exact parts (numerator x scale, denominator), for the achievement against a target
    exact: dict[str, tuple[int, int]] = field(default_factory=dict)
    targets: dict[str, TargetCell] = field(default_factory=dict)  # by column key


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
    rates = totals.get("rates", {})
    exact = {
        c.key: (int(rates[c.key]["numerator"]) * int(rates[c.key]["scale"]), int(rates[c.key]["denominator"]))
        for c in cols
        if c.scale is not None and c.key in rates
    }
    return Row(
        code=unit["code"],
        name=unit["name"],
        level=str(unit["level"]),
        values=values,
        expected=int(comp.get("units_expected", 0)),
        reported=int(comp.get("units_reported", 0)),
        on_time=int(comp.get("units_on_time", 0)),
        exact=exact,
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
EXPORT_TAIL = ["Số đơn vị phải báo cáo", "Số đơn vị đã báo cáo", "Số đơn vị báo cáo đúng hạn", "Đã duyệt"]


def mark_approved(table: Table, approvals: Iterable[Approval]) -> None:
    """Fills each row's ``approved`` ("<approver>, <when>") from the approvals of the table's
    series and period; the others are left empty."""
    shown = {
        a.unit: f"{a.approver}, {a.when}" for a in approvals if (a.series, a.period) == (table.series, table.period)
    }
    for row in [table.total, *table.children]:
        row.approved = shown.get(row.code, "")


def _actual(row: Row, col: Column) -> Fraction | None:
    if col.scale is not None:
        parts = row.exact.get(col.key)
        return Fraction(*parts) if parts and parts[1] else None
    value = row.values.get(col.key)
    return None if value is None else Fraction(int(value))


def mark_targets(table: Table, catalog: Catalog, targets: list[Target]) -> None:
    """Fills each row's ``targets`` from ``targets`` (a listing of the table's unit's subtree for
    its period), rolled up to the row's unit, with the achievement of the row's figures."""
    groups = by_child(targets, table.total.code)
    for row in [table.total, *table.children]:
        mine = targets if row is table.total else groups.get(row.code, [])
        rolled = rolled_up(mine, row.code, catalog, table.period)
        for col in table.columns:
            target = rolled.get(col.key)
            if target is None:
                continue
            got = achievement(target, _actual(row, col))
            low, high = decimal_out(target.low), decimal_out(target.high)
            row.targets[col.key] = TargetCell(
                text=target_label(low, high, col.scale),
                exported=low if low == high else f"{low}–{high}",
                achievement=got.achievement,
                achieved=fmt_achievement(got.achievement),
                met=got.met,
                own=target.source == "own",
                units=target.units,
            )


def _targeted(table: Table) -> list[Column]:
    """The columns with a target in some row: each gets "Chỉ tiêu" and "Đạt" in the exports."""
    rows = [table.total, *table.children]
    return [c for c in table.columns if any(c.key in r.targets for r in rows)]


def _export_rows(table: Table) -> list[list[Any]]:
    rows = []
    targeted = _targeted(table)
    for r in [table.total, *table.children]:
        reached: list[Any] = []
        for c in targeted:
            cell = r.targets.get(c.key)
            reached += [cell.exported, cell.achievement] if cell else [None, None]
        rows.append(
            [r.code, r.name, level_label(r.level, r.name)]
            + [r.values.get(c.key) for c in table.columns]
            + [r.expected, r.reported, r.on_time, r.approved]
            + reached
        )
    return rows


def export_header(table: Table) -> list[str]:
    targets = [h for c in _targeted(table) for h in (f"Chỉ tiêu ({c.key})", f"Đạt ({c.key})")]
    return EXPORT_HEAD + [f"{c.label} ({c.key})" for c in table.columns] + EXPORT_TAIL + targets


# A text cell starting with one of these is read as a formula by a spreadsheet (OWASP "CSV
# injection"): = + - @, tab and carriage return, and the full-width forms of = + - @ that some
# spreadsheets (and IMEs) turn into the ASCII ones.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def looks_like_formula(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(FORMULA_STARTS)


def csv_safe(value: Any) -> Any:
    """A text cell that a spreadsheet would run as a formula, with a leading apostrophe (shown as
    text, the value kept readable); numbers, negative ones included, are left as numbers."""
    return "'" + value if looks_like_formula(value) else value


def table_csv(table: Table) -> bytes:
    """UTF-8 with a byte-order mark, so Excel opens the Vietnamese names correctly. No cell is a
    formula: text that would be one is written as text (csv_safe)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([csv_safe(v) for v in export_header(table)])
    for row in _export_rows(table):
        writer.writerow(["" if v is None else csv_safe(v) for v in row])
    return out.getvalue().encode("utf-8-sig")


def _text_not_formula(sheet: Any) -> None:
    """Every text cell of ``sheet`` that openpyxl took for a formula (it does for a leading "=")
    is written as a string, and every text cell that a spreadsheet would turn into a formula when
    edited carries the quote prefix (Excel's "this is text" mark). Numbers stay numbers."""
    for cells in sheet.iter_rows():
        for cell in cells:
            if looks_like_formula(cell.value):
                cell.data_type = "s"
                cell.quotePrefix = True


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
    _text_not_formula(sheet)
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


def read_rows(
    catalog: Catalog, kind: str, filename: str, data: bytes, limits: UploadLimits = DEFAULT_LIMITS
) -> list[tuple[int, dict[str, Any]]]:
    """(row number as the spreadsheet shows it, field name -> value) for every non-empty row of
    a CSV or .xlsx file whose first row names the columns of ``kind``'s template. Reads as it
    goes and stops at the first of ``limits`` the file passes (SheetError naming it)."""
    name = filename.lower()
    if name.endswith(".xlsx"):
        table = _xlsx_rows(data, limits)
    elif name.endswith(".csv"):
        table = _csv_rows(data, limits)
    else:
        raise SheetError("Chỉ nhận tệp .csv hoặc .xlsx.")
    header = next(table, None)
    if header is None:
        raise SheetError("Tệp trống.")
    names = [_column_name(h) for h in header]
    known = set(template_columns(catalog, kind))
    unknown = [str(h) for h, n in zip(header, names, strict=True) if n and n not in known]
    if unknown:
        raise SheetError(f"Cột không thuộc mẫu báo cáo này: {', '.join(unknown)}. Hãy dùng tệp mẫu.")
    if "unit" not in names or "period" not in names:
        raise SheetError("Thiếu cột mã đơn vị (unit) hoặc kỳ báo cáo (period). Hãy dùng tệp mẫu.")
    rows = []
    for number, cells in enumerate(table, start=2):
        values = {n: v for n, v in zip(names, cells, strict=False) if n and v not in (None, "")}
        if values:
            rows.append((number, values))
    return rows


def _too_many_rows(where: str, number: int, limits: UploadLimits) -> SheetError:
    return SheetError(
        f"{where}dòng {fmt_int(number)}: tệp có quá {fmt_int(limits.max_rows)} dòng dưới dòng tiêu đề"
        " (dòng trống cũng tính). Hãy chia thành nhiều tệp.",
        "max_rows",
    )


def _too_many_columns(where: str, number: int, column: int, limits: UploadLimits) -> SheetError:
    return SheetError(
        f"{where}dòng {fmt_int(number)}, cột {get_column_letter(min(column, 16384))}: tệp có quá"
        f" {limits.max_columns} cột. Hãy dùng tệp mẫu.",
        "max_columns",
    )


def _too_many_cells(where: str, number: int, limits: UploadLimits) -> SheetError:
    return SheetError(
        f"{where}dòng {fmt_int(number)}: tệp có quá {fmt_int(limits.max_cells)} ô. Hãy chia thành nhiều tệp.",
        "max_cells",
    )


def _cell_too_long(where: str, number: int, column: int | None, limits: UploadLimits) -> SheetError:
    at = f", cột {get_column_letter(column)}" if column else ""
    return SheetError(
        f"{where}dòng {fmt_int(number)}{at}: ô dài quá {fmt_int(limits.max_cell_chars)} ký tự.", "max_cell_chars"
    )


def _checked_row(where: str, number: int, cells: list[Any], seen: int, limits: UploadLimits) -> int:
    """The cells read so far, ``cells`` included, after checking them against ``limits``."""
    if number > limits.max_rows + 1:
        raise _too_many_rows(where, number, limits)
    if len(cells) > limits.max_columns:
        raise _too_many_columns(where, number, limits.max_columns + 1, limits)
    for column, value in enumerate(cells, start=1):
        if isinstance(value, str) and len(value) > limits.max_cell_chars:
            raise _cell_too_long(where, number, column, limits)
    seen += sum(1 for v in cells if v not in (None, ""))
    if seen > limits.max_cells:
        raise _too_many_cells(where, number, limits)
    return seen


def _csv_rows(data: bytes, limits: UploadLimits) -> Iterator[list[Any]]:
    """The rows of a CSV file, read one line at a time (the file is at most the upload size)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SheetError(f"Tệp CSV phải mã hoá UTF-8 (byte {fmt_int(exc.start + 1)} không phải UTF-8).") from None
    sample = text[: text.find("\n")] if "\n" in text else text
    delimiter = ";" if sample.count(";") > sample.count(",") else ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    where = "Tệp CSV, "
    seen = 0
    number = 0
    while True:
        number += 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            # the csv module refuses a field past its own limit (csv.field_size_limit, far above
            # max_cell_chars) before the row reaches the checks below
            if "field larger than field limit" in str(exc):
                raise _cell_too_long(where, reader.line_num, None, limits) from None
            raise SheetError(f"{where}dòng {fmt_int(reader.line_num)}: không đọc được ({exc}).") from None
        seen = _checked_row(where, number, cells, seen, limits)
        yield cells


def _xlsx_rows(data: bytes, limits: UploadLimits) -> Iterator[list[Any]]:
    """The rows of the first sheet of an .xlsx file. Its parts are checked before any is
    decompressed: how many, and the size each says it decompresses to (zipfile never gives more
    bytes than a part declares: a part that holds more fails its length and CRC check). The
    sheet's XML is then walked once without keeping it, to check the declared dimension, row
    numbers, columns and cell count; only a sheet within the limits is read by openpyxl, as a
    stream (read-only mode, the declared dimension ignored, so nothing is padded to it)."""
    unreadable = SheetError("Không đọc được tệp Excel (.xlsx).")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError):
        raise unreadable from None
    with archive:
        parts = archive.infolist()
        if len(parts) > limits.max_zip_members:
            raise SheetError(
                f"Tệp .xlsx có {fmt_int(len(parts))} phần nén, tối đa {fmt_int(limits.max_zip_members)}.",
                "max_zip_members",
            )
        for part in parts:
            if part.file_size > limits.max_member_bytes:
                raise SheetError(
                    f"Tệp .xlsx: phần {part.filename} giải nén ra {fmt_int(part.file_size)} byte, tối đa"
                    f" {fmt_int(limits.max_member_bytes)} byte mỗi phần.",
                    "max_member_bytes",
                )
        total = sum(p.file_size for p in parts)
        if total > limits.max_unzipped_bytes:
            raise SheetError(
                f"Tệp .xlsx giải nén ra {fmt_int(total)} byte, tối đa {fmt_int(limits.max_unzipped_bytes)} byte.",
                "max_unzipped_bytes",
            )
    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a file that is not a workbook
        raise unreadable from exc
    try:
        if not book.worksheets:
            raise SheetError("Tệp Excel không có trang tính nào.")
        sheet = book.worksheets[0]
        where = f"Trang tính “{sheet.title}”, "
        try:
            # the workbook's zip archive and the sheet's path in it: private to openpyxl, and untyped
            with book._archive.open(sheet._worksheet_path) as source:  # type: ignore[attr-defined,unused-ignore]
                _scan_sheet(source, where, limits)
            sheet.reset_dimensions()
            seen = 0
            for number, cells in enumerate(sheet.iter_rows(values_only=True), start=1):
                seen = _checked_row(where, number, list(cells), seen, limits)
                yield list(cells)
        except SheetError:
            raise
        except Exception as exc:  # a malformed cell or part met while reading
            raise SheetError(f"{where}không đọc được: {exc}") from exc
    finally:
        book.close()


_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"


def _scan_sheet(source: Any, where: str, limits: UploadLimits) -> None:
    """Walks a sheet's XML once, element by element, keeping nothing: refuses a declared
    dimension, a row number, a column or a number of cells past ``limits``."""
    number = 0
    column = 0
    cells = 0
    try:
        for event, element in iterparse(source, events=("start", "end")):
            tag = element.tag
            if event == "start":
                if tag == f"{_MAIN}row":
                    number = int(element.get("r") or number + 1)
                    column = 0
                    if number > limits.max_rows + 1:
                        raise _too_many_rows(where, number, limits)
                elif tag == f"{_MAIN}c":
                    ref = element.get("r")
                    column = column_index_from_string(ref.rstrip("0123456789")) if ref else column + 1
                    if column > limits.max_columns:
                        raise _too_many_columns(where, number, column, limits)
                    cells += 1
                    if cells > limits.max_cells:
                        raise _too_many_cells(where, number, limits)
                elif tag == f"{_MAIN}dimension":
                    _check_dimension(where, element.get("ref") or "", limits)
            else:
                element.clear()
    except SheetError:
        raise
    except (ParseError, ValueError) as exc:
        raise SheetError(f"{where}không đọc được: {exc}") from None


def _check_dimension(where: str, ref: str, limits: UploadLimits) -> None:
    try:
        _, _, last_column, last_row = range_boundaries(ref.upper())
    except (ValueError, TypeError):
        return  # a dimension openpyxl cannot read is not used; the rows themselves are checked
    if (last_row or 0) > limits.max_rows + 1 or (last_column or 0) > limits.max_columns:
        raise SheetError(
            f"{where}khai báo vùng {ref} ({fmt_int(last_row or 0)} dòng, {fmt_int(last_column or 0)} cột),"
            f" quá {fmt_int(limits.max_rows)} dòng dưới dòng tiêu đề hoặc {limits.max_columns} cột."
            " Hãy xoá các dòng, cột trống thừa hoặc dùng tệp mẫu.",
            "max_rows" if (last_row or 0) > limits.max_rows + 1 else "max_columns",
        )
