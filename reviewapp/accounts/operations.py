"""Accounts: users, roles, signing in (with lockout), and the audit log.

Roles: a **contributor** fills and submits their own reviews and sees only those; an
**analyst** sees every review of the node, imports, exports and resolves conflicts; a
**viewer** reads submitted reviews without personal data; an **admin** has analyst
rights plus accounts, node settings and keys. On a shared field laptop in kiosk mode,
contributors may sign in with a short personal PIN.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid

from flask_babel import lazy_gettext as _l
from werkzeug.security import check_password_hash, generate_password_hash

from reviewapp.errors import ValidationFailed
from reviewapp.reviews.operations import now
from reviewapp.storage import Conflict, Store

ROLES = ("contributor", "analyst", "viewer", "admin")
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,39}$")
PIN = re.compile(r"^[0-9]{4,8}$")
MIN_PASSWORD = 10
MAX_FAILURES = 5
LOCK_MINUTES = 15
# Checked against when a user name is unknown, so that timing does not tell.
_DUMMY_HASH = generate_password_hash("not a real password", method="pbkdf2:sha256:1000")

MESSAGES = {
    "username": _l("Use 2 to 40 lower-case letters, digits, dots, dashes or underscores."),
    "taken": _l("This user name is already taken."),
    "role": _l("Choose one of the roles offered."),
    "password": _l("Use at least {n} characters."),
    "mismatch": _l("The two passwords differ."),
    "pin": _l("A PIN is 4 to 8 digits."),
    "name": _l("Enter a name of 1 to 120 characters."),
    "last_admin": _l("The node must keep at least one active administrator."),
    "current": _l("The current password is not right."),
}


class LoginFailed(Exception):
    """Wrong credentials, a disabled account, or a locked one; ``locked_until`` when locked."""

    def __init__(self, locked_until: str | None = None) -> None:
        super().__init__("login failed")
        self.locked_until = locked_until


def _stamp(moment: dt.datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _now_dt() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def audit(store: Store, event: str, who: str, **details) -> None:
    """Append one event to the audit log."""
    stamp = now()
    store.add_audit(
        {
            "id": f"{stamp}-{uuid.uuid4().hex[:8]}",
            "at": stamp,
            "event": event,
            "who": who,
            **details,
        }
    )


def _hash(secret: str, method: str) -> str:
    return generate_password_hash(secret, method=method)


def _check(values: dict, *, new: bool, store: Store) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if new:
        if not USERNAME.match(values.get("username", "")):
            errors["username"] = [str(MESSAGES["username"])]
        elif store.find_user(values["username"]) is not None:
            errors["username"] = [str(MESSAGES["taken"])]
    if "role" in values and values["role"] not in ROLES:
        errors["role"] = [str(MESSAGES["role"])]
    if "display_name" in values and not 0 < len(values["display_name"].strip()) <= 120:
        errors["display_name"] = [str(MESSAGES["name"])]
    if "password" in values:
        if len(values["password"]) < MIN_PASSWORD:
            errors["password"] = [str(MESSAGES["password"]).format(n=MIN_PASSWORD)]
        elif (
            values.get("password_again") is not None
            and values["password_again"] != values["password"]
        ):
            errors["password_again"] = [str(MESSAGES["mismatch"])]
    if values.get("pin") and not PIN.match(values["pin"]):
        errors["pin"] = [str(MESSAGES["pin"])]
    return errors


def check_new_user(store: Store, values: dict) -> dict[str, list[str]]:
    """Problems with a new account's values, keyed by field (empty when fine)."""
    values = {**values, "username": values.get("username", "").strip().lower()}
    return _check(values, new=True, store=store)


def create_user(store: Store, values: dict, who: str, hash_method: str = "scrypt") -> dict:
    """Create an account.

    :param values: ``username``, ``display_name``, ``role``, ``password`` (and
        ``password_again`` from a form), optional ``pin``.
    :raises ValidationFailed: keyed by field.
    """
    values = {**values, "username": values.get("username", "").strip().lower()}
    errors = _check(values, new=True, store=store)
    if errors:
        raise ValidationFailed(errors)
    stamp = now()
    user = {
        "username": values["username"],
        "display_name": values["display_name"].strip(),
        "role": values["role"],
        "password_hash": _hash(values["password"], hash_method),
        "pin_hash": _hash(values["pin"], hash_method) if values.get("pin") else None,
        "disabled": False,
        "failed_logins": 0,
        "locked_until": None,
        "session_version": 1,
        "created_at": stamp,
        "updated_at": stamp,
    }
    try:
        store.add_user(user)
    except Conflict:
        raise ValidationFailed({"username": [str(MESSAGES["taken"])]}) from None
    audit(store, "account_created", who, username=user["username"], role=user["role"])
    return user


def authenticate(store: Store, username: str, secret: str, by_pin: bool, who: str) -> dict:
    """Check a password (or, in kiosk mode, a contributor's PIN).

    Five failures in a row lock the account for 15 minutes.

    :raises LoginFailed: nothing says whether the name or the secret was wrong.
    """
    username = (username or "").strip().lower()
    user = store.find_user(username)
    moment = _now_dt()
    if user is None:
        check_password_hash(_DUMMY_HASH, secret or "")
        audit(store, "login_failed", who, username=username[:40], reason="unknown user")
        raise LoginFailed()
    if user.get("locked_until") and user["locked_until"] > _stamp(moment):
        audit(store, "login_failed", who, username=username, reason="locked")
        raise LoginFailed(user["locked_until"])
    stored = user.get("pin_hash") if by_pin else user["password_hash"]
    allowed = not user.get("disabled") and (not by_pin or user["role"] == "contributor")
    if not (stored and check_password_hash(stored, secret or "") and allowed):
        failures = user.get("failed_logins", 0) + 1
        locked = (
            _stamp(moment + dt.timedelta(minutes=LOCK_MINUTES))
            if failures >= MAX_FAILURES
            else None
        )
        store.save_user(
            {**user, "failed_logins": 0 if locked else failures, "locked_until": locked}
        )
        audit(
            store,
            "login_failed",
            who,
            username=username,
            reason="disabled" if user.get("disabled") else "wrong secret",
        )
        if locked:
            audit(store, "account_locked", who, username=username, until=locked)
        raise LoginFailed(locked)
    if user.get("failed_logins") or user.get("locked_until"):
        user = {**user, "failed_logins": 0, "locked_until": None}
        store.save_user(user)
    audit(store, "login", who, username=username, method="pin" if by_pin else "password")
    return user


def update_user(
    store: Store, username: str, values: dict, who: str, hash_method: str = "scrypt"
) -> dict:
    """An admin changes role, name or status, or sets a new password or PIN.

    A new password or a disabled account ends the user's open sessions.
    """
    user = store.find_user(username)
    if user is None:
        raise ValidationFailed({"username": [str(MESSAGES["username"])]})
    values = {k: v for k, v in values.items() if v not in (None, "")}
    errors = _check(values, new=False, store=store)
    disabling = values.get("disabled") is True and not user.get("disabled")
    demoting = "role" in values and values["role"] != "admin" and user["role"] == "admin"
    if (
        (disabling or demoting)
        and user["role"] == "admin"
        and not user.get("disabled")
        and store.count_admins() <= 1
    ):
        errors["role"] = [str(MESSAGES["last_admin"])]
    if errors:
        raise ValidationFailed(errors)
    changed = dict(user)
    for key in ("role", "display_name"):
        if key in values:
            changed[key] = values[key].strip() if key == "display_name" else values[key]
    if "disabled" in values:
        changed["disabled"] = bool(values["disabled"])
    if "password" in values:
        changed["password_hash"] = _hash(values["password"], hash_method)
        changed.update(failed_logins=0, locked_until=None)
    if "pin" in values:
        changed["pin_hash"] = _hash(values["pin"], hash_method)
    if "password" in values or disabling:
        changed["session_version"] = user.get("session_version", 1) + 1
    changed["updated_at"] = now()
    store.save_user(changed)
    what = sorted(k for k in ("role", "display_name", "disabled", "password", "pin") if k in values)
    audit(store, "account_changed", who, username=username, changed=what)
    return changed


def change_own_password(
    store: Store, user: dict, current: str, new: str, again: str, hash_method: str = "scrypt"
) -> dict:
    if not check_password_hash(user["password_hash"], current or ""):
        raise ValidationFailed({"current": [str(MESSAGES["current"])]})
    errors = _check({"password": new, "password_again": again}, new=False, store=store)
    if errors:
        raise ValidationFailed(errors)
    changed = {
        **user,
        "password_hash": _hash(new, hash_method),
        "session_version": user.get("session_version", 1) + 1,
        "updated_at": now(),
    }
    store.save_user(changed)
    audit(store, "password_changed", user["username"], username=user["username"])
    return changed
