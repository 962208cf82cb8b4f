"""First-run setup, settings and language choice."""

from __future__ import annotations

import re

import pytest


def test_every_page_leads_to_setup_until_the_node_is_set_up(web):
    for url in ["/", "/reviews/", "/reviews/new", "/settings"]:
        response = web.get(url)
        assert response.status_code == 302 and response.location == "/setup", url


def test_setup_page_is_in_spanish_by_default(web):
    page = web.get("/setup").get_data(as_text=True)
    assert '<html lang="es">' in page
    assert "Configurar esta instalación" in page


def test_setup_creates_the_node_and_leads_to_a_new_review(web, store):
    response = web.set_up_node(language="pt", country="BR", level="centre", name="CCOPAB")
    assert response.location == "/reviews/new"
    node = store.find_node()
    assert (node["name"], node["country"], node["level"], node["language"]) == (
        "CCOPAB",
        "BR",
        "centre",
        "pt",
    )
    assert re.fullmatch(r"[0-9a-f-]{36}", node["id"])
    page = web.get("/reviews/new").get_data(as_text=True)
    assert "Nova revisão de desdobramento" in page
    # Setup cannot be run twice.
    assert web.get("/setup").status_code == 302


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        (
            {"name": "", "country": "UY", "level": "field", "language": "es"},
            "name",
            "Este campo es obligatorio.",
        ),
        (
            {"name": "x" * 121, "country": "UY", "level": "field", "language": "es"},
            "name",
            "Ingrese como máximo 120 caracteres.",
        ),
        (
            {"name": "A", "country": "ES", "level": "field", "language": "es"},
            "country",
            "Elija una de las opciones ofrecidas.",
        ),
        (
            {"name": "A", "country": "UY", "level": "hq", "language": "es"},
            "level",
            "Elija una de las opciones ofrecidas.",
        ),
        (
            {"name": "A", "country": "UY", "level": "field", "language": "de"},
            "language",
            "Elija una de las opciones ofrecidas.",
        ),
    ],
    ids=["no-name", "long-name", "bad-country", "bad-level", "bad-language"],
)
def test_bad_setup_is_refused_with_a_message_next_to_the_field(web, store, data, field, message):
    response = web.post("/setup", data)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert re.search(rf'id="err-{field}">\s*<span>{re.escape(message)}</span>', page)
    assert 'class="error-summary"' in page
    assert store.find_node() is None


def test_forged_extra_field_in_setup_is_refused(web, store):
    data = {"name": "A", "country": "UY", "level": "field", "language": "es", "admin": "1"}
    response = web.post("/setup", data)
    assert response.status_code == 422
    assert "admin: Este campo no forma parte del formulario." in response.get_data(as_text=True)
    assert store.find_node() is None


def test_settings_change_name_and_language_but_not_the_id(node_web, store):
    node_id = store.find_node()["id"]
    response = node_web.post(
        "/settings", {"name": "CECOPAZ Lima", "country": "PE", "level": "centre", "language": "fr"}
    )
    assert response.status_code == 302
    node = store.find_node()
    assert (node["id"], node["name"], node["language"]) == (node_id, "CECOPAZ Lima", "fr")


def test_language_switch_changes_the_interface_and_only_goes_back_to_local_pages(node_web):
    response = node_web.post(
        "/language", {"lang": "pt", "next": "/reviews/?status=draft"}, page="/reviews/"
    )
    assert response.location == "/reviews/?status=draft"
    assert "Revisões" in node_web.get("/reviews/").get_data(as_text=True)
    for target in [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
        "javascript:alert(1)",
    ]:
        response = node_web.post("/language", {"lang": "en", "next": target}, page="/reviews/")
        assert response.location == "/", target
    node_web.post("/language", {"lang": "xx"}, page="/reviews/")
    assert "Reviews" in node_web.get("/reviews/").get_data(as_text=True)


def test_posts_without_a_csrf_token_are_refused(web, store):
    response = web.client.post(
        "/setup", data={"name": "A", "country": "UY", "level": "field", "language": "es"}
    )
    assert response.status_code == 400
    assert "Formulario vencido" in response.get_data(as_text=True)
    assert store.find_node() is None
