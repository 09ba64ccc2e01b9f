"""The totals table and its exports, upload templates read back, and the chart."""

import csv
import io

import pytest
from openpyxl import load_workbook

from services.api.web.chart import Point, bar_chart, chart_periods, short_label
from services.api.web.labels import fmt_int, fmt_rate, fmt_share
from services.api.web.sheets import (
    SheetError,
    mark_approved,
    read_rows,
    table_csv,
    table_xlsx,
    template_csv,
    template_header,
    template_xlsx,
    totals_table,
)
from shared.domain.approvals import Approval
from shared.domain.catalog import load_catalog

CATALOG = load_catalog()
DISTRICT = {
    "unit": {"code": "386", "name": "Huyện Bá Thước", "level": "district"},
    "period": "2020-12",
    "metrics": {
        "study_session.bridge_points": 313,
        "study_session.members_attended": 5962,
        "study_session.members_total": 6600,
        "study_session.participation_rate": 0.9033,
    },
    "completeness": {"study_session": {"units_expected": 21, "units_reported": 21, "units_on_time": 0}},
}
COMMUNE = {
    "unit": {"code": "14923", "name": "Thị trấn Cành Nàng", "level": "commune"},
    "period": "2020-12",
    "metrics": {},
    "completeness": {"study_session": {"units_expected": 1, "units_reported": 0, "units_on_time": 0}},
}


def test_numbers_are_written_the_vietnamese_way():
    assert fmt_int(5962) == "5.962" and fmt_int(None) == "—"
    assert fmt_rate(0.9033, 1) == "90,33 %"
    assert fmt_rate(136.0, 100) == "136,00 %"
    assert fmt_rate(9.96, 10000) == "9,96"
    assert fmt_share(20, 21) == "20/21 (95,24 %)" and fmt_share(0, 0) == "0/0"


def test_the_table_keeps_the_apis_figures_and_reads_missing_sums_as_zero_only_beside_others():
    table = totals_table(CATALOG, "study_session", DISTRICT, [COMMUNE])
    assert [c.key for c in table.columns] == [
        "study_session.bridge_points",
        "study_session.delegates",
        "study_session.members_attended",
        "study_session.members_total",
        "study_session.participation_rate",
    ]
    assert table.total.values["study_session.delegates"] == 0  # zero sums are not stored
    assert table.total.values["study_session.participation_rate"] == 0.9033
    assert set(table.children[0].values.values()) == {None}  # nothing reported: no figures at all
    assert (table.total.expected, table.total.reported) == (21, 21)


def test_csv_and_xlsx_exports_carry_the_same_rows():
    table = totals_table(CATALOG, "study_session", DISTRICT, [COMMUNE])
    approved = Approval("386", "study_session", "2020-12", "38", "alice", 1_607_000_000.0)
    mark_approved(table, [approved, Approval("386", "indicator.cadres", "2020-12", "38", "bob", 0.0)])
    rows = list(csv.reader(io.StringIO(table_csv(table).decode("utf-8-sig"))))
    assert rows[0][-1] == "Đã duyệt"
    assert rows[1][:3] == ["386", "Huyện Bá Thước", "Huyện"]
    assert rows[1][3:] == ["313", "0", "5962", "6600", "0.9033", "21", "21", "0", "alice, 2020-12-03 12:53 UTC"]
    assert rows[2][3:8] == ["", "", "", "", ""] and rows[2][-1] == ""
    sheet = load_workbook(io.BytesIO(table_xlsx(table))).active
    values = list(sheet.iter_rows(values_only=True))
    assert values[1] == tuple(rows[0])
    assert values[2][3:] == (313, 0, 5962, 6600, 0.9033, 21, 21, 0, "alice, 2020-12-03 12:53 UTC")
    assert values[3][-1] is None  # not approved: an empty cell
    assert sheet.cell(row=3, column=8).number_format == "0.00%"


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_a_filled_template_reads_back_row_by_row(fmt):
    header = template_header(CATALOG, "study_session")
    assert header[2] == "Mã đơn vị (unit)"
    row = ["", "", "14923", "2020-12", "NQ", "25/12/2020", "online", "15", "0", "284", "315"]
    if fmt == "csv":
        data = template_csv(CATALOG, "study_session") + ("\r\n".join([",".join(row), "", ",,,,"]) + "\r\n").encode()
    else:
        book = load_workbook(io.BytesIO(template_xlsx(CATALOG, "study_session")))
        book.active.append(row)
        book.active.append([None] * len(row))
        out = io.BytesIO()
        book.save(out)
        data = out.getvalue()
    rows = read_rows(CATALOG, "study_session", f"mau.{fmt}", data)
    assert rows == [
        (
            2,
            {
                "unit": "14923",
                "period": "2020-12",
                "resolution": "NQ",
                "held_on": "25/12/2020",
                "format": "online",
                "bridge_points": "15",
                "delegates": "0",
                "members_attended": "284",
                "members_total": "315",
            },
        )
    ]


def test_files_that_are_not_a_template_are_refused_with_a_reason():
    with pytest.raises(SheetError, match="Chỉ nhận"):
        read_rows(CATALOG, "study_session", "a.pdf", b"%PDF")
    with pytest.raises(SheetError, match="Cột không thuộc"):
        read_rows(CATALOG, "study_session", "a.csv", b"unit,period,colour\n14923,2020-12,red\n")
    with pytest.raises(SheetError, match="Thiếu cột"):
        read_rows(CATALOG, "study_session", "a.csv", b"members_total\n5\n")
    with pytest.raises(SheetError, match="Excel"):
        read_rows(CATALOG, "study_session", "a.xlsx", b"not a zip")
    semicolons = b"unit;period;members_total\n14923;2020-12;5\n"
    assert read_rows(CATALOG, "study_session", "a.csv", semicolons) == [
        (2, {"unit": "14923", "period": "2020-12", "members_total": "5"})
    ]


def test_the_chart_shows_the_periods_around_the_one_asked():
    assert chart_periods("2020-12") == [f"2020-{m:02d}" for m in range(1, 13)]
    assert chart_periods("2020-Q4") == ["2020-Q1", "2020-Q2", "2020-Q3", "2020-Q4"]
    assert chart_periods("2020-H2") == ["2020-H1", "2020-H2"]
    assert chart_periods("2002") == ["2000", "2001", "2002"]
    assert chart_periods("2020-2025") == ["2020-2025"]
    assert [short_label(p) for p in ("2020-12", "2020-Q4", "2020")] == ["T12", "Q4", "2020"]


def test_the_chart_draws_a_bar_per_period_with_data_and_marks_the_current_one():
    points = [Point("2020-11", None, "—"), Point("2020-12", 0.9033, "90,33 %"), Point("2021-01", 0.5, "50,00 %")]
    svg = str(bar_chart(points, "Tỷ lệ <tham dự>", "2020-12"))
    assert svg.count("<rect") == 2 and svg.count('class="bar current"') == 1
    assert "<title>2020-12: 90,33 %</title>" in svg
    assert "Tỷ lệ &lt;tham dự&gt;" in svg  # text is escaped
