"""Offline-first, proven in a real browser: filling, autosave, recovery."""

from __future__ import annotations

import re

import pytest

from reviewapp.storage import Store
from tests.conftest import make_answers
from tests.e2e.conftest import shot

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

OBS_SELECT = (
    "kind",
    "phase",
    "functional_area",
    "action_body",
    "training_module",
    "priority",
    "sensitivity",
)


def fill_review(page, answers: dict) -> None:
    """Fill the review form the way a person would: field by field."""
    for name, value in answers.items():
        if name == "observations":
            continue
        selector = f"[name='{name}']"
        kind = page.get_attribute(f"{selector} >> nth=0", "type") or page.eval_on_selector(
            selector, "e => e.tagName"
        )
        if kind == "radio":
            page.check(f"{selector}[value='{value}']")
        elif kind == "SELECT" or page.eval_on_selector(selector, "e => e.tagName") == "SELECT":
            page.select_option(selector, str(value))
        else:
            page.fill(selector, str(value))
    for i, obs in enumerate(answers["observations"]):
        page.click("button[value='add:observations']")
        page.wait_for_selector(f"#item-observations-{i}")
        for name, value in obs.items():
            selector = f"[name='observations-{i}-{name}']"
            if name in OBS_SELECT:
                page.select_option(selector, value)
            elif name == "dotmlpfi":
                for v in value:
                    page.check(f"{selector}[value='{v}']")
            else:
                page.fill(selector, str(value))


def new_review(page, server) -> str:
    page.goto(server.url + "/reviews/new")
    page.click("button.primary")
    page.wait_for_url("**/edit")
    return page.url.split("/reviews/")[1].split("/")[0]


def stored(server, review_id: str) -> dict:
    return Store(server.data).get_review(review_id)


def test_a_complete_review_in_spanish_through_the_ui(page, server):
    review_id = new_review(page, server)
    answers = make_answers(contingent="URUBATT 61")
    fill_review(page, answers)
    shot(page, "form-1366x768")
    page.click("button[value='submit']")
    # The browser keeps the last #fragment across the redirect.
    page.wait_for_url(re.compile(rf"/reviews/{review_id}(#.*)?$"))
    assert "Revisión enviada" in page.content()
    record = stored(server, review_id)
    assert record["status"] == "submitted"
    assert record["answers"]["observations"][0]["title"] == answers["observations"][0]["title"]
    assert record["answers"]["rating_sustainment"] == "na" and record["answers"]["rotation"] == 42
    page.goto(server.url + "/reviews/?status=submitted")
    assert "URUBATT 61" in page.content()
    shot(page, "list-1366x768")


def test_typing_is_saved_to_the_server_within_seconds(page, server):
    review_id = new_review(page, server)
    page.fill("#f-contingent", "BRABATT 3")
    page.wait_for_selector("#save-status[data-state='saved']", timeout=10_000)
    assert stored(server, review_id)["answers"]["contingent"] == "BRABATT 3"
    from tests.e2e.test_device_copy import COPIES

    assert page.evaluate(COPIES) == []  # the copy is gone once confirmed


def test_offline_typing_survives_a_reload_and_is_saved_when_back(page, server):
    review_id = new_review(page, server)
    page.click("button[value='add:observations']")
    page.wait_for_selector("#item-observations-0")
    page.evaluate("navigator.serviceWorker.ready.then(() => true)")
    page.reload()  # now the service worker controls the page and keeps a copy of it
    assert page.evaluate("navigator.serviceWorker.controller !== null")
    page.context.set_offline(True)
    for _ in range(50):  # the browser learns it is offline a moment later
        if page.evaluate("navigator.onLine") is False:
            break
        page.wait_for_timeout(100)
    page.fill("#f-contingent", "SIN CONEXIÓN 1")
    page.fill("[name='observations-0-title']", "Escrito sin red")
    page.select_option("#f-operation", "UNIFIL")
    page.wait_for_selector("#save-status[data-state='local']")
    page.reload()
    page.wait_for_selector("form[data-autosave='ready']")
    assert page.input_value("#f-contingent") == "SIN CONEXIÓN 1"
    assert page.input_value("[name='observations-0-title']") == "Escrito sin red"
    assert page.input_value("#f-operation") == "UNIFIL"
    # The page came from the cache (typed before): the values are the device copy's.
    assert page.get_attribute("#save-status", "data-state") == "restored"
    page.context.set_offline(False)
    page.wait_for_selector("#save-status[data-state='saved']", timeout=15_000)
    answers = stored(server, review_id)["answers"]
    assert (
        answers["contingent"] == "SIN CONEXIÓN 1"
        and answers["observations"][0]["title"] == "Escrito sin red"
    )


def test_a_server_killed_mid_edit_loses_nothing(page, server):
    review_id = new_review(page, server)
    page.fill("#f-contingent", "ANTES")
    page.wait_for_selector("#save-status[data-state='saved']", timeout=10_000)
    server.kill()
    page.fill("#f-contingent", "DURANTE EL CORTE")
    page.fill("#f-appointment", "Oficial de operaciones")
    page.wait_for_timeout(4_000)  # an autosave attempt fails in between
    assert page.get_attribute("#save-status", "data-state") == "local"
    server.start()
    page.reload()
    page.wait_for_selector("form[data-autosave='ready']")
    assert page.input_value("#f-contingent") == "DURANTE EL CORTE"
    assert page.input_value("#f-appointment") == "Oficial de operaciones"
    page.wait_for_selector("#save-status[data-state='saved']", timeout=15_000)
    answers = stored(server, review_id)["answers"]
    assert (
        answers["contingent"] == "DURANTE EL CORTE"
        and answers["appointment"] == "Oficial de operaciones"
    )


def test_screenshots_of_the_main_screens(page, server, browser):
    new_review(page, server)
    for path, name in [("/reviews/", "list"), ("/exchange/", "exchange"), ("/reports/", "reports")]:
        page.goto(server.url + path)
        shot(page, f"{name}-1366x768")
        page.set_viewport_size({"width": 768, "height": 1024})
        shot(page, f"{name}-768x1024")
        page.set_viewport_size({"width": 1366, "height": 768})
