"""Signing in and out, one's own account, user administration, the audit log."""

from __future__ import annotations

import csv
import io

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from reviewapp import get_store
from reviewapp.accounts import operations
from reviewapp.accounts.access import EVERYONE, allow, sign_in, sign_out
from reviewapp.cells import cell
from reviewapp.errors import ValidationFailed
from reviewapp.security import safe_next

bp = Blueprint("accounts", __name__, template_folder="templates")

LABELS = {
    "username": _l("User name"),
    "display_name": _l("Full name"),
    "role": _l("Role"),
    "password": _l("Password"),
    "password_again": _l("Password again"),
    "pin": _l("PIN"),
    "current": _l("Current password"),
}
ROLE_NAMES = {
    "contributor": _l("Contributor"),
    "analyst": _l("Analyst"),
    "viewer": _l("Viewer"),
    "admin": _l("Administrator"),
}


def who() -> str:
    user = g.get("user")
    return user["username"] if user else f"web:{request.remote_addr or 'local'}"


def _hash_method() -> str:
    return current_app.config["PASSWORD_HASH_METHOD"]


def _summary(errors: dict) -> list:
    return [(k, LABELS.get(k, k), m) for k, msgs in errors.items() for m in msgs]


@bp.app_context_processor
def account_context():
    return {"current_user": g.get("user"), "ROLE_NAMES": ROLE_NAMES}


@bp.route("/login", methods=["GET", "POST"])
def login():
    node = get_store().find_node()
    kiosk = bool(node and node.get("kiosk"))
    target = safe_next(request.values.get("next"), url_for("index"))
    error, status, headers = None, 200, {}
    if request.method == "POST":
        status = 401
        by_pin = kiosk and request.form.get("method") == "pin"
        secret = request.form.get("pin" if by_pin else "password", "")
        try:
            user = operations.authenticate(
                get_store(), request.form.get("username", ""), secret, by_pin, who(),
                _hash_method(),
            )  # fmt: skip
        except operations.LoginFailed as exc:
            if exc.paused_until:
                seconds = operations.seconds_until(exc.paused_until)
                status, headers = 429, {"Retry-After": str(seconds)}
                error = _(
                    "Too many wrong PINs on this computer: signing in with a PIN is paused for %(minutes)s minutes. Sign in with your password, or try again later.",
                    minutes=-(-seconds // 60),
                )
            elif exc.locked_until:
                error = _(
                    "Too many failed attempts: this account is locked for a few minutes. Try again later or ask an administrator."
                )
            else:
                error = _("The user name or the password or PIN is not right.")
        else:
            sign_in(user, kiosk=by_pin)
            return redirect(target)
    return (
        render_template("accounts/login.html", kiosk=kiosk, error=error, target=target),
        status,
        headers,
    )


@bp.post("/logout")
@allow(*EVERYONE)
def logout():
    operations.audit(get_store(), "logout", who(), username=g.user["username"])
    sign_out()
    flash(_("You have signed out."), "success")
    return redirect(url_for("accounts.login"))


@bp.route("/account", methods=["GET", "POST"])
@allow(*EVERYONE)
def account():
    errors = {}
    if request.method == "POST":
        try:
            user = operations.change_own_password(
                get_store(), g.user, request.form.get("current", ""), request.form.get("password", ""),
                request.form.get("password_again", ""), _hash_method(),
            )  # fmt: skip
        except ValidationFailed as exc:
            errors = exc.errors
        else:
            sign_in(user, kiosk=False)
            flash(_("Your password was changed."), "success")
            return redirect(url_for("accounts.account"))
    return render_template(
        "accounts/account.html", errors=errors, summary=_summary(errors)
    ), 422 if errors else 200


@bp.route("/users", methods=["GET", "POST"])
@allow("admin")
def users():
    store = get_store()
    errors, values = {}, {"role": "contributor"}
    if request.method == "POST":
        values = {
            k: request.form.get(k, "")
            for k in ("username", "display_name", "role", "password", "password_again", "pin")
        }
        try:
            created = operations.create_user(store, values, who(), _hash_method())
        except ValidationFailed as exc:
            errors = exc.errors
        else:
            flash(_("Account %(name)s created.", name=created["username"]), "success")
            return redirect(url_for("accounts.users"))
    return render_template(
        "accounts/users.html",
        users=store.list_users(),
        errors=errors,
        values=values,
        summary=_summary(errors),
    ), 422 if errors else 200


@bp.route("/users/<username>", methods=["GET", "POST"])
@allow("admin")
def user(username: str):
    store = get_store()
    target = store.find_user(username)
    if target is None:
        return render_template(
            "error.html", title=_("Not found"), message=_("There is no such account.")
        ), 404
    errors = {}
    if request.method == "POST":
        form = request.form
        values = {
            "display_name": form.get("display_name", ""),
            "role": form.get("role", ""),
            "disabled": form.get("disabled") == "yes",
            "password": form.get("password", ""),
            "password_again": form.get("password_again", "") if form.get("password") else None,
            "pin": form.get("pin", ""),
        }
        try:
            operations.update_user(store, username, values, who(), _hash_method())
        except ValidationFailed as exc:
            errors = exc.errors
        else:
            flash(_("Account %(name)s saved.", name=username), "success")
            return redirect(url_for("accounts.users"))
    return render_template(
        "accounts/user.html", target=target, errors=errors, summary=_summary(errors)
    ), 422 if errors else 200


@bp.get("/audit")
@allow("admin")
def audit():
    return render_template("accounts/audit.html", entries=get_store().list_audit(limit=500))


@bp.get("/audit.csv")
@allow("admin")
def audit_csv():
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_NONNUMERIC)
    writer.writerow(["at", "event", "who", "username", "details"])
    for entry in reversed(get_store().list_audit()):
        details = {
            k: v for k, v in entry.items() if k not in ("id", "at", "event", "who", "username")
        }
        row = [entry["at"], entry["event"], entry["who"], entry.get("username", "")]
        row.append(";".join(f"{k}={v}" for k, v in sorted(details.items())))
        writer.writerow([cell(str(c)) for c in row])
    operations.audit(get_store(), "audit_exported", who())
    return Response(
        "\ufeff" + out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": "attachment; filename=audit-log.csv"},
    )
