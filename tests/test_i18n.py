"""Interface translations: complete, compiled, and consistent with the source."""

from __future__ import annotations

import gettext
import re

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from reviewapp import REPO_ROOT

TRANSLATIONS = REPO_ROOT / "reviewapp" / "translations"
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|\{\w+\}")


def source_messages() -> set:
    method_map = [("**.py", "python"), ("**/templates/**.html", "jinja2")]
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "_l": None, "lazy_gettext": None}
    found = set()
    for folder, methods in (
        (REPO_ROOT / "reviewapp", method_map),
        (REPO_ROOT / "reports", [("**/template.html", "jinja2")]),
    ):
        for _file, _line, message, _comments, _ctx in extract_from_dir(
            str(folder), method_map=methods, keywords=keywords
        ):
            found.add(message[0] if isinstance(message, tuple) else message)
    return found


def catalogue(lang):
    with open(TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po", "rb") as fh:
        return read_po(fh, locale=lang)


@pytest.mark.parametrize("lang", ["es", "pt", "fr"])
def test_every_interface_string_is_translated(lang):
    cat = catalogue(lang)
    translated = {}
    for m in cat:
        if not m.id:
            continue
        key = m.id[0] if isinstance(m.id, tuple) else m.id
        strings = m.string if isinstance(m.string, tuple) else (m.string,)
        if all(strings) and not m.fuzzy:
            translated[key] = strings
    missing = source_messages() - set(translated)
    assert not missing, f"{lang}: untranslated: {sorted(missing)[:5]}"


@pytest.mark.parametrize("lang", ["es", "pt", "fr"])
def test_translations_keep_their_placeholders(lang):
    for m in catalogue(lang):
        if not m.id:
            continue
        ids = m.id if isinstance(m.id, tuple) else (m.id,)
        strings = m.string if isinstance(m.string, tuple) else (m.string,)
        expected = set(PLACEHOLDER.findall(ids[0]))
        for s in strings:
            assert set(PLACEHOLDER.findall(s)) == expected, (lang, m.id, s)


@pytest.mark.parametrize("lang", ["es", "pt", "fr"])
def test_compiled_catalogue_matches_the_po_file(lang):
    with open(TRANSLATIONS / lang / "LC_MESSAGES" / "messages.mo", "rb") as fh:
        compiled = gettext.GNUTranslations(fh)
    for m in catalogue(lang):
        if m.id and not isinstance(m.id, tuple):
            assert compiled.gettext(m.id) == m.string, f"{lang}: recompile the catalogue ({m.id})"
