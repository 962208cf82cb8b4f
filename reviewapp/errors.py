"""Domain errors, and the one place that maps them to pages and status codes."""

from __future__ import annotations

from flask import Flask, render_template
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from reviewapp.storage import Conflict, NotFound


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


def init_app(app: Flask) -> None:
    def page(status: int, title: str, message: str):
        return render_template("error.html", title=title, message=message), status

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
