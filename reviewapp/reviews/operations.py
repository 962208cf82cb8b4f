"""Deployment reviews: the verbs that create and change them.

A review is a draft (editable) until it is submitted; a submitted review is never
changed in place. "Revise" archives it and opens a new draft revision that points
back to it. Every save records the content hash, which also serves to notice that
someone else saved the same review in between.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid

import orjson
from marshmallow import ValidationError

from reviewapp.errors import NotEditable, ValidationFailed
from reviewapp.formdefs import Catalogue, FormDefinition, flatten_errors
from reviewapp.storage import Store

FORM_ID = "deployment-review"
DRAFT, SUBMITTED = "draft", "submitted"


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def content_hash(form_key: str, answers: dict) -> str:
    """sha256 of the form version and the answers, in canonical JSON."""
    canonical = orjson.dumps({"form": form_key, "answers": answers}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


def form_of(catalogue: Catalogue, review: dict) -> FormDefinition:
    return catalogue.get(review["form_id"], review["form_version"])


def new_review(form: FormDefinition, node: dict, answers: dict | None = None) -> dict:
    """A draft record (not stored) with the form's defaults and the node's country."""
    answers = {**form.defaults(), "country": node["country"], **(answers or {})}
    stamp = now()
    return {
        "id": str(uuid.uuid4()),
        "form_id": form.id,
        "form_version": form.version,
        "node_id": node["id"],
        "created_at": stamp,
        "updated_at": stamp,
        "submitted_at": None,
        "revision": 1,
        "revision_id": str(uuid.uuid4()),
        "previous_revision_id": None,
        "ancestors": [],
        "origin": {k: node.get(k) for k in ("id", "name", "country", "level")},
        "status": DRAFT,
        "answers": answers,
        "content_hash": content_hash(form.key, answers),
    }


def start_review(
    store: Store, catalogue: Catalogue, node: dict, language: str, author: str
) -> dict:
    """Open a new draft in the latest version of the deployment review form."""
    form = catalogue.latest(FORM_ID)
    return store.add_review({**new_review(form, node, {"language": language}), "author": author})


def _clean(form: FormDefinition, answers: dict, mode: str) -> dict:
    try:
        clean = form.validate(answers, mode)
    except ValidationError as exc:
        raise ValidationFailed(flatten_errors(exc.messages)) from None
    for repeat in form.repeat_fields():
        for item in clean.get(repeat.name, []):
            item.setdefault("id", str(uuid.uuid4()))
    return clean


def _editable(store: Store, review_id: str) -> dict:
    review = store.get_review(review_id)
    if review["status"] != DRAFT:
        raise NotEditable(review_id)
    return review


def save_draft(
    store: Store, catalogue: Catalogue, review_id: str, answers: dict, expected_hash: str
) -> dict:
    """Keep whatever is typed so far; only types and limits are checked.

    :param expected_hash: the content hash the editor started from.
    :raises ValidationFailed: nothing is stored.
    :raises Conflict: the review was saved elsewhere since ``expected_hash``.
    """
    review = _editable(store, review_id)
    form = form_of(catalogue, review)
    clean = _clean(form, answers, "draft")
    if content_hash(form.key, clean) == review["content_hash"]:
        # Already stored exactly so (the page's background save got there first).
        return review
    updated = {
        **review,
        "answers": clean,
        "updated_at": now(),
        "content_hash": content_hash(form.key, clean),
    }
    return store.replace_review(updated, expected_hash)


def submit_review(
    store: Store, catalogue: Catalogue, review_id: str, answers: dict, expected_hash: str
) -> dict:
    """Save, then submit if complete; an incomplete review stays saved as a draft.

    :raises ValidationFailed: with ``saved=True`` when the draft was kept.
    """
    try:
        saved = save_draft(store, catalogue, review_id, answers, expected_hash)
    except ValidationFailed:
        # Nothing was saved; tell the person everything that stands in the way at once
        # (the submit schema reports wrong values and missing ones together).
        _clean(form_of(catalogue, store.get_review(review_id)), answers, "submit")
        raise
    form = form_of(catalogue, saved)
    try:
        clean = _clean(form, saved["answers"], "submit")
    except ValidationFailed as exc:
        exc.saved = True
        raise
    stamp = now()
    submitted = {
        **saved,
        "answers": clean,
        "status": SUBMITTED,
        "submitted_at": stamp,
        "updated_at": stamp,
        "content_hash": content_hash(form.key, clean),
    }
    return store.replace_review(submitted, saved["content_hash"])


def revise_review(store: Store, review_id: str, editor: str | None = None) -> dict:
    """Open a new draft revision of a submitted review; the submitted one is kept."""
    review = store.get_review(review_id)
    if review["status"] != SUBMITTED:
        raise NotEditable(review_id)
    draft = {
        **review,
        "revision": review["revision"] + 1,
        "revision_id": str(uuid.uuid4()),
        "previous_revision_id": review["revision_id"],
        "ancestors": [*review.get("ancestors", []), review["revision_id"]],
        "status": DRAFT,
        "submitted_at": None,
        "updated_at": now(),
        "editor": editor or review.get("author"),
    }
    # One write: the submitted revision goes to history as the draft replaces it.
    return store.replace_review(draft, review["content_hash"], archive=review)


def add_item(form: FormDefinition, answers: dict, repeat: str) -> dict:
    """The answers with one more (empty) entry in a repeat group."""
    if repeat not in {f.name for f in form.repeat_fields()}:
        raise ValueError(f"{repeat} is not a repeat group")
    items = list(answers.get(repeat) or [])
    items.append({"id": str(uuid.uuid4())})
    return {**answers, repeat: items}


def remove_item(answers: dict, repeat: str, index: int) -> dict:
    items = list(answers.get(repeat) or [])
    if 0 <= index < len(items):
        del items[index]
    return {**answers, repeat: items}
