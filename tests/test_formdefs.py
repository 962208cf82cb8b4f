"""Form definitions: loading, checking, compiling."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from reviewapp import REPO_ROOT, create_app
from reviewapp.formdefs import LANGUAGES, DefinitionError, load_catalogue
from tests.conftest import make_answers


def test_every_definition_loads_and_compiles(catalogue):
    assert catalogue.forms, "no form definitions found"
    for form in catalogue.forms.values():
        assert set(form.schemas) == {"draft", "submit"}
        for section in form.sections:
            assert all(section.label[lang] for lang in LANGUAGES)


def test_deployment_review_has_sections_a_to_f(form):
    assert [s.id for s in form.sections] == [
        "about", "profile", "phases", "after_action", "observations", "handover",
    ]  # fmt: skip
    assert form.personal_fields() == ["respondent_name", "respondent_contact"]


def test_complete_review_round_trips(form):
    answers = make_answers()
    clean = form.validate(answers, "submit")
    assert clean == answers
    # Validating what was stored gives the same thing again.
    assert form.validate(clean, "submit") == clean


def test_choice_lists_have_every_language_and_unique_values(catalogue):
    for lst in catalogue.choices.values():
        assert len(set(lst.values)) == len(lst.values)
        for choice in lst.choices:
            assert all(choice["label"][lang] for lang in LANGUAGES), (lst.name, choice["value"])


def test_reference_data_counts(catalogue):
    countries = catalogue.choices["countries"].choices
    assert len(countries) == 33
    assert sum(1 for c in countries if c.get("alcopaz")) == 12
    assert sum(1 for c in countries if c.get("relacopaz")) == 16
    targets = catalogue.reference["gender_parity_targets"]["targets"]
    assert targets["military_contingents"][2028] == 15.0
    categories = {
        c["gender_target"]
        for c in catalogue.choices["personnel_categories"].choices
        if "gender_target" in c
    }
    assert categories - {"justice_corrections"} <= set(targets)


@pytest.fixture
def forms_copy(tmp_path: Path) -> Path:
    target = tmp_path / "forms"
    shutil.copytree(REPO_ROOT / "forms", target)
    return target


def _edit_definition(folder: Path, change) -> Path:
    path = folder / "deployment-review.v1.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def _field(data, name):
    for section in data["sections"]:
        for fld in section["fields"]:
            if fld["name"] == name:
                return fld
    raise KeyError(name)


@pytest.mark.parametrize(
    ("change", "where", "problem"),
    [
        (
            lambda d: _field(d, "rotation").update(type="number"),
            "field rotation",
            "unknown field type",
        ),
        (
            lambda d: _field(d, "country").update(choices="nations"),
            "field country",
            "choice list 'nations' not found",
        ),
        (
            lambda d: d["sections"][1]["fields"].append(dict(_field(d, "country"))),
            "field country",
            "duplicate field name",
        ),
        (
            lambda d: _field(d, "contingent")["label"].pop("pt"),
            "field contingent",
            "label missing in: pt",
        ),
        (
            lambda d: _field(d, "contingent")["label"].update({"contexto)": None}),
            "field contingent",
            "unexpected keys ['contexto)']",
        ),
        (
            lambda d: _field(d, "operation_other")["show_if"].update(field="mission"),
            "field operation_other",
            "unknown field 'mission'",
        ),
        (lambda d: _field(d, "sex").update(colour="red"), "field sex", "unknown key(s): colour"),
        (
            lambda d: d["rules"].append(
                {"rule": "date_after", "field": "rotation", "other": "deployment_start"}
            ),
            "rules",
            "not a date field",
        ),
    ],
    ids=[
        "unknown-type",
        "missing-choice-list",
        "duplicate-name",
        "missing-language",
        "split-label",
        "bad-show-if",
        "unknown-key",
        "bad-rule",
    ],
)
def test_broken_definition_is_refused_naming_file_and_field(forms_copy, change, where, problem):
    path = _edit_definition(forms_copy, change)
    with pytest.raises(DefinitionError) as info:
        load_catalogue(forms_copy)
    assert info.value.file == str(path)
    assert info.value.where == where
    assert problem in info.value.problem


def test_choice_list_with_duplicate_value_is_refused(forms_copy):
    path = forms_copy / "choices" / "priorities.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["choices"].append(data["choices"][0])
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(DefinitionError, match=r"priorities.yaml: choice high: value appears twice"):
        load_catalogue(forms_copy)


def test_definition_file_named_wrongly_is_refused(forms_copy):
    (forms_copy / "deployment-review.v1.yaml").rename(forms_copy / "deployment-review.yaml")
    with pytest.raises(DefinitionError, match="file name must look like"):
        load_catalogue(forms_copy)


def test_app_does_not_start_with_a_broken_definition(forms_copy, tmp_path):
    _edit_definition(forms_copy, lambda d: _field(d, "rotation").update(type="number"))
    with pytest.raises(DefinitionError):
        create_app({"FORMS_DIR": str(forms_copy), "DATA_DIR": str(tmp_path / "data")})


def test_run_py_reports_a_broken_definition_and_exits(forms_copy, tmp_path, monkeypatch, capsys):
    import reviewapp
    import run

    _edit_definition(forms_copy, lambda d: _field(d, "rotation").update(type="number"))
    monkeypatch.setattr(reviewapp, "REPO_ROOT", forms_copy.parent)
    # run.py exports --data to the environment; let monkeypatch restore it.
    monkeypatch.setenv("REVIEWAPP_DATA", str(tmp_path / "d"))
    code = run.main(["--data", str(tmp_path / "d"), "backup", "--out", str(tmp_path / "b")])
    assert code == 2
    assert (
        "deployment-review.v1.yaml: field rotation: unknown field type 'number'"
        in capsys.readouterr().err
    )


def _schema_verdict(form, answers) -> bool:
    """What the marshmallow schema says: valid for submission and already canonical."""
    from marshmallow import ValidationError

    try:
        return form.validate(answers, "submit") == answers
    except ValidationError:
        return False


ODD_VALUES = ["", " x ", "3", 3, 3.5, True, False, None, [], ["x"], {}, "2023-02-30", "2023-1-5",
              "na", 0, 6, 200, "MONUSCO", "ZZ", "x" * 5000, ["training", "training"], [{}], "20230105"]  # fmt: skip


def _mutate(rng, answers, form):
    top = list(form.fields)
    obs_fields = [f.name for f in form.fields["observations"].fields] + ["id"]
    kind = rng.randrange(9)
    items = answers.get("observations")
    if kind in (3, 4, 6) and not (
        isinstance(items, list) and items and all(isinstance(i, dict) for i in items)
    ):
        kind = 0
    if kind == 0 and not answers:
        return
    if kind == 0:
        answers.pop(rng.choice(list(answers)), None)
    elif kind == 1:
        answers[rng.choice(top)] = rng.choice(ODD_VALUES)
    elif kind == 2:
        answers[rng.choice(["colour", "id", "Country"])] = "x"
    elif kind == 3:
        item = rng.choice(answers["observations"])
        item.pop(rng.choice(list(item)), None)
    elif kind == 4:
        rng.choice(answers["observations"])[rng.choice(obs_fields)] = rng.choice(ODD_VALUES)
    elif kind == 5:
        answers["deployment_start"], answers["deployment_end"] = (
            answers["deployment_end"],
            answers["deployment_start"],
        )
    elif kind == 6:
        answers["observations"][0]["training_module"] = "poc"  # shown only for training centres
    elif kind == 7:
        answers["operation_other"] = "Sinai"  # shown only for some operations
    else:
        keys = [k for k, v in answers.items() if isinstance(v, str)]
        if keys:
            key = rng.choice(keys)
            answers[key] = rng.choice([" ", "\n"]) + answers[key]


def test_canonical_check_agrees_with_the_schema(catalogue, form):
    import random

    from reviewapp import demo

    rng = random.Random(11)
    node = {"id": "n", "country": "PE"}
    agreed = {True: 0, False: 0}
    for _ in range(1500):
        answers = demo.make_review(rng, catalogue, node)["answers"]
        for _ in range(rng.choice([0, 1, 1, 2])):
            _mutate(rng, answers, form)
        verdict = _schema_verdict(form, answers)
        assert form.is_canonical(answers) == verdict, answers
        agreed[verdict] += 1
    assert agreed[True] > 200 and agreed[False] > 500  # both kinds were exercised


def test_embedded_definition_round_trips_and_must_match_the_local_copy(catalogue, form):
    import copy

    from reviewapp.formdefs import load_embedded

    embedded = form.embedded()
    again = load_embedded(copy.deepcopy(embedded), "bundle.drb")
    assert again.digest() == form.digest()
    assert catalogue.check_received(copy.deepcopy(embedded), "bundle.drb") is form
    changed = copy.deepcopy(embedded)
    changed["definition"]["title"]["es"] = "Otra cosa"
    with pytest.raises(DefinitionError, match="differs from this node's copy"):
        catalogue.check_received(changed, "bundle.drb")
    broken = copy.deepcopy(embedded)
    broken["definition"]["sections"][0]["fields"][0]["max_length"] = "ten"
    broken["definition"]["version"] = 99
    with pytest.raises(DefinitionError, match="max_length must be a whole number"):
        load_embedded(broken, "bundle.drb")
