import pytest
from pydantic import ValidationError

from shared.domain.reports import REPORT_ADAPTER


def study(**body_changes):
    body = {
        "resolution": "Nghị quyết XIX",
        "held_on": "2020-12-25",
        "format": "online",
        "bridge_points": 1,
        "delegates": 10,
        "members_attended": 280,
        "members_total": 300,
    }
    body.update(body_changes)
    return {
        "report_id": "r-1",
        "revision": 1,
        "unit": "14923",
        "kind": "study_session",
        "period": "2020-12",
        "submitted_at": "2020-12-26T09:00:00+07:00",
        "body": body,
    }


def error_locs(payload):
    with pytest.raises(ValidationError) as err:
        REPORT_ADAPTER.validate_python(payload)
    return {".".join(str(x) for x in e["loc"]): e["msg"] for e in err.value.errors()}


def test_a_valid_study_session_report_is_accepted():
    report = REPORT_ADAPTER.validate_python(study())
    assert report.body.members_attended == 280


def test_attended_above_total_names_both_fields():
    errors = error_locs(study(members_attended=301))
    assert any("members_attended (301) must not exceed members_total (300)" in m for m in errors.values())


def test_unknown_fields_are_rejected_by_name():
    assert "study_session.body.surprise" in error_locs(study(surprise=1))


def test_numbers_must_be_integers_not_strings_or_floats():
    errors = error_locs(study(delegates="10", bridge_points=1.5))
    assert "study_session.body.delegates" in errors and "study_session.body.bridge_points" in errors


def test_negative_and_absurd_counts_are_out_of_bounds():
    errors = error_locs(study(members_total=-1, delegates=10**9))
    assert "study_session.body.members_total" in errors and "study_session.body.delegates" in errors


def test_the_conference_date_must_fall_inside_the_period():
    errors = error_locs(study(held_on="2021-01-02"))
    assert any("held_on 2021-01-02 is outside period 2020-12" in m for m in errors.values())


def test_unknown_kinds_say_which_kinds_exist():
    payload = study()
    payload["kind"] = "picnic"
    msg = " ".join(error_locs(payload).values())
    assert "study_session" in msg and "picnic" in msg


def test_a_report_id_cannot_carry_dollar_signs_or_dots():
    payload = study()
    payload["report_id"] = "$where.x"
    assert "study_session.report_id" in error_locs(payload)


def test_a_withdrawal_needs_no_body_but_a_report_does():
    payload = study()
    payload["body"] = None
    assert any("body is required" in m for m in error_locs(payload).values())
    payload["withdrawn"] = True
    assert REPORT_ADAPTER.validate_python(payload).withdrawn is True


def test_text_is_normalized_to_nfc():
    decomposed = "Nghi\u0323 quyê\u0301t"
    report = REPORT_ADAPTER.validate_python(study(resolution=decomposed))
    assert report.body.resolution == "Nghị quyết"


def test_member_ratings_are_yearly():
    payload = {
        "report_id": "r-2",
        "revision": 1,
        "unit": "14923",
        "kind": "member_rating",
        "period": "2023-05",
        "submitted_at": "2024-01-05T09:00:00+07:00",
        "body": {"excellent": 1, "good": 2, "completed": 3, "not_completed": 0},
    }
    assert any("member_rating report covers a year" in m for m in error_locs(payload).values())


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"indicator": "hospital_beds"}, "value is required"),
        ({"indicator": "doctors_per_10k", "value": 9}, "numerator is required"),
        ({"indicator": "hospital_beds", "value": 5, "numerator": 1}, "numerator is not used"),
        ({"indicator": "no_such_indicator", "value": 1}, "hospital_beds"),
    ],
)
def test_indicator_bodies_match_their_catalog_entry(body, problem):
    payload = {
        "report_id": "r-3",
        "revision": 1,
        "unit": "467",
        "kind": "indicator",
        "period": "2024",
        "submitted_at": "2024-12-10T09:00:00+07:00",
        "body": body,
    }
    assert any(problem in m for m in error_locs(payload).values())


def test_a_submission_time_in_the_future_is_refused():
    payload = study()
    payload["submitted_at"] = "2999-01-01T00:00:00+07:00"
    assert "study_session.submitted_at" in error_locs(payload)
