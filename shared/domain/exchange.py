"""Exchange with DHIS2-style systems: data value sets (DHIS2's "long format") to and from baocao.

A data value is one number (or date, or word) of one data element, for one org unit and one
period: ``{dataElement, period, orgUnit, categoryOptionCombo?, attributeOptionCombo?, value, ...}``,
sent as JSON (``{"dataSet"?, "period"?, "orgUnit"?, "dataValues": [...]}``; the set's own period
and orgUnit apply to the values that lack them) or as CSV, whose columns are read by position
(``CSV_COLUMNS``; the first row is the header). A **mapping** (``parse_mapping``; the shipped one
is shared/data/exchange-mapping.json, an example with DHIS2 identifiers examples/dhis2-mapping.json)
says which baocao field each data element (with an optional category option combo) carries,
which DHIS2 org unit is which baocao unit (by default the same code), and the values of fields
no data element carries (``fill``: ``"period_start"`` for a date is the period's first day).

Periods: ``2025-03`` <-> ``202503``, ``2025-Q1`` <-> ``2025Q1``, ``2025-H1`` <-> ``2025S1``
(DHIS2's six-monthly), ``2025`` <-> ``2025``. A congress term has no DHIS2 period, and DHIS2's
other period types (weekly, daily, bi-monthly, financial years) have no baocao one.

**Import**: the data values of one (org unit, period, series) make one baocao report, whose
``report_id`` is ``dhis2:<series>:<period>`` (the series' dot written ``:``), so the same values
sent again name the same report. Its revision is not in the data: DHIS2 keeps one current value
per cell and no version of it (``lastUpdated`` is per value, optional, and DHIS2 rewrites it when
an unchanged value is saved again). So the importer asks ingest's submission log, which keeps the
digest of every revision it accepted (``choose_revision``): the latest revision again when the
report built at that revision has the same digest (a re-import is a duplicate), the next one
otherwise (a changed value is a revision). For the digest to repeat, nothing in the report may
depend on the time of the import: ``submitted_at`` is the period's first instant (Vietnam time),
and what decides on-time is ingest's receipt time anyway. A revision derived from the content
(a hash) could not be ordered, and one derived from ``lastUpdated`` would change without the
value changing and collide within its resolution. Two imports of different values racing for
the same next revision: ingest accepts one and answers the other as a conflict, reported as such.

**Export**: the totals of units (each unit's whole subtree, as the API serves them) as data
values, one per mapped field that is summed (``combine: none`` fields only at a unit with a report
of its own), values as strings as DHIS2 writes them. Rates are not exported: they are derived.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from shared.domain.catalog import INDICATOR_KIND, Catalog, Combine, FieldSpec, load_catalog
from shared.domain.periods import VIETNAM_TZ, Granularity, PeriodError, parse_period
from shared.domain.reports import EARLIEST_SUBMISSION, UNIT_CODE_PATTERN

# DHIS2's CSV data value columns, in the order it reads them (by position; the header row names them).
CSV_COLUMNS = (
    "dataelement",
    "period",
    "orgunit",
    "categoryoptioncombo",
    "attributeoptioncombo",
    "value",
    "storedby",
    "lastupdated",
    "comment",
    "followup",
    "deleted",
)
# the setting naming the mapping file, and the mapping shipped for when it is not set
MAPPING_SETTING = "BAOCAO_EXCHANGE_MAPPING"
DEFAULT_MAPPING_PATH = Path(__file__).parent.parent / "data" / "exchange-mapping.json"
PERIOD_START = "period_start"  # a date filled with the period's first day
OPTIONAL_TYPES = frozenset({"text", "conference"})  # a report may leave these out
REPORT_ID_PREFIX = "dhis2"
_UNIT_CODE = re.compile(UNIT_CODE_PATTERN)
_WHOLE = re.compile(r"^[+-]?[0-9]+(\.0+)?$")
_DHIS2_PERIODS = (
    (re.compile(r"^([0-9]{4})(0[1-9]|1[0-2])$"), "{}-{}"),
    (re.compile(r"^([0-9]{4})Q([1-4])$"), "{}-Q{}"),
    (re.compile(r"^([0-9]{4})S([12])$"), "{}-H{}"),
    (re.compile(r"^([0-9]{4})$"), "{}"),
)


class ExchangeError(ValueError):
    """A mapping, a period or a data value set that cannot be used; the message names where."""


# --- periods ---------------------------------------------------------------------------------


def to_dhis2_period(period: str) -> str:
    """DHIS2's id of a baocao period (``2025-H1`` -> ``2025S1``); ExchangeError for a congress
    term, which DHIS2 has no period type for, and for what is not a period."""
    try:
        p = parse_period(period)
    except PeriodError as exc:
        raise ExchangeError(str(exc)) from None
    year = p.start.year
    if p.granularity is Granularity.MONTH:
        return f"{year}{p.start.month:02d}"
    if p.granularity is Granularity.QUARTER:
        return f"{year}Q{(p.start.month - 1) // 3 + 1}"
    if p.granularity is Granularity.HALF:
        return f"{year}S{(p.start.month - 1) // 6 + 1}"
    if p.granularity is Granularity.YEAR:
        return str(year)
    raise ExchangeError(
        f"period {period} is a congress term: DHIS2 has no period type for it; "
        "exchange its years (2020, 2021, ...) instead"
    )


def from_dhis2_period(period: str) -> str:
    """The baocao period of a DHIS2 period id (``2025S1`` -> ``2025-H1``); ExchangeError naming the
    forms taken for any other (weekly ``2025W1``, daily ``20250301``, bi-monthly ``202501B``, ...)."""
    for pattern, form in _DHIS2_PERIODS:
        if m := pattern.match(period):
            label = form.format(*m.groups())
            try:
                parse_period(label)
            except PeriodError as exc:
                raise ExchangeError(f"period {period}: {exc}") from None
            return label
    raise ExchangeError(
        f"period {period!r} is not one baocao takes: 202503 (monthly), 2025Q1 (quarterly), "
        "2025S1 (six-monthly) or 2025 (yearly)"
    )


# --- the mapping -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A field of a series: ``study_session`` ``members_attended``."""

    series: str
    field: str


@dataclass(frozen=True)
class ExchangeMapping:
    """What a data element means in baocao, and back (``parse_mapping``)."""

    elements: Mapping[tuple[str, str | None], Target]  # (dataElement, categoryOptionCombo) -> field
    sources: Mapping[Target, tuple[str, str | None]]  # field -> (dataElement, categoryOptionCombo)
    fill: Mapping[str, Mapping[str, str | int]]  # series -> field -> value when no data element has it
    org_units: Mapping[str, str]  # DHIS2 org unit -> baocao unit code (others: the same code)
    codes: Mapping[str, str]  # baocao unit code -> DHIS2 org unit
    data_set: str | None = None
    attribute_option_combo: str | None = None  # the one taken on import and written on export

    def unit_of(self, org_unit: str) -> str:
        return self.org_units.get(org_unit, org_unit)

    def org_unit_of(self, code: str) -> str:
        return self.codes.get(code, code)

    def target(self, data_element: str, combo: str | None) -> Target | None:
        """The field a data value carries: its (element, combo) pair, else its element alone. An
        element mapped without a combo takes its values of any combo not mapped on its own: DHIS2
        writes its default combo on every value of an element that has no disaggregation (two
        different values of one field are then a conflict, ``drafts_from_values``)."""
        return self.elements.get((data_element, combo)) or self.elements.get((data_element, None))


def body_fields(catalog: Catalog, series: str) -> dict[str, FieldSpec]:
    """The fields of a report body of ``series``, by name (an indicator's: value, or numerator and
    denominator, and its note)."""
    spec = catalog.series[series]
    if series.startswith(f"{INDICATOR_KIND}."):
        fields = {f.name: f for f in spec.fields}
        fields["note"] = FieldSpec("note", "text", max_length=500)
        return fields
    return {f.name: f for f in catalog.kinds[series].fields}


def _text(raw: Mapping[str, Any], key: str, where: str, required: bool = True) -> str | None:
    value = raw.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ExchangeError(f"{where}.{key} must be a non-empty string, got {value!r}")
    return value.strip()


def _elements(
    raw: Any, catalog: Catalog, where: str
) -> tuple[dict[tuple[str, str | None], Target], dict[Target, tuple[str, str | None]]]:
    if not isinstance(raw, list) or not raw:
        raise ExchangeError(f"{where} must be a non-empty list of {{dataElement, series, field}}")
    elements: dict[tuple[str, str | None], Target] = {}
    sources: dict[Target, tuple[str, str | None]] = {}
    for i, item in enumerate(raw):
        at = f"{where}[{i}]"
        if not isinstance(item, dict):
            raise ExchangeError(f"{at} must be an object, got {item!r}")
        unknown = set(item) - {"dataElement", "categoryOptionCombo", "series", "field", "_doc"}
        if unknown:
            raise ExchangeError(f"{at}: unknown keys {sorted(unknown)}")
        element = _text(item, "dataElement", at)
        combo = _text(item, "categoryOptionCombo", at, required=False)
        series = _text(item, "series", at)
        name = _text(item, "field", at)
        assert element is not None and series is not None and name is not None
        if series not in catalog.series:
            raise ExchangeError(f"{at}.series {series!r} is not a series of the catalog: {sorted(catalog.series)}")
        fields = body_fields(catalog, series)
        if name not in fields:
            raise ExchangeError(f"{at}.field {name!r} is not a field of {series}: {sorted(fields)}")
        target = Target(series, name)
        if (element, combo) in elements:
            raise ExchangeError(f"{at}: dataElement {element} (categoryOptionCombo {combo}) is mapped twice")
        if target in sources:
            raise ExchangeError(f"{at}: {series}.{name} is already carried by dataElement {sources[target][0]}")
        elements[(element, combo)] = target
        sources[target] = (element, combo)
    return elements, sources


def _fill(raw: Any, catalog: Catalog, where: str) -> dict[str, dict[str, str | int]]:
    if not isinstance(raw, dict):
        raise ExchangeError(f"{where} must be an object: series -> field -> value")
    out: dict[str, dict[str, str | int]] = {}
    for series, values in raw.items():
        if series == "_doc":
            continue
        if series not in catalog.series:
            raise ExchangeError(f"{where}.{series} is not a series of the catalog: {sorted(catalog.series)}")
        if not isinstance(values, dict):
            raise ExchangeError(f"{where}.{series} must be an object: field -> value")
        fields = body_fields(catalog, series)
        for name, value in values.items():
            spec = fields.get(name)
            if spec is None:
                raise ExchangeError(f"{where}.{series}.{name} is not a field of {series}: {sorted(fields)}")
            if spec.type == "int" and (not isinstance(value, int) or isinstance(value, bool)):
                raise ExchangeError(f"{where}.{series}.{name} must be a whole number, got {value!r}")
            if spec.type != "int" and not isinstance(value, str):
                raise ExchangeError(f"{where}.{series}.{name} must be a string, got {value!r}")
            if spec.type == "enum" and value not in spec.values:
                raise ExchangeError(f"{where}.{series}.{name} must be one of {list(spec.values)}, got {value!r}")
        out[series] = dict(values)
    return out


def _org_units(raw: Any, where: str) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise ExchangeError(f"{where} must be an object: DHIS2 org unit -> baocao unit code")
    out: dict[str, str] = {}
    seen: dict[str, str] = {}
    for org_unit, code in raw.items():
        if org_unit == "_doc":
            continue
        if not isinstance(code, str) or not _UNIT_CODE.match(code):
            raise ExchangeError(
                f"{where}.{org_unit} must be a baocao unit code (38, 386, 14923, 38-bvdk), got {code!r}"
            )
        if code in seen:
            raise ExchangeError(f"{where}.{org_unit}: unit {code} is already the org unit {seen[code]}")
        seen[code] = org_unit
        out[org_unit] = code
    return out


def parse_mapping(raw: Any, catalog: Catalog, where: str = "mapping") -> ExchangeMapping:
    """The mapping from its JSON form; ExchangeError naming the key at fault (``where`` names the
    document, e.g. its file)::

        {"dataSet": "...",                 (optional: written on export)
         "attributeOptionCombo": "...",    (optional: the one taken on import, written on export)
         "dataElements": [{"dataElement": "...", "categoryOptionCombo": "..." (optional),
                           "series": "study_session", "field": "members_attended"}, ...],
         "fill": {"study_session": {"format": "in_person", "held_on": "period_start"}},
         "orgUnits": {"<DHIS2 org unit>": "<baocao unit code>", ...}}
    """
    if not isinstance(raw, dict):
        raise ExchangeError(f"{where} must be a JSON object")
    unknown = set(raw) - {"_doc", "dataSet", "attributeOptionCombo", "dataElements", "fill", "orgUnits"}
    if unknown:
        raise ExchangeError(f"{where}: unknown keys {sorted(unknown)}")
    elements, sources = _elements(raw.get("dataElements"), catalog, f"{where}.dataElements")
    org_units = _org_units(raw.get("orgUnits", {}), f"{where}.orgUnits")
    return ExchangeMapping(
        elements=elements,
        sources=sources,
        fill=_fill(raw.get("fill", {}), catalog, f"{where}.fill"),
        org_units=org_units,
        codes={code: org_unit for org_unit, code in org_units.items()},
        data_set=_text(raw, "dataSet", where, required=False),
        attribute_option_combo=_text(raw, "attributeOptionCombo", where, required=False),
    )


@cache
def load_mapping(path: str) -> ExchangeMapping:
    """The mapping in the JSON file at ``path``, read once, checked against the catalog
    (ExchangeError naming the file and the key, as load_catalog reads the catalog)."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ExchangeError(f"exchange mapping {path}: {exc}") from None
    return parse_mapping(raw, load_catalog(), path)


# --- data values -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DataValue:
    """One data value as received; ``index`` is its position in the set (0 first), ``line`` its
    line in a CSV file."""

    data_element: str
    period: str
    org_unit: str
    value: str
    index: int
    category_option_combo: str | None = None
    attribute_option_combo: str | None = None
    deleted: bool = False
    line: int | None = None

    @property
    def where(self) -> str:
        return f"line {self.line}" if self.line is not None else f"dataValues[{self.index}]"


@dataclass(frozen=True)
class Conflict:
    """A data value (or several) not taken, and why: DHIS2's import conflict, ``object`` the id
    at fault, ``value`` the reason."""

    object: str
    value: str
    indexes: tuple[int, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {"object": self.object, "value": self.value, "indexes": list(self.indexes)}


def _as_text(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | str):
        return str(value).strip()
    return None


def _json_value(raw: Any, index: int, outer: Mapping[str, Any]) -> DataValue | Conflict:
    where = f"dataValues[{index}]"
    if not isinstance(raw, dict):
        return Conflict(where, f"{where} must be an object", (index,))
    fields: dict[str, str | None] = {}
    for key in ("dataElement", "period", "orgUnit", "categoryOptionCombo", "attributeOptionCombo", "value"):
        given = raw.get(key, outer.get(key) if key in ("period", "orgUnit", "attributeOptionCombo") else None)
        text = _as_text(given) if given is not None else None
        if given is not None and text is None:
            return Conflict(where, f"{where}.{key} must be a string or a whole number, got {given!r}", (index,))
        fields[key] = text or None
    for key in ("dataElement", "period", "orgUnit", "value"):
        if fields[key] is None:
            return Conflict(where, f"{where}.{key} is missing", (index,))
    return DataValue(
        data_element=str(fields["dataElement"]),
        period=str(fields["period"]),
        org_unit=str(fields["orgUnit"]),
        value=str(fields["value"]),
        index=index,
        category_option_combo=fields["categoryOptionCombo"],
        attribute_option_combo=fields["attributeOptionCombo"],
        deleted=raw.get("deleted") is True,
    )


def data_values_from_json(doc: Any) -> tuple[list[DataValue], list[Conflict]]:
    """The data values of a JSON data value set, and a conflict for each one that lacks a part;
    ExchangeError when ``doc`` is not a data value set at all."""
    if not isinstance(doc, dict) or not isinstance(doc.get("dataValues"), list):
        raise ExchangeError('a data value set is a JSON object with a "dataValues" list')
    values: list[DataValue] = []
    conflicts: list[Conflict] = []
    for index, raw in enumerate(doc["dataValues"]):
        read = _json_value(raw, index, doc)
        if isinstance(read, DataValue):
            values.append(read)
        else:
            conflicts.append(read)
    return values, conflicts


def data_values_from_csv(text: str) -> tuple[list[DataValue], list[Conflict]]:
    """The data values of a CSV data value set (columns by position, ``CSV_COLUMNS``; the first
    row is the header and must start with ``dataelement``), and a conflict for each row that
    lacks a part; ExchangeError when the header is missing."""
    rows = csv.reader(io.StringIO(text))
    header = next(rows, None)
    if not header or header[0].strip().lower().lstrip("\ufeff") != CSV_COLUMNS[0]:
        raise ExchangeError(f"line 1 must be the header row: {','.join(CSV_COLUMNS)}")
    values: list[DataValue] = []
    conflicts: list[Conflict] = []
    index = 0
    for row in rows:
        line = rows.line_num
        if not any(cell.strip() for cell in row):
            continue
        cells = [c.strip() for c in row] + [""] * (len(CSV_COLUMNS) - len(row))
        missing = [CSV_COLUMNS[i] for i in (0, 1, 2, 5) if not cells[i]]
        if missing:
            conflicts.append(Conflict(f"line {line}", f"line {line}: no {', '.join(missing)}", (index,)))
        else:
            values.append(
                DataValue(
                    data_element=cells[0],
                    period=cells[1],
                    org_unit=cells[2],
                    value=cells[5],
                    index=index,
                    category_option_combo=cells[3] or None,
                    attribute_option_combo=cells[4] or None,
                    deleted=cells[10].lower() == "true",
                    line=line,
                )
            )
        index += 1
    return values, conflicts


# --- import: data values -> reports ----------------------------------------------------------


def report_id_for(series: str, period: str) -> str:
    """The report an imported (unit, series, period) is: the unit is the report's own, the id the
    rest (``dhis2:study_session:2020-12``, ``dhis2:indicator:hospital_beds:2025-03``)."""
    return f"{REPORT_ID_PREFIX}:{series.replace('.', ':')}:{period}"


def submitted_at_for(period: str) -> str:
    """The ``submitted_at`` of an imported report: its period's first instant, Vietnam time (not
    before 2000-01-01 UTC), so that a re-import builds the same report (see the module's text)."""
    start = parse_period(period).start
    return max(datetime(start.year, start.month, start.day, tzinfo=VIETNAM_TZ), EARLIEST_SUBMISSION).isoformat()


@dataclass
class ReportDraft:
    """The report one (unit, series, period) of a data value set makes, before its revision is
    known; ``elements`` says which data value each body field came from (for conflicts)."""

    unit: str
    org_unit: str
    series: str
    period: str
    body: dict[str, Any] = field(default_factory=dict)
    elements: dict[str, str] = field(default_factory=dict)  # body field -> dataElement
    indexes: list[int] = field(default_factory=list)

    @property
    def report_id(self) -> str:
        return report_id_for(self.series, self.period)

    def report(self, revision: int) -> dict[str, Any]:
        """The report, as POST /v1/reports takes it, at ``revision``."""
        indicator = self.series.startswith(f"{INDICATOR_KIND}.")
        kind = INDICATOR_KIND if indicator else self.series
        body = {"indicator": self.series.split(".", 1)[1], **self.body} if indicator else dict(self.body)
        return {
            "report_id": self.report_id,
            "revision": revision,
            "unit": self.unit,
            "kind": kind,
            "period": self.period,
            "submitted_at": submitted_at_for(self.period),
            "body": body,
        }


def _field_value(spec: FieldSpec, value: DataValue) -> int | str:
    """A data value's text as the field's type: a whole number for ``int`` fields (``12`` or
    ``12.0``; numbers stay exact), the text otherwise (checked by the report's own validation)."""
    if spec.type != "int":
        return value.value
    if not _WHOLE.match(value.value):
        raise ExchangeError(f"value {value.value!r} is not a whole number (field {spec.name})")
    return int(value.value.split(".")[0])


def _place(value: DataValue, mapping: ExchangeMapping) -> tuple[Target, str, str]:
    """The field, unit and baocao period of a data value; ExchangeError saying why not."""
    if value.deleted:
        raise ExchangeError("a deleted value is not imported: withdraw the report in baocao instead")
    if value.attribute_option_combo not in (None, mapping.attribute_option_combo):
        raise ExchangeError(
            f"attributeOptionCombo {value.attribute_option_combo} is not the mapping's "
            f"({mapping.attribute_option_combo or 'none'})"
        )
    target = mapping.target(value.data_element, value.category_option_combo)
    if target is None:
        combo = f" with categoryOptionCombo {value.category_option_combo}" if value.category_option_combo else ""
        raise ExchangeError(f"dataElement {value.data_element}{combo} is not in the mapping")
    unit = mapping.unit_of(value.org_unit)
    if not _UNIT_CODE.match(unit):
        raise ExchangeError(f"orgUnit {value.org_unit} is not in the mapping's orgUnits, nor a baocao unit code")
    return target, unit, from_dhis2_period(value.period)


def _complete(draft: ReportDraft, mapping: ExchangeMapping, catalog: Catalog) -> Conflict | None:
    """Fill the draft's missing fields from the mapping; a conflict naming what is still missing."""
    fields = body_fields(catalog, draft.series)
    for name, value in mapping.fill.get(draft.series, {}).items():
        if name not in draft.body:
            start = parse_period(draft.period).start.isoformat()
            draft.body[name] = start if value == PERIOD_START and fields[name].type == "date" else value
    # text and a joined conference are optional; numbers, dates and choices are required (an
    # indicator's are its numbers)
    required = [n for n, f in fields.items() if f.type not in OPTIONAL_TYPES and n not in draft.body]
    if not required:
        return None
    wanted = []
    for name in required:
        source = mapping.sources.get(Target(draft.series, name))
        wanted.append(f"{name} (dataElement {source[0]})" if source else f"{name} (not mapped, nor in fill)")
    return Conflict(
        draft.org_unit,
        f"{draft.series} of {draft.unit} in {draft.period}: no value for {', '.join(wanted)}",
        tuple(draft.indexes),
    )


def drafts_from_values(
    values: Iterable[DataValue], mapping: ExchangeMapping, catalog: Catalog
) -> tuple[list[ReportDraft], list[Conflict]]:
    """The reports the data values make (one per unit, series and period, in the order first
    seen), and a conflict for each value or report that cannot be taken. A report with two
    different values for one field is not taken at all."""
    drafts: dict[tuple[str, str, str], ReportDraft] = {}
    conflicts: list[Conflict] = []
    spoiled: set[tuple[str, str, str]] = set()
    for value in values:
        try:
            target, unit, period = _place(value, mapping)
            spec = body_fields(catalog, target.series)[target.field]
            typed = _field_value(spec, value)
        except ExchangeError as exc:
            conflicts.append(Conflict(value.data_element, f"{value.where}: {exc}", (value.index,)))
            continue
        key = (unit, target.series, period)
        draft = drafts.setdefault(key, ReportDraft(unit, value.org_unit, target.series, period))
        draft.indexes.append(value.index)
        known = draft.body.get(target.field)
        if known is not None and known != typed:
            spoiled.add(key)
            conflicts.append(
                Conflict(
                    value.data_element,
                    f"{value.where}: {target.series}.{target.field} of {unit} in {period} is given twice, "
                    f"{known} and {typed}; none of the report's values is taken",
                    (value.index,),
                )
            )
        draft.body[target.field] = typed
        draft.elements[target.field] = value.data_element
    taken = []
    for key, draft in drafts.items():
        if key in spoiled:
            continue
        if (missing := _complete(draft, mapping, catalog)) is not None:
            conflicts.append(missing)
            continue
        taken.append(draft)
    return taken, conflicts


def choose_revision(prior: Mapping[int, str] | None, digest_at: Callable[[int], str | None]) -> int:
    """The revision to send a draft as, given the revisions ingest accepted of its report
    (revision -> digest of its content) and the digest of the draft built at a revision (None
    when it would not be valid): the latest again when it is the same report (the answer is then
    a duplicate), the next one when anything changed, 1 for a report never seen."""
    if not prior:
        return 1
    latest = max(prior)
    return latest if digest_at(latest) == prior[latest] else latest + 1


# --- export: totals -> data values -----------------------------------------------------------


def data_values_from_totals(
    figures: Mapping[tuple[str, str], Mapping[str, Any]], period: str, mapping: ExchangeMapping, catalog: Catalog
) -> list[dict[str, str]]:
    """The data values of the totals ``figures`` (per (unit, series): ``sums`` and the counters,
    as the API reads them) of ``period``: one per mapped summed field of each (unit, series) that
    has figures, zeros included (a unit that reported 0 has a value, one that did not has none).
    A field that is not added up the tree (``combine: none``) only where the unit reported itself."""
    dhis2_period = to_dhis2_period(period)
    out: list[dict[str, str]] = []
    for (unit, series), found in sorted(figures.items()):
        spec = catalog.series.get(series)
        if spec is None:
            continue
        sums = found.get("sums") or {}
        for f in spec.totalled_fields:
            source = mapping.sources.get(Target(series, f.name))
            if source is None or (f.combine is Combine.NONE and not found.get("own")):
                continue
            value = {"dataElement": source[0], "period": dhis2_period, "orgUnit": mapping.org_unit_of(unit)}
            if source[1] is not None:
                value["categoryOptionCombo"] = source[1]
            if mapping.attribute_option_combo is not None:
                value["attributeOptionCombo"] = mapping.attribute_option_combo
            value["value"] = str(int(sums.get(f.name, 0)))
            out.append(value)
    return out


def data_value_set(values: list[dict[str, str]], mapping: ExchangeMapping) -> dict[str, Any]:
    """The JSON data value set of ``values``."""
    head: dict[str, Any] = {"dataSet": mapping.data_set} if mapping.data_set else {}
    return {**head, "dataValues": values}


def data_values_csv(values: Iterable[Mapping[str, str]]) -> str:
    """The CSV data value set of ``values``: the header row, then one row per value."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for v in values:
        writer.writerow(
            [
                v["dataElement"],
                v["period"],
                v["orgUnit"],
                v.get("categoryOptionCombo", ""),
                v.get("attributeOptionCombo", ""),
                v["value"],
                "",
                "",
                "",
                "",
                "",
            ]
        )
    return buffer.getvalue()
