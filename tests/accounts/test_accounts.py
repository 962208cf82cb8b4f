"""Signing in, lockout, kiosk PINs, sessions, isolation, escaping, the audit log."""

from __future__ import annotations

import io
import re

import pytest

import run
from tests.conftest import PASSWORD, Web, add_user, form_data, make_answers, make_observation


def text(response) -> str:
    return response.get_data(as_text=True)


def _submitted(client: Web, **answers) -> str:
    review_id = client.start_review()
    response = client.save(review_id, make_answers(**answers), action="submit")
    assert response.status_code == 302, text(response)
    return review_id


def test_every_page_needs_a_login_after_setup(node_web, app):
    anonymous = Web(app.test_client())
    for url in ["/", "/reviews/", "/reviews/new", "/exchange/", "/settings", "/account", "/users"]:
        response = anonymous.get(url)
        assert response.status_code == 302 and response.location.startswith("/login"), url
    assert anonymous.get("/login").status_code == 200
    with anonymous.get("/static/css/app.css") as response:
        assert response.status_code == 200


def test_setup_creates_the_administrator_and_signs_them_in(node_web, store):
    admin = store.find_user("admin")
    assert admin["role"] == "admin" and admin["password_hash"].startswith("pbkdf2:")
    assert PASSWORD not in str(admin)
    assert "Cap. Admin" in text(node_web.get("/reviews/"))


def test_setup_refuses_a_weak_admin_password(web, store):
    response = web.post("/setup", {"name": "A", "country": "UY", "level": "field", "language": "es",
                                   "username": "admin", "display_name": "A", "password": "short", "password_again": "short"})  # fmt: skip
    assert response.status_code == 422 and "al menos 10 caracteres" in text(response)
    assert store.find_node() is None and store.list_users() == []


def test_wrong_password_is_refused_without_saying_which_part_was_wrong(node_web, app):
    client = Web(app.test_client())
    for username in ("admin", "nobody"):
        response = client.login(username, "wrong password!")
        assert response.status_code == 401
        assert "El nombre de usuario o la contraseña o el PIN no son correctos." in text(response)


def test_five_failures_lock_the_account_and_the_audit_log_says_so(node_web, app, store):
    client = Web(app.test_client())
    for _ in range(5):
        client.login("admin", "wrong password!")
    response = client.login("admin", PASSWORD)  # the right password, but locked
    assert response.status_code == 401 and "bloqueada" in text(response)
    events = [e["event"] for e in store.list_audit()]
    assert events.count("login_failed") == 1 and "account_locked" in events
    (failed,) = [e for e in store.list_audit() if e["event"] == "login_failed"]
    assert failed["count"] == 6 and failed["reasons"] == {"wrong password": 5, "locked": 1}
    # When the lock runs out, the right password works again.
    store.save_user({**store.find_user("admin"), "locked_until": "2000-01-01T00:00:00.000Z"})
    assert client.login("admin", PASSWORD).status_code == 302


def test_kiosk_mode_lets_contributors_in_with_a_pin_only(node_web, app, store):
    node_web.post(
        "/settings",
        {"name": "URUBATT", "country": "UY", "level": "field", "language": "es", "kiosk": "true"},
    )
    assert store.find_node()["kiosk"] is True
    add_user(app, "sgto.perez", "contributor", pin="482913")
    add_user(app, "analista", "analyst", pin="111111")
    client = Web(app.test_client())
    assert "PIN" in text(client.get("/login"))
    assert client.login("sgto.perez", "", method="pin", pin="000000").status_code == 401
    assert client.login("sgto.perez", "", method="pin", pin="482913").status_code == 302
    assert "Sgto.Perez" in text(client.get("/reviews/"))
    # A PIN is not enough for anyone but a contributor.
    assert (
        Web(app.test_client()).login("analista", "", method="pin", pin="111111").status_code == 401
    )
    # Without kiosk mode, PINs are not accepted at all.
    node_web.post(
        "/settings", {"name": "URUBATT", "country": "UY", "level": "field", "language": "es"}
    )
    assert (
        Web(app.test_client()).login("sgto.perez", "", method="pin", pin="482913").status_code
        == 401
    )


def test_kiosk_sessions_end_sooner(node_web, app, store):
    node_web.post(
        "/settings",
        {"name": "URUBATT", "country": "UY", "level": "field", "language": "es", "kiosk": "true"},
    )
    add_user(app, "cabo", "contributor", pin="1234")
    client = Web(app.test_client())
    assert client.login("cabo", "", method="pin", pin="1234").status_code == 302
    app.config["KIOSK_IDLE_MINUTES"] = 0
    response = client.get("/reviews/")
    assert response.status_code == 302 and response.location.startswith("/login")


def test_idle_sessions_expire(node_web, app):
    app.config["SESSION_IDLE_MINUTES"] = 0
    response = node_web.get("/reviews/")
    assert response.status_code == 302 and response.location.startswith("/login")


def test_a_new_password_or_disabling_ends_open_sessions(node_web, app, as_role, store):
    ana = as_role("contributor", "ana")
    assert ana.get("/reviews/").status_code == 200
    node_web.post(
        "/users/ana",
        {
            "display_name": "Ana",
            "role": "contributor",
            "password": "another long one",
            "password_again": "another long one",
        },
    )
    assert ana.get("/reviews/").location.startswith("/login")
    ana = Web(app.test_client())
    assert ana.login("ana", "another long one").status_code == 302
    node_web.post("/users/ana", {"display_name": "Ana", "role": "contributor", "disabled": "yes"})
    assert ana.get("/reviews/").location.startswith("/login")
    assert Web(app.test_client()).login("ana", "another long one").status_code == 401


def test_the_last_administrator_cannot_be_demoted_or_disabled(node_web, store):
    response = node_web.post("/users/admin", {"display_name": "A", "role": "analyst"})
    assert response.status_code == 422 and "al menos un administrador" in text(response)
    response = node_web.post(
        "/users/admin", {"display_name": "A", "role": "admin", "disabled": "yes"}
    )
    assert response.status_code == 422
    assert store.find_user("admin")["role"] == "admin" and not store.find_user("admin")["disabled"]


def test_admin_creates_accounts_and_bad_values_are_refused(node_web, store):
    response = node_web.post(
        "/users",
        {
            "username": "Bad Name!",
            "display_name": "",
            "role": "boss",
            "password": "x",
            "password_again": "y",
            "pin": "12",
        },
    )
    assert response.status_code == 422
    page = text(response)
    for message in (
        "letras minúsculas",
        "Elija uno de los roles",
        "al menos 10 caracteres",
        "4 a 8 dígitos",
    ):
        assert message in page
    assert [u["username"] for u in store.list_users()] == ["admin"]
    response = node_web.post("/users", {"username": "Lt.Gomez", "display_name": "Tte. Gómez", "role": "analyst",
                                        "password": PASSWORD, "password_again": PASSWORD})  # fmt: skip
    assert response.status_code == 302 and store.find_user("lt.gomez")["role"] == "analyst"
    assert node_web.post("/users", {"username": "lt.gomez", "display_name": "X", "role": "viewer",
                                    "password": PASSWORD, "password_again": PASSWORD}).status_code == 422  # fmt: skip


def test_a_contributor_cannot_reach_another_contributors_review(node_web, as_role):
    ana, beto = as_role("contributor", "ana"), as_role("contributor", "beto")
    draft = ana.start_review()
    ana.save(draft, {"contingent": "borrador de Ana"})
    submitted = _submitted(ana, contingent="revisión de Ana")
    for url in [f"/reviews/{draft}", f"/reviews/{draft}/edit", f"/reviews/{submitted}"]:
        assert beto.get(url).status_code == 404, url
    assert (
        beto.post(
            f"/reviews/{draft}/edit", {"contingent": "x", "_etag": "x"}, page="/reviews/"
        ).status_code
        == 404
    )
    assert beto.post(f"/reviews/{submitted}/revise", page="/reviews/").status_code == 404
    assert "Ana" not in text(beto.get("/reviews/"))
    assert "revisión de Ana" in text(ana.get("/reviews/"))


def test_viewers_read_submitted_reviews_without_personal_data(node_web, as_role):
    author = as_role("contributor", "ana")
    review_id = _submitted(
        author,
        attribution="named",
        respondent_name="Ana Pérez Quispe",
        respondent_contact="+598 99 123 456",
    )
    draft = author.start_review()
    viewer, analyst = as_role("viewer"), as_role("analyst")
    for client in (viewer, analyst):
        page = text(client.get(f"/reviews/{review_id}"))
        assert (
            "URUBATT 42" in page
            and "Ana Pérez Quispe" not in page
            and "+598 99 123 456" not in page
        )
    assert viewer.get(f"/reviews/{draft}").status_code == 404
    for client in (author, node_web):  # the author and the administrator see them
        assert "Ana Pérez Quispe" in text(client.get(f"/reviews/{review_id}"))


FREE_TEXT_PAYLOAD = (
    '<script>alert("x")</script><img src=x onerror=alert(1)><a href="javascript:alert(2)">y</a>'
)


def test_markup_in_every_free_text_field_is_shown_as_text(node_web, form):
    text_fields = [
        f.name
        for f in form.fields.values()
        if f.type in ("text", "long_text") and not f.show_if or f.name == "respondent_name"
    ]
    obs_fields = [
        f.name for f in form.fields["observations"].fields if f.type in ("text", "long_text")
    ]
    answers = make_answers(
        attribution="named",
        **{name: FREE_TEXT_PAYLOAD[: form.fields[name].max_length] for name in text_fields},
    )
    answers["observations"] = [make_observation(**{name: FREE_TEXT_PAYLOAD for name in obs_fields})]
    review_id = node_web.start_review()
    node_web.save(review_id, answers)
    edit_page = text(node_web.get(f"/reviews/{review_id}/edit"))
    node_web.save(review_id, answers, action="submit")
    for page in (
        edit_page,
        text(node_web.get(f"/reviews/{review_id}")),
        text(node_web.get("/reviews/")),
    ):
        assert (
            "<script>alert" not in page
            and "<img src=x" not in page
            and 'href="javascript:' not in page
        )
    detail = text(node_web.get(f"/reviews/{review_id}"))
    assert (
        detail.count("&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;")
        >= len(text_fields) + len(obs_fields) - 1
    )


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
        "javascript:alert(1)",
        "http:/evil",
    ],
)
def test_login_never_redirects_away_from_the_app(node_web, app, target):
    client = Web(app.test_client())
    response = client.post(
        "/login", {"username": "admin", "password": PASSWORD, "next": target}, page="/login"
    )
    assert response.status_code == 302 and response.location == "/"


def test_login_goes_back_to_the_page_asked_for(node_web, app):
    client = Web(app.test_client())
    assert client.get("/exchange/imports").location == "/login?next=/exchange/imports"
    response = client.post(
        "/login",
        {"username": "admin", "password": PASSWORD, "next": "/exchange/imports"},
        page="/login",
    )
    assert response.location == "/exchange/imports"


@pytest.mark.parametrize(
    "url", ["/login", "/logout", "/reviews/new", "/exchange/export", "/users", "/settings"]
)
def test_posts_without_a_csrf_token_are_refused(node_web, url, store):
    before = len(store.list_audit())
    response = node_web.client.post(url, data={"username": "x", "password": "y", "name": "z"})
    assert response.status_code == 400
    assert len(store.list_audit()) == before


def test_session_cookie_is_httponly_and_samesite(app, web):
    response = web.get("/setup")
    cookie = response.headers.get("Set-Cookie", "")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    app.config["SESSION_COOKIE_SECURE"] = True
    fresh = Web(app.test_client())
    assert "Secure" in fresh.get("/setup").headers.get("Set-Cookie", "")


def test_security_headers(node_web):
    headers = node_web.get("/reviews/").headers
    assert (
        "script-src 'self'" in headers["Content-Security-Policy"]
        and "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    )
    assert (
        headers["X-Content-Type-Options"] == "nosniff"
        and headers["Referrer-Policy"] == "same-origin"
    )


def test_audit_log_records_the_important_events_and_downloads_as_csv(
    node_web, app, as_role, store, tmp_path
):
    node_web.start_review()
    response = node_web.post("/exchange/export", {"level": "national"}, page="/exchange/")
    analyst = as_role("analyst")
    Web(app.test_client()).login("admin", "wrong password!")
    Web(app.test_client()).login("=cmd|calc", "x")  # a name that a spreadsheet would run
    events = {e["event"] for e in store.list_audit()}
    assert {"account_created", "node_set_up", "login", "login_failed"} <= events
    assert response.status_code == 302  # nothing submitted, nothing to export
    page = text(node_web.get("/audit"))
    assert "login_failed" in page
    csv = node_web.get("/audit.csv")
    body = csv.get_data(as_text=True)
    assert csv.mimetype == "text/csv" and body.startswith(
        '\ufeff"at","event","who","username","details"'
    )
    assert ',"\'=cmd|calc",' in body and '"=cmd' not in body  # quoted and guarded
    assert analyst.get("/audit.csv").status_code == 403


def test_exports_and_imports_are_audited(node_web, app, store, tmp_path):
    _submitted(node_web)
    response = node_web.post("/exchange/export", {"level": "national"}, page="/exchange/")
    bundle = response.data
    response.close()
    preview = node_web.post("/exchange/import", {"bundles": (io.BytesIO(bundle), "own.drb")},
                            page="/exchange/", content_type="multipart/form-data")  # fmt: skip
    sha = re.search(r'name="bundle" value="([0-9a-f]{64})"', text(preview)).group(1)
    node_web.post("/exchange/import/apply", {"bundle": sha}, page="/exchange/")
    by_event = {e["event"]: e for e in store.list_audit()}
    assert by_event["export"]["who"] == "admin" and by_event["export"]["reviews"] == 1
    assert by_event["import"]["who"] == "admin" and by_event["import"]["unchanged"] == 1


def test_cli_adds_an_account_and_resets_a_password(node_web, app, monkeypatch, capsys, store):
    monkeypatch.setenv("REVIEWAPP_DATA", app.config["DATA_DIR"])
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    assert run.main(["user", "add", "ops", "--role", "analyst", "--password-stdin"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert run.main(["user", "reset-password", "ops", "--password-stdin"]) == 2
    assert "at least 10 characters" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("brand new password\n"))
    assert run.main(["user", "reset-password", "ops", "--password-stdin"]) == 0
    assert Web(app.test_client()).login("ops", "brand new password").status_code == 302


def test_form_names_still_match_with_accounts(node_web, store):
    """Guard against a template change breaking the edit form while adding accounts."""
    review_id = node_web.start_review()
    node_web.save(review_id, make_answers())
    assert set(form_data(store.get_review(review_id)["answers"])) - {"csrf_token"}
