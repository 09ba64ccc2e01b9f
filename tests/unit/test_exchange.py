"""DHIS2 data value sets <-> baocao (shared/domain/exchange.py): periods, the mapping, import to
reports, the revision an import is sent at, export of totals, JSON and CSV."""

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.domain.catalog import load_catalog
from shared.domain.exchange import (
    DEFAULT_MAPPING_PATH,
    DataValue,
    ExchangeError,
    choose_revision,
    data_value_set,
    data_values_csv,
    data_values_from_csv,
    data_values_from_json,
    data_values_from_totals,
    drafts_from_values,
    from_dhis2_period,
    load_mapping,
    parse_mapping,
    submitted_at_for,
    to_dhis2_period,
)
from shared.domain.reports import REPORT_ADAPTER

CATALOG = load_catalog()
EXAMPLE = Path(__file__).resolve().parents[2] / "examples"
MAPPING = load_mapping(str(EXAMPLE / "dhis2-mapping.json"))
DEFAULT = load_mapping(str(DEFAULT_MAPPING_PATH))


@pytest.mark.parametrize(
    ("baocao", "dhis2"),
    [
        ("2025-03", "202503"),
        ("2020-12", "202012"),
        ("2025-Q1", "2025Q1"),
        ("2025-H1", "2025S1"),
        ("2025-H2", "2025S2"),
        ("2025", "2025"),
    ],
)
def test_periods_convert_both_ways(baocao, dhis2):
    assert to_dhis2_period(baocao) == dhis2
    assert from_dhis2_period(dhis2) == baocao


def test_a_congress_term_has_no_dhis2_period_and_other_dhis2_periods_none_here():
    with pytest.raises(ExchangeError, match="2020-2025 is a congress term: DHIS2 has no period type"):
        to_dhis2_period("2020-2025")
    for other in ("2025W1", "20250301", "202501B", "2025April", "202513", "1999"):
        with pytest.raises(ExchangeError, match=other):
            from_dhis2_period(other)


@st.composite
def periods(draw):
    year = draw(st.integers(2000, 2100))
    form = draw(st.sampled_from(["month", "quarter", "half", "year"]))
    if form == "month":
        return f"{year}-{draw(st.integers(1, 12)):02d}"
    if form == "quarter":
        return f"{year}-Q{draw(st.integers(1, 4))}"
    if form == "half":
        return f"{year}-H{draw(st.integers(1, 2))}"
    return str(year)


@given(periods())
def test_every_period_but_a_term_goes_to_dhis2_and_back(period):
    assert from_dhis2_period(to_dhis2_period(period)) == period


def test_the_shipped_and_the_example_mappings_are_valid_and_cover_every_summed_field_of_the_default():
    for series, spec in CATALOG.series.items():
        for f in spec.totalled_fields:
            assert DEFAULT.sources[_target(series, f.name)] == (f"{series}.{f.name}", None)
    assert MAPPING.target("BcHnMembers", "BcCocAttend") == _target("study_session", "members_attended")


def _target(series, name):
    from shared.domain.exchange import Target

    return Target(series, name)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"dataElements": []}, r"mapping.dataElements must be a non-empty list"),
        ({"dataElements": [{"dataElement": "X", "series": "nope", "field": "a"}]}, r"dataElements\[0\].series 'nope'"),
        (
            {"dataElements": [{"dataElement": "X", "series": "study_session", "field": "attended"}]},
            r"dataElements\[0\].field 'attended' is not a field of study_session",
        ),
        (
            {
                "dataElements": [
                    {"dataElement": "X", "series": "reflection", "field": "members_submitted"},
                    {"dataElement": "X", "series": "reflection", "field": "members_required"},
                ]
            },
            r"dataElements\[1\]: dataElement X \(categoryOptionCombo None\) is mapped twice",
        ),
        (
            {
                "dataElements": [
                    {"dataElement": "X", "series": "reflection", "field": "members_submitted"},
                    {"dataElement": "Y", "series": "reflection", "field": "members_submitted"},
                ]
            },
            r"dataElements\[1\]: reflection.members_submitted is already carried by dataElement X",
        ),
        ({"fill": {"study_session": {"format": "on_paper"}}}, r"fill.study_session.format must be one of"),
        ({"fill": {"study_session": {"delegates": "7"}}}, r"fill.study_session.delegates must be a whole number"),
        ({"orgUnits": {"OuA": "not a code"}}, r"orgUnits.OuA must be a baocao unit code"),
        ({"orgUnits": {"OuA": "386", "OuB": "386"}}, r"orgUnits.OuB: unit 386 is already the org unit OuA"),
        ({"dataelements": []}, r"unknown keys \['dataelements'\]"),
    ],
)
def test_a_mapping_error_names_the_key_at_fault(change, message):
    raw = {"dataElements": [{"dataElement": "X", "series": "reflection", "field": "members_submitted"}], **change}
    with pytest.raises(ExchangeError, match=message):
        parse_mapping(raw, CATALOG)


def test_a_mapping_file_that_cannot_be_read_is_named(tmp_path):
    bad = tmp_path / "m.json"
    bad.write_text("{not json")
    with pytest.raises(ExchangeError, match=f"exchange mapping {bad}"):
        load_mapping(str(bad))


def example_values():
    return data_values_from_json(json.loads((EXAMPLE / "dhis2-datavalueset.json").read_text()))


def test_the_example_set_makes_one_valid_report_per_unit_with_the_fill_and_a_stable_id():
    values, conflicts = example_values()
    drafts, more = drafts_from_values(values, MAPPING, CATALOG)
    assert conflicts == more == []
    assert [(d.unit, d.series, d.period, d.indexes) for d in drafts] == [
        ("14923", "study_session", "2020-12", [0, 1, 2, 3]),
        ("14926", "study_session", "2020-12", [4, 5, 6, 7]),
    ]
    report = drafts[0].report(1)
    assert report == {
        "report_id": "dhis2:study_session:2020-12",
        "revision": 1,
        "unit": "14923",
        "kind": "study_session",
        "period": "2020-12",
        "submitted_at": "2020-12-01T00:00:00+07:00",
        "body": {
            "bridge_points": 1,
            "delegates": 12,
            "members_attended": 280,
            "members_total": 300,
            "format": "in_person",
            "held_on": "2020-12-01",
        },
    }
    REPORT_ADAPTER.validate_python(report)


def test_an_indicator_report_names_its_indicator_and_its_id_has_no_dot():
    value = DataValue("BcCtGiuongB", "2025Q3", "38", "1200", 0)
    [draft], _ = drafts_from_values([value], MAPPING, CATALOG)
    report = draft.report(2)
    assert report["report_id"] == "dhis2:indicator:hospital_beds:2025-Q3"
    assert (report["kind"], report["body"], report["revision"]) == (
        "indicator",
        {"indicator": "hospital_beds", "value": 1200},
        2,
    )
    REPORT_ADAPTER.validate_python(report)


def test_values_that_cannot_be_taken_are_conflicts_naming_the_value_and_the_reason():
    values = [
        DataValue("Unknown01", "202012", "14923", "1", 0),
        DataValue("BcHnBridgeP", "2020W3", "14923", "1", 1),
        DataValue("BcHnBridgeP", "202012", "Nowhere", "1", 2),
        DataValue("BcHnBridgeP", "202012", "14923", "1.5", 3),
        DataValue("BcHnBridgeP", "202012", "14923", "1", 4, attribute_option_combo="Funding01"),
        DataValue("BcHnBridgeP", "202012", "14923", "1", 5, deleted=True),
        DataValue("BcHnMembers", "202012", "14923", "1", 6, category_option_combo="BcCocOther"),
    ]
    drafts, conflicts = drafts_from_values(values, MAPPING, CATALOG)
    assert drafts == []
    reasons = [(c.object, c.value, c.indexes) for c in conflicts]
    assert reasons == [
        ("Unknown01", "dataValues[0]: dataElement Unknown01 is not in the mapping", (0,)),
        (
            "BcHnBridgeP",
            "dataValues[1]: period '2020W3' is not one baocao takes: 202503 (monthly), 2025Q1 "
            "(quarterly), 2025S1 (six-monthly) or 2025 (yearly)",
            (1,),
        ),
        (
            "BcHnBridgeP",
            "dataValues[2]: orgUnit Nowhere is not in the mapping's orgUnits, nor a baocao unit code",
            (2,),
        ),
        ("BcHnBridgeP", "dataValues[3]: value '1.5' is not a whole number (field bridge_points)", (3,)),
        ("BcHnBridgeP", "dataValues[4]: attributeOptionCombo Funding01 is not the mapping's (none)", (4,)),
        ("BcHnBridgeP", "dataValues[5]: a deleted value is not imported: withdraw the report in baocao instead", (5,)),
        (
            "BcHnMembers",
            "dataValues[6]: dataElement BcHnMembers with categoryOptionCombo BcCocOther is not in the mapping",
            (6,),
        ),
    ]


def test_a_report_missing_a_field_or_given_a_field_twice_is_not_taken():
    half = [
        DataValue("BcHnBridgeP", "202012", "CanhNang923", "1", 0),
        DataValue("BcHnDelegat", "202012", "CanhNang923", "3", 1),
    ]
    drafts, [missing] = drafts_from_values(half, MAPPING, CATALOG)
    assert drafts == []
    assert missing.object == "CanhNang923" and missing.indexes == (0, 1)
    assert (
        "no value for members_attended (dataElement BcHnMembers), members_total (dataElement BcHnMembers)"
        in missing.value
    )
    twice = [
        DataValue("BcThSubmitt", "202012", "14923", "3", 0),
        DataValue("BcThRequire", "202012", "14923", "5", 1),
        DataValue("BcThSubmitt", "202012", "14923", "4", 2),
    ]
    drafts, [conflict] = drafts_from_values(twice, MAPPING, CATALOG)
    assert drafts == []
    assert conflict.value == (
        "dataValues[2]: reflection.members_submitted of 14923 in 2020-12 is given twice, "
        "3 and 4; none of the report's values is taken"
    )


def test_json_sets_take_the_sets_period_and_org_unit_and_name_what_a_value_lacks():
    values, conflicts = data_values_from_json(
        {
            "period": "202012",
            "orgUnit": "14923",
            "dataValues": [{"dataElement": "A", "value": 3}, {"dataElement": "B"}, [1]],
        }
    )
    assert values == [DataValue("A", "202012", "14923", "3", 0)]
    assert [(c.value, c.indexes) for c in conflicts] == [
        ("dataValues[1].value is missing", (1,)),
        ("dataValues[2] must be an object", (2,)),
    ]
    with pytest.raises(ExchangeError, match='"dataValues" list'):
        data_values_from_json({"values": []})


def test_csv_sets_are_read_by_position_after_the_header_and_name_the_line():
    text = (
        "dataelement,period,orgunit,categoryoptioncombo,attributeoptioncombo,value,storedby,lastupdated,comment,followup\n"
        "BcHnMembers,202012,CanhNang923,BcCocAttend,,280,admin,2021-01-02,,false\n"
        "\n"
        "BcHnDelegat,202012,,,,12\n"
        "BcHnBridgeP,202012,CanhNang923,,,1,,,,,true\n"
    )
    values, [conflict] = data_values_from_csv(text)
    assert values == [
        DataValue("BcHnMembers", "202012", "CanhNang923", "280", 0, "BcCocAttend", line=2),
        DataValue("BcHnBridgeP", "202012", "CanhNang923", "1", 2, deleted=True, line=5),
    ]
    assert (conflict.object, conflict.value) == ("line 4", "line 4: no orgunit")
    with pytest.raises(ExchangeError, match="line 1 must be the header row: dataelement,period,orgunit"):
        data_values_from_csv("BcHnMembers,202012,CanhNang923,,,280\n")


def test_revision_one_for_a_new_report_the_same_for_the_same_content_the_next_for_a_change():
    assert choose_revision(None, lambda r: "x") == 1
    assert choose_revision({1: "a", 2: "b"}, lambda r: {2: "b"}.get(r)) == 2
    assert choose_revision({1: "a", 2: "b"}, lambda r: "c") == 3
    assert choose_revision({1: "a"}, lambda r: None) == 2  # would not be valid: sent as new, refused by ingest


def test_submitted_at_is_the_periods_first_instant_and_never_before_2000():
    assert submitted_at_for("2025-Q3") == "2025-07-01T00:00:00+07:00"
    assert submitted_at_for("2000") == "2000-01-01T00:00:00+00:00"


def test_export_gives_every_mapped_summed_field_with_zeros_and_combine_none_only_at_the_reporting_unit():
    figures = {
        ("386", "study_session"): {
            "sums": {"members_attended": 432, "members_total": 460, "bridge_points": 2},
            "reports": 2,
        },
        ("14923", "reflection"): {"reports": 1, "own": 1},  # reported zeros: sums left out
        ("38", "indicator.production_growth_rate"): {"reports": 1},  # a district's, not the province's
        ("386", "indicator.production_growth_rate"): {"sums": {"value": -15}, "reports": 1, "own": 1},
    }
    values = data_values_from_totals(figures, "2020-12", DEFAULT, CATALOG)
    got = {(v["orgUnit"], v["dataElement"]): v["value"] for v in values}
    assert got == {
        ("14923", "reflection.members_submitted"): "0",
        ("14923", "reflection.members_required"): "0",
        ("386", "study_session.bridge_points"): "2",
        ("386", "study_session.delegates"): "0",
        ("386", "study_session.members_attended"): "432",
        ("386", "study_session.members_total"): "460",
        ("386", "indicator.production_growth_rate.value"): "-15",
    }
    assert {v["period"] for v in values} == {"202012"}
    with pytest.raises(ExchangeError, match="congress term"):
        data_values_from_totals(figures, "2020-2025", DEFAULT, CATALOG)


def test_export_writes_the_mappings_identifiers():
    values = data_values_from_totals(
        {("14923", "study_session"): {"sums": {"members_attended": 280, "members_total": 300}}},
        "2020-Q4",
        MAPPING,
        CATALOG,
    )
    assert {
        "dataElement": "BcHnMembers",
        "categoryOptionCombo": "BcCocAttend",
        "period": "2020Q4",
        "orgUnit": "CanhNang923",
        "value": "280",
    } in values
    assert data_value_set(values, MAPPING)["dataSet"] == "BcNghiQuyet"


# Round trip: totals exported and imported again make reports with the same numbers, through
# the shipped mapping (dates and choices filled) and the example's.
FILLED = parse_mapping(
    {
        **json.loads(DEFAULT_MAPPING_PATH.read_text()),
        "fill": {
            "study_session": {"format": "online", "held_on": "period_start"},
            "action_program": {"adopted_on": "period_start"},
            "training_course": {"started_on": "period_start", "ended_on": "period_start"},
        },
    },
    CATALOG,
)


@st.composite
def totals(draw):
    series = draw(st.sampled_from(sorted(CATALOG.series)))
    spec = CATALOG.series[series]
    sums = {f.name: draw(st.integers(f.minimum or 0, min(f.maximum or 10**9, 10**9))) for f in spec.totalled_fields}
    unit = draw(st.sampled_from(["38", "386", "14923", "14926", "38-bvdk"]))
    return (unit, series), {"sums": sums, "reports": 1, "own": 1}


@given(st.lists(totals(), min_size=1, max_size=6, unique_by=lambda t: t[0]), periods(), st.booleans())
def test_export_then_import_makes_reports_with_the_same_numbers_from_json_and_csv(found, period, as_csv):
    figures = dict(found)
    for mapping in (FILLED, MAPPING):
        values = data_values_from_totals(figures, period, mapping, CATALOG)
        if as_csv:
            read, conflicts = data_values_from_csv(data_values_csv(values))
        else:
            read, conflicts = data_values_from_json(json.loads(json.dumps(data_value_set(values, mapping))))
        drafts, more = drafts_from_values(read, mapping, CATALOG)
        assert conflicts == more == []
        numbers = {(d.unit, d.series, name): v for d in drafts for name, v in d.body.items() if isinstance(v, int)}
        expected = {
            (unit, series, name): value
            for (unit, series), f in figures.items()
            if any(t.series == series for t in mapping.sources)
            for name, value in f["sums"].items()
        }
        assert numbers == expected
        assert {d.period for d in drafts} <= {period}
