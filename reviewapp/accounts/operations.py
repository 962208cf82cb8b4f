"""Accounts: users, roles, signing in (with lockout), and the audit log.

Roles: a **contributor** fills and submits their own reviews and sees only those; an
**analyst** sees every review of the node, imports, exports and resolves conflicts; a
**viewer** reads submitted reviews without personal data; an **admin** has analyst
rights plus accounts, node settings and keys. On a shared field laptop in kiosk mode,
contributors may sign in with a short personal PIN.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
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
# Failed PINs of all accounts together: this many in PIN_WINDOW_MINUTES pause PIN sign-in
# on the node for PIN_PAUSE_MINUTES (passwords still work).
PIN_BUDGET = 10
PIN_WINDOW_MINUTES = 10
PIN_PAUSE_MINUTES = 15
UNKNOWN_NAMES_KEPT = 200  # made-up names whose failures are counted like an account's
AUDIT_NAMES_PER_HOUR = 50  # made-up names with an audit entry of their own each hour
SESSIONS_PER_USER = 10
SESSION_LIFETIME = dt.timedelta(hours=8)  # as PERMANENT_SESSION_LIFETIME
_DUMMY_HASHES: dict[str, str] = {}

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
    "locked": _l(
        "Too many failed attempts: this account is locked for a few minutes. Try again later or ask an administrator."
    ),
}


class LoginFailed(Exception):
    """Wrong credentials, a disabled account, or a locked one; ``locked_until`` when
    locked, ``paused_until`` when PIN sign-in is paused on the node."""

    def __init__(self, locked_until: str | None = None, paused_until: str | None = None) -> None:
        super().__init__("login failed")
        self.locked_until = locked_until
        self.paused_until = paused_until


def seconds_until(stamp: str) -> int:
    """Whole seconds from now to ``stamp`` (at least 1)."""
    moment = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return max(1, int(-(-(moment - _now_dt()).total_seconds() // 1)))


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


def _dummy_hash(method: str) -> str:
    """A hash made like real ones, checked when there is nothing real to check, so that
    an unknown name, a missing PIN or a disabled account costs the same time."""
    if method not in _DUMMY_HASHES:
        _DUMMY_HASHES[method] = generate_password_hash(secrets.token_hex(16), method=method)
    return _DUMMY_HASHES[method]


def _name_key(username: str) -> str:
    return hashlib.sha256(username.encode("utf-8", "replace")).hexdigest()[:16]


def _pin_entries(limits: dict, moment: dt.datetime) -> list[dict]:
    since = _stamp(moment - dt.timedelta(minutes=PIN_WINDOW_MINUTES))
    return [e for e in limits.get("pin_attempts", []) if e["at"] > since]


def _unknown(limits: dict, moment: dt.datetime) -> dict[str, dict]:
    """Failure counters of names that are no account, kept like an account's (so that
    a lockout message does not tell a real name from a made-up one), bounded."""
    since = _stamp(moment - dt.timedelta(hours=24))
    held = {k: v for k, v in limits.get("unknown", {}).items() if v["at"] > since}
    newest = sorted(held, key=lambda k: held[k]["at"], reverse=True)[:UNKNOWN_NAMES_KEPT]
    return {k: held[k] for k in newest}


def _reserve(subject: dict, token: str, until: str) -> dict:
    """Count this attempt as a failure before its secret is checked (a success undoes
    it): parallel guesses can never be checked more than MAX_FAILURES times."""
    failures = subject.get("failed_logins", 0) + 1
    if failures >= MAX_FAILURES:
        return {**subject, "failed_logins": 0, "locked_until": until, "lock_token": token}
    return {**subject, "failed_logins": failures}


def _locked(subject: dict, stamp: str) -> str | None:
    until = subject.get("locked_until")
    return until if until and until > stamp else None


def _audit_failure(
    store: Store, limits: dict, username: str, known: bool, reason: str, who: str, stamp: str
) -> None:
    """One counting entry per user name and clock hour; made-up names beyond
    AUDIT_NAMES_PER_HOUR in an hour share one entry. ``limits`` is changed in place."""
    hour = stamp[:13]
    entry_id = f"{hour}-login_failed-{_name_key(username)}"
    shown = username[:40]
    if not known and not store.find_audit(entry_id):
        tally = limits.get("audit_names", {})
        tally = tally if tally.get("hour") == hour else {"hour": hour, "names": 0}
        if tally["names"] >= AUDIT_NAMES_PER_HOUR:
            entry_id, shown = f"{hour}-login_failed-other-names", "(other names)"
        else:
            tally = {**tally, "names": tally["names"] + 1}
        limits["audit_names"] = tally
    store.count_audit(
        {"id": entry_id, "at": stamp, "event": "login_failed", "who": who, "username": shown,
         "count": 1, "reasons": {reason: 1}}
    )  # fmt: skip


def authenticate(
    store: Store, username: str, secret: str, by_pin: bool, who: str, hash_method: str = "scrypt"
) -> dict:
    """Check a password (or, in kiosk mode, a contributor's PIN).

    Each attempt is counted in one transaction *before* its secret is checked, and
    the check happens outside the store's lock: five failures in a row lock the
    account for 15 minutes, however many attempts arrive at once. Failed PINs are
    also counted for the whole node: PIN_BUDGET in PIN_WINDOW_MINUTES pause PIN
    sign-in for PIN_PAUSE_MINUTES, and the audit log says so. A name that is no
    account costs the same hash and is counted and locked the same way.

    :raises LoginFailed: nothing says whether the name or the secret was wrong.
    """
    username = (username or "").strip().lower()[:200]
    token = uuid.uuid4().hex
    moment = _now_dt()
    stamp = _stamp(moment)
    until = _stamp(moment + dt.timedelta(minutes=LOCK_MINUTES))
    key = _name_key(username)
    with store.atomic():
        limits = store.find_sign_in_limits()
        user = store.find_user(username) if USERNAME.match(username) else None
        unknown = _unknown(limits, moment)
        subject = user if user is not None else unknown.get(key, {"at": stamp})
        paused = locked = None
        if by_pin:
            attempts = _pin_entries(limits, moment)
            paused = limits.get("pin_paused_until")
            paused = paused if paused and paused > stamp else None
            if paused is None and len(attempts) >= PIN_BUDGET:
                paused = _pause_pins(store, limits, moment, who)
        if paused is None:
            locked = _locked(subject, stamp)
        if paused is None and locked is None:
            subject = _reserve(subject, token, until)
            if by_pin:
                limits["pin_attempts"] = [*attempts, {"at": stamp, "token": token}]
            if user is not None:
                store.save_user(subject)
            else:
                unknown[key] = {**subject, "at": stamp}
        limits["unknown"] = unknown
        store.save_sign_in_limits(limits)
    if paused or locked:
        reason = "pin sign-in paused" if paused else "locked"
        with store.atomic():
            limits = store.find_sign_in_limits()
            _audit_failure(store, limits, username, user is not None, reason, who, stamp)
            store.save_sign_in_limits(limits)
        raise LoginFailed(locked_until=locked, paused_until=paused)

    stored = None
    if user is not None and (not by_pin or user["role"] == "contributor"):
        stored = user.get("pin_hash") if by_pin else user.get("password_hash")
    right = check_password_hash(stored or _dummy_hash(hash_method), secret or "")
    right = right and stored is not None and not user.get("disabled")

    with store.atomic():
        limits = store.find_sign_in_limits()
        fresh = store.find_user(username) if user is not None else None
        if right and fresh is not None and not fresh.get("disabled"):
            own_lock = fresh.get("lock_token") == token
            fresh = {**fresh, "failed_logins": 0}
            if own_lock or not _locked(fresh, stamp):
                fresh.update(locked_until=None, lock_token=None)
            store.save_user(fresh)
            if by_pin:
                limits["pin_attempts"] = [
                    e for e in limits.get("pin_attempts", []) if e["token"] != token
                ]
                store.save_sign_in_limits(limits)
            audit(store, "login", who, username=username, method="pin" if by_pin else "password")
            return fresh
        reason = "unknown user" if user is None else "disabled" if user.get("disabled") else (
            "wrong pin" if by_pin else "wrong password")  # fmt: skip
        _audit_failure(store, limits, username, user is not None, reason, who, stamp)
        holder = (fresh if user is not None else limits.get("unknown", {}).get(key)) or {}
        locked = _locked(holder, stamp) if holder.get("lock_token") == token else None
        if locked and user is not None:  # made-up names: counted above, not listed
            audit(store, "account_locked", who, username=username, until=locked)
        pins_running = not limits.get("pin_paused_until", "") > stamp
        if by_pin and pins_running and len(_pin_entries(limits, moment)) >= PIN_BUDGET:
            _pause_pins(store, limits, moment, who)
        store.save_sign_in_limits(limits)
    raise LoginFailed(locked_until=locked)


def _pause_pins(store: Store, limits: dict, moment: dt.datetime, who: str) -> str:
    """Pause PIN sign-in on this node and tell the administrators (in the audit log)."""
    until = _stamp(moment + dt.timedelta(minutes=PIN_PAUSE_MINUTES))
    limits["pin_paused_until"] = until
    audit(store, "pin_sign_in_paused", who, until=until,
          failed_pins=PIN_BUDGET, window_minutes=PIN_WINDOW_MINUTES)  # fmt: skip
    return until


def open_session(store: Store, username: str, lifetime: dt.timedelta = SESSION_LIFETIME) -> str:
    """Register a new sign-in session of ``username``; its id goes into the cookie.

    Only the newest SESSIONS_PER_USER sessions stay open, and none outlives the
    session lifetime; a cookie whose id is not listed is refused (:func:`has_session`).
    """
    sid = secrets.token_urlsafe(24)
    moment = _now_dt()
    since = _stamp(moment - lifetime)
    with store.atomic():
        user = store.find_user(username)
        if user is None:
            raise LookupError(username)
        held = {k: v for k, v in user.get("sessions", {}).items() if v > since}
        held[sid] = _stamp(moment)
        newest = sorted(held, key=held.get, reverse=True)[:SESSIONS_PER_USER]
        store.save_user({**user, "sessions": {k: held[k] for k in newest}})
    return sid


def close_session(store: Store, username: str, sid: str | None) -> None:
    """Sign-out: this session's cookie is never accepted again, even if copied."""
    with store.atomic():
        user = store.find_user(username)
        if user is not None and sid in user.get("sessions", {}):
            sessions = {k: v for k, v in user["sessions"].items() if k != sid}
            store.save_user({**user, "sessions": sessions})


def has_session(user: dict, sid: str | None, lifetime: dt.timedelta = SESSION_LIFETIME) -> bool:
    """Whether ``sid`` is an open session of ``user``, opened less than ``lifetime`` ago."""
    opened = user.get("sessions", {}).get(sid or "")
    return opened is not None and opened > _stamp(_now_dt() - lifetime)


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
    if "password" in values or "pin" in values or disabling:
        # Every open session ends, even one whose cookie was copied.
        changed["session_version"] = user.get("session_version", 1) + 1
        changed["sessions"] = {}
    changed["updated_at"] = now()
    store.save_user(changed)
    what = sorted(k for k in ("role", "display_name", "disabled", "password", "pin") if k in values)
    audit(store, "account_changed", who, username=username, changed=what)
    return changed


def change_own_password(
    store: Store, user: dict, current: str, new: str, again: str, hash_method: str = "scrypt"
) -> dict:
    """Change one's own password; a wrong current password counts as a failed sign-in
    (a copied cookie must not be a way to guess the password without a lockout).

    :raises ValidationFailed: keyed by field.
    """
    token = uuid.uuid4().hex
    moment = _now_dt()
    stamp = _stamp(moment)
    with store.atomic():  # nothing written before a refusal: raising inside is fine
        held = store.find_user(user["username"])
        if held is None:
            raise ValidationFailed({"current": [str(MESSAGES["current"])]})
        if _locked(held, stamp):
            raise ValidationFailed({"current": [str(MESSAGES["locked"])]})
        until = _stamp(moment + dt.timedelta(minutes=LOCK_MINUTES))
        store.save_user(_reserve(held, token, until))
    right = check_password_hash(held["password_hash"], current or "")
    errors = _check({"password": new, "password_again": again}, new=False, store=store)
    new_hash = _hash(new, hash_method) if right and not errors else None
    # Refusals are raised after the block: raising inside it would undo its writes.
    with store.atomic():
        held = store.find_user(user["username"]) or held
        if not right:
            if held.get("lock_token") == token and _locked(held, stamp):
                audit(store, "account_locked", user["username"], username=user["username"],
                      until=held["locked_until"])  # fmt: skip
            errors = {"current": [str(MESSAGES["current"])]}
        else:
            held = {**held, "failed_logins": 0}
            if held.get("lock_token") == token or not _locked(held, stamp):
                held.update(locked_until=None, lock_token=None)
            if not errors:
                held.update(
                    password_hash=new_hash,
                    session_version=held.get("session_version", 1) + 1,
                    sessions={},  # every open session ends; the view opens one for this one
                    updated_at=now(),
                )
                audit(store, "password_changed", user["username"], username=user["username"])
            store.save_user(held)
    if errors:
        raise ValidationFailed(errors)
    return held
