"""Draft and submit validation of real review payloads."""

from __future__ import annotations

import pytest
from flask_babel import force_locale
from marshmallow import ValidationError

from reviewapp.formdefs import flatten_errors
from tests.conftest import COMPLETE_ANSWERS, COMPLETE_OBSERVATION, make_answers, make_observation


def errors_of(form, answers, mode):
    with pytest.raises(ValidationError) as info:
        form.validate(answers, mode)
    return flatten_errors(info.value.messages)


REQUIRED_TOP = [
    "language", "review_type", "sensitivity", "sharing_consent", "attribution", "country",
    "institution", "personnel_category", "operation", "deployment_start", "deployment_end",
    "rating_selection", "rating_predeployment_training", "rating_deployment_induction",
    "rating_operations", "rating_sustainment", "rating_rotation_repatriation",
    "rating_reintegration", "expected", "happened", "why_difference", "sustain", "improve",
]  # fmt: skip
REQUIRED_OBSERVATION = [
    "title", "kind", "phase", "functional_area", "observation", "recommendation",
    "action_body", "priority", "sensitivity",
]  # fmt: skip


def test_required_lists_match_the_definition(form):
    assert sorted(REQUIRED_TOP) == sorted(
        n for n, f in form.fields.items() if f.required and not f.show_if
    )
    obs = form.fields["observations"].fields
    assert sorted(REQUIRED_OBSERVATION) == sorted(f.name for f in obs if f.required)


@pytest.mark.parametrize("name", REQUIRED_TOP)
def test_submit_refuses_each_missing_required_field(form, name, app):
    with app.test_request_context(), force_locale("en"):
        errors = errors_of(form, make_answers(**{name: None}), "submit")
    assert errors == {name: ["This field is required."]}


@pytest.mark.parametrize("name", REQUIRED_OBSERVATION)
def test_submit_refuses_each_missing_observation_field(form, name, app):
    answers = make_answers(observations=[make_observation(), make_observation(**{name: None})])
    with app.test_request_context(), force_locale("en"):
        errors = errors_of(form, answers, "submit")
    assert errors == {f"observations-1-{name}": ["This field is required."]}


@pytest.mark.parametrize("name", REQUIRED_TOP + ["observations"])
def test_draft_accepts_each_missing_field(form, name):
    assert name not in form.validate(make_answers(**{name: None}), "draft")


def test_draft_accepts_an_empty_review(form):
    assert form.validate({}, "draft") == {}


def test_blank_answers_count_as_missing(form, app):
    with app.test_request_context(), force_locale("en"):
        errors = errors_of(form, make_answers(country="", expected="   "), "submit")
    assert set(errors) == {"country", "expected"}


def test_submit_needs_at_least_one_observation(form, app):
    with app.test_request_context(), force_locale("en"):
        assert errors_of(form, make_answers(observations=[]), "submit") == {
            "observations": ["Add at least 1."]
        }


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("rotation", "twelve", "Enter a whole number."),
        ("rotation", "3.5", "Enter a whole number."),
        ("rotation", 0, "Enter a number from 1 to 200."),
        ("notice_months", 61, "Enter a number from 0 to 60."),
        ("deployment_start", "2023-02-30", "Enter a valid date (YYYY-MM-DD)."),
        ("deployment_start", "01/03/2023", "Enter a valid date (YYYY-MM-DD)."),
        ("deployment_start", "1850-01-01", "Enter a valid date (YYYY-MM-DD)."),
        ("country", "ES", "Choose one of the options offered."),
        ("rating_operations", 6, "Choose a rating from 1 to 5, or not applicable."),
        ("rating_operations", "bueno", "Choose a rating from 1 to 5, or not applicable."),
        ("rating_operations", True, "Choose a rating from 1 to 5, or not applicable."),
        ("contingent", "x" * 121, "Enter at most 120 characters."),
        ("expected", "x" * 4001, "Enter at most 4000 characters."),
        ("contingent", ["a", "b"], "Enter text."),
        ("observations", "one", "Expected a list of entries."),
    ],
    ids=lambda v: str(v)[:20],
)
@pytest.mark.parametrize("mode", ["draft", "submit"])
def test_wrong_types_and_limits_are_refused_in_both_modes(form, app, name, value, message, mode):
    with app.test_request_context(), force_locale("en"):
        errors = errors_of(form, make_answers(**{name: value}), mode)
    assert errors == {name: [message]}


def test_select_many_refuses_unknown_choices(form, app):
    answers = make_answers(observations=[make_observation(dotmlpfi=["training", "magic"])])
    with app.test_request_context(), force_locale("en"):
        assert errors_of(form, answers, "draft") == {
            "observations-0-dotmlpfi": ["Choose from the options offered."]
        }


@pytest.mark.parametrize("mode", ["draft", "submit"])
def test_unknown_fields_are_refused(form, app, mode):
    answers = make_answers(favourite_colour="blue")
    answers["observations"][0]["mood"] = "good"
    with app.test_request_context(), force_locale("en"):
        errors = errors_of(form, answers, mode)
    assert errors == {
        "favourite_colour": ["This field is not part of the form."],
        "observations-0-mood": ["This field is not part of the form."],
    }


def test_reversed_dates_are_refused_on_submit(form, app):
    answers = make_answers(deployment_start="2023-09-15", deployment_end="2023-03-01")
    with app.test_request_context(), force_locale("en"):
        errors = errors_of(form, answers, "submit")
    assert errors == {"deployment_end": ["Must be later than “Deployment start”."]}
    # A draft may be half-way through fixing them.
    assert form.validate(answers, "draft")["deployment_end"] == "2023-03-01"


def test_same_start_and_end_date_is_refused(form, app):
    with app.test_request_context(), force_locale("en"):
        errors = errors_of(
            form, make_answers(deployment_end=COMPLETE_ANSWERS["deployment_start"]), "submit"
        )
    assert list(errors) == ["deployment_end"]


def test_show_if_field_is_required_only_when_shown(form, app):
    with app.test_request_context(), force_locale("en"):
        errors = errors_of(form, make_answers(operation="MFO"), "submit")
    assert errors == {"operation_other": ["This field is required."]}
    assert form.validate(make_answers(operation="MFO", operation_other="MFO Sinaí"), "submit")


def test_hidden_answers_are_dropped(form):
    answers = make_answers(attribution="anonymous", operation_other="leftover")
    answers["observations"][0]["action_body"] = "mission"
    clean = form.validate(answers, "submit")
    assert "respondent_name" not in clean and "respondent_contact" not in clean
    assert "operation_other" not in clean
    assert "training_module" not in clean["observations"][0]
    assert COMPLETE_OBSERVATION["training_module"]  # the factory did have one


def test_form_strings_are_converted_to_types(form):
    clean = form.validate(
        make_answers(rotation="7", rating_operations="2", rating_sustainment="na"), "draft"
    )
    assert clean["rotation"] == 7 and clean["rating_operations"] == 2
    assert clean["rating_sustainment"] == "na"


@pytest.mark.parametrize(
    ("lang", "required", "date_after"),
    [
        ("es", "Este campo es obligatorio.", "Debe ser posterior a «Inicio del despliegue»."),
        ("pt", "Este campo é obrigatório.", "Deve ser posterior a «Início do desdobramento»."),
        ("fr", "Ce champ est obligatoire.", "Doit être postérieure à « Début du déploiement »."),
        ("en", "This field is required.", "Must be later than “Deployment start”."),
    ],
)
def test_messages_are_in_the_users_language(form, app, lang, required, date_after):
    answers = make_answers(country=None, deployment_start="2024-01-01", deployment_end="2023-01-01")
    with app.test_request_context(), force_locale(lang):
        errors = errors_of(form, answers, "submit")
    assert errors["country"] == [required]
    assert errors["deployment_end"] == [date_after]
