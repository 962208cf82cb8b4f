"""Deployment Review: structured after-action reviews for LAC peacekeepers.

``create_app()`` reads like a table of contents: config, storage, forms, languages,
security, blueprints.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from pathlib import Path

from flask import Flask, current_app

from reviewapp.formdefs import Catalogue, load_catalogue
from reviewapp.storage import Store, StoreDamaged, write_new_file

REPO_ROOT = Path(__file__).resolve().parent.parent
__version__ = "0.1.0"


def create_app(test_config: dict | None = None) -> Flask:
    """Build the app.

    :param test_config: settings that override the defaults and the environment.
    """
    app = Flask(__name__, instance_path=str(REPO_ROOT / "instance"))
    app.config.from_mapping(
        DATA_DIR=os.environ.get("REVIEWAPP_DATA") or app.instance_path,
        FORMS_DIR=str(REPO_ROOT / "forms"),
        MAX_CONTENT_LENGTH=2 * 2**20,  # forms; bundle uploads have their own limit
        MAX_BUNDLE_UPLOAD=256 * 2**20,
        MAX_RECEIPT_UPLOAD=64 * 2**20,
        REVIEWS_PER_PAGE=50,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        # Behind HTTPS (a centre's LAN server with TLS), cookies must not travel in clear.
        SESSION_COOKIE_SECURE=os.environ.get("REVIEWAPP_SECURE_COOKIES") == "1",
        PERMANENT_SESSION_LIFETIME=dt.timedelta(hours=8),
        SESSION_IDLE_MINUTES=60,
        KIOSK_IDLE_MINUTES=10,
        PASSWORD_HASH_METHOD="scrypt",
        # A write waits this long for another process (an import) before "busy, retry".
        STORE_LOCK_TIMEOUT=5.0,
        # Fold the journal into the snapshots in a thread of its own, off the request
        # that crossed the threshold (a command that exits first leaves it to the next).
        STORE_BACKGROUND_COMPACTION=True,
        # Reports and data exports are made in processes of their own: this many at once
        # (each takes a core), and this many more waiting; beyond that, "try again later".
        REPORT_JOBS_AT_ONCE=1,
        REPORT_JOBS_QUEUED=4,
    )
    if test_config:
        app.config.from_mapping(test_config)
    data_dir = Path(app.config["DATA_DIR"])
    store = Store(
        data_dir,
        lock_timeout=app.config["STORE_LOCK_TIMEOUT"],
        background_compaction=app.config["STORE_BACKGROUND_COMPACTION"],
    )
    _check_node_key(data_dir, store)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _secret_key(data_dir, store)
    app.extensions["store"] = store
    catalogue = load_catalogue(app.config["FORMS_DIR"])
    catalogue.received = store.list_received_forms
    catalogue.refresh()
    app.extensions["catalogue"] = catalogue

    from reviewapp import errors, i18n, security

    i18n.init_app(app)
    security.init_app(app)
    errors.init_app(app)

    from reviewapp.accounts import views as account_views
    from reviewapp.accounts.access import guard
    from reviewapp.exchange import views as exchange_views
    from reviewapp.node import views as node_views
    from reviewapp.reports import views as report_views
    from reviewapp.reviews import views as review_views

    app.register_blueprint(node_views.bp)
    app.register_blueprint(review_views.bp)
    app.register_blueprint(exchange_views.bp)
    app.register_blueprint(account_views.bp)
    app.register_blueprint(report_views.bp)
    app.before_request(node_views.require_setup)
    app.before_request(guard)
    app.add_url_rule("/", endpoint="index", view_func=review_views.index)
    app.add_url_rule("/sw.js", endpoint="service_worker", view_func=_service_worker)
    return app


def _service_worker():
    """Served from the root so that it may look after every page of the app."""
    response = current_app.send_static_file("js/sw.js")
    response.headers["Cache-Control"] = "no-cache"
    return response


def get_store() -> Store:
    return current_app.extensions["store"]


def get_catalogue() -> Catalogue:
    return current_app.extensions["catalogue"]


def _secret_key(data_dir: Path, store: Store) -> str:
    """The node's own session key, made with the node and kept with its data.

    :raises StoreDamaged: it is missing on a node in use, or too short to be one this
        app made (a guessable key would let anyone forge a session).
    """
    path = data_dir / "secret_key"
    if not path.exists():
        if store.find_node() is not None:
            raise StoreDamaged(
                f"{path} is missing; restore it from a backup (python run.py restore) — "
                "a new one would sign everyone out, a made-up one would let sessions be forged",
                path,
            )
        write_new_file(path, secrets.token_hex(32).encode(), 0o600)
    try:
        key = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        key = ""
    if len(key) < 32:
        raise StoreDamaged(
            f"{path} is not a session key this app made (it must hold at least 32 "
            "characters); restore it from a backup (python run.py restore)",
            path,
        )
    return key


def _check_node_key(data_dir: Path, store: Store) -> None:
    """A signing key with no node is what is left of a node whose files were lost."""
    key = data_dir / "node_key.pem"
    if key.exists() and store.find_node() is None:
        raise StoreDamaged(
            f"{data_dir} holds a node's signing key ({key.name}) but no node settings: its "
            "files were lost. Restore it from a backup (python run.py restore) rather than "
            "set up a new node over them",
            key,
        )
