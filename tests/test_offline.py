"""Offline-first: nothing the app serves comes from, or points at, the internet."""

from __future__ import annotations

import re

import pytest

from reviewapp import REPO_ROOT
from tests.conftest import make_answers

SERVED = [REPO_ROOT / "reviewapp", REPO_ROOT / "reports"]
SUFFIXES = {".html", ".css", ".js", ".svg"}
REMOTE = re.compile(r"""(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}""", re.IGNORECASE)
URL_ATTR = re.compile(r"""(?:src|href|action|poster|data)\s*=\s*["']([^"']*)["']""", re.IGNORECASE)
CSS_URL = re.compile(r"""url\(\s*["']?([^"')]*)""", re.IGNORECASE)


def served_files():
    for root in SERVED:
        if root.exists():
            yield from (p for p in root.rglob("*") if p.suffix in SUFFIXES and p.is_file())


def test_there_are_files_to_check():
    names = {p.name for p in served_files()}
    assert {"base.html", "app.css", "form.js"} <= names


@pytest.mark.parametrize("path", list(served_files()), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_no_template_or_static_file_refers_to_the_internet(path):
    content = path.read_text(encoding="utf-8")
    assert not REMOTE.search(content), f"{path}: {REMOTE.search(content).group(0)}"
    assert "@import" not in content


def _links(html: str) -> list[str]:
    return URL_ATTR.findall(html) + CSS_URL.findall(html)


def test_rendered_pages_link_only_to_the_app(node_web, store):
    review_id = node_web.start_review()
    node_web.save(review_id, make_answers(), action="submit")
    draft_id = node_web.start_review()
    pages = ["/reviews/", "/reviews/new", "/settings", f"/reviews/{review_id}",
             f"/reviews/{draft_id}/edit", "/reviews/missing", "/exchange/", "/exchange/imports",
             "/exchange/conflicts", "/exchange/quarantine"]  # fmt: skip
    seen_static = set()
    for url in pages:
        response = node_web.get(url)
        html = response.get_data(as_text=True)
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
        assert "<script>" not in html and " style=" not in html, f"inline script or style on {url}"
        for link in _links(html):
            assert not link.startswith("//") and not re.match(r"[a-z]+:", link), f"{url}: {link}"
            if link.startswith("/static/"):
                seen_static.add(link)
    assert seen_static, "no stylesheet or script found"
    for link in seen_static:
        with node_web.get(link) as response:
            assert response.status_code == 200, link


def test_static_files_refer_only_to_files_that_exist():
    static = REPO_ROOT / "reviewapp" / "static"
    for css in static.rglob("*.css"):
        for ref in CSS_URL.findall(css.read_text(encoding="utf-8")):
            if not ref.startswith("data:"):
                assert (css.parent / ref).exists(), f"{css}: {ref}"
