"""The review pages, driven like a person would through Flask's test client."""

from __future__ import annotations

import re

import pytest

from tests.conftest import form_data, make_answers, make_observation

# What each language calls things on the pages.
WORDS = {
    "es": {"saved": "Borrador guardado", "submitted": "Revisión enviada", "required": "Este campo es obligatorio.",
           "country": "Uruguay", "op": "MONUSCO (República Democrática del Congo)", "revise": "Revisar",
           "rating_na": "No aplica", "incomplete": "aún no está completa"},
    "pt": {"saved": "Rascunho salvo", "submitted": "Revisão enviada", "required": "Este campo é obrigatório.",
           "country": "Uruguai", "op": "MONUSCO (República Democrática do Congo)", "revise": "Revisar",
           "rating_na": "Não se aplica", "incomplete": "ainda não está completa"},
    "fr": {"saved": "Brouillon enregistré", "submitted": "Revue soumise", "required": "Ce champ est obligatoire.",
           "country": "Uruguay", "op": "MONUSCO (République démocratique du Congo)", "revise": "Réviser",
           "rating_na": "Sans objet", "incomplete": "pas encore complète"},
}  # fmt: skip


def text(response) -> str:
    return response.get_data(as_text=True)


@pytest.mark.parametrize("lang", ["es", "pt", "fr"])
def test_whole_review_flow(web, store, lang):
    words = WORDS[lang]
    web.set_up_node(language=lang)
    review_id = web.start_review(language=lang)

    # First sitting: a half-empty draft.
    response = web.save(review_id, {"operation": "MONUSCO", "contingent": "URUBATT 42"})
    assert response.status_code == 302
    assert words["saved"] in text(web.get(response.location))

    # Reload: what was typed is there.
    page = text(web.get(f"/reviews/{review_id}/edit"))
    assert 'value="URUBATT 42"' in page
    assert re.search(r'<option value="MONUSCO" selected>', page)

    # Submitting too early keeps the draft and says what is missing, in the language.
    response = web.save(
        review_id, {"operation": "MONUSCO", "contingent": "URUBATT 42"}, action="submit"
    )
    assert response.status_code == 422
    page = text(response)
    assert words["required"] in page and words["incomplete"] in page
    assert store.get_review(review_id)["status"] == "draft"

    # Second sitting: complete it and submit.
    response = web.save(review_id, make_answers(), action="submit")
    assert response.status_code == 302 and response.location == f"/reviews/{review_id}"
    stored = store.get_review(review_id)
    assert stored["status"] == "submitted" and stored["submitted_at"]
    assert (
        stored["answers"]["observations"][0]["title"] == make_answers()["observations"][0]["title"]
    )
    assert re.fullmatch(r"[0-9a-f-]{36}", stored["answers"]["observations"][0]["id"])

    # The reading view, in the chosen language.
    page = text(web.get(f"/reviews/{review_id}"))
    assert words["submitted"] in page
    assert words["op"] in page and words["rating_na"] in page
    assert "Radios incompatibles con la red de la misión" in page

    # Read-only: the edit page sends the reader back, and a forged post is refused.
    assert web.get(f"/reviews/{review_id}/edit").location == f"/reviews/{review_id}"
    forged = web.client.post(f"/reviews/{review_id}/edit", data={"contingent": "X"})
    assert forged.status_code in (302, 400)
    assert store.get_review(review_id)["answers"]["contingent"] == "URUBATT 42"

    # Revise: a new draft revision, the submitted one kept.
    response = web.post(f"/reviews/{review_id}/revise", page=f"/reviews/{review_id}")
    assert response.location == f"/reviews/{review_id}/edit"
    current = store.get_review(review_id)
    assert (current["status"], current["revision"]) == ("draft", 2)
    assert current["previous_revision_id"] == stored["revision_id"]
    web.save(review_id, make_answers(contingent="URUBATT 43"), action="submit")
    history = store.list_revisions(review_id)
    assert [(r["revision"], r["answers"]["contingent"]) for r in history] == [(1, "URUBATT 42")]
    assert store.get_review(review_id)["answers"]["contingent"] == "URUBATT 43"
    old = text(web.get(f"/reviews/{review_id}/revisions/{stored['revision_id']}"))
    assert "URUBATT 42" in old


def test_bad_input_is_shown_next_to_the_field_and_nothing_is_stored(node_web, store):
    review_id = node_web.start_review()
    before = store.get_review(review_id)
    response = node_web.save(
        review_id, {"contingent": "URUBATT", "rotation": "doce", "deployment_start": "2023-02-30"}
    )
    assert response.status_code == 422
    page = text(response)
    assert re.search(r'id="err-rotation">\s*<span>Ingrese un número entero.</span>', page)
    assert re.search(r'id="err-deployment_start">\s*<span>Ingrese una fecha válida', page)
    assert '<a href="#f-rotation">Número de rotación: Ingrese un número entero.</a>' in page
    assert 'aria-invalid="true"' in page
    # What the person typed is still in the form...
    assert 'value="doce"' in page and 'value="URUBATT"' in page
    # ...and nothing was half-written.
    assert store.get_review(review_id) == before


def test_observations_can_be_added_and_removed(node_web, store):
    review_id = node_web.start_review()
    response = node_web.save(review_id, {"operation": "UNIFIL"}, action="add:observations")
    assert response.location.endswith("#item-observations-0")
    node_web.save(review_id, {"observations": [{"id": store.get_review(review_id)["answers"]["observations"][0]["id"]}]},
                  action="add:observations")  # fmt: skip
    items = store.get_review(review_id)["answers"]["observations"]
    assert len(items) == 2
    answers = {
        "observations": [
            make_observation(title="Primera", id=items[0]["id"]),
            make_observation(title="Segunda", id=items[1]["id"]),
        ]
    }
    node_web.save(review_id, answers)
    node_web.save(review_id, answers, action="remove:observations:0")
    items = store.get_review(review_id)["answers"]["observations"]
    assert [(o["title"], o["id"]) for o in items] == [("Segunda", answers["observations"][1]["id"])]


def test_errors_inside_an_observation_point_at_it(node_web):
    review_id = node_web.start_review()
    answers = make_answers(
        observations=[make_observation(), make_observation(title=None, priority="urgent")]
    )
    response = node_web.save(review_id, answers, action="submit")
    page = text(response)
    assert "Observación 2 — Prioridad: Elija una de las opciones ofrecidas." in page
    assert 'id="err-observations-1-priority"' in page


def test_saving_from_a_stale_page_is_refused(node_web, store):
    review_id = node_web.start_review()
    stale = node_web.etag(review_id)
    node_web.save(review_id, {"contingent": "first window"}, etag=stale)
    response = node_web.save(review_id, {"contingent": "second window"}, etag=stale)
    assert response.status_code == 409
    assert "otra ventana" in text(response)
    assert store.get_review(review_id)["answers"]["contingent"] == "first window"


def test_show_if_question_is_hidden_until_it_applies(node_web):
    review_id = node_web.start_review()
    page = text(node_web.get(f"/reviews/{review_id}/edit"))
    assert re.search(
        r'data-show-if="operation" data-show-in="EU_CSDP MFO MULTINATIONAL" hidden', page
    )
    node_web.save(review_id, {"operation": "MFO"})
    page = text(node_web.get(f"/reviews/{review_id}/edit"))
    assert re.search(r'data-show-if="operation" data-show-in="EU_CSDP MFO MULTINATIONAL">', page)


def _submitted(web, store, **answers):
    review_id = web.start_review()
    response = web.save(review_id, make_answers(**answers), action="submit")
    assert response.status_code == 302, text(response)
    return review_id


def test_list_filters_by_status_country_operation_and_category(node_web, store):
    a = _submitted(
        node_web,
        store,
        country="UY",
        operation="MONUSCO",
        personnel_category="contingent_troops",
        contingent="AAA",
    )
    b = _submitted(
        node_web,
        store,
        country="PE",
        operation="MINUSCA",
        personnel_category="staff_officer",
        contingent="BBB",
    )
    c = node_web.start_review()
    node_web.save(c, {"country": "PE", "operation": "MONUSCO", "contingent": "CCC"})

    def listed(query=""):
        page = text(node_web.get(f"/reviews/?{query}"))
        return {m for m in ("AAA", "BBB", "CCC") if f"<td>{m}</td>" in page}

    assert listed() == {"AAA", "BBB", "CCC"}
    assert listed("status=draft") == {"CCC"}
    assert listed("status=submitted") == {"AAA", "BBB"}
    assert listed("country=PE") == {"BBB", "CCC"}
    assert listed("operation=MONUSCO") == {"AAA", "CCC"}
    assert listed("personnel_category=staff_officer") == {"BBB"}
    assert listed("country=PE&operation=MONUSCO") == {"CCC"}
    assert "3 revisiones" in text(node_web.get("/reviews/"))
    assert {a, b}  # both were created


def test_list_pages_through_many_reviews(app, node_web, store):
    from reviewapp import demo

    demo.add_demo_reviews(store, app.extensions["catalogue"], store.find_node(), 120, seed=3)
    page = text(node_web.get("/reviews/"))
    assert "Página 1 de 3" in page and page.count("<tr>") == 51
    last = text(node_web.get("/reviews/?page=3"))
    assert last.count("<tr>") == 21
    assert text(node_web.get("/reviews/?page=99")).count("<tr>") == 0


def test_unknown_review_is_a_friendly_404(node_web):
    response = node_web.get("/reviews/00000000-0000-0000-0000-000000000000")
    assert response.status_code == 404
    assert "No existe ningún registro" in text(response)


def test_user_text_is_escaped(node_web, store):
    review_id = _submitted(node_web, store, contingent='<script>alert("x")</script>',
                           observations=[make_observation(title='<img src=x onerror=alert(1)>')])  # fmt: skip
    page = text(node_web.get(f"/reviews/{review_id}"))
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page


def test_posted_form_data_matches_what_the_page_renders(node_web, store):
    """The names the edit page renders are the names answers_from_form reads."""
    review_id = node_web.start_review()
    node_web.save(review_id, make_answers(), action="save")
    page = text(node_web.get(f"/reviews/{review_id}/edit"))
    rendered = set(re.findall(r'name="([a-z_0-9-]+)"', page)) - {
        "csrf_token",
        "_etag",
        "action",
        "lang",
        "next",
    }
    assert set(form_data(store.get_review(review_id)["answers"])) <= rendered


def test_submit_reports_wrong_and_missing_answers_together(node_web, store):
    review_id = node_web.start_review()
    before = store.get_review(review_id)
    answers = {
        "operation": "MONUSCO",
        "rotation": "doce",
        "deployment_start": "2024-05-01",
        "deployment_end": "2023-01-01",
    }
    response = node_web.save(review_id, answers, action="submit")
    assert response.status_code == 422
    page = text(response)
    assert "Número de rotación: Ingrese un número entero." in page
    assert "Tipo de revisión: Este campo es obligatorio." in page
    assert "Fin del despliegue: Debe ser posterior a «Inicio del despliegue»." in page
    assert store.get_review(review_id) == before  # the wrong value kept anything from being stored


def test_autosave_keeps_a_draft_and_answers_in_json(node_web, store):
    review_id = node_web.start_review()
    etag = node_web.etag(review_id)
    response = node_web.post(
        f"/reviews/{review_id}/autosave",
        {"contingent": "URUBATT 7", "_etag": etag},
        page=f"/reviews/{review_id}/edit",
    )
    assert response.status_code == 200 and response.json["status"] == "saved"
    assert store.get_review(review_id)["answers"]["contingent"] == "URUBATT 7"
    assert response.json["etag"] == store.get_review(review_id)["content_hash"]
    # A stale etag (another window saved in between) is refused, nothing overwritten.
    stale = node_web.post(
        f"/reviews/{review_id}/autosave",
        {"contingent": "old window", "_etag": etag},
        page=f"/reviews/{review_id}/edit",
    )
    assert stale.status_code == 409 and stale.json["status"] == "conflict"
    # Bad values are refused with the reasons, nothing stored.
    fresh = store.get_review(review_id)["content_hash"]
    bad = node_web.post(
        f"/reviews/{review_id}/autosave",
        {"rotation": "doce", "_etag": fresh},
        page=f"/reviews/{review_id}/edit",
    )
    assert bad.status_code == 422 and "rotation" in bad.json["errors"]
    assert store.get_review(review_id)["answers"]["contingent"] == "URUBATT 7"
    # Without the CSRF token, nothing happens.
    assert (
        node_web.client.post(
            f"/reviews/{review_id}/autosave", data={"contingent": "x", "_etag": fresh}
        ).status_code
        == 400
    )


def test_autosave_refuses_a_submitted_review(node_web, store):
    review_id = node_web.start_review()
    node_web.save(review_id, make_answers(), action="submit")
    response = node_web.post(
        f"/reviews/{review_id}/autosave",
        {"contingent": "x", "_etag": "x"},
        page=f"/reviews/{review_id}",
    )
    assert (
        response.status_code == 409
        and store.get_review(review_id)["answers"]["contingent"] == "URUBATT 42"
    )


def test_service_worker_is_served_from_the_root(web):
    with web.get("/sw.js") as response:
        assert response.status_code == 200 and "javascript" in response.mimetype
        assert b"caches.open" in response.data


def test_saving_content_that_is_already_stored_is_not_a_conflict(node_web, store):
    review_id = node_web.start_review()
    stale = node_web.etag(review_id)
    node_web.post(
        f"/reviews/{review_id}/autosave",
        {"contingent": "URUBATT 9", "_etag": stale},
        page=f"/reviews/{review_id}/edit",
    )
    # The page still holds the old etag, but sends exactly what the background save stored.
    response = node_web.save(review_id, {"contingent": "URUBATT 9"}, etag=stale)
    assert response.status_code == 302
    assert node_web.save(review_id, {"contingent": "other"}, etag=stale).status_code == 409


@pytest.mark.parametrize(
    "path",
    ["/reviews/", "/reviews/new", "/settings", "/exchange/", "/reports/", "/users", "/audit"],
)
def test_page_titles_are_plain_text(node_web, path):
    page = text(node_web.get(path))
    title = re.search(r"<title>(.*?)</title>", page, re.S).group(1)
    assert "<" not in title and title.endswith("Revisión de despliegue")


def test_edit_page_title_is_plain_text(node_web):
    review_id = node_web.start_review()
    page = text(node_web.get(f"/reviews/{review_id}/edit"))
    assert (
        re.search(r"<title>(.*?)</title>", page, re.S).group(1)
        == "Revisión de despliegue · Revisión de despliegue"
    )
    assert page.count('<template id="item-template-observations">') == 1


def test_changes_posted_to_a_submitted_review_are_refused_with_a_message(node_web, store):
    from tests.conftest import form_data, make_answers

    review_id = node_web.start_review()
    etag = node_web.etag(review_id)
    assert node_web.save(review_id, make_answers(), action="submit", etag=etag).status_code == 302
    data = {**form_data(make_answers(contingent="OTRA")), "_etag": etag, "action": "save"}
    stale = node_web.post(f"/reviews/{review_id}/edit", data, page=f"/reviews/{review_id}")
    assert stale.status_code == 302
    page = node_web.get(stale.location).get_data(as_text=True)
    assert "Una revisión enviada no se puede modificar" in page
    assert store.get_review(review_id)["answers"]["contingent"] == "URUBATT 42"
