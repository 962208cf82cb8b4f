"""Control characters and formula-like text: refused where text enters, harmless where
stored text leaves (CSV, XLSX) — nothing stored can break an export for everyone."""

from __future__ import annotations

import csv
import io
import subprocess
import sys

import pytest
from openpyxl import load_workbook

from reviewapp import REPO_ROOT
from reviewapp.reviews import operations
from tests.conftest import make_answers, make_observation

CONTROLS = ["\x00", "\x07", "\x0b", "\x1b", "\x7f", "\x85"]


@pytest.mark.parametrize("char", CONTROLS, ids=[hex(ord(c)) for c in CONTROLS])
def test_a_control_character_in_a_field_is_refused_with_a_message_and_nothing_stored(node_web, store, char):  # fmt: skip
    review_id = node_web.start_review()
    before = store.get_review(review_id)
    answers = make_answers(observations=[make_observation(title=f"Radios{char}incompatibles")])
    response = node_web.save(review_id, answers)
    assert response.status_code == 422
    assert "caracteres de control invisibles" in response.get_data(as_text=True)
    assert store.get_review(review_id) == before
    page = node_web.get(f"/reviews/{review_id}/edit").get_data(as_text=True)
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    auto = node_web.client.post(
        f"/reviews/{review_id}/autosave",
        data={"csrf_token": token, "_etag": before["content_hash"], "contingent": f"A{char}B"},
    )
    assert auto.status_code == 422 and "contingent" in auto.json["errors"]
    assert store.get_review(review_id) == before


def test_tab_and_newlines_are_kept(node_web, store):
    review_id = node_web.start_review()
    text = "Primera línea\r\nSegunda\tcon tabulador"
    assert node_web.save(review_id, {"handover_note": text}).status_code == 302
    assert store.get_review(review_id)["answers"]["handover_note"] == text


def test_an_imported_record_with_a_control_character_is_quarantined(tmp_path):
    from tests.exchange.conftest import _node

    field, centre = _node(tmp_path, "f", "UY", "field"), _node(tmp_path, "c", "UY", "centre")
    review = field.submit()
    stored = field.store.get_review(review["id"])
    stored["answers"]["contingent"] = "URU\x00BATT"
    stored["content_hash"] = operations.content_hash("deployment-review.v1", stored["answers"])
    field.store._put("reviews", {review["id"]: stored})  # as an older version could have
    field.export(tmp_path / "b.drb")
    report = centre.import_(tmp_path / "b.drb")
    assert report["counts"]["new"] == 0 and report["counts"]["invalid"] == 1
    assert centre.store.find_review(review["id"]) is None
    (entry,) = centre.store.list_quarantine()
    assert any("contingent" in r and "control" in r for r in entry["reasons"])


@pytest.fixture
def dirty(app, node_web, store, catalogue):
    """A submitted review whose stored text holds what an older version let in."""
    draft = operations.start_review(store, catalogue, store.find_node(), "es", "admin")
    observations = [make_observation(title='=HYPERLINK("http://evil")', observation='a;b,c"d')]
    operations.submit_review(store, catalogue, draft["id"], make_answers(observations=observations), draft["content_hash"])  # fmt: skip
    review = store.get_review(draft["id"])
    obs = review["answers"]["observations"][0]
    obs["discussion"] = "NUL\x00 ESC\x1b BEL\x07 fin"
    obs["conclusion"] = "\t=1+1"
    store._put("reviews", {review["id"]: review})
    return app


REPORT = {"scope": "lac", "from": "2000-01-01", "to": "2030-12-31", "max_sensitivity": "strictly_confidential"}  # fmt: skip


def _data(app, client, output):
    from tests.reports.test_jobs import job_id_of, start, wait

    job = wait(app, job_id_of(start(client, output, **REPORT)))
    response = client.get(f"/reports/jobs/{job['id']}/file")
    assert response.status_code == 200
    data = response.data
    response.close()
    return data


def test_csv_quotes_every_text_cell_and_guards_formulas_and_controls(dirty, node_web):
    body = _data(dirty, node_web, "csv").decode("utf-8-sig")
    header, row = list(csv.reader(io.StringIO(body)))
    cells = dict(zip(header, row, strict=True))
    assert cells["title"] == '\'=HYPERLINK("http://evil")'
    assert cells["observation"] == 'a;b,c"d'
    assert cells["discussion"] == "NUL ESC BEL fin"
    assert cells["conclusion"] == "'\t=1+1"
    line = body.splitlines()[1]
    assert '"a;b,c""d"' in line and ',"Uruguay",' in line  # every text cell quoted
    assert all(c not in body for c in "\x00\x1b\x07")


def test_xlsx_never_fails_on_stored_text(dirty, node_web, tmp_path):
    book = load_workbook(io.BytesIO(_data(dirty, node_web, "xlsx")))
    values = [c.value for row in book.worksheets[1].iter_rows() for c in row]
    assert "NUL ESC BEL fin" in values and '\'=HYPERLINK("http://evil")' in values
    out = tmp_path / "r.xlsx"
    done = subprocess.run(
        [
            sys.executable,
            "run.py",
            "--data",
            dirty.config["DATA_DIR"],
            "report",
            "--format",
            "xlsx",
            "--scope",
            "lac",
            "--max-sensitivity",
            "strictly_confidential",
            "--out",
            str(out),
        ],  # fmt: skip
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert load_workbook(out).worksheets[1].max_row == 2


@pytest.mark.parametrize("stamp", ["yesterday", "2024-13-45T99:00:00Z", 12345, ["x"]])
def test_a_malformed_time_in_a_stored_record_never_breaks_a_page(node_web, store, stamp):
    node_web.start_review()  # a sound one beside it, to be sorted with it
    review_id = node_web.start_review()
    review = store.get_review(review_id)
    store._put("reviews", {review_id: {**review, "updated_at": stamp, "created_at": stamp}})
    for url in ("/reviews/", f"/reviews/{review_id}", f"/reviews/{review_id}/edit"):
        assert node_web.get(url).status_code == 200, url
