"""Who may open what: every route of the app, for every role."""

from __future__ import annotations

import pytest

from reviewapp import create_app
from tests.conftest import FAST, PASSWORD, Web, add_user, make_answers

PUBLIC = {"anonymous", "contributor", "viewer", "analyst", "admin"}
SIGNED_IN = PUBLIC - {"anonymous"}
WRITERS = {"contributor", "analyst", "admin"}
ANALYSTS = {"analyst", "admin"}
ADMINS = {"admin"}
READERS = {"viewer", "analyst", "admin"}

# Every endpoint of the app and who may use it. A route missing here fails the
# test below, so a new page cannot be added without deciding who may open it.
EXPECTED = {
    "static": PUBLIC,
    "service_worker": PUBLIC,
    "reviews.autosave": WRITERS,
    "accounts.login": PUBLIC,
    "node.language": PUBLIC,
    "node.setup": PUBLIC,  # only leads back home once the node is set up
    "index": SIGNED_IN,
    "accounts.logout": SIGNED_IN,
    "accounts.account": SIGNED_IN,
    "reviews.list_reviews": SIGNED_IN,
    "reviews.detail": SIGNED_IN,
    "reviews.revision": SIGNED_IN,
    "reviews.pdf": SIGNED_IN,
    "reviews.new": WRITERS,
    "reviews.edit": WRITERS,
    "reviews.revise": WRITERS,
    "exchange.index": ANALYSTS,
    "exchange.export": ANALYSTS,
    "exchange.upload": ANALYSTS,
    "exchange.apply": ANALYSTS,
    "exchange.imports": ANALYSTS,
    "exchange.conflicts": ANALYSTS,
    "exchange.conflict": ANALYSTS,
    "exchange.resolve": ANALYSTS,
    "exchange.quarantine": ANALYSTS,
    "exchange.make_receipt": ANALYSTS,
    "exchange.apply_receipt": ANALYSTS,
    "reports.index": READERS,
    "reports.start": READERS,  # CSV and XLSX: analysts only (policy.may_export_data)
    "reports.job": READERS,  # each job: the person who asked, and administrators
    "reports.job_status": READERS,
    "reports.download": READERS,
    "reports.stylesheet": READERS,
    "node.settings": ADMINS,
    "node.download_backup": ADMINS,
    "accounts.users": ADMINS,
    "accounts.user": ADMINS,
    "accounts.audit": ADMINS,
    "accounts.audit_csv": ADMINS,
}


def _rules():
    app = create_app({"DATA_DIR": "/tmp/url-map-only", "TESTING": True, **FAST})
    return sorted(
        (r.endpoint, r.rule, sorted(r.methods - {"HEAD", "OPTIONS"}))
        for r in app.url_map.iter_rules()
    )


RULES = _rules()


def test_every_route_has_a_decision_about_who_may_use_it():
    endpoints = {endpoint for endpoint, _, _ in RULES}
    assert endpoints - set(EXPECTED) == set(), "new routes need an entry in EXPECTED"
    assert set(EXPECTED) - endpoints == set(), "EXPECTED names routes that no longer exist"


@pytest.fixture
def site(app, node_web):
    """A node with one user per role and a review by the contributor, revised once."""
    from reviewapp.reviews import operations

    store, catalogue = app.extensions["store"], app.extensions["catalogue"]
    for role in ("contributor", "viewer", "analyst"):
        add_user(app, role, role)
    draft = operations.start_review(store, catalogue, store.find_node(), "es", "contributor")
    first = operations.submit_review(
        store, catalogue, draft["id"], make_answers(), draft["content_hash"]
    )
    again = operations.revise_review(store, draft["id"])
    operations.submit_review(
        store, catalogue, draft["id"], make_answers(contingent="2"), again["content_hash"]
    )
    return {"review_id": draft["id"], "revision_id": first["revision_id"], "conflict_id": "none",
            "username": "contributor", "filename": "css/app.css", "kind": "csv",
            "job_id": "none"}  # fmt: skip


def _client(app, role: str) -> Web:
    client = Web(app.test_client())
    if role != "anonymous":
        assert client.login(role if role != "admin" else "admin", PASSWORD).status_code == 302
    return client


@pytest.mark.parametrize("role", sorted(PUBLIC))
@pytest.mark.parametrize(("endpoint", "rule", "methods"), RULES, ids=[r[1] for r in RULES])
def test_route_is_open_exactly_to_the_expected_roles(app, site, role, endpoint, rule, methods):
    client = _client(app, role)
    url = rule
    for name, value in site.items():
        url = url.replace(f"<{name}>", value).replace(f"<path:{name}>", value)
    if "GET" in methods:
        response = client.get(url)
    else:
        token_page = "/login" if role == "anonymous" else "/account"
        response = client.post(url, {}, page=token_page)
    status, location = response.status_code, response.headers.get("Location", "")
    response.close()
    if endpoint == "accounts.logout" and role in EXPECTED[endpoint]:
        # Signing out succeeds by leading to the login page with the session gone.
        assert status == 302 and client.get("/account").headers["Location"].startswith("/login")
    elif role in EXPECTED[endpoint]:
        assert status != 403 and not location.startswith("/login"), (status, location)
    elif role == "anonymous":
        assert status == 302 and location.startswith("/login"), (status, location)
    else:
        assert status == 403, (status, location)
