"""The node: this installation's identity and settings (first-run setup)."""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

from flask_babel import lazy_gettext as _l
from marshmallow import RAISE, Schema, ValidationError, fields, validate

from reviewapp.accounts import operations as accounts
from reviewapp.errors import ValidationFailed
from reviewapp.formdefs import LANGUAGES, MESSAGES, Catalogue, flatten_errors
from reviewapp.reviews.operations import now
from reviewapp.storage import Store


def _schema(catalogue: Catalogue) -> Schema:
    required = {"required": MESSAGES["required"]}
    choice = validate.OneOf

    class NodeSchema(Schema):
        class Meta:
            unknown = RAISE

        error_messages = {"unknown": MESSAGES["unknown"]}
        name = fields.String(
            required=True,
            validate=validate.Length(min=1, max=120, error=MESSAGES["too_long"]),
            error_messages=required,
        )
        country = fields.String(
            required=True,
            validate=choice(catalogue.choices["countries"].values, error=MESSAGES["choice"]),
            error_messages=required,
        )
        level = fields.String(
            required=True,
            validate=choice(catalogue.choices["node_levels"].values, error=MESSAGES["choice"]),
            error_messages=required,
        )
        language = fields.String(
            required=True,
            validate=choice(LANGUAGES, error=MESSAGES["choice"]),
            error_messages=required,
        )
        kiosk = fields.Boolean(load_default=False)

    return NodeSchema()


def clean_settings(catalogue: Catalogue, data: dict) -> dict:
    """Check node settings; blank values count as missing.

    :raises ValidationFailed: keyed by input name.
    """
    data = {k: v.strip() for k, v in data.items() if isinstance(v, str) and v.strip()}
    try:
        return _schema(catalogue).load(data)
    except ValidationError as exc:
        raise ValidationFailed(flatten_errors(exc.messages)) from None


def set_up_node(
    store: Store, catalogue: Catalogue, data: dict, admin: dict, hash_method: str
) -> tuple[dict, dict]:
    """First-run setup: this installation's identity, settings and first administrator.

    :param admin: ``username``, ``display_name``, ``password``, ``password_again``.
    :raises ValidationFailed: keyed by field; nothing is stored.
    """
    errors = {}
    try:
        settings = clean_settings(catalogue, data)
    except ValidationFailed as exc:
        errors.update(exc.errors)
    admin_values = {**admin, "role": "admin"}
    errors.update(accounts.check_new_user(store, admin_values))
    if errors:
        raise ValidationFailed(errors)
    if store.find_node() is not None:
        raise ValidationFailed({"name": [str(_l("This node is already set up."))]})
    user = accounts.create_user(store, admin_values, "setup", hash_method)
    node = store.save_node({"id": str(uuid.uuid4()), "created_at": now(), **settings})
    accounts.audit(store, "node_set_up", user["username"], node_id=node["id"], name=node["name"])
    return node, user


def update_node(store: Store, catalogue: Catalogue, data: dict, who: str) -> dict:
    """Change name, country, level, language or kiosk mode; the node id never changes."""
    settings = clean_settings(catalogue, data)
    node = store.find_node()
    if node is None:
        raise ValidationFailed({"name": [str(_l("This node is not set up yet."))]})
    saved = store.save_node({**node, **settings, "updated_at": now()})
    accounts.audit(store, "settings_changed", who, **{k: settings[k] for k in sorted(settings)})
    return saved


def record_backup(store: Store, stamp: str, who: str) -> str | None:
    """Remember when the node was last backed up (shown on Settings), and audit it:
    a backup holds the node's secret keys, so who took one is worth knowing.

    :returns: the time of the backup before, for :func:`forget_backup`.
    """
    with store.atomic():
        node = store.find_node()
        previous = node.get("last_backup_at") if node else None
        if node is not None:
            store.save_node({**node, "last_backup_at": stamp})
        accounts.audit(store, "backup", who, at_stamp=stamp)
    return previous


def forget_backup(store: Store, stamp: str, previous: str | None, who: str) -> None:
    """A backup recorded by :func:`record_backup` failed: the last one is ``previous``."""
    with store.atomic():
        node = store.find_node()
        if node is not None and node.get("last_backup_at") == stamp:
            restored = {k: v for k, v in node.items() if k != "last_backup_at"}
            store.save_node({**restored, **({"last_backup_at": previous} if previous else {})})
        accounts.audit(store, "backup_failed", who, at_stamp=stamp)


def folder_size(folder: str | Path) -> int:
    """Bytes held by the files in a folder and its subfolders."""
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(FileNotFoundError):  # a temp file renamed meanwhile
                total += os.lstat(os.path.join(root, name)).st_size
    return total
