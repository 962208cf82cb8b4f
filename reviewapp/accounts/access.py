"""Who may open which page: every endpoint declares its roles, or nobody may.

``@allow("analyst", "admin")`` on a view; :func:`guard` runs before every request,
finds the signed-in user, ends stale sessions (a session is accepted only while its id is
listed with the user: signing out, a new password or a disabled account end it), and
refuses what the role may not do.
A view without a declaration is refused to everyone: a new route cannot be forgotten.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from flask import abort, current_app, flash, g, redirect, request, session, url_for
from flask_babel import gettext as _

from reviewapp.accounts import operations
from reviewapp.policy import EVERYONE  # noqa: F401 - the role groups live in the policy

# Open without signing in. node.setup is open only until the node is set up.
PUBLIC = frozenset({"accounts.login", "static", "service_worker", "node.language", "node.setup"})


def allow(*roles: str) -> Callable:
    def mark(view: Callable) -> Callable:
        view.allowed_roles = frozenset(roles)
        return view

    return mark


def current_user() -> dict | None:
    return g.get("user")


def sign_in(user: dict, kiosk: bool) -> None:
    """A fresh session, registered with the user: only listed sessions are accepted."""
    from reviewapp import get_store

    sid = operations.open_session(
        get_store(), user["username"], current_app.permanent_session_lifetime
    )
    lang = session.get("lang")
    session.clear()  # a fresh session: nothing carried over from before the login
    session.update(
        user=user["username"],
        sid=sid,
        v=user.get("session_version", 1),
        seen=time.time(),
        kiosk=kiosk,
    )
    if lang:
        session["lang"] = lang
    session.permanent = True


def sign_out() -> None:
    """End the session here and on the server: a copy of its cookie no longer works."""
    from reviewapp import get_store

    if session.get("user"):
        operations.close_session(get_store(), session["user"], session.get("sid"))
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang


def guard():
    """Before every request: who is this, and may they do it?"""
    from reviewapp import get_store

    g.user = None
    username = session.get("user")
    if username:
        user = get_store().find_user(username)
        idle = (
            current_app.config[
                "KIOSK_IDLE_MINUTES" if session.get("kiosk") else "SESSION_IDLE_MINUTES"
            ]
            * 60
        )
        if (
            user is None
            or user.get("disabled")
            or session.get("v") != user.get("session_version", 1)
            or not operations.has_session(
                user, session.get("sid"), current_app.permanent_session_lifetime
            )
        ):
            sign_out()
        elif time.time() - session.get("seen", 0) > idle:
            sign_out()
            flash(
                _("Your session ended after a period without activity. Please sign in again."),
                "warning",
            )
        else:
            g.user = user
            session["seen"] = time.time()
    endpoint = request.endpoint
    if endpoint is None or endpoint in PUBLIC:
        return None
    if g.user is None:
        target = request.full_path.rstrip("?") if request.method == "GET" else None
        return redirect(url_for("accounts.login", next=target))
    roles = getattr(current_app.view_functions[endpoint], "allowed_roles", None)
    if roles is None or g.user["role"] not in roles:
        abort(403)
    return None
