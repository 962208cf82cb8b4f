"""Report figures on a small hand-made dataset whose right answers were worked out by hand."""

from __future__ import annotations

import pytest

from reviewapp.reports.aggregate import ReportOptions, build, select


def obs(oid, kind, area, priority, action, module=None, sensitivity="unclassified"):
    o = {"id": oid, "title": f"title {oid}", "kind": kind, "phase": "operations", "functional_area": area,
         "dotmlpfi": ["training"], "observation": f"observation {oid}", "recommendation": f"recommend {oid}",
         "action_body": action, "priority": priority, "sensitivity": sensitivity}  # fmt: skip
    if module:
        o["training_module"] = module
    return o


def review(rid, country, operation, category, sex, consent, end, ratings, observations,
           sensitivity="unclassified", status="submitted"):  # fmt: skip
    phases = ["selection", "predeployment_training", "deployment_induction", "operations",
              "sustainment", "rotation_repatriation", "reintegration"]  # fmt: skip
    answers = {"country": country, "operation": operation, "personnel_category": category, "sex": sex,
               "sharing_consent": consent, "sensitivity": sensitivity, "deployment_end": end,
               "respondent_name": "Never In A Report", "observations": observations}  # fmt: skip
    answers.update({f"rating_{p}": r for p, r in zip(phases, ratings, strict=True)})
    return {
        "id": rid,
        "status": status,
        "node_id": "n1",
        "origin": {"name": "CECOPAZ"},
        "answers": answers,
    }


DATA = [
    review("r1", "AR", "UNFICYP", "contingent_troops", "female", "regional", "2023-06-30", [4, 2, 3, 4, "na", 3, 5],
           [obs("o1", "issue", "c_ied", "high", "training_centre", "c_ied"), obs("o2", "good_practice", "cimic", "low", "own_unit")]),
    review("r2", "UY", "MONUSCO", "contingent_troops", "male", "regional", "2023-09-15", [3, 1, 3, 3, 3, 3, 3],
           [obs("o3", "issue", "c_ied", "medium", "training_centre", "c_ied"),
            obs("o4", "issue", "medical", "high", "mission", sensitivity="confidential")]),
    review("r3", "UY", "MONUSCO", "staff_officer", "female", "national", "2023-10-01", [5, 5, 5, 5, 5, 5, 5],
           [obs("o7", "issue", "logistics_coe", "high", "national_hq")]),
    review("r4", "BR", "UNIFIL", "staff_officer", "male", "regional", "2023-11-01", [1, 1, 1, 1, 1, 1, 1],
           [obs("o8", "issue", "c_ied", "high", "mission")], sensitivity="confidential"),
    review("r5", "PE", "MINUSCA", "contingent_troops", "not_stated", "un", "2024-03-01", [4, 2, 4, 4, 4, 4, 4],
           [obs("o5", "issue", "medical", "low", "mission"), obs("o6", "good_practice", "cimic", "medium", "training_centre", "cimic")]),
    review("r6", "MX", "UNVMC", "staff_officer", "male", "un", "2022-01-01", [3] * 7, [obs("o9", "issue", "c_ied", "high", "mission")]),
    review("r7", "AR", "UNFICYP", "contingent_troops", "male", "un", "2023-07-01", [3] * 7,
           [obs("o10", "issue", "c_ied", "high", "mission")], status="draft"),
]  # fmt: skip

PERIOD = {"date_from": "2023-01-01", "date_to": "2024-12-31"}


@pytest.fixture
def report(catalogue):
    return build(DATA, catalogue, ReportOptions(scope="lac", annex_limit=3, **PERIOD))


def test_inclusion_and_exclusions(report):
    # r1, r2, r5 in; r3 lacks regional consent; r4 is above the ceiling; r6 is before
    # the period; r7 is a draft; o4 is an observation above the ceiling.
    assert report["excluded"] == {"consent": 1, "sensitivity": 1, "observations_sensitivity": 1}
    assert report["totals"] == {"reviews": 3, "observations": 5, "issues": 3, "good_practices": 2,
                                "countries": 3, "operations": 3, "first": "2023-06-30", "last": "2024-03-01"}  # fmt: skip
    assert report["classification"] == "unclassified"


def test_participation(report):
    assert report["participation"]["by_country"] == [("AR", 1), ("PE", 1), ("UY", 1)]
    assert report["participation"]["by_category"] == [("contingent_troops", 3)]


def test_gender_share_against_the_target(report):
    # Contingent troops who stated their sex: r1 (woman) and r2 (man); r5 did not say.
    # 1 of 2 = 50.0 %; the 2024 target for military contingents is 10.2 %.
    assert report["gender"] == [{"category": "contingent_troops", "respondents": 2, "women": 1, "share": 50.0,
                                 "target": 10.2, "gap": 39.8, "year": 2024}]  # fmt: skip


def test_phase_ratings(report):
    by_phase = report["ratings"]["by_phase"]
    assert by_phase["predeployment_training"] == {
        "mean": 1.67,
        "n": 3,
        "not_applicable": 0,
    }  # (2+1+2)/3
    assert by_phase["sustainment"] == {"mean": 3.5, "n": 2, "not_applicable": 1}  # (3+4)/2, r1 n/a
    assert by_phase["reintegration"]["mean"] == 4.0  # (5+3+4)/3
    # Induction and rotation tie at 3.33: phase order decides.
    assert report["ratings"]["lowest"] == ["predeployment_training", "deployment_induction"]
    assert report["ratings"]["by_country"]["UY"]["predeployment_training"] == 1.0


def test_themes_and_recurring_issues(report):
    assert [(t["area"], t["issue"], t["good_practice"]) for t in report["themes"]["by_area"]] == [
        ("c_ied", 2, 0), ("cimic", 0, 2), ("medical", 1, 0)]  # fmt: skip
    # C-IED issues come from Argentina and Uruguay; the medical one from Peru alone.
    (recurring,) = report["recurring"]
    assert (recurring["area"], recurring["count"], recurring["countries"]) == (
        "c_ied",
        2,
        ["AR", "UY"],
    )
    assert recurring["representative"]["id"] == "o1"  # high priority beats medium
    assert [(p["area"], p["count"], p["countries"]) for p in report["top_practices"]] == [
        ("cimic", 2, ["AR", "PE"])
    ]


def test_recommendations_by_body_and_module(report):
    assert report["recommendations"]["by_body"] == [
        ("training_centre", 3),
        ("mission", 1),
        ("own_unit", 1),
    ]
    modules = report["recommendations"]["training_modules"]
    assert [(m, [e["id"] for e in entries]) for m, entries in modules] == [
        ("c_ied", ["o1", "o3"]),
        ("cimic", ["o6"]),
    ]


def test_annex_is_capped_high_priority_and_recent_first(report):
    annex = report["annex"]
    # o1 (high); then the medium ones, most recent first: o6 (2024), o3 (2023). Shown by area.
    assert [e["id"] for e in annex["entries"]] == ["o1", "o3", "o6"]
    assert (annex["total"], annex["left_out"]) == (5, 2)


def test_no_personal_field_reaches_the_report(report):
    assert "Never In A Report" not in repr(report)


def test_national_variant_takes_national_consent(catalogue):
    national = build(DATA, catalogue, ReportOptions(scope="countries", countries=["UY"], **PERIOD))
    assert national["totals"]["reviews"] == 2  # r2 and r3 (national consent is enough)
    regional = build(
        DATA, catalogue, ReportOptions(scope="countries", countries=["UY", "AR"], **PERIOD)
    )
    assert regional["totals"]["reviews"] == 2 and regional["excluded"]["consent"] == 1  # r1, r2


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"operations": ["MONUSCO"]}, {"r2"}),
        ({"categories": ["contingent_troops"]}, {"r1", "r2", "r5"}),
        ({"max_sensitivity": "confidential"}, {"r1", "r2", "r4", "r5"}),
        ({"date_from": "2024-01-01", "date_to": "2024-12-31"}, {"r5"}),
        ({"date_from": "2022-01-01", "date_to": "2022-12-31"}, {"r6"}),
    ],
)
def test_each_filter(catalogue, options, expected):
    chosen = {**PERIOD, **options}
    included, _ = select(DATA, catalogue, ReportOptions(scope="lac", **chosen))
    assert {r["id"] for r in included} == expected


def test_area_filter_keeps_only_those_observations(catalogue):
    report = build(DATA, catalogue, ReportOptions(scope="lac", areas=["cimic"], **PERIOD))
    assert report["totals"]["observations"] == 2 and report["recurring"] == []


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ("alcopaz", {"r1", "r2", "r5", "b"}),
        ("relacopaz", {"r1", "r2", "r5", "d"}),
        ("lac", {"r1", "r2", "r5", "b", "d"}),
    ],
)
def test_scopes(catalogue, scope, expected):
    extra = [review("b", "BO", "UNFICYP", "staff_officer", "male", "un", "2023-05-05", [3] * 7, []),
             review("d", "DO", "UNVMC", "staff_officer", "male", "un", "2023-05-05", [3] * 7, [])]  # fmt: skip
    included, _ = select(DATA + extra, catalogue, ReportOptions(scope=scope, **PERIOD))
    assert {r["id"] for r in included} == expected


def test_same_data_gives_the_same_report(catalogue):
    options = ReportOptions(scope="lac", annex_limit=3, **PERIOD)
    assert build(DATA, catalogue, options) == build(list(reversed(DATA)), catalogue, options)
