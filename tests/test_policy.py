"""The access policy: its rules as a table, and where a respondent's name can appear."""

from __future__ import annotations

import io
import re
import zipfile

import pytest
from pypdf import PdfReader

from reviewapp import policy
from reviewapp.reviews import operations
from tests.conftest import Web, add_user, make_answers

ANA = {"username": "ana", "role": "contributor"}
OTHER = {"username": "otro", "role": "contributor"}
VIEWER = {"username": "vera", "role": "viewer"}
ANALYST = {"username": "alba", "role": "analyst"}
ADMIN = {"username": "root", "role": "admin"}

DRAFT = {"status": "draft", "author": "ana"}
SUBMITTED = {"status": "submitted", "author": "ana"}
REVISED = {"status": "draft", "author": "ana", "editor": "alba"}  # the analyst revised it


@pytest.mark.parametrize(
    ("rule", "review", "allowed"),
    [
        (policy.may_read, DRAFT, {"ana", "alba", "root"}),
        (policy.may_read, SUBMITTED, {"ana", "vera", "alba", "root"}),
        (policy.may_read, REVISED, {"ana", "alba", "root"}),
        (policy.may_edit, DRAFT, {"ana"}),
        (policy.may_edit, SUBMITTED, set()),
        (policy.may_edit, REVISED, {"alba"}),
        (policy.may_revise, DRAFT, set()),
        (policy.may_revise, SUBMITTED, {"ana", "alba", "root"}),
        (policy.may_see_personal, DRAFT, {"ana", "root"}),
        (policy.may_see_personal, SUBMITTED, {"ana", "root"}),
        (policy.may_see_personal, REVISED, {"ana", "root"}),
    ],
)
def test_review_rules_as_a_table(rule, review, allowed):
    users = (ANA, OTHER, VIEWER, ANALYST, ADMIN)
    assert {u["username"] for u in users if rule(u, review)} == allowed


def test_only_an_administrator_exports_personal_data_and_only_when_asked_not_to_anonymise():
    assert [policy.export_anonymised(u, False) for u in (ANALYST, ADMIN)] == [True, False]
    assert policy.export_anonymised(ADMIN, True)
    assert {u["username"] for u in (ANA, VIEWER, ANALYST, ADMIN) if policy.may_export_personal(u)} == {"root"}  # fmt: skip


def test_consent_and_sensitivity_reach(catalogue):
    assert policy.consent_reaches(catalogue, "regional", "national")
    assert policy.consent_reaches(catalogue, "regional", "regional")
    assert not policy.consent_reaches(catalogue, "national", "regional")
    assert not policy.consent_reaches(catalogue, "made-up", "national")
    assert not policy.consent_reaches(catalogue, None, "national")
    assert policy.within_ceiling(catalogue, "unclassified", "confidential")
    assert not policy.within_ceiling(catalogue, "strictly_confidential", "confidential")
    assert not policy.within_ceiling(catalogue, "made-up", "strictly_confidential")


# -- where a respondent's name can appear ---------------------------------------------

NAME, CONTACT = "Ana Pérez", "ana@example.org"


def _texts(response) -> str:
    """Everything a reader could find in a response: HTML, PDF text, zip members."""
    data = response.get_data()
    if data.startswith(b"%PDF"):
        return " ".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(data)).pages)
    if data.startswith(b"PK"):
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            return " ".join(zf.read(n).decode("utf-8", "replace") for n in zf.namelist())
    return data.decode("utf-8", "replace")


@pytest.fixture
def site(app, node_web):
    store, catalogue = app.extensions["store"], app.extensions["catalogue"]
    for username, role in (("ana", "contributor"), ("otro", "contributor"), ("vera", "viewer"), ("alba", "analyst")):  # fmt: skip
        add_user(app, username, role)
    node = store.find_node()
    ids = {}
    for key in ("submitted", "revised"):
        draft = operations.start_review(store, catalogue, node, "es", "ana")
        done = operations.submit_review(store, catalogue, draft["id"], make_answers(), draft["content_hash"])  # fmt: skip
        ids[key], ids[f"{key}_rev"] = draft["id"], done["revision_id"]
    operations.revise_review(store, ids["revised"], "alba")
    return {**ids, "app": app}


def _as(app, username):
    client = Web(app.test_client())
    assert client.login(username).status_code == 302
    return client


def _export(client, anonymise: bool):
    data = {"level": "national", "max_sensitivity": "strictly_confidential"}
    if anonymise:
        data["anonymise"] = "yes"
    return client.post("/exchange/export", data, page="/exchange/")


REPORT = {"scope": "lac", "from": "2000-01-01", "to": "2030-12-31", "max_sensitivity": "strictly_confidential"}  # fmt: skip


def _report(client, app, output):
    """A report made as a job, as the Reports page makes it; its file, or the refusal."""
    from tests.reports.test_jobs import start, wait

    started = start(client, output, **REPORT)
    if started.status_code != 303:
        return started
    job = wait(app, started.location.rsplit("/", 1)[1])
    return client.get(f"/reports/jobs/{job['id']}/file")


PAGES = {
    "detail": lambda c, ids: c.get(f"/reviews/{ids['submitted']}"),
    "pdf": lambda c, ids: c.get(f"/reviews/{ids['submitted']}/pdf"),
    "old revision": lambda c, ids: c.get(
        f"/reviews/{ids['revised']}/revisions/{ids['revised_rev']}"
    ),  # fmt: skip
    "revised draft (edit)": lambda c, ids: c.get(f"/reviews/{ids['revised']}/edit"),
    "list": lambda c, ids: c.get("/reviews/"),
    "bundle": lambda c, ids: _export(c, anonymise=False),
    "bundle, anonymised": lambda c, ids: _export(c, anonymise=True),
    "report preview": lambda c, ids: _report(c, ids["app"], "html"),
    "report pdf": lambda c, ids: _report(c, ids["app"], "pdf"),
    "data csv": lambda c, ids: _report(c, ids["app"], "csv"),
    "data xlsx": lambda c, ids: _report(c, ids["app"], "xlsx"),
    "audit csv": lambda c, ids: c.get("/audit.csv"),
}
# Who sees the respondent's name or contact on each page (of those allowed to open it).
SEES_NAME = {
    "detail": {"ana", "admin"},
    "pdf": {"ana", "admin"},
    "old revision": {"ana", "admin"},
    "revised draft (edit)": set(),  # only the analyst who revised may open it, without them
    "bundle": {"admin"},
    "bundle, anonymised": set(),
}


@pytest.mark.parametrize("page", sorted(PAGES))
def test_a_respondents_name_reaches_only_the_author_and_administrators(app, site, page):
    seen, opened = set(), set()
    for username in ("ana", "otro", "vera", "alba", "admin"):
        response = PAGES[page](_as(app, username), site)
        if response.status_code == 200:
            opened.add(username)
            text = _texts(response)
            if NAME in text or CONTACT in text or re.search(r"Ana\s+P", text):
                seen.add(username)
        response.close()
    assert opened, f"{page}: nobody could open it, so it proves nothing"
    assert seen == SEES_NAME.get(page, set()), page


def test_an_analyst_editing_a_revision_keeps_the_personal_answers_without_seeing_them(app, site):
    alba = _as(app, "alba")
    review_id = site["revised"]
    page = alba.get(f"/reviews/{review_id}/edit").get_data(as_text=True)
    assert NAME not in page and "respondent_name" not in page
    assert alba.save(review_id, make_answers(contingent="REVISADO", respondent_name=None, respondent_contact=None)).status_code == 302  # fmt: skip
    stored = app.extensions["store"].get_review(review_id)["answers"]
    assert stored["contingent"] == "REVISADO"
    assert (stored["respondent_name"], stored["respondent_contact"]) == (NAME, CONTACT)


@pytest.mark.parametrize("action", ["add:nonsense", "add:", "remove:nonsense:0", "add:contingent"])
def test_a_made_up_add_or_remove_action_is_a_clear_400(app, site, action):
    ana = _as(app, "ana")
    draft = operations.start_review(app.extensions["store"], app.extensions["catalogue"], app.extensions["store"].find_node(), "es", "ana")  # fmt: skip
    response = ana.save(draft["id"], {"contingent": "X"}, action=action)
    assert response.status_code == 400
