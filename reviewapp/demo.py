"""Synthetic but plausible deployment reviews, for trying the app and for benchmarks.

Seeded: the same seed and count give the same reviews. Countries, operations and
languages follow realistic LAC contribution patterns; text comes from
``demo_texts.yaml`` in all four languages.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from pathlib import Path

import yaml

from reviewapp.formdefs import Catalogue
from reviewapp.reviews.operations import FORM_ID, content_hash, new_review, now
from reviewapp.storage import Store

TEXTS = yaml.safe_load((Path(__file__).with_name("demo_texts.yaml")).read_text(encoding="utf-8"))

# Where each country's personnel have typically served, and its usual language.
COUNTRY_PROFILES = {
    "UY": (["MONUSCO", "UNDOF", "MFO", "UNMOGIP"], "es", 14),
    "BR": (["UNIFIL", "MINUSCA", "MONUSCO", "UNMISS", "MINUSTAH"], "pt", 12),
    "AR": (["UNFICYP", "MINURSO", "UNTSO", "MINUSTAH"], "es", 12),
    "PE": (["MINUSCA", "UNMISS", "UNISFA", "MINUSTAH"], "es", 10),
    "GT": (["MONUSCO", "UNIFIL", "UNMISS", "MINUSTAH"], "es", 8),
    "SV": (["UNIFIL", "MINUSMA", "MINURSO"], "es", 7),
    "CL": (["UNFICYP", "UNTSO", "UNVMC", "MINUSTAH"], "es", 7),
    "MX": (["UNVMC", "MINURSO", "UNIFIL", "UNMISS"], "es", 6),
    "PY": (["UNFICYP", "MINUSCA", "UNMISS", "MONUSCO"], "es", 5),
    "BO": (["UNFICYP", "MONUSCO", "UNMISS", "UNISFA"], "es", 5),
    "EC": (["UNMISS", "MINURSO", "UNVMC"], "es", 4),
    "CO": (["MFO", "UNVMC"], "es", 3),
    "HN": (["MINURSO", "UNVMC"], "es", 2),
    "DO": (["UNVMC"], "es", 1),
    "JM": (["UNMISS"], "en", 1),
}
CATEGORY_WEIGHTS = {
    "contingent_troops": 55,
    "staff_officer": 15,
    "military_expert": 10,
    "formed_police_unit": 6,
    "individual_police": 8,
    "justice_corrections": 2,
    "civilian": 4,
}
PHASES = [
    "selection",
    "predeployment_training",
    "deployment_induction",
    "operations",
    "sustainment",
    "rotation_repatriation",
    "reintegration",
]


def ensure_admin(store: Store, hash_method: str = "scrypt") -> str | None:
    """On a node without accounts, create ``admin`` with a new random password.

    :returns: the password (to show once), or None when accounts already exist.
    """
    import secrets

    from reviewapp.accounts.operations import create_user

    if store.list_users():
        return None
    password = secrets.token_urlsafe(12)
    values = {
        "username": "admin",
        "display_name": "Demo admin",
        "role": "admin",
        "password": password,
    }
    create_user(store, values, "demo", hash_method)
    return password


def ensure_node(store: Store) -> dict:
    """The node, set up as a demo training centre if it was not set up yet."""
    node = store.find_node()
    if node is None:
        node = store.save_node(
            {
                "id": str(uuid.uuid4()),
                "name": "Demo — CECOPAZ",
                "country": "PE",
                "level": "centre",
                "language": "es",
                "created_at": now(),
            }  # fmt: skip
        )
    return node


def make_review(rng: random.Random, catalogue: Catalogue, node: dict) -> dict:
    """One complete, submitted, schema-valid review."""
    form = catalogue.latest(FORM_ID)
    countries = list(COUNTRY_PROFILES)
    country = rng.choices(countries, weights=[COUNTRY_PROFILES[c][2] for c in countries])[0]
    operations, language, _weight = COUNTRY_PROFILES[country]
    if rng.random() < 0.12:
        language = rng.choice(["es", "pt", "en", "fr"])
    operation = rng.choice(operations)
    op_label = operation
    texts = TEXTS["frames"][language]
    category = rng.choices(list(CATEGORY_WEIGHTS), weights=list(CATEGORY_WEIGHTS.values()))[0]
    start = dt.date(2016, 1, 1) + dt.timedelta(days=rng.randrange(0, 365 * 10))
    months = rng.choice([6, 6, 9, 12, 12])
    end = start + dt.timedelta(days=months * 30 + rng.randrange(-10, 10))
    women_share = {"contingent_troops": 0.08, "formed_police_unit": 0.15}.get(category, 0.2)
    answers = {
        "language": language,
        "review_type": rng.choice(["individual", "individual", "unit_collective"]),
        "sensitivity": rng.choices(
            ["unclassified", "confidential", "strictly_confidential"], [85, 12, 3]
        )[0],
        "sharing_consent": rng.choices(["national", "regional", "un"], [15, 60, 25])[0],
        "attribution": rng.choice(["anonymous", "anonymous", "named"]),
        "country": country,
        "institution": "police"
        if "police" in category
        else rng.choice(["army", "army", "navy", "air_force", "joint"]),
        "personnel_category": category,
        "unit_type": rng.choice(
            ["infantry", "engineering", "medical", "logistics", "aviation", "headquarters"]
        ),
        "operation": operation,
        "contingent": f"{catalogue.choices['countries'].find(country)['iso3']}BATT {rng.randint(1, 40)}",
        "rotation": rng.randint(1, 40),
        "deployment_start": start.isoformat(),
        "deployment_end": end.isoformat(),
        "appointment": rng.choice(
            [
                "Jefe de sección",
                "Oficial de operaciones",
                "Médico",
                "Observador militar",
                "Logístico",
            ]
        ),
        "rank_band": rng.choice(["enlisted", "nco", "junior_officer", "field_officer"]),
        "sex": "female" if rng.random() < women_share else "male",
        "notice_months": rng.randint(1, 12),
        "previous_deployments": rng.randint(0, 4),
        "expected": texts["aar"][0],
        "happened": texts["aar"][1],
        "why_difference": texts["aar"][2],
        "sustain": texts["aar"][3],
        "improve": texts["aar"][4],
        "handover_note": texts["handover"],
    }
    if operation in ("EU_CSDP", "MFO", "MULTINATIONAL"):
        answers["operation_other"] = "MFO Sinai" if operation == "MFO" else "EUTM"
    if answers["attribution"] == "named":
        answers["respondent_name"] = rng.choice(
            ["María González", "João Silva", "Ana Pérez", "Carlos Ramírez"]
        )
        answers["respondent_contact"] = "oficial@example.org"
    for phase in PHASES:
        answers[f"rating_{phase}"] = (
            "na" if rng.random() < 0.05 else rng.choices([1, 2, 3, 4, 5], [5, 15, 35, 30, 15])[0]
        )
        if rng.random() < 0.5:
            answers[f"comment_{phase}"] = rng.choice(texts["comment"])
    answers["observations"] = [
        _observation(rng, language, op_label, months)
        for _ in range(rng.choice([3, 4, 5, 6, 6, 7, 8, 9]))
    ]
    review = new_review(form, node)
    clean = form.validate(answers, "submit")
    stamp = f"{end.isoformat()}T12:00:00.000Z"
    review.update(
        answers=clean,
        status="submitted",
        created_at=stamp,
        updated_at=stamp,
        submitted_at=stamp,
        content_hash=content_hash(form.key, clean),
    )
    return review


def _observation(rng: random.Random, language: str, op: str, months: int) -> dict:
    area = rng.choice(list(TEXTS["topics"]))
    kind = rng.choices(["issue", "good_practice"], [70, 30])[0]
    topic = TEXTS["topics"][area][language][0 if kind == "issue" else 1]
    frames = TEXTS["frames"][language]
    fill = {"topic": topic, "Topic": topic[0].upper() + topic[1:], "op": op, "months": months}
    body_bodies = [
        "training_centre",
        "training_centre",
        "own_unit",
        "national_hq",
        "mission",
        "un_dpo",
        "alcopaz_relacopaz",
    ]
    obs = {
        "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "title": rng.choice(frames["title"]).format(**fill)[:150],
        "kind": kind,
        "phase": rng.choice(PHASES),
        "functional_area": area,
        "dotmlpfi": rng.sample(
            [
                "doctrine",
                "organization",
                "training",
                "materiel",
                "leadership",
                "personnel",
                "facilities",
                "interoperability",
            ],
            rng.randint(1, 2),
        ),
        "observation": frames["observation"].format(**fill),
        "discussion": frames["discussion"].format(**fill),
        "conclusion": frames["conclusion"].format(**fill),
        "recommendation": frames[
            "recommendation_issue" if kind == "issue" else "recommendation_good"
        ].format(**fill),
        "action_body": rng.choice(body_bodies),
        "priority": rng.choices(["high", "medium", "low"], [25, 50, 25])[0],
        "sensitivity": rng.choices(["unclassified", "confidential"], [90, 10])[0],
    }
    if obs["action_body"] == "training_centre":
        obs["training_module"] = rng.choice(
            ["cptm_2", "poc", "c_ied", "first_aid", "language", "stm_infantry", "cimic"]
        )
    return obs


def add_demo_reviews(
    store: Store, catalogue: Catalogue, node: dict, count: int, seed: int = 1
) -> int:
    """Generate ``count`` reviews and store them in batches (one write per batch)."""
    rng = random.Random(seed)
    batch: list[dict] = []
    for _ in range(count):
        review = make_review(rng, catalogue, node)
        review["id"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        batch.append(review)
        if len(batch) == 500:
            store.add_reviews(batch)
            batch = []
    if batch:
        store.add_reviews(batch)
    return count
