"""Producing a lessons report: gather the records, aggregate, render HTML or PDF."""

from __future__ import annotations

import datetime as dt

from flask_babel import force_locale, format_datetime, gettext

from reviewapp.accounts.operations import audit
from reviewapp.formdefs import Catalogue
from reviewapp.reports import aggregate, charts, render
from reviewapp.storage import Store

REPORT = "regional"


def records(store: Store) -> list[dict]:
    """The latest submitted revision of every review (a draft on top does not count)."""
    found = []
    for review in store.iter_reviews():
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
            output: str, who: str, stylesheet: str = "style.css") -> tuple[bytes | str, dict]:  # fmt: skip
    """A report as ``"html"`` or ``"pdf"``; logs report generation in the audit log.

    :returns: the document and its figures.
    """
    report = aggregate.build(records(store), catalogue, options)
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
            document, refused = render.render_pdf(REPORT, html)
            report["refused_urls"] = refused
    audit(store, "report_generated", who, output=output, scope=options.scope, lang=options.lang,
          reviews=report["totals"]["reviews"], classification=report["classification"])  # fmt: skip
    return document, report
