"""Review pages: list, start, edit (save draft / submit), read, revise."""

from __future__ import annotations

import datetime as dt

from flask import (
    Blueprint,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_babel import format_datetime
from flask_babel import gettext as _

from reviewapp import get_catalogue, get_store, policy
from reviewapp.accounts.access import allow, current_user
from reviewapp.errors import ValidationFailed, describe_not_stored
from reviewapp.formdefs import (
    LANGUAGES,
    FieldDef,
    answers_from_form,
    current_language,
    describe_input,
    display_value,
    input_name,
)
from reviewapp.policy import EVERYONE, WRITERS
from reviewapp.reviews import operations
from reviewapp.storage import Conflict, StoreBusy, StoreUnwritable

bp = Blueprint("reviews", __name__, url_prefix="/reviews", template_folder="templates")

LIST_FILTERS = ("status", "country", "operation", "personnel_category", "archived")


def _readable(review_id: str) -> dict:
    review = get_store().get_review(review_id)
    if not policy.may_read(current_user(), review):
        abort(404)  # the same answer as for a review that does not exist
    return review


@allow(*EVERYONE)
def index():
    return redirect(url_for("reviews.list_reviews"))


@bp.get("/")
@allow(*EVERYONE)
def list_reviews():
    store, catalogue = get_store(), get_catalogue()
    filters = {k: request.args.get(k, "") for k in LIST_FILTERS}
    filters.update(policy.list_scope(current_user()))
    # Reviews archived after delivery are out of the way unless asked for.
    filters["archived"] = {"": "no", "all": ""}.get(filters["archived"], filters["archived"])
    page = request.args.get("page", 1, type=int) or 1
    per_page = 50
    reviews, total = store.list_reviews(
        filters, offset=(max(page, 1) - 1) * per_page, limit=per_page
    )
    return render_template(
        "reviews/list.html",
        reviews=reviews,
        total=total,
        page=max(page, 1),
        pages=max(1, -(-total // per_page)),
        filters=filters,
        choices=catalogue.choices,
    )


@bp.route("/new", methods=["GET", "POST"])
@allow(*WRITERS)
def new():
    if request.method == "POST":
        language = request.form.get("language")
        if language not in LANGUAGES:
            language = current_language()
        node = get_store().find_node()
        review = operations.start_review(
            get_store(), get_catalogue(), node, language, current_user()["username"]
        )
        return redirect(url_for("reviews.edit", review_id=review["id"]))
    return render_template("reviews/new.html", languages=get_catalogue().choices["languages"])


@bp.route("/<review_id>/edit", methods=["GET", "POST"])
@allow(*WRITERS)
def edit(review_id: str):
    store, catalogue = get_store(), get_catalogue()
    review = _readable(review_id)
    if review["status"] != operations.DRAFT:
        if request.method == "POST":  # a stale page or another tab: say so, keep nothing
            flash(
                _("A submitted review cannot be changed. Use “Revise” to start a new revision."),
                "error",
            )
        return redirect(url_for("reviews.detail", review_id=review_id))
    if not policy.may_edit(current_user(), review):
        abort(403)
    form = operations.form_of(catalogue, review)
    if request.method == "GET":
        return _render_edit(form, review, review["answers"], review["content_hash"], {})

    answers = _with_hidden_personal(form, review, answers_from_form(form, request.form))
    expected = request.form.get("_etag", "")
    action = request.form.get("action", "save")
    anchor = None
    repeats = {f.name for f in form.fields.values() if f.type == "repeat"}
    if action.startswith("add:"):
        repeat = action.removeprefix("add:")
        if repeat not in repeats:
            abort(400)
        answers = operations.add_item(form, answers, repeat)
        anchor = f"item-{repeat}-{len(answers[repeat]) - 1}"
    elif action.startswith("remove:"):
        repeat, _sep, index = action.removeprefix("remove:").partition(":")
        if repeat not in repeats or not index.isdigit():
            abort(400)
        answers = operations.remove_item(answers, repeat, int(index))
        anchor = f"section-{repeat}"
    try:
        if action == "submit":
            operations.submit_review(store, catalogue, review_id, answers, expected)
            flash(_("Review submitted. Thank you."), "success")
            return redirect(url_for("reviews.detail", review_id=review_id))
        saved = operations.save_draft(store, catalogue, review_id, answers, expected)
    except ValidationFailed as exc:
        etag = store.get_review(review_id)["content_hash"] if exc.saved else expected
        if exc.saved:
            flash(_("Draft saved, but the review is not complete yet."), "warning")
        return _render_edit(form, review, answers, etag, exc.errors, status=422)
    except (StoreBusy, StoreUnwritable) as exc:
        # Not stored: the form comes back with what was typed, and says why.
        status, title, message, _code, headers = describe_not_stored(exc)
        flash(f"{title}. {message}", "error")
        page, status = _render_edit(form, review, answers, expected, {}, status=status)
        return page, status, headers
    flash(
        _(
            "Draft saved at %(time)s.",
            time=format_datetime(_parse_time(saved["updated_at"]), "HH:mm"),
        ),
        "success",
    )
    return redirect(url_for("reviews.edit", review_id=review_id, _anchor=anchor))


def _with_hidden_personal(form, review: dict, answers: dict) -> dict:
    """An editor who may not see the personal fields is not shown them, so they are
    not posted: keep the stored answers rather than erase them."""
    if policy.may_see_personal(current_user(), review):
        return answers
    kept = {n: review["answers"][n] for n in form.personal_fields() if n in review["answers"]}
    return {**{k: v for k, v in answers.items() if k not in form.personal_fields()}, **kept}


def _render_edit(form, review, answers, etag, errors, status=200):
    lang = current_language()
    summary = [
        (name, describe_input(form, name, lang), message)
        for name, messages in errors.items()
        for message in messages
    ]
    return render_template(
        "reviews/edit.html",
        form=form,
        review=review,
        answers=answers,
        etag=etag,
        errors=errors,
        summary=summary,
        choices=get_catalogue().choices,
        personal=policy.may_see_personal(current_user(), review),
    ), status


@bp.post("/<review_id>/autosave")
@allow(*WRITERS)
def autosave(review_id: str):
    """The page's background save: the same draft rules as "Save draft", answered in JSON."""
    store, catalogue = get_store(), get_catalogue()
    review = _readable(review_id)
    if not policy.may_edit(current_user(), review):
        return jsonify(status="not_editable"), 409
    form = operations.form_of(catalogue, review)
    answers = _with_hidden_personal(form, review, answers_from_form(form, request.form))
    try:
        saved = operations.save_draft(
            store, catalogue, review_id, answers, request.form.get("_etag", "")
        )
    except ValidationFailed as exc:
        return jsonify(status="invalid", errors=exc.errors), 422
    except Conflict:
        return jsonify(status="conflict"), 409
    return jsonify(status="saved", etag=saved["content_hash"], saved_at=saved["updated_at"])


@bp.get("/<review_id>")
@allow(*EVERYONE)
def detail(review_id: str):
    store = get_store()
    review = _readable(review_id)
    return _render_detail(review, store.list_revisions(review_id))


@bp.get("/<review_id>/revisions/<revision_id>")
@allow(*EVERYONE)
def revision(review_id: str, revision_id: str):
    store = get_store()
    _readable(review_id)
    old = store.get_revision(revision_id)
    if old["id"] != review_id:
        abort(404)
    return _render_detail(old, store.list_revisions(review_id), archived=True)


def _render_detail(review, revisions, archived=False):
    store = get_store()
    form = operations.form_of(get_catalogue(), review)
    conflicts = [c for c in store.list_conflicts("open") if c["review_id"] == review["id"]]
    delivery = store.list_deliveries().get(review["revision_id"])
    return render_template(
        "reviews/detail.html",
        form=form,
        review=review,
        revisions=revisions,
        archived=archived,
        conflicts=conflicts,
        delivery=delivery,
        personal=policy.may_see_personal(current_user(), review),
        can_edit=policy.may_edit(current_user(), review),
        can_revise=policy.may_revise(current_user(), review),
    )


@bp.get("/<review_id>/pdf")
@allow(*EVERYONE)
def pdf(review_id: str):
    """One review as a clean PDF, as its reader may see it."""
    import io

    from reviewapp.reports.operations import review_pdf

    review = _readable(review_id)
    form = operations.form_of(get_catalogue(), review)
    document = review_pdf(
        review,
        form,
        get_catalogue(),
        current_language(),
        policy.may_see_personal(current_user(), review),
    )
    name = f"deployment-review-{review['id'][:8]}-r{review['revision']}.pdf"
    return send_file(
        io.BytesIO(document), mimetype="application/pdf", as_attachment=True, download_name=name
    )


@bp.post("/<review_id>/revise")
@allow(*WRITERS)
def revise(review_id: str):
    review = _readable(review_id)
    if not policy.may_revise(current_user(), review):
        abort(403)
    operations.revise_review(get_store(), review_id, current_user()["username"])
    flash(_("A new revision is open for editing; the submitted one is kept."), "success")
    return redirect(url_for("reviews.edit", review_id=review_id))


def _parse_time(stamp: str):
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


@bp.app_template_global()
def show_value(fdef: FieldDef, value) -> str:
    """An answer as a reader should see it, in the current language."""
    return display_value(fdef, value, get_catalogue(), current_language())


@bp.app_template_global()
def choice_label(list_name: str, value) -> str:
    return get_catalogue().label(list_name, value, current_language()) if value else "—"


@bp.app_template_global()
def when(stamp: str | None) -> str:
    if not stamp:
        return "—"
    try:
        return format_datetime(_parse_time(stamp), "short")
    except (TypeError, ValueError, AttributeError):
        return str(stamp)  # a record from elsewhere with a malformed time: shown as it is


bp.add_app_template_global(input_name, "input_name")
