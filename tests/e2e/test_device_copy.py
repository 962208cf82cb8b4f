"""The copy kept on this device: it survives a browser crash, and it is put back only when
it is newer than what the server holds, without ever looping on refused saves (409)."""

from __future__ import annotations

import json
import time

import pytest

from tests.e2e.conftest import shot, sign_in
from tests.e2e.test_browser import new_review, stored

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

COPIES = """() => new Promise((resolve, reject) => {
  const open = indexedDB.open("deployment-review", 1);
  open.onupgradeneeded = () => open.result.createObjectStore("copies", {keyPath: "key"}).createIndex("review", "review");
  open.onerror = () => reject(open.error);
  open.onsuccess = () => {
    const all = open.result.transaction("copies").objectStore("copies").getAll();
    all.onsuccess = () => { open.result.close(); resolve(all.result); };
  };
})"""

PUT_COPY = """record => new Promise((resolve, reject) => {
  const open = indexedDB.open("deployment-review", 1);
  open.onupgradeneeded = () => open.result.createObjectStore("copies", {keyPath: "key"}).createIndex("review", "review");
  open.onsuccess = () => {
    const tx = open.result.transaction("copies", "readwrite", {durability: "strict"});
    tx.objectStore("copies").put(record);
    tx.oncomplete = () => { open.result.close(); resolve(true); };
    tx.onerror = () => reject(tx.error);
  };
})"""


def key(user: str, review_id: str) -> str:
    """The device copy's key, as the page writes it (JSON.stringify([user, review]))."""
    return json.dumps([user, review_id], separators=(",", ":"))


def edit_url(server, review_id: str) -> str:
    return f"{server.url}/reviews/{review_id}/edit"


def autosave_answers(page) -> list[int]:
    """Record the status of every autosave answer the page receives."""
    statuses: list[int] = []
    page.on(
        "response", lambda r: statuses.append(r.status) if r.url.endswith("/autosave") else None
    )
    return statuses


def open_after_restart(persistent, server, review_id: str):
    page = persistent.launch()
    sign_in(page, server)  # a crash ends the browser session: the officer signs in again
    statuses = autosave_answers(page)
    page.goto(edit_url(server, review_id))
    page.wait_for_selector("form[data-autosave='ready']")
    return page, statuses


def type_and_crash(persistent, server, text: str) -> str:
    """Type into a new review, and kill the browser as soon as the page says the text is
    safe on this device (before the autosave, which waits for a pause, could send it)."""
    page = persistent.launch()
    sign_in(page, server)
    review_id = new_review(page, server)
    page.fill("#f-contingent", text)
    page.wait_for_selector("#save-status[data-state='local']", timeout=5_000)
    persistent.kill()
    return review_id


def test_text_safe_on_this_device_survives_killing_the_browser_and_then_the_server(
    persistent, server
):
    review_id = type_and_crash(persistent, server, "TRAS EL APAGÓN")
    server.kill()
    assert stored(server, review_id)["answers"].get("contingent") != "TRAS EL APAGÓN"
    server.start()
    page, statuses = open_after_restart(persistent, server, review_id)
    assert page.input_value("#f-contingent") == "TRAS EL APAGÓN"
    page.wait_for_selector("#save-status[data-state='saved']", timeout=10_000)
    assert stored(server, review_id)["answers"]["contingent"] == "TRAS EL APAGÓN"
    assert statuses == [200]
    assert page.evaluate(COPIES) == []  # the copy is gone once the server confirmed it


@pytest.mark.parametrize("keep", ["device", "server"])
def test_a_stale_device_copy_is_offered_as_a_choice_and_never_loops_on_409(
    persistent, server, page, keep
):
    review_id = type_and_crash(persistent, server, "ESCRITO ANTES DEL FALLO")
    # Meanwhile the draft was changed in another window: the server's content is newer.
    page.goto(edit_url(server, review_id))
    page.fill("#f-contingent", "GUARDADO EN OTRA VENTANA")
    page.wait_for_selector("#save-status[data-state='saved']", timeout=10_000)
    crashed, statuses = open_after_restart(persistent, server, review_id)
    panel = crashed.wait_for_selector("#device-version:not([hidden])", timeout=10_000)
    text = panel.inner_text()
    assert "ESCRITO ANTES DEL FALLO" in text and "GUARDADO EN OTRA VENTANA" in text
    shot(crashed, "device-version-choice")
    assert statuses == []  # nothing is sent while the choice is open
    crashed.click(f"#device-version [data-keep='{keep}']")
    expected = "ESCRITO ANTES DEL FALLO" if keep == "device" else "GUARDADO EN OTRA VENTANA"
    if keep == "server":
        crashed.wait_for_load_state()
    else:
        crashed.wait_for_selector("#save-status[data-state='saved']", timeout=10_000)
    assert crashed.input_value("#f-contingent") == expected
    assert stored(server, review_id)["answers"]["contingent"] == expected
    crashed.fill("#f-appointment", "Oficial de enlace")  # and the page goes on saving
    crashed.wait_for_selector("#save-status[data-state='saved']", timeout=10_000)
    crashed.reload()
    crashed.wait_for_timeout(1_500)
    assert crashed.is_hidden("#device-version")
    answers = stored(server, review_id)["answers"]
    assert answers["contingent"] == expected and answers["appointment"] == "Oficial de enlace"
    assert 409 not in statuses and crashed.evaluate(COPIES) == []


def test_a_refused_save_while_typing_offers_the_choice_instead_of_retrying(browser, server, page):
    review_id = new_review(page, server)
    statuses = autosave_answers(page)
    other = browser.new_context(locale="es-ES").new_page()
    sign_in(other, server)
    other.goto(edit_url(server, review_id))
    other.fill("#f-contingent", "DESDE LA OTRA VENTANA")
    other.wait_for_selector("#save-status[data-state='saved']", timeout=10_000)
    page.fill("#f-contingent", "DESDE ESTA VENTANA")
    page.wait_for_selector("#device-version:not([hidden])", timeout=10_000)
    page.wait_for_timeout(3_000)
    assert statuses == [409]  # one refusal, then the question; no retry with that etag
    page.click("#device-version [data-keep='device']")
    page.wait_for_selector("#save-status[data-state='saved']", timeout=10_000)
    assert stored(server, review_id)["answers"]["contingent"] == "DESDE ESTA VENTANA"
    assert statuses == [409, 200]
    other.context.close()


@pytest.mark.parametrize("button", ["add", "remove"])
def test_adding_or_removing_an_observation_right_after_typing_stores_the_text_without_409s(
    page, server, button
):
    review_id = new_review(page, server)
    if button == "remove":
        page.click("button[value='add:observations']")
        page.wait_for_selector("#item-observations-0")
    statuses = autosave_answers(page)

    def slow_form_post(route):
        # A slow answer to the form post: the old page keeps running meanwhile.
        if route.request.method == "POST":
            time.sleep(0.6)
        route.continue_()

    page.route("**/edit", slow_form_post)
    page.fill("#f-contingent", "JUSTO ANTES DEL BOTÓN")
    if button == "add":
        page.click("button[value='add:observations']")
        page.wait_for_selector("#item-observations-0")
    else:
        page.click("button[value='remove:observations:0']")
        page.wait_for_url("**#section-observations")
    page.unroute("**/edit")
    page.wait_for_timeout(2_500)
    assert page.input_value("#f-contingent") == "JUSTO ANTES DEL BOTÓN"
    assert page.is_hidden("#device-version")
    answers = stored(server, review_id)["answers"]
    assert answers["contingent"] == "JUSTO ANTES DEL BOTÓN"
    assert len(answers.get("observations") or []) == (1 if button == "add" else 0)
    page.fill("#f-appointment", "Jefe de sección")
    page.wait_for_selector("#save-status[data-state='saved']", timeout=10_000)
    assert stored(server, review_id)["answers"]["appointment"] == "Jefe de sección"
    assert 409 not in statuses


def test_a_copy_equal_to_the_server_content_or_of_another_user_is_not_restored(page, server):
    review_id = new_review(page, server)
    page.fill("#f-contingent", "EN EL SERVIDOR")
    page.wait_for_selector("#save-status[data-state='saved']", timeout=10_000)
    pairs = page.evaluate(
        "() => Array.from(new FormData(document.querySelector('form.review-form')).entries())"
        ".filter(([k]) => !['csrf_token', '_etag'].includes(k))"
    )
    old = {"base": "an-older-etag", "at": 0, "submitted": False, "review": review_id}
    page.evaluate(PUT_COPY, {**old, "key": key("admin", review_id), "user": "admin", "pairs": pairs})  # fmt: skip
    theirs = [[k, "DE OTRA PERSONA" if k == "contingent" else v] for k, v in pairs]
    etag = page.input_value("[name='_etag']")
    other = {**old, "base": etag, "key": key("ana", review_id), "user": "ana", "pairs": theirs}  # fmt: skip
    page.evaluate(PUT_COPY, other)
    statuses = autosave_answers(page)
    page.reload()
    page.wait_for_selector("form[data-autosave='ready']")
    page.wait_for_timeout(1_000)
    assert page.input_value("#f-contingent") == "EN EL SERVIDOR"
    assert page.is_hidden("#device-version")
    assert page.evaluate(COPIES) == [] and statuses == []


@pytest.mark.parametrize("code", [503, 507])
def test_a_busy_or_unwritable_server_is_shown_and_the_copy_kept_until_it_is_saved(
    page, server, code
):
    review_id = new_review(page, server)
    message = "Servidor ocupado (prueba)" if code == 503 else "Disco lleno (prueba)"
    refused: list[int] = []

    def answer(route):
        if not refused:
            refused.append(code)
            body = {"error": "busy" if code == 503 else "unwritable", "message": message}
            headers = {"Retry-After": "2"} if code == 503 else {}
            route.fulfill(status=code, json=body, headers=headers)
        else:
            route.continue_()

    page.route("**/autosave", answer)
    page.fill("#f-contingent", "PENDIENTE")
    page.wait_for_function(
        "m => document.getElementById('save-status').textContent === m", arg=message
    )
    assert [c["pairs"] for c in page.evaluate(COPIES)][0][0] != []  # kept on this device
    if code == 507:
        page.fill("#f-appointment", "Siguiente cambio")  # tried again at the next change
    page.wait_for_selector("#save-status[data-state='saved']", timeout=10_000)
    assert stored(server, review_id)["answers"]["contingent"] == "PENDIENTE"
    assert page.evaluate(COPIES) == []
