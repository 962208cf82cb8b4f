"""Signing in, tried as an attacker would: parallel guesses, PIN sweeps across
accounts, timing, copied cookies, cached pages and a flooded audit log."""

from __future__ import annotations

import datetime as dt
import statistics
import threading
import time

import pytest

from reviewapp import create_app
from reviewapp.accounts import operations
from tests.conftest import PASSWORD, TOKEN_RE, Web, add_user

WRONG = "wrong password!"


def text(response) -> str:
    return response.get_data(as_text=True)


class Attempt:
    """A client that has fetched the sign-in page once and can post to it many times."""

    def __init__(self, app):
        self.client = app.test_client()
        page = self.client.get("/login").get_data(as_text=True)
        self.token = TOKEN_RE.search(page).group(1)

    def login(self, username: str, password: str = "", pin: str | None = None):
        data = {"username": username, "password": password, "csrf_token": self.token}
        if pin is not None:
            data.update(method="pin", pin=pin)
        return self.client.post("/login", data=data)


@pytest.fixture
def checks(monkeypatch):
    """Count the secrets actually checked, each check made slow like a real hash
    (the window in which a stale failure counter used to be written back)."""
    seen = []
    real = operations.check_password_hash

    def slow_check(stored, secret):
        seen.append(secret)
        time.sleep(0.05)
        return real(stored, secret)

    monkeypatch.setattr(operations, "check_password_hash", slow_check)
    return seen


def in_parallel(attempts: list[tuple[Attempt, dict]]) -> list:
    """Post every attempt at the same moment, each from its own thread."""
    start = threading.Barrier(len(attempts))
    results: list = [None] * len(attempts)

    def run(i, attempt, kwargs):
        start.wait()
        results[i] = attempt.login(**kwargs)

    threads = [threading.Thread(target=run, args=(i, a, kw)) for i, (a, kw) in enumerate(attempts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def failures(store, username: str) -> dict:
    (entry,) = [
        e for e in store.list_audit() if e["event"] == "login_failed" and e["username"] == username
    ]
    return entry


def kiosk_on(node_web):
    response = node_web.post(
        "/settings",
        {"name": "URUBATT", "country": "UY", "level": "field", "language": "es", "kiosk": "true"},
    )
    assert response.status_code == 302


def test_forty_parallel_wrong_passwords_are_checked_five_times_and_lock(
    node_web, app, store, checks
):
    add_user(app, "ana", "contributor")
    attempts = [(Attempt(app), {"username": "ana", "password": WRONG}) for _ in range(40)]
    responses = in_parallel(attempts)
    assert {r.status_code for r in responses} == {401}
    assert len(checks) == operations.MAX_FAILURES
    assert store.find_user("ana")["locked_until"]
    assert sum("bloqueada" in text(r) for r in responses) == 40 - 4
    assert failures(store, "ana")["count"] == 40
    # Now the right password, sent among thirty wrong ones, is refused like them.
    attempts = [(Attempt(app), {"username": "ana", "password": WRONG}) for _ in range(30)]
    attempts.insert(17, (Attempt(app), {"username": "ana", "password": PASSWORD}))
    responses = in_parallel(attempts)
    assert {r.status_code for r in responses} == {401}
    assert len(checks) == operations.MAX_FAILURES
    assert [e["event"] for e in store.list_audit()].count("account_locked") == 1


def test_a_right_password_among_parallel_wrong_ones_never_adds_guesses(
    node_web, app, store, checks
):
    add_user(app, "ana", "contributor")
    attempts = [(Attempt(app), {"username": "ana", "password": WRONG}) for _ in range(30)]
    attempts.insert(0, (Attempt(app), {"username": "ana", "password": PASSWORD}))
    responses = in_parallel(attempts)
    signed_in = [r for r in responses if r.status_code == 302]
    assert len(signed_in) <= 1 and all(r.status_code in (302, 401) for r in responses)
    wrong_checked = sum(secret == WRONG for secret in checks)
    # Only the right password resets the count: without it, five guesses; with it
    # (if it was among the first five), at most five more after it.
    assert wrong_checked <= operations.MAX_FAILURES * (1 + len(signed_in))
    assert store.find_user("ana")["locked_until"] or wrong_checked < operations.MAX_FAILURES


def test_failed_pins_across_accounts_pause_pin_sign_in_and_tell_the_administrator(
    node_web, app, store, checks, monkeypatch
):
    kiosk_on(node_web)
    names = ["cabo.a", "cabo.b", "cabo.c", "cabo.d"]
    for i, name in enumerate(names):
        add_user(app, name, "contributor", pin=f"48291{i}")
    # 40 PINs at once, ten per account: never more than the node's budget is checked.
    attempts = [(Attempt(app), {"username": names[i % 4], "pin": f"{i:04d}"}) for i in range(40)]
    responses = in_parallel(attempts)
    assert len(checks) == operations.PIN_BUDGET
    assert {r.status_code for r in responses} == {401, 429}
    paused = [r for r in responses if r.status_code == 429]
    # Every attempt beyond the budget is refused unchecked (asserted above): paused, or —
    # when five of the checked ones happened to fall on one account — refused as that
    # account's lock, so how many say "paused" depends on the order they came in.
    assert 0 < len(paused) <= 40 - operations.PIN_BUDGET
    assert "el ingreso con PIN está en pausa" in text(paused[0])
    assert int(paused[0].headers["Retry-After"]) <= operations.PIN_PAUSE_MINUTES * 60
    (event,) = [e for e in store.list_audit() if e["event"] == "pin_sign_in_paused"]
    assert event["failed_pins"] == operations.PIN_BUDGET
    assert "pin_sign_in_paused" in text(node_web.get("/audit"))
    # Even the right PIN of an account never tried waits; a password still works.
    add_user(app, "cabo.e", "contributor", pin="777777")
    assert Attempt(app).login("cabo.e", pin="777777").status_code == 429
    assert Attempt(app).login("cabo.e", PASSWORD).status_code == 302
    # When the pause is over, PINs are accepted again.
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=operations.PIN_PAUSE_MINUTES + 1)
    monkeypatch.setattr(operations, "_now_dt", lambda: later)
    assert Attempt(app).login("cabo.e", pin="777777").status_code == 302


def test_pin_guesses_per_node_are_bounded_over_time(node_web, app, store, checks, monkeypatch):
    """A sweep of twenty accounts, twenty PINs a minute for an hour: the node's budget,
    not the five per account, sets the pace (ten, then a pause, four times an hour)."""
    kiosk_on(node_web)
    for i in range(20):
        add_user(app, f"cabo.{i}", "contributor", pin="482913")
    clock = [dt.datetime(2030, 1, 1, 8, 0, tzinfo=dt.UTC)]
    monkeypatch.setattr(operations, "_now_dt", lambda: clock[0])
    attempt = Attempt(app)
    for _minute in range(60):
        clock[0] += dt.timedelta(minutes=1)
        for guess in range(20):
            response = attempt.login(f"cabo.{guess}", pin=f"{guess:04d}")
            assert response.status_code in (401, 429)
    per_hour = 60 // operations.PIN_PAUSE_MINUTES * operations.PIN_BUDGET
    assert len(checks) == per_hour == 40
    assert [e["event"] for e in store.list_audit()].count("pin_sign_in_paused") == 4


def test_an_unknown_name_costs_the_same_hash_as_a_known_one(node_web, app, store, monkeypatch):
    methods = []
    real = operations.check_password_hash

    def spy(stored, secret):
        methods.append(stored.split("$", 1)[0])
        return real(stored, secret)

    monkeypatch.setattr(operations, "check_password_hash", spy)
    add_user(app, "ana", "contributor")
    assert Attempt(app).login("ana", WRONG).status_code == 401
    assert Attempt(app).login("nadie", WRONG).status_code == 401
    assert methods == ["pbkdf2:sha256:1000"] * 2  # the configured method, both times


def test_unknown_and_known_names_take_comparable_time_with_the_real_hash(tmp_path):
    app = create_app({"DATA_DIR": str(tmp_path / "data"), "TESTING": True})
    assert app.config["PASSWORD_HASH_METHOD"] == "scrypt"
    Web(app.test_client()).set_up_node()
    operations.create_user(
        app.extensions["store"],
        {"username": "ana", "display_name": "Ana", "role": "analyst", "password": PASSWORD},
        "test",
        "scrypt",
    )
    attempt = Attempt(app)

    def took(username: str) -> float:
        start = time.perf_counter()
        assert attempt.login(username, WRONG).status_code == 401
        return time.perf_counter() - start

    known = statistics.median(took("ana") for _ in range(3))
    unknown = statistics.median(took(f"nadie{i}") for i in range(3))
    assert unknown >= 0.5 * known, (unknown, known)
    app.extensions["store"].close()


def test_a_cookie_copied_before_sign_out_is_refused_after_it(node_web, app, as_role):
    ana = as_role("contributor", "ana")
    other_device = as_role("contributor", "ana")
    copied = ana.client.get_cookie("session").value
    assert ana.get("/reviews/").status_code == 200
    assert ana.logout().status_code == 302
    thief = app.test_client()
    thief.set_cookie("session", copied)
    response = thief.get("/reviews/")
    assert response.status_code == 302 and response.location.startswith("/login")
    # Signing out ends that session only: the same person elsewhere stays signed in.
    assert other_device.get("/reviews/").status_code == 200


def test_a_session_ends_eight_hours_after_sign_in_however_busy(node_web, app, monkeypatch):
    assert node_web.get("/reviews/").status_code == 200
    later = dt.datetime.now(dt.UTC) + app.permanent_session_lifetime + dt.timedelta(minutes=1)
    monkeypatch.setattr(operations, "_now_dt", lambda: later)
    assert node_web.get("/reviews/").location.startswith("/login")


def test_a_cookie_copied_before_a_password_change_is_refused_after_it(node_web, app, as_role):
    ana = as_role("contributor", "ana")
    copied = ana.client.get_cookie("session").value
    response = ana.post(
        "/account",
        {"current": PASSWORD, "password": "another long one", "password_again": "another long one"},
    )
    assert response.status_code == 302
    assert ana.get("/reviews/").status_code == 200  # the one who changed it stays in
    thief = app.test_client()
    thief.set_cookie("session", copied)
    assert thief.get("/reviews/").location.startswith("/login")


def test_wrong_current_passwords_on_the_account_page_lock_the_account(node_web, app, as_role):
    ana = as_role("contributor", "ana")
    for _ in range(operations.MAX_FAILURES):
        response = ana.post(
            "/account", {"current": WRONG, "password": "x" * 12, "password_again": "x" * 12}
        )
        assert response.status_code == 422
    response = ana.post(
        "/account", {"current": PASSWORD, "password": "x" * 12, "password_again": "x" * 12}
    )
    assert response.status_code == 422 and "bloqueada" in text(response)
    assert Attempt(app).login("ana", PASSWORD).status_code == 401


@pytest.mark.parametrize(
    "url", ["/", "/reviews/", "/reviews/new", "/account", "/users", "/users/admin", "/audit",
            "/audit.csv", "/settings", "/exchange/", "/no-such-page"],
)  # fmt: skip
def test_authenticated_pages_are_never_stored_by_the_browser(node_web, url):
    response = node_web.get(url)
    assert response.status_code < 500
    assert response.headers["Cache-Control"] == "no-store", url


def test_refusals_and_the_sign_in_page_are_not_stored_but_static_files_may_be(
    node_web, app, as_role
):
    viewer = as_role("viewer")
    assert viewer.get("/users").status_code == 403
    assert viewer.get("/users").headers["Cache-Control"] == "no-store"
    anonymous = app.test_client()
    assert anonymous.get("/login").headers["Cache-Control"] == "no-store"
    with anonymous.get("/static/css/app.css") as response:
        assert response.headers.get("Cache-Control") != "no-store"


def test_a_hundred_failures_for_one_name_in_one_hour_make_one_audit_entry(
    node_web, app, store, monkeypatch
):
    moment = dt.datetime(2030, 1, 1, 8, 0, tzinfo=dt.UTC)
    clock = [moment]
    monkeypatch.setattr(operations, "_now_dt", lambda: clock[0])
    before = len(store.list_audit())
    attempt = Attempt(app)
    for i in range(100):
        clock[0] = moment + dt.timedelta(seconds=30 * i)  # all within 08:00-08:50
        assert attempt.login("intruso", WRONG).status_code == 401
    assert len(store.list_audit()) == before + 1
    entry = failures(store, "intruso")
    assert entry["count"] == 100 and sum(entry["reasons"].values()) == 100
    assert entry["at"].startswith("2030-01-01T08:00") and entry["last_at"] > entry["at"]
    # The next hour starts a new entry.
    clock[0] = moment + dt.timedelta(hours=1)
    attempt.login("intruso", WRONG)
    assert len(store.list_audit()) == before + 2


def test_made_up_names_cannot_flood_the_audit_log(node_web, app, store, monkeypatch):
    moment = dt.datetime(2030, 1, 1, 8, 0, tzinfo=dt.UTC)
    monkeypatch.setattr(operations, "_now_dt", lambda: moment)
    before = len(store.list_audit())
    attempt = Attempt(app)
    for i in range(120):
        assert attempt.login(f"nombre{i}", WRONG).status_code == 401
    entries = store.list_audit()
    assert len(entries) - before == operations.AUDIT_NAMES_PER_HOUR + 1
    (rest,) = [e for e in entries if e.get("username") == "(other names)"]
    assert rest["count"] == 120 - operations.AUDIT_NAMES_PER_HOUR


def test_a_made_up_name_is_locked_like_a_real_one(node_web, app, store):
    add_user(app, "ana", "contributor")
    attempt = Attempt(app)
    answers = {
        name: [text(attempt.login(name, WRONG)) for _ in range(operations.MAX_FAILURES + 1)]
        for name in ("ana", "nadie")
    }
    for name, pages in answers.items():
        assert ["bloqueada" in page for page in pages] == [False] * 4 + [True] * 2, name
    assert "nadie" not in {u["username"] for u in store.list_users()}


@pytest.mark.parametrize("language, phrase", [("es", "en pausa"), ("pt", "em pausa"),
                                              ("fr", "suspendue"), ("en", "is paused")])  # fmt: skip
def test_the_pin_pause_is_explained_in_every_language(node_web, app, language, phrase):
    kiosk_on(node_web)
    add_user(app, "cabo", "contributor", pin="482913")
    attempt = Attempt(app)
    attempt.client.post("/language", data={"lang": language, "csrf_token": attempt.token})
    for i in range(operations.PIN_BUDGET):
        attempt.login(f"cabo{i}", pin="0000")
    response = attempt.login("cabo", pin="482913")
    assert response.status_code == 429 and phrase in text(response)
