"""Shared fixtures: an app on a temporary data folder, a CSRF-aware web client,
and factories for complete review answers."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest

from reviewapp import REPO_ROOT, create_app
from reviewapp.formdefs import load_catalogue

TOKEN_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
# Password hashing at full strength takes ~0.1 s; tests hash hundreds of times.
FAST = {"PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000"}
PASSWORD = "correct horse battery"

COMPLETE_OBSERVATION = {
    "title": "Radios incompatibles con la red de la misión",
    "kind": "issue",
    "phase": "operations",
    "functional_area": "communications",
    "dotmlpfi": ["materiel", "interoperability"],
    "observation": "Las radios del contingente no enlazaban con la red de la misión.",
    "discussion": "El equipo se adquirió sin consultar los estándares de la misión.",
    "conclusion": "La compatibilidad debe verificarse antes del despliegue.",
    "recommendation": "Verificar la compatibilidad de las radios durante la inspección previa.",
    "action_body": "training_centre",
    "training_module": "stm_infantry",
    "priority": "high",
    "sensitivity": "unclassified",
}

COMPLETE_ANSWERS = {
    "language": "es",
    "review_type": "individual",
    "sensitivity": "unclassified",
    "sharing_consent": "regional",
    "attribution": "named",
    "country": "UY",
    "institution": "army",
    "personnel_category": "contingent_troops",
    "unit_type": "infantry",
    "operation": "MONUSCO",
    "contingent": "URUBATT 42",
    "rotation": 42,
    "deployment_start": "2023-03-01",
    "deployment_end": "2023-09-15",
    "appointment": "Jefe de sección",
    "rank_band": "junior_officer",
    "sex": "female",
    "notice_months": 4,
    "previous_deployments": 1,
    "respondent_name": "Ana Pérez",
    "respondent_contact": "ana@example.org",
    "rating_selection": 4,
    "rating_predeployment_training": 2,
    "comment_predeployment_training": "Poco adaptado a la misión.",
    "rating_deployment_induction": 3,
    "rating_operations": 4,
    "rating_sustainment": "na",
    "rating_rotation_repatriation": 3,
    "rating_reintegration": 5,
    "expected": "Cumplir las tareas del mandato.",
    "happened": "La logística fue más exigente.",
    "why_difference": "Información incompleta antes del despliegue.",
    "sustain": "La cohesión de la unidad.",
    "improve": "La preparación específica para la misión.",
    "observations": [COMPLETE_OBSERVATION],
    "handover_note": "Lleguen con los documentos COE revisados.",
}


def _with(base: dict, overrides: dict) -> dict:
    """A deep copy of ``base`` with keys replaced (a value of None removes the key)."""
    result = copy.deepcopy(base)
    for key, value in overrides.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    return result


def make_answers(**overrides) -> dict:
    """A complete, submittable set of answers, with fields replaced or removed."""
    return _with(COMPLETE_ANSWERS, overrides)


def make_observation(**overrides) -> dict:
    return _with(COMPLETE_OBSERVATION, overrides)


def form_data(answers: dict) -> dict:
    """Answers as the review page would post them (flat input names)."""
    data: dict[str, object] = {}
    for key, value in answers.items():
        if key == "observations":
            for i, item in enumerate(value):
                for sub, sub_value in item.items():
                    data[f"observations-{i}-{sub}"] = _posted(sub_value)
        else:
            data[key] = _posted(value)
    return data


def _posted(value):
    return [str(v) for v in value] if isinstance(value, list) else str(value)


@pytest.fixture(scope="session")
def catalogue():
    return load_catalogue(REPO_ROOT / "forms")


@pytest.fixture
def form(catalogue):
    return catalogue.latest("deployment-review")


@pytest.fixture
def app(tmp_path: Path):
    app = create_app({"DATA_DIR": str(tmp_path / "data"), "TESTING": True, **FAST})
    yield app
    app.extensions["store"].close()


@pytest.fixture
def store(app):
    return app.extensions["store"]


class Web:
    """Flask's test client, plus the CSRF token a browser would have taken from
    the page it was on."""

    def __init__(self, client):
        self.client = client

    def get(self, url, **kwargs):
        return self.client.get(url, **kwargs)

    def post(self, url, data=None, page=None, **kwargs):
        source = self.client.get(page or url)
        match = TOKEN_RE.search(source.get_data(as_text=True))
        assert match, f"no CSRF token on {page or url}"
        return self.client.post(url, data={**(data or {}), "csrf_token": match.group(1)}, **kwargs)

    def set_up_node(self, language="es", country="UY", level="field", name="URUBATT portátil 3"):
        admin = {
            "username": "admin",
            "display_name": "Cap. Admin",
            "password": PASSWORD,
            "password_again": PASSWORD,
        }
        response = self.post(
            "/setup",
            {"name": name, "country": country, "level": level, "language": language, **admin},
        )
        assert response.status_code == 302, response.get_data(as_text=True)
        return response

    def login(self, username: str, password: str = PASSWORD, **extra):
        return self.post(
            "/login", {"username": username, "password": password, **extra}, page="/login"
        )

    def logout(self):
        return self.post("/logout", page="/account")

    def start_review(self, language="es") -> str:
        response = self.post("/reviews/new", {"language": language})
        assert response.status_code == 302
        return response.location.removesuffix("/edit").rsplit("/", 1)[1]

    def etag(self, review_id: str) -> str:
        page = self.get(f"/reviews/{review_id}/edit").get_data(as_text=True)
        return re.search(r'name="_etag" value="([^"]*)"', page).group(1)

    def save(self, review_id: str, answers: dict, action="save", etag=None):
        data = {**form_data(answers), "_etag": etag or self.etag(review_id), "action": action}
        return self.post(f"/reviews/{review_id}/edit", data)


@pytest.fixture
def web(app):
    return Web(app.test_client())


@pytest.fixture
def node_web(web):
    """A web client on a node that is already set up, in Spanish, signed in as admin."""
    web.set_up_node()
    return web


def add_user(app, username: str, role: str, pin: str | None = None) -> dict:
    from reviewapp.accounts import operations

    values = {
        "username": username,
        "display_name": username.title(),
        "role": role,
        "password": PASSWORD,
    }
    return operations.create_user(
        app.extensions["store"],
        {**values, **({"pin": pin} if pin else {})},
        "test",
        FAST["PASSWORD_HASH_METHOD"],
    )


@pytest.fixture
def as_role(app, node_web):
    """``as_role("contributor", "ana")``: a fresh client signed in with that role."""

    def make(role: str, username: str | None = None) -> Web:
        username = username or role
        if app.extensions["store"].find_user(username) is None:
            add_user(app, username, role)
        client = Web(app.test_client())
        assert client.login(username).status_code == 302
        return client

    return make
