"""What the pages call things, in Vietnamese, and how they write numbers (5.962; 90,33 %)."""

from __future__ import annotations

from shared.domain.catalog import INDICATOR_KIND, Catalog, SeriesSpec

LEVELS = {"country": "Toàn quốc", "province": "Tỉnh", "district": "Huyện", "commune": "Xã", "agency": "Cơ quan"}
# the kinds of unit an official name starts with: a level holds several (a commune-level unit is
# a xã, a phường, a thị trấn or, from July 2025, an đặc khu), and a page calls each unit by its own
KINDS = ("Thành phố", "Thị trấn", "Thị xã", "Đặc khu", "Phường", "Quận", "Huyện", "Tỉnh", "Xã")

FIELDS = {
    "resolution": "Nghị quyết",
    "held_on": "Ngày tổ chức",
    "format": "Hình thức",
    "bridge_points": "Số điểm cầu",
    "delegates": "Số đại biểu",
    "members_attended": "Số đảng viên tham dự",
    "members_total": "Tổng số đảng viên",
    "joined": "Điểm cầu của hội nghị (đơn vị tổ chức/mã báo cáo)",
    "adopted_on": "Ngày ban hành",
    "key_programs": "Chương trình trọng tâm",
    "breakthroughs": "Khâu đột phá",
    "indicators": "Số chỉ tiêu",
    "excellent": "Hoàn thành xuất sắc nhiệm vụ",
    "good": "Hoàn thành tốt nhiệm vụ",
    "completed": "Hoàn thành nhiệm vụ",
    "not_completed": "Không hoàn thành nhiệm vụ",
    "members_submitted": "Số đảng viên đã viết thu hoạch",
    "members_required": "Số đảng viên phải viết thu hoạch",
    "title": "Tên lớp",
    "topic": "Nội dung bồi dưỡng (nghị quyết, chuyên đề)",
    "started_on": "Ngày khai giảng",
    "ended_on": "Ngày bế giảng",
    "days": "Số ngày học",
    "learners_enrolled": "Số học viên",
    "learners_completed": "Số học viên hoàn thành",
    "indicator": "Chỉ tiêu",
    "value": "Giá trị",
    "numerator": "Tử số",
    "denominator": "Mẫu số",
    "note": "Ghi chú",
    "report_id": "Mã báo cáo",
    "revision": "Bản số",
    "unit": "Mã đơn vị",
    "period": "Kỳ báo cáo",
    "kind": "Loại báo cáo",
    "withdrawn": "Rút báo cáo",
}

RATES = {
    "participation_rate": "Tỷ lệ tham dự",
    "good_or_better_rate": "Tỷ lệ hoàn thành tốt trở lên",
    "submission_rate": "Tỷ lệ viết thu hoạch",
    "completion_rate": "Tỷ lệ học viên hoàn thành",
    "excellent_rate": "Tỷ lệ hoàn thành xuất sắc nhiệm vụ",
    "rate": "Tỷ lệ",
}

CHOICES = {"in_person": "Trực tiếp", "online": "Trực tuyến", "hybrid": "Kết hợp"}

STATUSES = {
    "accepted": "Đã tiếp nhận",
    "duplicate": "Đã có (trùng, không tính thêm)",
    "invalid": "Không hợp lệ",
    "unknown_unit": "Không có đơn vị này",
    "forbidden": "Không có quyền gửi cho đơn vị này",
    "conflict": "Đã có bản số này với nội dung khác; để sửa, gửi bản số lớn hơn",
    "unavailable": "Hệ thống chưa nhận, hãy gửi lại",
}


def title(text: str) -> str:
    """The Vietnamese part of a catalog title ("Giường bệnh (hospital beds)" -> "Giường bệnh")."""
    head, sep, _ = text.rpartition(" (")
    return head if sep else text


def kind_title(catalog: Catalog, kind: str) -> str:
    return title(catalog.kinds[kind].title)


def series_title(catalog: Catalog, key: str) -> str:
    spec = catalog.series[key]
    if key.startswith(f"{INDICATOR_KIND}."):
        return f"Chỉ tiêu: {title(spec.title)}"
    return title(spec.title)


def level_label(level: str, name: str = "") -> str:
    """What a unit is, from its official name when it starts with a kind of unit ("Phường Hàm
    Rồng" -> "Phường", "Đặc khu Côn Đảo" -> "Đặc khu"), else from its level ("Cơ quan")."""
    if level in ("country", "agency"):
        return LEVELS[level]
    folded = name.casefold()
    for kind in KINDS:
        if folded.startswith(kind.casefold() + " "):
            return kind
    return LEVELS.get(level, level)


def whole_label(level: str, name: str = "") -> str:
    """The heading of a unit's own row in its table: "Toàn phường", "Toàn tỉnh", "Toàn quốc"."""
    if level == "country":
        return LEVELS["country"]
    return f"Toàn {level_label(level, name).lower()}"


def field_label(name: str) -> str:
    return FIELDS.get(name, name)


def metric_label(spec: SeriesSpec, name: str) -> str:
    """Label of ``name``, a field or a rate of the series ``spec``."""
    if any(r.name == name for r in spec.rates):
        return RATES.get(name, name)
    return FIELDS.get(name, name)


def fmt_int(value: float | None) -> str:
    """Thousands separated by dots, as Vietnamese writes them: 5962 -> 5.962."""
    if value is None:
        return "—"
    return f"{value:,}".replace(",", ".")


def fmt_decimal(value: float | None, places: int = 2) -> str:
    if value is None:
        return "—"
    whole, _, frac = f"{value:,.{places}f}".partition(".")
    return whole.replace(",", ".") + ("," + frac if frac else "")


def fmt_rate(value: float | None, scale: int) -> str:
    """A rate as the API gives it (numerator/denominator x scale): a share (scale 1) as a
    percentage, a percentage (scale 100) with its sign, anything else as a number."""
    if value is None:
        return "—"
    if scale == 1:
        return f"{fmt_decimal(value * 100)} %"
    if scale == 100:
        return f"{fmt_decimal(value)} %"
    return fmt_decimal(value)


def target_label(low: float, high: float, scale: int | None) -> str:
    """A target as the page writes it: "120", "90–100", "9,96", "85,00 %" (a rate as fmt_rate)."""

    def one(value: float) -> str:
        if scale is not None:
            return fmt_rate(value, scale)
        return fmt_int(value)

    return one(low) if low == high else f"{one(low)}–{one(high)}"


def fmt_achievement(value: float | None) -> str:
    """actual / target, 4 decimals with the decimal comma: 0,8500."""
    return fmt_decimal(value, 4)


def fmt_fraction(part: int, whole: int) -> str:
    """ "20/21", for table cells (the share is in the summary above the table)."""
    return f"{fmt_int(part)}/{fmt_int(whole)}"


def fmt_share(part: int, whole: int) -> str:
    """ "20/21 (95,24 %)"; "0/0" when nothing is expected."""
    if whole == 0:
        return f"{fmt_int(part)}/0"
    return f"{fmt_int(part)}/{fmt_int(whole)} ({fmt_decimal(part * 100 / whole)} %)"
