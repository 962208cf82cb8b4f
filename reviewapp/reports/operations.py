"""Producing a lessons report: gather the records, aggregate, render HTML or PDF."""

from __future__ import annotations

import datetime as dt

from flask_babel import force_locale, format_datetime, gettext

from reviewapp.accounts.operations import audit
from reviewapp.formdefs import Catalogue
from reviewapp.reports import aggregate, charts, render
from reviewapp.storage import Store

REPORT = "regional"


def _quiet(stage: str, **details) -> None:
    """The progress callback when nobody is watching."""


def records(store: Store, progress: render.Progress = _quiet) -> list[dict]:
    """The latest submitted revision of every review (a draft on top does not count).

    :param progress: called with ``("collecting", done=, total=)`` every 1,000 reviews.
    """
    found, total = [], store.count_reviews()
    progress("collecting", done=0, total=total)
    for done, review in enumerate(store.iter_reviews(), 1):
        if done % 1000 == 0:
            progress("collecting", done=done, total=total)
        if review["status"] == "submitted":
            found.append(review)
        else:
            earlier = [r for r in store.list_revisions(review["id"]) if r["status"] == "submitted"]
            if earlier:
                found.append(earlier[-1])
    return found


def review_pdf(review: dict, form, catalogue: Catalogue, lang: str, personal: bool) -> bytes:
    """One review as a PDF; its personal fields only when the reader may see them."""
    from reviewapp.formdefs import display_value

    def shown(fdef, value):
        return display_value(fdef, value, catalogue, lang)

    heading = ("kind", "functional_area", "phase", "priority", "sensitivity")
    with force_locale(lang):
        a = review["answers"]
        sections = []
        for section in form.sections:
            rows, observations = [], []
            for fdef in section.fields:
                if fdef.type == "repeat":
                    for item in a.get(fdef.name) or []:
                        observations.append({
                            "title": item.get("title", ""),
                            "meta": [shown(f, item.get(f.name)) for f in fdef.fields if f.name in heading],
                            "rows": [(f.label_in(lang), shown(f, item.get(f.name))) for f in fdef.fields
                                     if f.name not in ("title", *heading) and f.is_shown(item)
                                     and item.get(f.name) not in (None, "", [])],
                        })  # fmt: skip
                elif fdef.is_shown(a) and (personal or not fdef.personal):
                    rows.append((fdef.label_in(lang), shown(fdef, a.get(fdef.name))))
            sections.append(
                {"label": section.label[lang], "rows": rows, "observations": observations}
            )
        highest = aggregate.classification([review], catalogue)
        context = {
            "title": form.title[lang],
            "review": review,
            "sections": sections,
            "classification": catalogue.label("sensitivity", highest, lang),
            "status": gettext("Submitted") if review["status"] == "submitted" else gettext("Draft"),
            "generated_at": format_datetime(dt.datetime.now(dt.UTC), "long"),
            "stylesheet": "style.css",
        }
        document, _refused = render.render_pdf(
            "review", render.render_html("review", catalogue, lang, context)
        )
    return document


def scope_name(catalogue: Catalogue, options: aggregate.ReportOptions) -> str:
    countries = sorted(aggregate.scope_countries(catalogue, options))
    if options.scope == "alcopaz":
        return gettext("ALCOPAZ member countries (%(n)s)", n=len(countries))
    if options.scope == "relacopaz":
        return gettext("RELACOPAZ member countries (%(n)s)", n=len(countries))
    if options.scope == "lac":
        return gettext("Latin America and the Caribbean (%(n)s countries)", n=len(countries))
    return ", ".join(catalogue.label("countries", c, options.lang) for c in countries)


def produce(store: Store, catalogue: Catalogue, node: dict, options: aggregate.ReportOptions,
            output: str, who: str, stylesheet: str = "style.css",
            progress: render.Progress = _quiet) -> tuple[bytes | str, dict]:  # fmt: skip
    """A report as ``"html"`` or ``"pdf"``; logs report generation in the audit log.

    :param progress: called with each stage in turn: ``collecting``, ``aggregating``,
        ``rendering``, and for a PDF ``styling``, ``layout`` (page by page), ``writing``.
    :returns: the document and its figures.
    """
    found = records(store, progress)
    progress("aggregating", reviews=len(found))
    report = aggregate.build(found, catalogue, options)
    progress("rendering")
    with force_locale(options.lang):
        lang = options.lang

        def lab(list_name, value):
            return catalogue.label(list_name, value, lang)

        if options.national:
            title = gettext(
                "National lessons report: %(country)s",
                country=lab("countries", options.countries[0]),
            )
        else:
            title = gettext("Regional lessons report")
        context = {
            "title": title,
            "scope_name": scope_name(catalogue, options),
            "node": node,
            "generated_at": format_datetime(dt.datetime.now(dt.UTC), "long"),
            "stylesheet": stylesheet,
            "imports": store.list_imports(),
            "phases": aggregate.PHASES,
            "country_chart": charts.bars(
                [(lab("countries", c), n) for c, n in report["participation"]["by_country"]]
            ),
            "phase_chart": charts.bars(
                [
                    (lab("phases", p), d["mean"])
                    for p, d in report["ratings"]["by_phase"].items()
                    if d["mean"] is not None
                ],
                maximum=5,
            ),
            "theme_chart": charts.paired_bars(
                [
                    (lab("functional_areas", t["area"]), t["issue"], t["good_practice"])
                    for t in report["themes"]["by_area"]
                ],
                (lab("observation_kinds", "issue"), lab("observation_kinds", "good_practice")),
            ),
        }
        html = render.render_html(REPORT, catalogue, lang, {"report": report, **context})
        document: bytes | str = html
        if output == "pdf":
            document, refused = render.render_pdf(REPORT, html, progress)
            report["refused_urls"] = refused
    audit(store, "report_generated", who, output=output, scope=options.scope, lang=options.lang,
          reviews=report["totals"]["reviews"], classification=report["classification"])  # fmt: skip
    return document, report


def export_data(store: Store, catalogue: Catalogue, options: aggregate.ReportOptions, kind: str,
                who: str, progress: render.Progress = _quiet) -> tuple[bytes, int, int]:  # fmt: skip
    """Every observation the options select, as ``"csv"`` or ``"xlsx"``; audited.

    :returns: the file, and how many reviews and observations it holds.
    """
    from reviewapp.reports import export

    found = records(store, progress)
    progress("aggregating", reviews=len(found))
    review_rows, observation_rows = export.rows(found, catalogue, options)
    progress("writing")
    if kind == "csv":
        body = export.to_csv(observation_rows)
    else:
        body = export.to_xlsx(review_rows, observation_rows, options.lang)
    audit(store, "data_exported", who, format=kind, scope=options.scope,
          observations=len(observation_rows))  # fmt: skip
    return body, len(review_rows), len(observation_rows)
