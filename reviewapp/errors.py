"""Domain errors, and the one place that maps them to pages and status codes."""

from __future__ import annotations

from flask import Flask, jsonify, render_template, request
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from reviewapp.storage import (
    Conflict,
    NotFound,
    StoreBusy,
    StoreDamaged,
    StoreFull,
    StoreUnwritable,
)

RETRY_AFTER_SECONDS = 5


class NotEditable(RuntimeError):
    """A submitted review was asked to change in place."""


class ValidationFailed(ValueError):
    """Answers that do not pass the form's schema.

    :param errors: problems keyed by HTML input name.
    :param saved: whether the answers were still kept as a draft.
    """

    def __init__(self, errors: dict[str, list[str]], saved: bool = False) -> None:
        super().__init__(f"{len(errors)} field(s) need attention")
        self.errors = errors
        self.saved = saved


def describe_not_stored(exc: StoreBusy | StoreUnwritable) -> tuple[int, str, str, str, dict]:
    """What to tell a person whose write was refused: ``(status, title, message, code,
    headers)``; a page that can keep what was typed (the review editor) uses it too."""
    if isinstance(exc, StoreBusy):
        return (
            503,
            _("The node is busy"),
            _(
                "Another task (an import or a backup) is using the data right now. Nothing "
                "was lost. Try again in a few seconds."
            ),
            "busy",
            {"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    if isinstance(exc, StoreFull):
        message = _(
            "The disk of this computer is full, so this was not saved. What was saved "
            "before is safe. Free some space (or ask the administrator) and try again."
        )
    else:
        message = _(
            "The data folder cannot be written (it is read-only), so this was not "
            "saved. What was saved before is safe. Ask the administrator."
        )
    return 507, _("Not saved"), message, "unwritable", {}


def _wants_json() -> bool:
    """The page's background requests (autosave) are answered in JSON."""
    return request.path.endswith("/autosave") or request.accept_mimetypes.best == "application/json"


def init_app(app: Flask) -> None:
    def page(status: int, title: str, message: str, code: str = "error", headers=None):
        if _wants_json():
            body = jsonify(status=code, error=code, title=title, message=message)
            return body, status, headers or {}
        return render_template("error.html", title=title, message=message), status, headers or {}

    @app.errorhandler(StoreBusy)
    @app.errorhandler(StoreUnwritable)
    def not_stored(exc):
        status, title, message, code, headers = describe_not_stored(exc)
        return page(status, title, message, code, headers)

    @app.errorhandler(StoreDamaged)
    def damaged(exc):
        app.logger.error("%s", exc)
        return page(
            500,
            _("Data folder damaged"),
            _(
                "A file of this node's data folder is damaged, so nothing more will be saved "
                "until it is repaired. Nothing was overwritten. Ask the administrator to "
                "restore the node from a backup. Details: %(details)s",
                details=str(exc),
            ),
            "damaged",
        )

    @app.errorhandler(NotFound)
    def not_found(exc):
        return page(404, _("Not found"), _("There is no record with that identifier."))

    @app.errorhandler(Conflict)
    def conflict(exc):
        return page(
            409,
            _("Changed elsewhere"),
            _(
                "This record was changed in another window or by another person since you "
                "opened it. Go back, copy what you typed, and reload the page."
            ),
        )

    @app.errorhandler(NotEditable)
    def not_editable(exc):
        return page(
            409,
            _("Already submitted"),
            _("A submitted review cannot be changed. Use “Revise” to start a new revision."),
        )

    @app.errorhandler(CSRFError)
    def csrf_error(exc):
        return page(
            400,
            _("Form expired"),
            _("The form was open too long or came from elsewhere. Reload the page and try again."),
        )

    @app.errorhandler(HTTPException)
    def http_error(exc):
        known = {
            400: (_("Bad request"), _("The request could not be understood.")),
            404: (_("Page not found"), _("There is no page at this address.")),
            405: (_("Not allowed"), _("This page cannot be used that way.")),
            413: (_("Too large"), _("What was sent is larger than this app accepts.")),
        }
        title, message = known.get(exc.code, (f"{exc.code} {exc.name}", exc.description or ""))
        return page(exc.code or 500, title, message)
