"""Languages: Spanish (default), Portuguese, English and French.

The interface strings are gettext catalogues under ``reviewapp/translations``; form
labels come from the form definitions. The language is the person's choice (kept in
the session), else the node's default, else Spanish.
"""

from __future__ import annotations

from flask import Flask, session
from flask_babel import Babel

from reviewapp.formdefs import LANGUAGES, current_language

LANGUAGE_NAMES = {"es": "Español", "pt": "Português", "en": "English", "fr": "Français"}


def select_locale() -> str:
    chosen = session.get("lang")
    if chosen in LANGUAGES:
        return chosen
    from reviewapp import get_store

    node = get_store().find_node()
    return node["language"] if node else "es"


def init_app(app: Flask) -> None:
    app.config.setdefault("BABEL_DEFAULT_LOCALE", "es")
    Babel(app, locale_selector=select_locale)

    @app.context_processor
    def languages():
        return {"LANGUAGE_NAMES": LANGUAGE_NAMES, "lang": current_language()}
