"""From what a person typed (a form, or a row of a spreadsheet) to a report, with an error in
Vietnamese next to each field that is wrong.

The checks follow the catalog and the report schema (``shared.domain.reports``), which stays the
authority: a report that passes here is validated again by that schema before it is sent, and
again by ingest.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from pydantic import ValidationError

from services.api.web.labels import CHOICES, FIELDS, field_label, title
from shared.domain.catalog import INDICATOR_KIND, Catalog, FieldSpec, KindSpec
from shared.domain.exchange import OPTIONAL_TYPES
from shared.domain.periods import Granularity, Period, PeriodError, parse_period
from shared.domain.reports import REPORT_ID_PATTERN, REPORT_MODELS, UNIT_CODE_PATTERN

ENVELOPE = ("report_id", "revision", "unit", "period")
GRANULARITY_VI = {
    Granularity.MONTH: "tháng (2025-03)",
    Granularity.QUARTER: "quý (2025-Q1)",
    Granularity.HALF: "nửa năm (2025-H1)",
    Granularity.YEAR: "năm (2025)",
    Granularity.TERM: "nhiệm kỳ (2020-2025)",
}
_INT = re.compile(r"^-?(\d+|\d{1,3}([., ]\d{3})+)$")
_DMY = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")


@dataclass(frozen=True)
class FormField:
    """One input of a report form, as the page draws it."""

    name: str
    label: str
    type: str  # int | text | date | enum | conference
    required: bool
    minimum: int | None = None
    maximum: int | None = None
    max_length: int | None = None
    choices: tuple[tuple[str, str], ...] = ()
    hint: str = ""
    within_period: bool = False


@dataclass
class Checked:
    """A report built from input, or the errors that stopped it (field name -> message)."""

    report: dict[str, Any] | None
    errors: dict[str, str] = field(default_factory=dict)


def body_fields(catalog: Catalog, kind: str) -> list[FormField]:
    if kind == INDICATOR_KIND:
        return [
            FormField(
                "indicator",
                FIELDS["indicator"],
                "enum",
                True,
                choices=tuple((code, title(ind.title)) for code, ind in catalog.indicators.items()),
            ),
            FormField("value", FIELDS["value"], "int", False, hint="Chỉ tiêu đếm hoặc cộng dồn: nhập giá trị."),
            FormField("numerator", FIELDS["numerator"], "int", False, minimum=0, hint="Chỉ tiêu dạng tỷ lệ."),
            FormField("denominator", FIELDS["denominator"], "int", False, minimum=0, hint="Chỉ tiêu dạng tỷ lệ."),
            FormField("note", FIELDS["note"], "text", False, max_length=500),
        ]
    return [_form_field(f) for f in catalog.kinds[kind].fields]


def _form_field(spec: FieldSpec) -> FormField:
    choices = tuple((v, CHOICES.get(v, v)) for v in spec.values)
    hint = "Trong kỳ báo cáo." if spec.within_period else ""
    if spec.type == "conference":
        hint = (
            "Chỉ khi đơn vị là một điểm cầu của hội nghị do đơn vị khác tổ chức: mã đơn vị tổ chức/mã báo cáo "
            "của họ (vd. 38/38-hn-2021-11-05). Số điểm cầu và đại biểu của hội nghị được tính một lần, ở báo cáo "
            "của đơn vị tổ chức."
        )
    return FormField(
        spec.name,
        field_label(spec.name),
        spec.type,
        spec.type not in OPTIONAL_TYPES,
        spec.minimum,
        spec.maximum,
        spec.max_length,
        choices,
        hint,
        spec.within_period,
    )


def default_report_id(unit: str, kind: str, period: str, indicator: str | None = None) -> str:
    """The same report of the same unit and period gets the same id, so sending it twice (a
    retry, a file uploaded again) counts once, and a changed figure must come as a revision."""
    middle = f"{kind}-{indicator}" if kind == INDICATOR_KIND and indicator else kind
    return f"{unit}-{middle}-{period}"


def parse_int(value: Any) -> int:
    """An integer typed by a person or read from a spreadsheet: 6600, "6600", "6.600", "6 600";
    not "12.5"."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        raise ValueError(value)
    text = str(value).strip()
    if not _INT.match(text):
        raise ValueError(text)
    return int(re.sub(r"[., ]", "", text))


def parse_date(value: Any) -> date:
    """yyyy-mm-dd (a date input), dd/mm/yyyy (as Vietnamese write it) or a spreadsheet date."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    m = _DMY.match(text)
    if m:
        return date(int(m.group(3)), int(m.group(2)), int(m.group(1)))
    return date.fromisoformat(text)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _bounds(name: str, value: int, lo: int | None, hi: int | None, errors: dict[str, str]) -> None:
    if lo is not None and value < lo:
        errors[name] = f"Không được nhỏ hơn {lo:,}.".replace(",", ".")
    elif hi is not None and value > hi:
        errors[name] = f"Không được lớn hơn {hi:,}.".replace(",", ".")


def build_report(catalog: Catalog, kind: str, values: Mapping[str, Any], now: datetime | None = None) -> Checked:
    """A report of ``kind`` from ``values`` (field name -> what was typed), or its errors. The
    errors are keyed in the order of the form: the envelope, then the body's fields, then the
    rules between fields."""
    errors: dict[str, str] = {}
    spec = catalog.kinds[kind]
    unit = _unit(values, errors)
    period_text, period = _period(values, spec, errors)
    revision = _revision(values, errors)
    body = _body(catalog, kind, values, period, errors)
    _check_rules(spec, body, errors)
    if kind == INDICATOR_KIND and body.get("indicator") in catalog.indicators:
        _check_indicator(catalog, body, errors)
    report_id = _report_id(values, unit, kind, period, body.get("indicator"), errors)
    if errors:
        return Checked(None, errors)
    report = {
        "report_id": report_id,
        "revision": revision,
        "unit": unit,
        "kind": kind,
        "period": period_text,
        "submitted_at": (now or datetime.now(UTC)).isoformat(),
        "body": body,
    }
    try:
        REPORT_MODELS[kind].model_validate(report)
    except ValidationError as exc:
        return Checked(None, schema_errors(exc.errors()))
    return Checked(report)


def _unit(values: Mapping[str, Any], errors: dict[str, str]) -> str:
    unit = str(values.get("unit") or "").strip()
    if not unit:
        errors["unit"] = "Bắt buộc chọn đơn vị."
    elif not re.match(UNIT_CODE_PATTERN, unit):
        errors["unit"] = "Mã đơn vị không đúng dạng (vd. 14923 hoặc 38-bvdk)."
    return unit


def _period(values: Mapping[str, Any], spec: KindSpec, errors: dict[str, str]) -> tuple[str, Period | None]:
    """The period as typed, and as parsed when it is one this kind of report is made for."""
    text = str(values.get("period") or "").strip()
    if not text:
        errors["period"] = "Bắt buộc nhập kỳ báo cáo."
        return text, None
    try:
        period = parse_period(text)
    except PeriodError:
        errors["period"] = "Kỳ không hợp lệ: dùng dạng 2025-03, 2025-Q1, 2025-H1, 2025 hoặc 2020-2025."
        return text, None
    if period.granularity not in spec.periods:
        allowed = ", ".join(GRANULARITY_VI[g] for g in Granularity if g in spec.periods)
        errors["period"] = f"Loại báo cáo này chỉ báo cáo theo {allowed}."
        return text, None
    return text, period


def _revision(values: Mapping[str, Any], errors: dict[str, str]) -> int:
    """The revision typed, 1 when none is."""
    if _blank(values.get("revision")):
        return 1
    try:
        revision = parse_int(values["revision"])
    except ValueError:
        errors["revision"] = "Phải là số nguyên."
        return 1
    if revision < 1:
        errors["revision"] = "Bản đầu tiên là 1; bản sửa lớn hơn bản trước."
    return revision


def _body(
    catalog: Catalog, kind: str, values: Mapping[str, Any], period: Period | None, errors: dict[str, str]
) -> dict[str, Any]:
    """The body's fields that could be read (a value out of bounds is kept, with its error, so
    the rules between fields still see it)."""
    body: dict[str, Any] = {}
    for f in body_fields(catalog, kind):
        raw = values.get(f.name)
        if _blank(raw):
            if f.required:
                errors[f.name] = "Bắt buộc nhập." if f.type != "enum" else "Bắt buộc chọn."
            continue
        read: Reader = _READERS.get(f.type, _text_value)
        value = read(f, raw, period, errors)
        if value is not None:
            body[f.name] = value
    return body


def _int_value(f: FormField, raw: Any, period: Period | None, errors: dict[str, str]) -> int | None:
    try:
        number = parse_int(raw)
    except ValueError:
        errors[f.name] = "Phải là số nguyên (vd. 6600 hoặc 6.600)."
        return None
    _bounds(f.name, number, f.minimum, f.maximum, errors)
    return number


def _date_value(f: FormField, raw: Any, period: Period | None, errors: dict[str, str]) -> str | None:
    try:
        day = parse_date(raw)
    except ValueError:
        errors[f.name] = "Ngày không hợp lệ (dd/mm/yyyy)."
        return None
    if period is not None and f.within_period and not period.contains(day):
        errors[f.name] = f"Ngày phải nằm trong kỳ {period.label} ({period.start:%d/%m/%Y} – {period.end:%d/%m/%Y})."
    return day.isoformat()


def _enum_value(f: FormField, raw: Any, period: Period | None, errors: dict[str, str]) -> str:
    text = str(raw).strip()
    if text not in {v for v, _ in f.choices}:
        errors[f.name] = "Chọn một giá trị trong danh sách."
    return text


def _text_value(f: FormField, raw: Any, period: Period | None, errors: dict[str, str]) -> str:
    text = str(raw).strip()
    if f.max_length is not None and len(text) > f.max_length:
        errors[f.name] = f"Không quá {f.max_length} ký tự."
    return text


# how a field's value is read: the value, or None when it cannot be (its error given)
Reader = Callable[[FormField, Any, Period | None, dict[str, str]], Any]
_READERS: dict[str, Reader] = {
    "int": _int_value,
    "date": _date_value,
    "enum": _enum_value,
    "text": _text_value,
}


def _check_rules(spec: KindSpec, body: dict[str, Any], errors: dict[str, str]) -> None:
    """The catalog's rules between two fields: one may not exceed the other."""
    for rule in spec.rules:
        low, high = body.get(rule.field), body.get(rule.at_most)
        if isinstance(low, int) and isinstance(high, int) and low > high and rule.field not in errors:
            errors[rule.field] = f"Không được lớn hơn {field_label(rule.at_most).lower()} ({high:,}).".replace(",", ".")


def _report_id(
    values: Mapping[str, Any],
    unit: str,
    kind: str,
    period: Period | None,
    indicator: str | None,
    errors: dict[str, str],
) -> str:
    """The id typed, else the default id of the unit's report of the period."""
    report_id = str(values.get("report_id") or "").strip()
    if not report_id and unit and period is not None:
        report_id = default_report_id(unit, kind, period.label, indicator)
    if report_id and not re.match(REPORT_ID_PATTERN, report_id):
        errors["report_id"] = "Chỉ dùng chữ không dấu, số và - _ : / (tối đa 80 ký tự)."
    return report_id


def _check_indicator(catalog: Catalog, body: dict[str, Any], errors: dict[str, str]) -> None:
    ind = catalog.indicators[body["indicator"]]
    ratio = ind.combine == "ratio"
    wanted = ("numerator", "denominator") if ratio else ("value",)
    unwanted = ("value",) if ratio else ("numerator", "denominator")
    for name in wanted:
        if name not in body:
            errors.setdefault(name, f"Bắt buộc nhập với chỉ tiêu “{title(ind.title)}”.")
        elif name not in errors:
            _bounds(name, body[name], ind.minimum, ind.maximum, errors)
    for name in unwanted:
        if name in body:
            errors.setdefault(name, f"Để trống với chỉ tiêu “{title(ind.title)}”.")


_MESSAGES = {
    "missing": "Bắt buộc nhập.",
    "int_type": "Phải là số nguyên.",
    "int_parsing": "Phải là số nguyên.",
    "int_from_float": "Phải là số nguyên.",
    "string_too_long": "Quá dài.",
    "string_pattern_mismatch": "Sai định dạng.",
    "date_parsing": "Ngày không hợp lệ.",
    "date_from_datetime_parsing": "Ngày không hợp lệ.",
    "date_type": "Ngày không hợp lệ.",
    "literal_error": "Chọn một giá trị trong danh sách.",
    "extra_forbidden": "Trường này không được phép.",
    "period_not_begun": "Kỳ này chưa bắt đầu: chỉ báo cáo kỳ đã bắt đầu.",
    "date_in_future": "Ngày này chưa đến: nhập ngày đã diễn ra.",
}


def schema_errors(errors: list[Any]) -> dict[str, str]:
    """Pydantic's (or ingest's 422) errors, keyed by the field they name; "_form" for the rest."""
    out: dict[str, str] = {}
    for e in errors:
        loc = [str(x) for x in e.get("loc", ())]
        name = next((x for x in reversed(loc) if x in FIELDS), "_form")
        kind = str(e.get("type", ""))
        ctx = e.get("ctx") or {}
        if kind == "greater_than_equal":
            message = f"Không được nhỏ hơn {ctx.get('ge')}."
        elif kind == "less_than_equal":
            message = f"Không được lớn hơn {ctx.get('le')}."
        else:
            message = _MESSAGES.get(kind, f"Không hợp lệ: {e.get('msg', '')}")
        out.setdefault(name, message)
    return out


def form_values(report: Mapping[str, Any]) -> dict[str, str]:
    """A form's values from a report as it was sent (a revision starts from the figures before
    it): the envelope's unit, period and report id, and each field of the body as text, as a
    person would have typed it (a date as yyyy-mm-dd, which the date input takes)."""
    values = {name: str(report[name]) for name in ("unit", "period", "report_id") if report.get(name) is not None}
    body = report.get("body") or {}
    values |= {name: str(value) for name, value in body.items() if value is not None}
    return values


def shown_figures(catalog: Catalog, report: Mapping[str, Any] | None) -> list[tuple[str, str, str]]:
    """(field name, label, value as shown) for each field of a report as it was sent, in the
    form's order, then any field the form does not draw; [] for no report. An enum's value is
    shown by its label, a number with the thousands dot."""
    if not report:
        return []
    body = report.get("body") or {}
    kind = str(report.get("kind") or "")
    fields = body_fields(catalog, kind) if kind in catalog.kinds else []
    shown: list[tuple[str, str, str]] = []
    for f in fields:
        if f.name in body:
            value = body[f.name]
            text = dict(f.choices).get(str(value), str(value)) if f.type == "enum" else _shown(value, f.type)
            shown.append((f.name, f.label, text))
    drawn = {f.name for f in fields}
    shown += [(name, field_label(name), _shown(value)) for name, value in body.items() if name not in drawn]
    if report.get("withdrawn"):
        shown.append(("withdrawn", "Rút báo cáo", "Có"))
    return shown


def _shown(value: Any, kind: str = "") -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}".replace(",", ".")
    if kind == "date":
        try:
            return date.fromisoformat(str(value)).strftime("%d/%m/%Y")
        except ValueError:
            return str(value)
    return str(value)
