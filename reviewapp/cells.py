"""How stored text becomes a spreadsheet cell: one rule for every CSV and XLSX the app
writes (report data, the audit log)."""

from __future__ import annotations

from reviewapp.formdefs import CONTROL_RE

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # as OWASP lists them for CSV injection


def cell(value) -> str | int | float:
    """Numbers stay numbers; text loses control characters (which XLSX cannot hold, and
    which older versions stored) and, if a spreadsheet would run it as a formula, gets a
    leading apostrophe. Write CSV with ``quoting=csv.QUOTE_NONNUMERIC``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    text = CONTROL_RE.sub("", "" if value is None else str(value))
    return "'" + text if text[:1] in FORMULA_STARTS else text
