"""First-run setup, node settings and the language switch."""

from __future__ import annotations

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from reviewapp import __version__, get_catalogue, get_store
from reviewapp.accounts.access import allow, sign_in
from reviewapp.errors import ValidationFailed
from reviewapp.formdefs import LANGUAGES
from reviewapp.node import operations
from reviewapp.security import safe_next

bp = Blueprint("node", __name__, template_folder="templates")

OPEN_BEFORE_SETUP = {"node.setup", "node.language", "static", "service_worker"}
LABELS = {
    "name": _l("Name of this installation"),
    "country": _l("Country"),
    "level": _l("Level"),
    "language": _l("Default language"),
    "username": _l("User name"),
    "display_name": _l("Full name"),
    "password": _l("Password"),
    "password_again": _l("Password again"),
}
ADMIN_FIELDS = ("username", "display_name", "password", "password_again")


@bp.app_context_processor
def node_context():
    return {"node": get_store().find_node(), "app_version": __version__}


def _render(template: str, values: dict, errors: dict, **extra):
    summary = [(k, LABELS.get(k, k), m) for k, msgs in errors.items() for m in msgs]
    return render_template(
        template,
        values=values,
        errors=errors,
        summary=summary,
        choices=get_catalogue().choices,
        **extra,
    ), 422 if errors else 200


def accounts_who() -> str:
    from reviewapp.accounts.views import who

    return who()


def require_setup():
    """Until the node is set up, every page leads to the setup page."""
    if request.endpoint in OPEN_BEFORE_SETUP or request.endpoint is None:
        return None
    if get_store().find_node() is None:
        return redirect(url_for("node.setup"))
    return None


@bp.route("/setup", methods=["GET", "POST"])
def setup():
    store = get_store()
    if store.find_node() is not None:
        return redirect(url_for("index"))
    errors, values = {}, {"language": session.get("lang", "es")}
    if request.method == "POST":
        values = request.form.to_dict()
        values.pop("csrf_token", None)
        admin = {k: values.pop(k, "") for k in ADMIN_FIELDS}
        try:
            node, user = operations.set_up_node(
                store, get_catalogue(), values, admin, current_app.config["PASSWORD_HASH_METHOD"]
            )
        except ValidationFailed as exc:
            errors = exc.errors
            values.update(username=admin["username"], display_name=admin["display_name"])
        else:
            session["lang"] = node["language"]
            sign_in(user, kiosk=False)
            flash(_("This node is ready. You can start a deployment review."), "success")
            return redirect(url_for("reviews.new"))
    return _render("node/setup.html", values, errors)


@bp.route("/settings", methods=["GET", "POST"])
@allow("admin")
def settings():
    store = get_store()
    node = store.find_node()
    errors, values = {}, node
    if request.method == "POST":
        values = request.form.to_dict()
        values.pop("csrf_token", None)
        try:
            operations.update_node(store, get_catalogue(), values, accounts_who())
        except ValidationFailed as exc:
            errors = exc.errors
        else:
            flash(_("Settings saved."), "success")
            return redirect(url_for("node.settings"))
    return _render("node/settings.html", values, errors, data_dir=current_app.config["DATA_DIR"])


@bp.post("/language")
def language():
    chosen = request.form.get("lang", "")
    if chosen in LANGUAGES:
        session["lang"] = chosen
    return redirect(safe_next(request.form.get("next"), url_for("index")))
