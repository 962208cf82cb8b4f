"""Report pages: choose the scope and filters, preview as HTML, download the PDF."""

from __future__ import annotations

import datetime as dt
import re

from flask import Blueprint, Response, abort, render_template, request, send_file, url_for
from flask_babel import gettext as _

from reviewapp import REPO_ROOT, get_catalogue, get_store
from reviewapp.accounts.access import allow
from reviewapp.accounts.views import who
from reviewapp.formdefs import LANGUAGES, current_language
from reviewapp.reports import aggregate, operations

bp = Blueprint("reports", __name__, url_prefix="/reports", template_folder="templates")
READERS = ("viewer", "analyst", "admin")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _is_date(value: str) -> bool:
    try:
        return bool(DATE.match(value)) and dt.date.fromisoformat(value) is not None
    except ValueError:
        return False


def options_from(args) -> tuple[aggregate.ReportOptions, dict[str, str]]:
    """Report options from a query string, with a message for each bad value."""
    catalogue, errors = get_catalogue(), {}
    scope = args.get("scope", "alcopaz")
    if scope not in aggregate.SCOPES:
        errors["scope"] = _("Choose one of the options offered.")
    countries = [c for c in args.getlist("country") if c]
    if any(c not in catalogue.choices["countries"].values for c in countries):
        errors["country"] = _("Choose one of the options offered.")
    if scope == "countries" and not countries:
        errors["country"] = _("Choose at least one country.")
    dates = {}
    for key, default in (("from", "1900-01-01"), ("to", "2999-12-31")):
        value = args.get(key, "").strip()
        if value and not _is_date(value):
            errors[key] = _("Enter a valid date (YYYY-MM-DD).")
        dates[key] = value or default
    if not errors.get("from") and not errors.get("to") and dates["from"] > dates["to"]:
        errors["to"] = _("The end of the period is before its start.")
    lang = args.get("lang") or current_language()
    if lang not in LANGUAGES:
        errors["lang"] = _("Choose one of the options offered.")
    ceiling = args.get("max_sensitivity", "unclassified")
    if ceiling not in catalogue.choices["sensitivity"].values:
        errors["max_sensitivity"] = _("Choose one of the options offered.")
    lists = {}
    for key, list_name in (
        ("operation", "operations"),
        ("category", "personnel_categories"),
        ("area", "functional_areas"),
    ):
        values = [v for v in args.getlist(key) if v]
        if any(v not in catalogue.choices[list_name].values for v in values):
            errors[key] = _("Choose one of the options offered.")
        lists[key] = values
    options = aggregate.ReportOptions(
        scope=scope, countries=countries, date_from=dates["from"], date_to=dates["to"], lang=lang,
        max_sensitivity=ceiling, operations=lists["operation"], categories=lists["category"], areas=lists["area"],
    )  # fmt: skip
    return options, errors


@bp.get("/")
@allow(*READERS)
def index():
    return render_template(
        "reports/index.html", choices=get_catalogue().choices, errors={}, args=request.args
    )


def _produce(output: str):
    options, errors = options_from(request.args)
    if errors:
        page = render_template(
            "reports/index.html", choices=get_catalogue().choices, errors=errors, args=request.args
        )
        return None, (page, 422)
    store = get_store()
    stylesheet = url_for("reports.stylesheet") if output == "html" else "style.css"
    document, report = operations.produce(
        store, get_catalogue(), store.find_node(), options, output, who(), stylesheet
    )
    return (document, report, options), None


@bp.get("/preview")
@allow(*READERS)
def preview():
    result, error = _produce("html")
    return error if error else Response(result[0], mimetype="text/html")


@bp.get("/pdf")
@allow(*READERS)
def pdf():
    import io

    result, error = _produce("pdf")
    if error:
        return error
    document, _report, options = result
    name = f"lessons-report-{options.scope}-{options.lang}.pdf"
    return send_file(
        io.BytesIO(document), mimetype="application/pdf", as_attachment=True, download_name=name
    )


@bp.get("/data.<kind>")
@allow("analyst", "admin")
def data(kind: str):
    """Every observation the report's filters select, as CSV or XLSX."""
    import io

    from reviewapp.accounts.operations import audit
    from reviewapp.reports import export

    if kind not in ("csv", "xlsx"):
        abort(404)
    options, errors = options_from(request.args)
    if errors:
        page = render_template(
            "reports/index.html", choices=get_catalogue().choices, errors=errors, args=request.args
        )
        return page, 422
    store = get_store()
    review_rows, observation_rows = export.rows(operations.records(store), get_catalogue(), options)
    if kind == "csv":
        body, mimetype = export.to_csv(observation_rows), "text/csv"
    else:
        body = export.to_xlsx(review_rows, observation_rows, options.lang)
        mimetype = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    audit(
        store,
        "data_exported",
        who(),
        format=kind,
        scope=options.scope,
        observations=len(observation_rows),
    )
    name = f"lessons-data-{options.scope}-{options.lang}.{kind}"
    return send_file(io.BytesIO(body), mimetype=mimetype, as_attachment=True, download_name=name)


@bp.get("/style.css")
@allow(*READERS)
def stylesheet():
    path = REPO_ROOT / "reports" / operations.REPORT / "style.css"
    if not path.is_file():
        abort(404)
    return Response(path.read_text(encoding="utf-8"), mimetype="text/css")
