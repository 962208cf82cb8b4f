"""Report pages: choose the scope and filters; the report (HTML preview, PDF) or data
file (CSV, XLSX) is made by a job in a process of its own (:mod:`reviewapp.reports.jobs`),
whose progress page the person may leave and come back to."""

from __future__ import annotations

import datetime as dt
import re

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_babel import gettext as _

from reviewapp import REPO_ROOT, get_catalogue, policy
from reviewapp.accounts.access import allow, current_user
from reviewapp.accounts.views import who
from reviewapp.formdefs import LANGUAGES, current_language
from reviewapp.policy import READERS
from reviewapp.reports import aggregate, jobs, operations

bp = Blueprint("reports", __name__, url_prefix="/reports", template_folder="templates")
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


def _jobs_page(errors: dict, form, status: int = 200, busy: str | None = None):
    data_dir = current_app.config["DATA_DIR"]
    recent = [jobs.public(job) for job in jobs.list_jobs(data_dir, current_user()["username"])]
    page = render_template("reports/index.html", choices=get_catalogue().choices, errors=errors,
                           args=form, jobs=recent[:10], busy=busy)  # fmt: skip
    return page, status


@bp.get("/")
@allow(*READERS)
def index():
    jobs.clean_up(current_app.config["DATA_DIR"])
    return _jobs_page({}, request.args)


@bp.post("/jobs")
@allow(*READERS)
def start():
    """Start making the report (or data file) in a process of its own."""
    kind = request.form.get("output", "")
    if kind not in jobs.KINDS:
        abort(400)
    if kind in ("csv", "xlsx") and not policy.may_export_data(current_user()):
        abort(403)
    options, errors = options_from(request.form)
    if errors:
        return _jobs_page(errors, request.form, 422)
    config = current_app.config
    try:
        job = jobs.start(
            config["DATA_DIR"], kind, options, who(), stylesheet=url_for("reports.stylesheet"),
            at_once=config["REPORT_JOBS_AT_ONCE"], queued=config["REPORT_JOBS_QUEUED"],
        )  # fmt: skip
    except jobs.Busy as exc:
        busy = _("This node is already making %(n)s reports. Please try again in a few minutes.", n=exc.unfinished)  # fmt: skip
        page, status = _jobs_page({}, request.form, 503, busy)
        return page, status, {"Retry-After": "30"}
    return redirect(url_for("reports.job", job_id=job["id"]), 303)


def _get_job(job_id: str) -> dict:
    """The job, for the person who asked for it (or an administrator); 404 for others."""
    job = jobs.find(current_app.config["DATA_DIR"], job_id)
    if job is None or not policy.may_see_job(current_user(), job):
        abort(404)
    return job


@bp.get("/jobs/<job_id>")
@allow(*READERS)
def job(job_id: str):
    found = _get_job(job_id)
    return render_template("reports/job.html", job=jobs.public(found))


@bp.get("/jobs/<job_id>/status")
@allow(*READERS)
def job_status(job_id: str):
    found = _get_job(job_id)
    status = jobs.public(found)
    if found["state"] == "done":
        status["download"] = url_for("reports.download", job_id=job_id)
    return jsonify(status), 200, {"Cache-Control": "no-store"}


@bp.get("/jobs/<job_id>/file")
@allow(*READERS)
def download(job_id: str):
    found = _get_job(job_id)
    if found["state"] != "done":
        return redirect(url_for("reports.job", job_id=job_id))
    jobs.downloaded(current_app.config["DATA_DIR"], found)
    mimetype = jobs.KINDS[found["kind"]][0]
    inline = found["kind"] == "html"  # the preview opens in the browser
    return send_file(found["file"], mimetype=mimetype, as_attachment=not inline,
                     download_name=jobs.download_name(found), max_age=0)  # fmt: skip


@bp.get("/style.css")
@allow(*READERS)
def stylesheet():
    path = REPO_ROOT / "reports" / operations.REPORT / "style.css"
    if not path.is_file():
        abort(404)
    return Response(path.read_text(encoding="utf-8"), mimetype="text/css")
