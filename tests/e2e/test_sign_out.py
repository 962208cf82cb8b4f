"""Signing out on a shared laptop (kiosk): what the officer typed is sent first, then every
device copy of that officer and the pages kept for offline use are deleted, so the next
officer finds nothing of it in the browser. What could not be sent is named in a warning."""

from __future__ import annotations

import contextlib

import pytest

from tests.e2e.conftest import shot, sign_in_with_pin
from tests.e2e.test_accessibility import serious_violations
from tests.e2e.test_browser import new_review, stored
from tests.e2e.test_device_copy import COPIES, PUT_COPY, edit_url, key

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

NAME, PHONE = "Sargento Lucía Ferreyra", "+598 99 123 456"

CACHED_PAGES = """async () => {
  // Every page the service worker keeps, as text (static files left out).
  const texts = [];
  for (const name of await caches.keys()) {
    const cache = await caches.open(name);
    for (const request of await cache.keys()) {
      if (new URL(request.url).pathname.startsWith("/static/")) continue;
      texts.push(request.url + "\\n" + await (await cache.match(request)).text());
    }
  }
  return texts;
}"""


def type_personal_data(page, name: str = NAME, phone: str = PHONE) -> None:
    page.select_option("#f-attribution", "named")
    page.fill("#f-respondent_name", name)
    page.fill("#f-respondent_contact", phone)


def traffic(page) -> list[str]:
    """What the page sends and receives, in order: 'request POST /logout', 'response 200 ...'."""
    log: list[str] = []
    page.on("request", lambda r: log.append(f"request {r.method} {r.url}"))
    page.on("response", lambda r: log.append(f"response {r.status} {r.request.method} {r.url}"))
    return log


def first(log: list[str], prefix: str, suffix: str) -> int:
    return next(
        i for i, line in enumerate(log) if line.startswith(prefix) and line.endswith(suffix)
    )


def assert_nothing_of_ana(page, server, review_ids) -> None:
    """bruno is signed in on the same browser profile: no trace of ana's text."""
    for text in (NAME, PHONE):
        assert text not in page.content()
    assert page.evaluate(COPIES) == []
    cached = "\n".join(page.evaluate(CACHED_PAGES))
    assert NAME not in cached and PHONE not in cached
    for review_id in review_ids:
        assert f"/reviews/{review_id}" not in cached
        # Offline, the service worker has no page of ana's reviews to give bruno.
        page.context.set_offline(True)
        with contextlib.suppress(Exception):  # "no connection" is the right answer
            page.goto(edit_url(server, review_id))
        page.context.set_offline(False)
        assert NAME not in page.content() and PHONE not in page.content()


def test_signing_out_right_after_typing_sends_the_text_then_deletes_every_copy(
    browser, kiosk_server
):
    server = kiosk_server
    context = browser.new_context(viewport={"width": 1366, "height": 768}, locale="es-ES")
    page = context.new_page()
    page.set_default_timeout(15_000)
    sign_in_with_pin(page, server, "ana")
    # A copy of another of ana's reviews, left on this device (the tab was closed while
    # the server could not be reached): it is sent too, not only the review open here.
    other = new_review(page, server)
    page.wait_for_selector("form[data-autosave='ready']")
    pairs = page.evaluate(
        "() => Array.from(new FormData(document.querySelector('form.review-form')).entries())"
        ".filter(([k]) => !['csrf_token', '_etag'].includes(k))"
    )
    pairs = [[k, "URUBATT 62 (OTRA)" if k == "contingent" else v] for k, v in pairs]
    page.evaluate(PUT_COPY, {"key": key("ana", other), "user": "ana", "review": other, "pairs": pairs,
                             "base": page.input_value("[name='_etag']"), "at": 0, "submitted": False})  # fmt: skip
    review_id = new_review(page, server)
    page.wait_for_selector("form[data-autosave='ready']")
    log = traffic(page)
    type_personal_data(page)
    page.click("form.user-menu button[type='submit']")  # well within a second of typing
    page.wait_for_url("**/login")
    answers = stored(server, review_id)["answers"]
    assert answers["respondent_name"] == NAME and answers["respondent_contact"] == PHONE
    assert stored(server, other)["answers"]["contingent"] == "URUBATT 62 (OTRA)"
    signed_out = first(log, "request POST", "/logout")
    assert first(log, "response 200 POST", f"/{review_id}/autosave") < signed_out
    assert first(log, "response 200 POST", f"/{other}/autosave") < signed_out
    assert page.evaluate(COPIES) == []
    sign_in_with_pin(page, server, "bruno")
    assert_nothing_of_ana(page, server, [review_id, other])
    context.close()


@pytest.mark.parametrize("cause", ["offline", "busy"])
def test_what_could_not_be_sent_is_named_and_lost_only_when_signing_out_anyway(
    browser, kiosk_server, cause
):
    server = kiosk_server
    context = browser.new_context(viewport={"width": 1366, "height": 768}, locale="es-ES")
    page = context.new_page()
    page.set_default_timeout(15_000)
    sign_in_with_pin(page, server, "ana")
    review_id = new_review(page, server)
    # What the server holds is shown in the page, which the service worker keeps.
    page.select_option("#f-attribution", "named")
    page.fill("#f-respondent_name", NAME)
    page.wait_for_selector("#save-status[data-state='saved']", timeout=10_000)
    page.reload()
    page.wait_for_selector("form[data-autosave='ready']")
    if cause == "offline":
        context.set_offline(True)
    else:
        page.route("**/autosave", lambda route: route.fulfill(
            status=503, json={"error": "busy", "message": "Ocupado (prueba)"}, headers={"Retry-After": "60"}))  # fmt: skip
    page.fill("#f-respondent_contact", PHONE)
    page.wait_for_selector("#save-status[data-state='local']", timeout=5_000)

    page.click("form.user-menu button[type='submit']")
    warning = page.wait_for_selector("#sign-out-warning[role='alertdialog']:not([hidden])")
    assert "Parte de lo que escribió aún no está en el servidor" in warning.inner_text()
    assert page.evaluate("() => document.activeElement.dataset.signOut") == "stay"
    shot(page, f"sign-out-warning-{cause}")
    page.mouse.move(5, 700)  # off the header's button, whose hover colours are not at issue here
    assert serious_violations(page) == []
    page.click("#sign-out-warning [data-sign-out='stay']")
    assert page.is_hidden("#sign-out-warning") and "/edit" in page.url
    assert [c["user"] for c in page.evaluate(COPIES)] == ["ana"]  # kept
    assert page.input_value("#f-respondent_contact") == PHONE

    page.click("form.user-menu button[type='submit']")
    page.wait_for_selector("#sign-out-warning:not([hidden])")
    if cause == "offline":
        # The sign-out itself cannot reach the server either: the copy is deleted first.
        with page.expect_event("requestfailed", lambda r: r.url.endswith("/logout")):
            page.click("#sign-out-warning [data-sign-out='anyway']")
        # Before any sign-in page has run, in another tab on a static file (which the service
        # worker serves offline): neither the copy nor a page of ana's is left.
        probe = context.new_page()
        probe.goto(server.url + "/static/css/app.css")
        assert probe.evaluate(CACHED_PAGES) == [] and probe.evaluate(COPIES) == []
        probe.close()
        context.set_offline(False)
        page.goto(server.url + "/login")
    else:
        page.click("#sign-out-warning [data-sign-out='anyway']")
        page.wait_for_url("**/login")
    assert page.evaluate(COPIES) == []
    assert PHONE not in (stored(server, review_id)["answers"].get("respondent_contact") or "")
    page.unroute("**/autosave")
    sign_in_with_pin(page, server, "bruno")
    assert_nothing_of_ana(page, server, [review_id])
    context.close()
