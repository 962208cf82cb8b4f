"""Rendering reports: one Jinja template per report in ``reports/<name>/``, as an HTML
preview and as a PDF made by WeasyPrint from the same HTML.

Templates see only plain data (:mod:`reviewapp.reports.aggregate`) and autoescape
everything. The PDF's URL fetcher serves the report's own folder and the app's static
files (fonts) and refuses everything else: no ``file://`` elsewhere, no network.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from urllib.parse import unquote, urlsplit

from flask_babel import format_date, gettext, ngettext
from jinja2 import Environment, FileSystemLoader, select_autoescape

from reviewapp import REPO_ROOT
from reviewapp.formdefs import Catalogue

STATIC_DIR = REPO_ROOT / "reviewapp" / "static"


def reports_dir() -> Path:
    return REPO_ROOT / "reports"


def environment(catalogue: Catalogue, lang: str) -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(reports_dir())),
        autoescape=select_autoescape(default=True, default_for_string=True),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_callables(gettext, ngettext, newstyle=True)

    def label(list_name: str, value) -> str:
        return catalogue.label(list_name, value, lang) if value not in (None, "") else "—"

    def day(value: str | None) -> str:
        import datetime as dt

        return format_date(dt.date.fromisoformat(value), "long") if value else "—"

    env.globals.update(label=label, day=day, lang=lang)
    return env


def render_html(name: str, catalogue: Catalogue, lang: str, context: dict) -> str:
    """A report template (``reports/<name>/template.html``) rendered with plain data."""
    return environment(catalogue, lang).get_template(f"{name}/template.html").render(**context)


class ReportFetcher:
    """Serves only the report's folder and the app's static files to WeasyPrint."""

    def __init__(self, report_dir: Path) -> None:
        self.roots = {"report": report_dir.resolve(), "static": STATIC_DIR.resolve()}
        self.refused: list[str] = []

    def resolve(self, url: str) -> Path | None:
        parts = urlsplit(url)
        if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
            return None
        path = Path(unquote(parts.path))
        if path.parts[:2] == ("/", "static"):
            root, real = (
                self.roots["static"],
                (self.roots["static"] / Path(*path.parts[2:])).resolve(),
            )
        else:
            root, real = self.roots["report"], path.resolve()
        return real if real.is_relative_to(root) and real.is_file() else None

    def make(self):
        from weasyprint.urls import URLFetcher, URLFetcherResponse

        outer = self

        class Fetcher(URLFetcher):
            def fetch(self, url, headers=None):
                real = outer.resolve(url)
                if real is None:
                    outer.refused.append(url)
                    raise ValueError(f"refused: {url}")
                mime = mimetypes.guess_type(real.name)[0] or "application/octet-stream"
                return URLFetcherResponse(
                    url, body=real.read_bytes(), headers={"Content-Type": mime}
                )

        return Fetcher()


def render_pdf(name: str, html: str) -> tuple[bytes, list[str]]:
    """The PDF of an HTML report, and the URLs it tried to load that were refused."""
    import weasyprint

    folder = reports_dir() / name
    fetcher = ReportFetcher(folder)
    pdf = weasyprint.HTML(
        string=html, base_url=folder.as_uri() + "/", url_fetcher=fetcher.make()
    ).write_pdf()
    return pdf, fetcher.refused
