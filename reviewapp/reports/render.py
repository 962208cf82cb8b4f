"""Rendering reports: one Jinja template per report in ``reports/<name>/``, as an HTML
preview and as a PDF made by WeasyPrint from the same HTML.

Templates see only plain data (:mod:`reviewapp.reports.aggregate`) and autoescape
everything. The PDF's URL fetcher serves the report's own folder and the app's static
files (fonts) and refuses everything else: no ``file://`` elsewhere, no network.
"""

from __future__ import annotations

import logging
import mimetypes
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


Progress = Callable[..., None]


@contextmanager
def _layout_progress(progress: Progress) -> Iterator[None]:
    """Report WeasyPrint's layout page by page, from its own progress log.

    WeasyPrint logs "Creating layout - Page N" for every page it lays out; when page
    counters need a second pass, the total is known from the first. Only records of
    this thread count, so a review printed by another thread does not mix in.
    """
    logger = logging.getLogger("weasyprint.progress")
    thread = threading.get_ident()
    seen = {"pass": 0, "last": 0, "pages": None}

    class Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.thread != thread or "Creating layout" not in str(record.msg):
                return
            page = record.args[0] if record.args else None
            if "Repagination" in str(record.msg):
                seen["pages"] = seen["last"]
                return
            if isinstance(page, int):
                seen["last"] = page
                progress("layout", page=page, pages=seen["pages"])

    handler, level, propagate = Handler(), logger.level, logger.propagate
    logger.addHandler(handler)
    if not logger.isEnabledFor(logging.INFO):
        # Switched on for the handler only, not for whatever logs the app keeps.
        logger.setLevel(logging.INFO)
        logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def render_pdf(name: str, html: str, progress: Progress | None = None) -> tuple[bytes, list[str]]:
    """The PDF of an HTML report, and the URLs it tried to load that were refused.

    :param progress: called with a stage (``styling``, ``layout`` with ``page`` and
        ``pages`` when known, ``writing`` with ``pages``) as the work goes on.
    """
    import weasyprint

    folder = reports_dir() / name
    fetcher = ReportFetcher(folder)
    html_doc = weasyprint.HTML(
        string=html, base_url=folder.as_uri() + "/", url_fetcher=fetcher.make()
    )
    if progress is None:
        return html_doc.write_pdf(), fetcher.refused
    progress("styling")
    with _layout_progress(progress):
        document = html_doc.render()
    # After layout the page count is known; drawing them into the PDF comes next.
    progress("writing", pages=len(document.pages))
    return document.write_pdf(), fetcher.refused
