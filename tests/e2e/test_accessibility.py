"""WCAG 2.1 A/AA on the main screens, checked with axe-core in Chromium."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from tests.e2e.conftest import Server, shot

AXE = (Path(__file__).parent / "vendor" / "axe.min.js").read_text(encoding="utf-8")
pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


def serious_violations(page) -> list[str]:
    # Evaluated through the DevTools protocol, so the page's CSP does not block it.
    page.evaluate(AXE)
    result = page.evaluate(
        "axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})"
    )
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def test_setup_and_login_pages(browser, tmp_path):
    server = Server(tmp_path / "fresh")
    server.start()
    try:
        context = browser.new_context(viewport={"width": 1366, "height": 768}, locale="es-ES")
        page = context.new_page()
        page.goto(server.url + "/setup")
        assert serious_violations(page) == []
        shot(page, "setup-1366x768")
        page.click("button.primary")  # empty: the errors are shown and announced
        assert serious_violations(page) == []
        page.goto(server.url + "/login")
        assert serious_violations(page) == []
        shot(page, "login-1366x768")
        context.close()
    finally:
        server.kill()


@pytest.mark.parametrize(
    "path", ["/reviews/", "/reviews/new", "/exchange/", "/reports/", "/users", "/settings"]
)
def test_main_screens(page, server, path):
    page.goto(server.url + path)
    assert serious_violations(page) == []


def test_review_form_with_errors(page, server):
    page.goto(server.url + "/reviews/new")
    page.click("button.primary")
    page.wait_for_url("**/edit")
    page.click("button[value='add:observations']")
    page.wait_for_selector("#item-observations-0")
    assert serious_violations(page) == []
    page.bring_to_front()  # the window a person is typing in has the focus
    page.fill("#f-rotation", "500")  # out of range; the browser would not take letters
    page.click("button[value='submit']")
    page.wait_for_selector("#error-summary")
    # The summary takes focus (once the deferred script has run), so it is read out first.
    # (Polled from here: the page's CSP forbids the eval behind wait_for_function.)
    for _ in range(50):
        if page.evaluate("document.activeElement.id") == "error-summary":
            break
        page.wait_for_timeout(100)
    assert page.evaluate("document.activeElement.id") == "error-summary"
    assert serious_violations(page) == []
    shot(page, "form-errors-1366x768")
    page.set_viewport_size({"width": 768, "height": 1024})
    shot(page, "form-errors-768x1024")


def test_import_and_report_download_through_the_ui(page, server, tmp_path):
    # A bundle from another node, made on the side, imported through the page.
    from reviewapp import create_app, demo
    from reviewapp.exchange import keys, operations

    other = create_app({"DATA_DIR": str(tmp_path / "other")})
    store = other.extensions["store"]
    demo.add_demo_reviews(store, other.extensions["catalogue"], demo.ensure_node(store), 12, seed=2)
    with other.test_request_context():
        operations.export_bundle(store, other.extensions["catalogue"], store.find_node(), keys.NodeKey(tmp_path / "other"),
                                 tmp_path / "in.drb", operations.ExportOptions(level="regional"), "test")  # fmt: skip
    page.goto(server.url + "/exchange/")
    page.set_input_files("#f-bundles", str(tmp_path / "in.drb"))
    page.click("text=Verificar paquetes")
    page.wait_for_selector("text=Lo que haría esta importación")
    assert serious_violations(page) == []
    shot(page, "import-preview-1366x768")
    page.click("text=Importar ahora")
    page.wait_for_url("**/exchange/imports")
    assert "in.drb" in page.content()
    page.goto(server.url + "/reports/")
    page.check("input[value='lac']")
    page.click("text=Descargar PDF")  # starts a report job; its page shows the progress
    page.wait_for_selector("#job-download:not([hidden]) a", timeout=120_000)
    with page.expect_download() as download:
        page.click("#job-download a")
    pdf = Path(download.value.path()).read_bytes()
    assert pdf.startswith(b"%PDF")
    import pypdf

    assert (
        "Informe regional de lecciones" in pypdf.PdfReader(io.BytesIO(pdf)).pages[0].extract_text()
    )
