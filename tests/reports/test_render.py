"""The lessons report as HTML and PDF: structure, languages, escaping, nothing fetched."""

from __future__ import annotations

import io
import re
from html import unescape

import pypdf
import pytest

from reviewapp.reports import aggregate, operations, render
from tests.conftest import make_answers, make_observation

PAYLOAD = '<img src="file:///etc/passwd"><style>body{display:none}</style><b>x</b>'
SECTIONS = ["1.", "2.", "3.", "4.", "5.", "6.", "7.", "8."]


@pytest.fixture
def filled(app, node_web, store, catalogue):
    """Twelve submitted reviews from three countries; one observation carries markup."""
    from reviewapp.reviews import operations as reviews

    node = store.find_node()
    plan = [("AR", "UNFICYP"), ("UY", "MONUSCO"), ("PE", "MINUSCA")]
    for i in range(12):
        country, operation = plan[i % 3]
        observations = [make_observation(title=f"Obs {i}", functional_area="c_ied" if i % 2 else "medical"),
                        make_observation(title=f"GP {i}", kind="good_practice", functional_area="cimic",
                                         action_body="own_unit", training_module=None)]  # fmt: skip
        if i == 0:
            observations[0].update(title=PAYLOAD, observation=PAYLOAD)
        answers = make_answers(country=country, operation=operation, observations=observations,
                               deployment_start="2023-01-01", deployment_end=f"2023-{i % 12 + 1:02d}-20")  # fmt: skip
        draft = reviews.start_review(store, catalogue, node, "es", "admin")
        reviews.submit_review(store, catalogue, draft["id"], answers, draft["content_hash"])
    return app


def produce(app, output, **options):
    store, catalogue = app.extensions["store"], app.extensions["catalogue"]
    with app.test_request_context():
        return operations.produce(
            store, catalogue, store.find_node(), aggregate.ReportOptions(**options), output, "test"
        )


def pages_text(pdf: bytes) -> list[str]:
    return [page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf)).pages]


def test_pdf_has_bookmarks_contents_and_page_numbers(filled):
    pdf, report = produce(filled, "pdf", scope="lac", lang="es")
    assert pdf.startswith(b"%PDF") and report["refused_urls"] == []
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    top = [o.title for o in reader.outline if not isinstance(o, list)]
    assert [t.split(" ", 1)[0] for t in top] == SECTIONS
    nested = [o for o in reader.outline if isinstance(o, list)]
    assert nested, "the annex groups observations by area under bookmarks of their own"
    texts = pages_text(pdf)
    total = len(texts)
    assert total >= len(SECTIONS) + 2  # cover, contents, and a new page for each section
    for number, text in enumerate(texts, start=1):
        assert f"Página {number} de {total}" in text
        assert "SIN CLASIFICAR" in text  # the classification on every page

    # The contents page sends each section to the page where it really starts. Text
    # extraction may split words at kerning ("T emas"), so compare without spaces.
    def compact(text):
        return re.sub(r"\s+", "", text)

    contents = compact(texts[1])
    for title in top:
        name = compact(title.split(" ", 1)[1])
        listed = int(re.search(rf"{re.escape(name)}\.*(\d+)", contents).group(1))
        assert compact(title) in compact(texts[listed - 1]), (title, listed)


def test_pdf_text_holds_the_key_figures(filled):
    pdf, report = produce(filled, "pdf", scope="lac", lang="es")
    text = " ".join(pages_text(pdf)).replace("\n", " ")
    assert report["totals"]["reviews"] == 12 and report["totals"]["observations"] == 24
    assert "12 revisiones de despliegue con 24 observaciones" in text
    assert "C-IED y amenazas explosivas" in text and "Sanidad y CASEVAC" in text


@pytest.mark.parametrize(("lang", "title", "summary"), [
    ("es", "Informe regional de lecciones", "Resumen ejecutivo"),
    ("pt", "Relatório regional de lições", "Resumo executivo"),
    ("en", "Regional lessons report", "Executive summary"),
    ("fr", "Rapport régional d'enseignements", "Résumé analytique"),
])  # fmt: skip
def test_every_language_renders(filled, lang, title, summary):
    html, _ = produce(filled, "html", scope="lac", lang=lang)
    text = unescape(html)
    assert f'<html lang="{lang}">' in html and title in text and summary in text


def test_national_variant_is_titled_for_the_country(filled):
    html, report = produce(filled, "html", scope="countries", countries=["UY"], lang="es")
    assert "Informe nacional de lecciones: Uruguay" in html and report["totals"]["reviews"] == 4


def test_markup_in_an_observation_is_printed_as_text_and_fetches_nothing(filled):
    html, _ = produce(filled, "html", scope="lac", lang="es", annex_limit=500)
    assert (
        '<img src="file:///etc/passwd">' not in html
        and "&lt;img src=&#34;file:///etc/passwd&#34;&gt;" in html
    )
    pdf, report = produce(filled, "pdf", scope="lac", lang="es", annex_limit=500)
    assert report["refused_urls"] == []  # nothing was even asked for
    text = " ".join(pages_text(pdf))
    assert '<img src="file:///etc/passwd">' in text.replace("\n", "")


def test_a_template_that_reaches_out_gets_nothing(tmp_path, monkeypatch, app):
    folder = tmp_path / "evil"
    folder.mkdir()
    (folder / "style.css").write_text(
        '@import url("http://198.51.100.7/x.css"); body { background: url("file:///etc/passwd"); }'
    )
    html = """<html><head><link rel="stylesheet" href="style.css"><link rel="stylesheet" href="https://example.org/a.css">
      </head><body><img src="file:///etc/passwd"><img src="../../../../etc/passwd"><img src="/static/../../../etc/hostname">
      <img src="http://198.51.100.7/pixel.png"><p>ok</p></body></html>"""  # fmt: skip
    monkeypatch.setattr(render, "reports_dir", lambda: tmp_path)
    with app.app_context():
        pdf, refused = render.render_pdf("evil", html)
    assert pdf.startswith(b"%PDF")
    assert any(u.startswith("http://198.51.100.7") for u in refused)
    assert any(u.startswith("https://example.org") for u in refused)
    assert any("etc/passwd" in u for u in refused) and any("etc/hostname" in u for u in refused)
    assert b"root:x:0:0" not in pdf


def test_only_the_report_folder_and_static_files_are_served():
    fetcher = render.ReportFetcher(render.reports_dir() / "regional")
    assert fetcher.resolve((render.reports_dir() / "regional" / "style.css").as_uri())
    assert fetcher.resolve("file:///static/fonts/DejaVuSans.ttf")
    for url in ["file:///etc/passwd", "file:///static/../../etc/passwd", "http://localhost/static/app.css",
                (render.reports_dir() / "regional" / ".." / ".." / "run.py").as_uri(), "data:text/plain,x"]:  # fmt: skip
        assert fetcher.resolve(url) is None, url


def test_report_pages_for_readers(filled, as_role, node_web):
    from tests.reports.test_jobs import job_id_of, start, wait

    viewer = as_role("viewer")
    assert "Informes de lecciones" in viewer.get("/reports/").get_data(as_text=True)
    job = wait(filled, job_id_of(start(viewer, "html", lang="fr")))
    preview = viewer.get(f"/reports/jobs/{job['id']}/file")
    assert preview.status_code == 200 and "Rapport régional" in preview.get_data(as_text=True)
    preview.close()
    job = wait(
        filled,
        job_id_of(
            start(viewer, "pdf", scope="alcopaz", **{"from": "2023-01-01", "to": "2023-12-31"})
        ),
    )
    response = viewer.get(f"/reports/jobs/{job['id']}/file")
    assert response.mimetype == "application/pdf" and response.data.startswith(b"%PDF")
    response.close()
    bad = start(viewer, "html", scope="countries", lang="xx", **{"from": "2024-99-01"})
    page = bad.get_data(as_text=True)
    assert bad.status_code == 422 and "Elija al menos un país." in page and "fecha válida" in page
    assert as_role("contributor").get("/reports/").status_code == 403


def test_report_from_the_command_line(filled, monkeypatch, tmp_path, capsys):
    import run

    monkeypatch.setenv("REVIEWAPP_DATA", filled.config["DATA_DIR"])
    assert (
        run.main(["report", "--scope", "alcopaz", "--lang", "pt", "--out", str(tmp_path / "r.pdf")])
        == 0
    )
    assert (tmp_path / "r.pdf").read_bytes().startswith(
        b"%PDF"
    ) and "12 reviews" in capsys.readouterr().out
    assert (
        run.main(
            ["report", "--scope", "countries", "--country", "XX", "--out", str(tmp_path / "x.pdf")]
        )
        == 2
    )
    assert "unknown country 'XX'" in capsys.readouterr().err
    assert run.main(["report", "--format", "html", "--out", str(tmp_path / "r.html")]) == 0
    assert run.main(["report", "--format", "xlsx", "--out", str(tmp_path / "r.xlsx")]) == 0
    events = [e["event"] for e in filled.extensions["store"].list_audit()]
    assert events.count("report_generated") == 2 and events.count("data_exported") == 1


def test_data_export_holds_every_observation_and_no_personal_data(filled, as_role, node_web):
    import csv as csv_module

    from openpyxl import load_workbook

    from tests.reports.test_jobs import job_id_of, start, wait

    analyst = as_role("analyst")

    def made(output, **fields):
        job = wait(filled, job_id_of(start(analyst, output, **fields)))
        response = analyst.get(f"/reports/jobs/{job['id']}/file")
        body = response.data
        response.close()
        return body

    body = made("csv", country="").decode("utf-8-sig")
    rows = list(csv_module.reader(body.splitlines()))
    assert rows[0][:3] == ["review_id", "country", "operation"] and len(rows) == 1 + 24
    assert {r[1] for r in rows[1:]} == {"Argentina", "Uruguay", "Perú"}
    assert "Ana Pérez" not in body and "ana@example.org" not in body
    book = load_workbook(io.BytesIO(made("xlsx", scope="countries", country="UY", lang="pt")))
    assert book.sheetnames == ["Revisões", "Observações"]
    assert book["Revisões"].max_row == 1 + 4 and book["Observações"].max_row == 1 + 8
    assert start(as_role("viewer"), "csv").status_code == 403


def test_data_export_guards_against_formulas(filled, store, catalogue):
    from reviewapp.reports import export

    record = operations.records(store)[0]
    record["answers"]["observations"][0]["title"] = '=HYPERLINK("http://evil")'
    _, observation_rows = export.rows([record], catalogue, aggregate.ReportOptions(scope="lac"))
    assert observation_rows[0][6] == '\'=HYPERLINK("http://evil")'


def test_a_review_prints_as_pdf_with_personal_data_only_for_its_author(app, node_web, as_role):
    author = as_role("contributor", "ana")
    review_id = author.start_review()
    answers = make_answers(attribution="named", respondent_name="Ana Pérez Quispe",
                           observations=[make_observation(title=PAYLOAD)])  # fmt: skip
    author.save(review_id, answers, action="submit")
    response = author.get(f"/reviews/{review_id}/pdf")
    assert response.mimetype == "application/pdf"
    text = " ".join(pages_text(response.data)).replace("\n", " ")
    response.close()
    assert "Ana Pérez Quispe" in text and "Radios" not in text  # the payload replaced the title
    assert '<img src="file:///etc/passwd">' in text.replace(" ", "").replace("<imgsrc", "<img src")
    assert "Página 1 de" in text and "Revisión de despliegue" in text
    response = as_role("analyst").get(f"/reviews/{review_id}/pdf")
    assert "Ana Pérez Quispe" not in " ".join(pages_text(response.data))
    response.close()
    assert as_role("contributor", "beto").get(f"/reviews/{review_id}/pdf").status_code == 404
