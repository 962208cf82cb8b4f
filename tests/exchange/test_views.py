"""The exchange pages, driven through Flask's test client."""

from __future__ import annotations

import io
import re

import orjson

from tests.conftest import Web
from tests.exchange.conftest import make_conflict, members_of
from tests.exchange.test_operations import _rewrite_bundle


def web_for(node) -> Web:
    return node.web("analyst")


def text(response) -> str:
    return response.get_data(as_text=True)


def test_export_downloads_a_bundle(field, tmp_path):
    field.submit(attribution="named", respondent_name="Ana Pérez")
    web = web_for(field)
    response = web.post(
        "/exchange/export",
        {"level": "regional", "anonymise": "yes", "destination": "ENOPU"},
        page="/exchange/",
    )
    assert response.status_code == 200
    assert re.match(
        r"attachment; filename=reviews-URUBATT-laptop-\d{4}-\d{2}-\d{2}-\d{4}\.drb",
        response.headers["Content-Disposition"],
    )
    path = tmp_path / "downloaded.drb"
    path.write_bytes(response.data)
    response.close()
    assert "Ana Pérez".encode() not in members_of(path)["reviews.jsonl"]
    assert field.store.list_exports()[0]["destination"] == "ENOPU"


def test_export_with_nothing_to_send_says_so(field):
    web = web_for(field)
    response = web.post("/exchange/export", {"level": "national"}, page="/exchange/")
    assert response.status_code == 302
    assert "Nada que exportar" in text(web.get("/exchange/"))


def test_upload_previews_then_applies(field, centre, tmp_path):
    field.submit(contingent="URUBATT 42")
    field.export(tmp_path / "a.drb")
    web = centre.web("admin")  # trusting a key is an administrator's decision
    before = centre.snapshot()
    preview = web.post(
        "/exchange/import",
        {"bundles": (io.BytesIO((tmp_path / "a.drb").read_bytes()), "a.drb")},
        page="/exchange/",
        content_type="multipart/form-data",
    )
    page = text(preview)
    assert preview.status_code == 200 and "Todavía no se guardó nada" in page
    assert re.search(r"<td>1</td><td>0</td><td>0</td><td>0</td><td>0</td>", page)
    assert "clave que este nodo aún no conoce" in page
    assert centre.snapshot() == before  # the preview stores nothing
    sha = re.search(r'name="bundle" value="([0-9a-f]{64})"', page).group(1)
    response = web.post(
        "/exchange/import/apply",
        {"bundle": sha, "trust": sha, f"name-{sha}": "a.drb"},
        page="/exchange/",
    )
    assert response.location == "/exchange/imports"
    assert centre.store.count_reviews() == 1
    assert centre.store.list_trusted_keys()[0]["name"] == "URUBATT laptop"
    log = text(web.get("/exchange/imports"))
    assert "a.drb" in log and "URUBATT laptop" in log
    review_id = centre.store.list_reviews()[0][0]["id"]
    detail = text(web.get(f"/reviews/{review_id}"))
    assert "Recibida por" in detail and "URUBATT laptop" in detail


def test_refused_upload_is_explained_and_not_kept(centre):
    web = web_for(centre)
    page = text(web.post("/exchange/import", {"bundles": (io.BytesIO(b"hello"), "notes.drb")},
                         page="/exchange/", content_type="multipart/form-data"))  # fmt: skip
    assert "Rechazado" in page and "no es un paquete" in page
    assert list((centre.folder / "incoming").iterdir()) == []


def test_upload_size_is_bounded(centre):
    centre.app.config["MAX_BUNDLE_UPLOAD"] = 1000
    web = web_for(centre)
    response = web.post("/exchange/import", {"bundles": (io.BytesIO(b"x" * 5000), "big.drb")},
                        page="/exchange/", content_type="multipart/form-data")  # fmt: skip
    assert response.status_code == 413
    assert "Demasiado grande" in text(response)


def test_conflict_is_shown_and_resolved_in_the_ui(field, centre, tmp_path):
    review = make_conflict(field, centre, tmp_path, held="centre version", incoming="field version")
    web = web_for(centre)
    detail = text(web.get(f"/reviews/{review['id']}"))
    assert "Comparar y decidir" in detail
    conflict_id = centre.store.list_conflicts("open")[0]["id"]
    page = text(web.get(f"/exchange/conflicts/{conflict_id}"))
    assert "centre version" in page and "field version" in page
    response = web.post(
        f"/exchange/conflicts/{conflict_id}/resolve",
        {"keep": "incoming"},
        page=f"/exchange/conflicts/{conflict_id}",
    )
    assert response.location == f"/reviews/{review['id']}"
    assert centre.store.get_review(review["id"])["answers"]["contingent"] == "field version"


def test_quarantine_page_lists_reasons(field, centre, tmp_path):
    field.submit()
    field.export(tmp_path / "b.drb")
    _rewrite_bundle(
        tmp_path / "b.drb", lambda rs: rs[0]["answers"].update(contingent="<b>forged</b>")
    )
    centre.import_(tmp_path / "b.drb")
    page = text(web_for(centre).get("/exchange/quarantine"))
    assert "b.drb, línea 1" in page and "content hash" in page


def test_receipts_through_the_ui(field, centre, tmp_path):
    field.trusts(centre)
    field.submit()
    field.export(tmp_path / "1.drb")
    centre.import_(tmp_path / "1.drb")
    response = web_for(centre).post(
        "/exchange/receipts/make", {"for_node": field.node["id"]}, page="/exchange/"
    )
    assert response.status_code == 200
    receipt = response.data
    response.close()
    assert orjson.loads(receipt)["for_node_id"] == field.node["id"]
    web = web_for(field)
    web.post("/exchange/receipts/apply", {"receipt": (io.BytesIO(receipt), "r.json"), "archive": "yes"},
             page="/exchange/", content_type="multipart/form-data")  # fmt: skip
    assert "1 revisión(es) confirmadas como entregadas a ENOPU" in text(web.get("/exchange/"))
    assert "0 revisiones" in text(web.get("/reviews/"))  # archived ones are hidden by default
    assert "1 revisión" in text(web.get("/reviews/?archived=yes"))


def test_forged_receipt_target_is_refused(centre):
    response = web_for(centre).post(
        "/exchange/receipts/make", {"for_node": "someone-else"}, page="/exchange/"
    )
    assert response.status_code == 400
