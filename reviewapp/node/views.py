"""First-run setup, node settings and the language switch."""

from __future__ import annotations

import re

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    session,
    url_for,
)
from flask_babel import format_decimal
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from reviewapp import __version__, get_catalogue, get_store
from reviewapp.accounts.access import allow, sign_in
from reviewapp.errors import ValidationFailed
from reviewapp.formdefs import LANGUAGES
from reviewapp.node import backup, operations
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
    data_dir = current_app.config["DATA_DIR"]
    return _render(
        "node/settings.html",
        values,
        errors,
        data_dir=data_dir,
        data_size=human_size(operations.folder_size(data_dir)),
        last_backup_at=node.get("last_backup_at"),
        set_aside=store.list_set_aside(),
    )


@bp.post("/settings/backup")
@allow("admin")
def download_backup():
    """A fresh backup of the whole node, keys included, as one zip file."""
    store = get_store()
    archive, manifest = backup.backup_zip(store, current_app.config["DATA_DIR"], accounts_who())
    node = manifest["node"] or {}
    slug = re.sub(r"[^A-Za-z0-9]+", "-", node.get("name") or "node").strip("-")[:40] or "node"
    stamp = manifest["created_at"][:16].replace(":", "").replace("T", "-")
    response = send_file(
        archive,
        as_attachment=True,
        download_name=f"backup-{slug}-{stamp}.zip",
        mimetype="application/zip",
    )
    # Secret keys inside: no browser or proxy cache may keep a copy.
    response.headers["Cache-Control"] = "no-store"
    return response


def human_size(size: int) -> str:
    """A size on disk in the reader's language: 1,5 MB in Spanish, 1,5 Mo in French."""
    if size >= 2**30:
        return _("%(size)s GB", size=format_decimal(size / 2**30, format="#,##0.0"))
    if size >= 2**20:
        return _("%(size)s MB", size=format_decimal(size / 2**20, format="#,##0.0"))
    if size >= 2**10:
        return _("%(size)s KB", size=format_decimal(size / 2**10, format="#,##0.0"))
    return _("%(size)s bytes", size=format_decimal(size))


@bp.post("/language")
def language():
    chosen = request.form.get("lang", "")
    if chosen in LANGUAGES:
        session["lang"] = chosen
    return redirect(safe_next(request.form.get("next"), url_for("index")))
