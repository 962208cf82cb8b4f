"""Who may see or do what: the one home of every access rule.

Each rule is a small function of the acting user (a plain dict with ``username`` and
``role``) and, where it matters, the record. Views, exports, reports, bundles and
curation ask these functions and nothing else; ``tests/test_policy.py`` checks them as
a table. Which *page* a role may open at all is declared on each view with ``@allow``
(:mod:`reviewapp.accounts.access`), using the role groups below.
"""

from __future__ import annotations

from typing import Any

from reviewapp.formdefs import Catalogue

Doc = dict[str, Any]

ROLES = ("contributor", "analyst", "viewer", "admin")
EVERYONE = ROLES
WRITERS = ("contributor", "analyst", "admin")  # may start and edit reviews
ANALYSTS = ("analyst", "admin")  # may read every review, exchange, report
READERS = ("viewer", "analyst", "admin")  # may make lessons reports
ADMINS = ("admin",)


def _is(user: Doc, *roles: str) -> bool:
    return user.get("role") in roles


def _authored(user: Doc, review: Doc) -> bool:
    return review.get("author") == user.get("username")


# -- reviews --------------------------------------------------------------------------


def may_read(user: Doc, review: Doc) -> bool:
    """Contributors read their own reviews; viewers submitted ones; analysts all."""
    if _is(user, *ANALYSTS):
        return True
    if _is(user, "viewer"):
        return review.get("status") == "submitted"
    return _authored(user, review)


def may_edit(user: Doc, review: Doc) -> bool:
    """A draft is edited by whoever opened it (its author, or who opened the revision)."""
    if review.get("status") != "draft" or not _is(user, *WRITERS):
        return False
    return review.get("editor", review.get("author")) == user.get("username")


def may_revise(user: Doc, review: Doc) -> bool:
    """Open a new revision of a submitted review: analysts any, contributors their own."""
    if review.get("status") != "submitted" or not _is(user, *WRITERS):
        return False
    return _is(user, *ANALYSTS) or _authored(user, review)


def may_see_personal(user: Doc, review: Doc) -> bool:
    """Respondent name and contact: only the review's author and administrators — not
    an analyst who opened a revision of it."""
    return _is(user, *ADMINS) or _authored(user, review)


def list_scope(user: Doc) -> dict[str, str]:
    """Filters the review list always applies for this user."""
    if _is(user, "contributor"):
        return {"author": user["username"]}
    if _is(user, "viewer"):
        return {"status": "submitted"}
    return {}


# -- what leaves the node ---------------------------------------------------------------


def may_export_personal(user: Doc) -> bool:
    """Personal fields leave the node only in a bundle an administrator exports
    explicitly without anonymising. (The command line runs as the machine's operator,
    who holds the data folder anyway: an administrator.)"""
    return _is(user, *ADMINS)


def export_anonymised(user: Doc, asked: bool) -> bool:
    """Whether a bundle export must drop personal fields."""
    return asked or not may_export_personal(user)


def consent_reaches(catalogue: Catalogue, consent: str | None, level: str) -> bool:
    """A review travels only as far as its sharing consent reaches (national < regional
    < UN); an unknown consent reaches nowhere."""
    levels = catalogue.choices["sharing_consent"]
    return consent in levels.values and levels.rank(consent) >= levels.rank(level)


def within_ceiling(catalogue: Catalogue, sensitivity: str | None, ceiling: str) -> bool:
    """Content classified at or below ``ceiling`` may be included."""
    levels = catalogue.choices["sensitivity"]
    return levels.rank(sensitivity) <= levels.rank(ceiling)


def may_export_data(user: Doc) -> bool:
    """Every selected observation as CSV or XLSX: analysts and administrators."""
    return _is(user, *ANALYSTS)


def may_see_job(user: Doc, job: Doc) -> bool:
    """A report job, its progress and its file: the person who asked, and administrators."""
    return job.get("who") == user.get("username") or _is(user, *ADMINS)
