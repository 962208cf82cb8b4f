"""Exchange: export bundles, import them (dry run first), receipts, conflicts.

Reviews travel field laptop -> training centre -> region as bundles
(:mod:`reviewapp.exchange.bundle`). Importing is idempotent and all-or-nothing:
:func:`plan_import` classifies every record without changing anything (the dry
run), and :func:`apply_import` stores the plan in one storage write.

Per record: the same revision already held -> unchanged; a revision descending from
the one held -> newer (the held one goes to history); a revision that diverges from
the one held -> both kept, conflict opened for an analyst; a record that fails its
form's schema or its own hash -> quarantined with the reasons, never merged.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from flask_babel import lazy_gettext as _l
from marshmallow import ValidationError

from reviewapp import __version__
from reviewapp.accounts.operations import audit
from reviewapp.bulk import paused_gc
from reviewapp.exchange import keys
from reviewapp.exchange.bundle import Bundle, BundleError, is_timestamp, read_bundle, write_bundle
from reviewapp.formdefs import (
    MAX_FORM_VERSION,
    RECEIVED_FORM_ID,
    Catalogue,
    DefinitionError,
    FormDefinition,
    flatten_errors,
)
from reviewapp.reviews.operations import content_hash, now
from reviewapp.storage import Conflict, Store

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")
RECORD_FIELDS = (
    "id", "form_id", "form_version", "node_id", "origin", "via", "created_at", "updated_at",
    "submitted_at", "revision", "revision_id", "previous_revision_id", "ancestors", "status",
    "content_hash", "original_hash", "redaction", "answers",
)  # fmt: skip

REASONS = {
    "unknown_field": _l("unknown field “{field}”"),
    "bad_field": _l("“{field}” is missing or malformed"),
    "ancestry": _l("its list of earlier revisions does not match its revision number"),
    "hash": _l("its content does not match its content hash"),
    "reused_revision": _l("revision {revision} is already held here with other content"),
    "not_canonical": _l("its answers are valid but not in the form's canonical form"),
    "timestamp": _l("“{field}” is not a time written as 2026-11-22T18:40:05Z"),
    "origin_node": _l("its origin ({origin}) is not the node that created it"),
    "origin_chain": _l("the first node in its “via” list is not its origin"),
    "origin_forwarded": _l(
        "it was created by node {origin}; only a bundle signed by a trusted key may forward reviews of other nodes"
    ),
    "origin_known": _l(
        "it claims to come from node {origin}, which this node knows by its key, but the bundle is not signed with that key"
    ),
    "origin_changed": _l("its origin differs from that of the review held here under the same id"),
    "reused_id": _l("its id is already used here by another review that it is not a revision of"),
    "more": _l("and {n} more problems"),
}


def _reason(code: str, **params) -> str:
    return str(REASONS[code]).format(**params)


# -- export ----------------------------------------------------------------------------


@dataclass
class ExportOptions:
    """What goes into an exported bundle.

    :param level: the destination's level; a review goes only if its sharing consent
        reaches it (national < regional < un).
    :param destination: the receiving node's name, remembered for ``unsent_only``.
    :param since: only reviews submitted on or after this date (YYYY-MM-DD).
    :param max_sensitivity: leave out reviews, and observations, classified above this.
    """

    level: str = "national"
    destination: str = ""
    unsent_only: bool = False
    since: str | None = None
    anonymise: bool = False
    max_sensitivity: str = "strictly_confidential"


def _allowed(catalogue: Catalogue, consent: str | None, level: str) -> bool:
    """A review travels only as far as its sharing consent reaches (national < regional < un)."""
    levels = catalogue.choices["sharing_consent"]
    return consent in levels.values and levels.rank(consent) >= levels.rank(level)


def _latest_submitted(store: Store, review: dict) -> dict | None:
    if review["status"] == "submitted":
        return review
    earlier = [r for r in store.list_revisions(review["id"]) if r["status"] == "submitted"]
    return earlier[-1] if earlier else None


def _origin(review: dict, node: dict) -> dict:
    if review.get("origin"):
        return review["origin"]
    return {
        "id": review["node_id"],
        **(
            {k: node[k] for k in ("name", "country", "level")}
            if review["node_id"] == node["id"]
            else {}
        ),
    }


def transport_record(
    review: dict, node: dict, catalogue: Catalogue, options: ExportOptions
) -> dict | None:
    """A stored revision as a bundle line: redacted as the options ask.

    :returns: None when nothing of it may go (every observation above the ceiling).
    """
    form = catalogue.get(review["form_id"], review["form_version"])
    sensitivity = catalogue.choices["sensitivity"]
    answers = orjson.loads(orjson.dumps(review["answers"]))
    redaction = dict(review.get("redaction") or {})
    if options.anonymise:
        for name in form.personal_fields():
            answers.pop(name, None)
        if "attribution" in answers:
            answers["attribution"] = "anonymous"
        redaction["anonymised"] = True
    ceiling = sensitivity.rank(options.max_sensitivity)
    observations = answers.get("observations") or []
    kept = [o for o in observations if sensitivity.rank(o.get("sensitivity")) <= ceiling]
    if len(kept) < len(observations):
        if not kept:
            return None
        answers["observations"] = kept
        redaction["observations_removed"] = (
            redaction.get("observations_removed", 0) + len(observations) - len(kept)
        )
        redaction["max_sensitivity"] = options.max_sensitivity
    record = {name: review.get(name) for name in RECORD_FIELDS}
    record.update(
        origin=_origin(review, node),
        via=review.get("via") or [],
        ancestors=review.get("ancestors") or [],
        original_hash=review.get("original_hash") or review["content_hash"],
        redaction=redaction or None,
        answers=answers,
        content_hash=content_hash(form.key, answers)
        if answers != review["answers"]
        else review["content_hash"],
    )
    return record


def select_for_export(store: Store, catalogue: Catalogue, node: dict, options: ExportOptions):
    """The records a bundle would hold, and how many were left out and why."""
    levels, sensitivity = catalogue.choices["sharing_consent"], catalogue.choices["sensitivity"]
    if options.level not in levels.values:
        raise ValueError(f"level must be one of {', '.join(levels.values)}")
    if options.max_sensitivity not in sensitivity.values:
        raise ValueError(f"max_sensitivity must be one of {', '.join(sensitivity.values)}")
    sent = store.revisions_sent_to(options.destination) if options.unsent_only else set()
    records, excluded = (
        [],
        {"draft": 0, "consent": 0, "sensitivity": 0, "already_sent": 0, "before_since": 0},
    )
    for review in store.iter_reviews():
        revision = _latest_submitted(store, review)
        if revision is None:
            excluded["draft"] += 1
            continue
        answers = revision["answers"]
        if not _allowed(catalogue, answers.get("sharing_consent"), options.level):
            excluded["consent"] += 1
            continue
        if sensitivity.rank(answers.get("sensitivity")) > sensitivity.rank(options.max_sensitivity):
            excluded["sensitivity"] += 1
            continue
        if options.since and (revision.get("submitted_at") or "")[:10] < options.since:
            excluded["before_since"] += 1
            continue
        if revision["revision_id"] in sent:
            excluded["already_sent"] += 1
            continue
        record = transport_record(revision, node, catalogue, options)
        if record is None:
            excluded["sensitivity"] += 1
            continue
        records.append(record)
    records.sort(key=lambda r: (r["submitted_at"] or "", r["id"]))
    return records, excluded


def export_bundle(
    store: Store,
    catalogue: Catalogue,
    node: dict,
    node_key: keys.NodeKey,
    path: Path,
    options: ExportOptions,
    who: str,
) -> dict:
    """Write a bundle of this node's submitted reviews and log the export.

    :returns: the export log entry (counts, exclusions, sha256).
    """
    records, excluded = select_for_export(store, catalogue, node, options)
    forms = sorted({(r["form_id"], r["form_version"]) for r in records})
    stamp = now()
    manifest = {
        "bundle_id": str(uuid.uuid4()),
        "created_at": stamp,
        "app_version": __version__,
        "source": {
            "node_id": node["id"],
            "name": node["name"],
            "country": node["country"],
            "level": node["level"],
        },
        "destination": {"name": options.destination, "level": options.level},
        "filters": {
            "since": options.since,
            "anonymised": options.anonymise,
            "max_sensitivity": options.max_sensitivity,
            "unsent_only": options.unsent_only,
        },
        "forms": {catalogue.get(*f).key: catalogue.get(*f).embedded() for f in forms},
        "counts": {
            "reviews": len(records),
            "observations": sum(len(r["answers"].get("observations") or []) for r in records),
            "excluded": excluded,
        },
    }
    digest = write_bundle(path, manifest, records, node_key)
    entry = {
        "id": manifest["bundle_id"],
        "created_at": stamp,
        "file_name": path.name,
        "sha256": digest,
        "destination": options.destination,
        "level": options.level,
        "filters": manifest["filters"],
        "counts": manifest["counts"],
        "revision_ids": [r["revision_id"] for r in records],
        "signer": node_key.fingerprint,
        "who": who,
    }
    store.add_export(entry)
    audit(store, "export", who, bundle_id=entry["id"], reviews=len(records), level=options.level,
          destination=options.destination, anonymised=options.anonymise)  # fmt: skip
    return entry


# -- import ----------------------------------------------------------------------------

#: Quarantine bounds (``docs/bundle-format.md``, *Quarantine*).
MAX_INVALID_PER_IMPORT = 100  # more invalid records than this: the bundle is refused whole
MAX_QUARANTINE_ENTRIES = 5000  # all imports together
MAX_QUARANTINE_BYTES = 32 * 2**20  # records kept whole, all entries together
MAX_QUARANTINED_RECORD_BYTES = 64 * 2**10  # beyond: only its sha256, size and reasons
MAX_REASONS, MAX_REASON_CHARS = 20, 300
MAX_FORMS_PER_BUNDLE = 16
MAX_VIA = 32  # hops a record may have travelled
MAX_TEXT = 200  # node ids, names, countries, levels in origin and via
ORIGIN_KEYS = {"id", "name", "country", "level"}
VIA_KEYS = {"node_id", "name", "country", "level", "bundle_sha256", "received_at"}


@dataclass
class ImportPlan:
    """What importing a bundle would do; nothing is stored until it is applied."""

    bundle: Bundle
    file_name: str
    new: list[dict] = field(default_factory=list)
    newer: list[dict] = field(default_factory=list)
    unchanged: list[dict] = field(default_factory=list)
    conflicts: list[dict] = field(default_factory=list)
    invalid: list[tuple[int, dict, list[str]]] = field(default_factory=list)
    forms: dict[str, FormDefinition] = field(default_factory=dict)  # new to this node
    signer_status: str = "unsigned"  # unsigned | trusted | unknown | mismatch
    trust_key: bool = False  # the signer's key becomes trusted when the plan is applied
    #: ids of conflicts that are "newer" revisions from a signer not trusted to replace
    unverified: set[str] = field(default_factory=set)
    already_imported: dict | None = None

    @property
    def trusted(self) -> bool:
        return self.signer_status == "trusted"

    def counts(self) -> dict[str, int]:
        return {
            "new": len(self.new),
            "newer": len(self.newer),
            "unchanged": len(self.unchanged),
            "conflicts": len(self.conflicts),
            "invalid": len(self.invalid),
        }

    def summary(self) -> dict:
        """The plan as plain data (for --json and the preview page)."""
        manifest = self.bundle.manifest
        return {
            "file": self.file_name,
            "bundle_sha256": self.bundle.sha256,
            "bundle_id": manifest["bundle_id"],
            "source": manifest["source"],
            "created_at": manifest["created_at"],
            "signer": {
                "status": self.signer_status,
                **(
                    {"fingerprint": self.bundle.signer["fingerprint"]} if self.bundle.signer else {}
                ),
                **({"newly_trusted": True} if self.trust_key else {}),
            },
            "counts": self.counts(),
            "held_for_review": len(self.unverified),
            "invalid": [
                {"line": line, "review_id": _review_id(rec), "reasons": reasons}
                for line, rec, reasons in self.invalid
            ],
            "forms_added": sorted(self.forms),
            "already_imported_at": (self.already_imported or {}).get("imported_at"),
        }


def _review_id(record: dict) -> str | None:
    value = record.get("id")
    return value if isinstance(value, str) and UUID.match(value) else None


def _text(value, limit: int = MAX_TEXT) -> bool:
    return isinstance(value, str) and 0 < len(value) <= limit


def _envelope_problems(record: dict) -> list[str]:
    problems = [
        _reason("unknown_field", field=str(k)[:60]) for k in record if k not in RECORD_FIELDS
    ]

    def bad(name, ok):
        if not ok:
            problems.append(_reason("bad_field", field=name))

    get = record.get
    bad("id", isinstance(get("id"), str) and UUID.match(get("id")))
    bad("revision_id", isinstance(get("revision_id"), str) and UUID.match(get("revision_id")))
    bad("form_id", isinstance(get("form_id"), str) and RECEIVED_FORM_ID.match(get("form_id")))
    bad(
        "form_version",
        type(get("form_version")) is int and 1 <= get("form_version") <= MAX_FORM_VERSION,
    )
    bad("revision", type(get("revision")) is int and 1 <= get("revision") <= 10_000)
    bad("status", get("status") == "submitted")
    bad("node_id", _text(get("node_id")))
    origin = get("origin")
    bad(
        "origin",
        isinstance(origin, dict)
        and set(origin) <= ORIGIN_KEYS
        and _text(origin.get("id"))
        and all(
            _text(origin[k]) for k in ("name", "country", "level") if origin.get(k) is not None
        ),
    )
    via = get("via")
    bad(
        "via",
        isinstance(via, list)
        and len(via) <= MAX_VIA
        and all(
            isinstance(hop, dict)
            and set(hop) == VIA_KEYS
            and all(_text(hop[k]) for k in ("node_id", "name", "country", "level"))
            and isinstance(hop["bundle_sha256"], str)
            and HEX64.match(hop["bundle_sha256"])
            and is_timestamp(hop["received_at"])
            for hop in via
        ),
    )
    bad("redaction", get("redaction") is None or isinstance(get("redaction"), dict))
    bad("answers", isinstance(get("answers"), dict))
    for name in ("created_at", "updated_at", "submitted_at"):
        if not is_timestamp(get(name)):
            problems.append(_reason("timestamp", field=name))
    for name in ("content_hash", "original_hash"):
        bad(name, isinstance(get(name), str) and HEX64.match(get(name)))
    previous, ancestors = get("previous_revision_id"), get("ancestors")
    bad(
        "previous_revision_id",
        previous is None or (isinstance(previous, str) and UUID.match(previous)),
    )
    bad(
        "ancestors",
        isinstance(ancestors, list)
        and all(isinstance(a, str) and UUID.match(a) for a in ancestors),
    )
    if not problems and (
        len(ancestors) != record["revision"] - 1
        or (ancestors[-1] if ancestors else None) != previous
    ):
        problems.append(_reason("ancestry"))
    if not problems and record["origin"]["id"] != record["node_id"]:
        problems.append(_reason("origin_node", origin=record["origin"]["id"][:60]))
    if not problems and (via[0]["node_id"] if via else None) not in (None, record["origin"]["id"]):
        problems.append(_reason("origin_chain"))
    return problems


def _origin_problems(
    record: dict, plan: ImportPlan, known_nodes: set[str], own_id: str
) -> list[str]:
    """Whether the bundle's signer may speak for the record's origin.

    A trusted signer is the origin (nothing forwarded yet) or a trusted forwarder (the
    record's ``via`` starts at the origin). Without a trusted signer a bundle carries
    only reviews its own source created, and never those of a node known here by a
    key, nor this node's own.
    """
    origin = record["origin"]["id"]
    source = plan.bundle.manifest["source"]["node_id"]
    if plan.trusted:
        return []
    if origin != source or record["via"]:
        return [_reason("origin_forwarded", origin=origin[:60])]
    if origin == own_id or origin in known_nodes:
        return [_reason("origin_known", origin=origin[:60])]
    return []


def _answer_problems(form: FormDefinition, answers: dict) -> list[str]:
    if form.is_canonical(answers):
        return []
    try:
        form.validate(answers, "submit")
    except ValidationError as exc:
        return [f"{name}: {' '.join(msgs)}" for name, msgs in flatten_errors(exc.messages).items()]
    return [_reason("not_canonical")]


def _forms_for(
    catalogue: Catalogue, bundle: Bundle, trusted: bool
) -> tuple[dict[str, FormDefinition], dict[str, FormDefinition]]:
    """Every form the bundle's records use, and those among them new to this node.

    :raises BundleError: a form is broken, too large, unused, or new to this node and
        the signer is not trusted; a record's form is neither known nor included.
    """
    embedded = bundle.manifest["forms"]
    if len(embedded) > MAX_FORMS_PER_BUNDLE:
        raise BundleError("too_many_forms", count=len(embedded), limit=MAX_FORMS_PER_BUNDLE)
    used = {f"{r.get('form_id')}.v{r.get('form_version')}" for r in bundle.records}
    for key in sorted(used - set(embedded)):
        if catalogue.find(key) is None:
            raise BundleError("unknown_form", form=key[:80])
    available, added = {}, {}
    for key, body in embedded.items():
        if key not in used:
            raise BundleError("unused_form", form=key[:80])
        if catalogue.find(key) is None and not trusted:
            raise BundleError("untrusted_form", form=key[:80])
        try:
            form = catalogue.check_received(body, f"manifest.json forms.{key}")
        except DefinitionError as exc:
            raise BundleError("bad_form", form=key[:80], detail=exc.problem) from None
        if form.key != key:
            raise BundleError("bad_form", form=key[:80], detail=f"it calls itself {form.key}")
        available[key] = form
        if catalogue.find(key) is None:
            added[key] = form
    for key in used - set(available):
        available[key] = catalogue.find(key)
    return available, added


def signer_status(store: Store, bundle: Bundle) -> str:
    """``unsigned``; ``trusted`` (a key trusted for the bundle's source node);
    ``mismatch`` (a key claiming a node this node knows by another key, or a trusted
    key claiming another node, or this node itself); else ``unknown``."""
    if bundle.signer is None:
        return "unsigned"
    node_id = bundle.signer["node_id"]
    key = store.find_trusted_key(bundle.signer["fingerprint"])
    if key is not None:
        return "trusted" if key["node_id"] == node_id else "mismatch"
    own = store.find_node() or {}
    if node_id == own.get("id"):
        # This node's own bundle, signed with its own key, is trusted; any other key is not.
        own_key = store.folder / "node_key.pem"
        if (
            own_key.exists()
            and keys.NodeKey(store.folder).fingerprint == bundle.signer["fingerprint"]
        ):
            return "trusted"
        return "mismatch"
    if any(k["node_id"] == node_id for k in store.list_trusted_keys()):
        return "mismatch"
    return "unknown"


def _quarantine_size(record: dict) -> tuple[str, int]:
    data = orjson.dumps(record)
    return hashlib.sha256(data).hexdigest(), len(data)


def _check_quarantine_bounds(store: Store, invalid: list) -> None:
    if not invalid:
        return
    if len(invalid) > MAX_INVALID_PER_IMPORT:
        raise BundleError("too_many_invalid", count=len(invalid), limit=MAX_INVALID_PER_IMPORT)
    held, kept = store.quarantine_totals()
    for _line, record, _reasons in invalid:
        size = _quarantine_size(record)[1]
        kept += size if size <= MAX_QUARANTINED_RECORD_BYTES else 0
    if held + len(invalid) > MAX_QUARANTINE_ENTRIES:
        raise BundleError("quarantine_full", detail=f"{held} of {MAX_QUARANTINE_ENTRIES} records")
    if kept > MAX_QUARANTINE_BYTES:
        raise BundleError(
            "quarantine_full", detail=f"{kept // 2**20} MB of {MAX_QUARANTINE_BYTES // 2**20} MB"
        )


def _bounded(reasons: list[str]) -> list[str]:
    kept = [r if len(r) <= MAX_REASON_CHARS else r[: MAX_REASON_CHARS - 1] + "…" for r in reasons]
    if len(kept) > MAX_REASONS:
        kept = [*kept[:MAX_REASONS], _reason("more", n=len(kept) - MAX_REASONS)]
    return kept


def plan_import(
    store: Store, catalogue: Catalogue, bundle: Bundle, file_name: str, trust: bool = False
) -> ImportPlan:
    """The dry run: classify every record of a checked bundle; store nothing.

    :param trust: plan as if the signer's key were trusted (an administrator compared
        its fingerprint); the key is stored when the plan is applied.
    :raises BundleError: the bundle as a whole is refused (its forms, its signer when
        ``trust`` is asked for a mismatched key, the quarantine bounds).
    """
    plan = ImportPlan(bundle=bundle, file_name=file_name)
    plan.already_imported = store.find_import_of_bundle(bundle.sha256)
    plan.signer_status = signer_status(store, bundle)
    if trust and bundle.signer is not None:
        if plan.signer_status == "mismatch":
            raise BundleError(
                "trust_mismatch",
                fingerprint=bundle.signer["fingerprint"],
                node=bundle.signer["name"][:80],
            )
        if plan.signer_status == "unknown":
            plan.signer_status, plan.trust_key = "trusted", True
    forms, plan.forms = _forms_for(catalogue, bundle, plan.trusted)
    known_nodes = {k["node_id"] for k in store.list_trusted_keys()}
    own_id = (store.find_node() or {}).get("id")
    heads, archived = store.review_heads(), store.archived_revision_ids()
    for line, record in enumerate(bundle.records, start=1):
        problems = _envelope_problems(record)
        if problems:
            plan.invalid.append((line, record, _bounded(problems)))
            continue
        form = forms[f"{record['form_id']}.v{record['form_version']}"]
        revision_id, current = record["revision_id"], heads.get(record["id"])
        held = archived.get(revision_id)
        if held is not None and held["id"] != record["id"]:
            plan.invalid.append((line, record, [_reason("reused_revision", revision=revision_id)]))
            continue
        if held is None and current is not None and current["revision_id"] == revision_id:
            held = current
        if held is not None:
            # The same revision, perhaps in another redaction (anonymised, capped).
            ours = {held["content_hash"], held.get("original_hash")} - {None}
            if ours & {record["content_hash"], record["original_hash"]}:
                plan.unchanged.append(record)
            else:
                plan.invalid.append(
                    (line, record, [_reason("reused_revision", revision=revision_id)])
                )
            continue
        if current is not None and revision_id in (current.get("ancestors") or []):
            plan.unchanged.append(record)  # an older revision than the one held
            continue
        # Whatever will be stored (even in quarantine) must come from a signer that may
        # speak for its origin; what is already held changes nothing.
        problems = _origin_problems(record, plan, known_nodes, own_id)
        if problems:
            plan.invalid.append((line, record, problems))
            continue
        if current is not None and not {
            *(current.get("ancestors") or []),
            current["revision_id"],
        } & set(record["ancestors"]):
            # Not a revision of the review held under this id (a local draft, say):
            # it must never take that review over, nor hide it from its author.
            plan.invalid.append((line, record, [_reason("reused_id")]))
            continue
        if current is not None:
            held_origin = (store.get_review(record["id"]).get("origin") or {}).get("id")
            if held_origin not in (None, record["origin"]["id"]):
                plan.invalid.append((line, record, [_reason("origin_changed")]))
                continue
        # Only what will be stored needs its content checked against its hash.
        if content_hash(form.key, record["answers"]) != record["content_hash"]:
            plan.invalid.append((line, record, [_reason("hash")]))
            continue
        problems = _answer_problems(form, record["answers"])
        if problems:
            plan.invalid.append((line, record, _bounded(problems)))
        elif current is None:
            plan.new.append(record)
        elif current["revision_id"] in record["ancestors"] and plan.trusted:
            plan.newer.append(record)
        else:
            if current["revision_id"] in record["ancestors"]:
                # Newer, but from a signer not trusted to replace: an analyst decides.
                plan.unverified.add(record["id"])
            plan.conflicts.append(record)
    _check_quarantine_bounds(store, plan.invalid)
    return plan


def apply_import(store: Store, catalogue: Catalogue, plan: ImportPlan, who: str) -> dict:
    """Store a plan in one write; importing the same bundle again changes nothing.

    :returns: the import log entry (the earlier one, for a bundle already imported).
    """
    if plan.already_imported is not None and not plan.trust_key:
        return {**plan.already_imported, "already_imported": True}
    stamp, import_id = now(), str(uuid.uuid4())
    manifest = plan.bundle.manifest
    source = manifest["source"]
    hop = {**source, "bundle_sha256": plan.bundle.sha256, "received_at": stamp}

    def received(record: dict) -> dict:
        return {
            **record,
            "via": [*record["via"], hop],
            "import_id": import_id,
            "imported_at": stamp,
        }

    reviews = {r["id"]: received(r) for r in plan.new + plan.newer}
    archived = [store.get_review(r["id"]) for r in plan.newer]
    conflicts = [
        {
            "id": str(uuid.uuid4()),
            "review_id": r["id"],
            "held_revision_id": store.get_review(r["id"])["revision_id"],
            "incoming": received(r),
            "detected_at": stamp,
            "import_id": import_id,
            "source": source,
            "status": "open",
            "reason": "unverified_newer" if r["id"] in plan.unverified else "divergent",
        }
        for r in plan.conflicts
    ]
    quarantined = []
    for line, record, reasons in plan.invalid:
        sha, size = _quarantine_size(record)
        quarantined.append(
            {
                "id": str(uuid.uuid4()),
                "import_id": import_id,
                "bundle_sha256": plan.bundle.sha256,
                "file_name": plan.file_name,
                "line": line,
                "review_id": _review_id(record),
                "reasons": reasons,
                # Beyond the bound only what identifies it: a hostile bundle must not
                # make the data folder grow by what it carries.
                "record": record if size <= MAX_QUARANTINED_RECORD_BYTES else None,
                "sha256": sha,
                "bytes": size,
                "imported_at": stamp,
                "source": source,
            }
        )
    entry = {
        "id": import_id,
        "bundle_sha256": plan.bundle.sha256,
        "bundle_id": manifest["bundle_id"],
        "file_name": plan.file_name,
        "source": source,
        "bundle_created_at": manifest["created_at"],
        "imported_at": stamp,
        "who": who,
        "counts": plan.counts(),
        "signer": plan.summary()["signer"],
        "forms_added": sorted(plan.forms),
    }
    forms = {key: form.embedded() for key, form in plan.forms.items()}
    with store.atomic():
        if plan.trust_key:
            trust_signer(store, plan.bundle)
        if plan.already_imported is not None:
            return {**plan.already_imported, "already_imported": True}
        store.apply_import(entry, reviews, archived, conflicts, quarantined, forms)
    audit(store, "import", who, import_id=import_id, bundle_sha256=plan.bundle.sha256,
          source=source["name"], **plan.counts())  # fmt: skip
    for form in plan.forms.values():
        catalogue.add_received(form)
    return entry


def import_file(
    store: Store,
    catalogue: Catalogue,
    path: Path,
    who: str,
    dry_run: bool = False,
    trust: bool = False,
) -> dict:
    """Check, plan and (unless ``dry_run``) apply one bundle file.

    :param trust: trust the signer's key (refused for a key that claims a node known
        by another key); stored together with the import, or not at all.
    :returns: the plan's summary, with ``applied`` and the log entry's id.
    :raises BundleError: the file is refused; nothing was stored.
    """
    with open(path, "rb") as fh:
        sha = hashlib.file_digest(fh, "sha256").hexdigest()
    earlier = store.find_import_of_bundle(sha)
    if earlier is not None and not trust:
        # Exactly this file was imported before: nothing to read, nothing to change.
        return {
            "file": path.name,
            "bundle_sha256": sha,
            "bundle_id": earlier["bundle_id"],
            "source": earlier["source"],
            "signer": earlier["signer"],
            "counts": dict.fromkeys(earlier["counts"], 0),
            "invalid": [],
            "forms_added": [],
            "already_imported_at": earlier["imported_at"],
            "applied": False,
        }
    with paused_gc():
        plan = plan_import(store, catalogue, read_bundle(path), path.name, trust=trust)
        summary = plan.summary()
        if dry_run:
            return {**summary, "applied": False}
        entry = apply_import(store, catalogue, plan, who)
    return {**summary, "applied": not entry.get("already_imported"), "import_id": entry["id"]}


def trust_signer(store: Store, bundle: Bundle) -> None:
    """Remember a bundle's signing key as belonging to its source node.

    :raises BundleError: ``trust_mismatch``: the key claims a node this node knows by
        another key (or this node itself); nothing is stored.
    """
    if bundle.signer is None:
        raise ValueError("the bundle is not signed")
    trust_key(store, bundle.signer["public_key"], bundle.signer["node_id"], bundle.signer["name"])


def trust_key(store: Store, public_key: str, node_id: str, name: str) -> None:
    fingerprint = keys.fingerprint(public_key)
    known = store.find_trusted_key(fingerprint)
    own = store.find_node() or {}
    others = [k for k in store.list_trusted_keys() if k["node_id"] == node_id]
    if (known is not None and known["node_id"] != node_id) or (
        known is None and (others or node_id == own.get("id"))
    ):
        raise BundleError("trust_mismatch", fingerprint=fingerprint, node=name[:80])
    if known is not None:
        return
    store.trust_key(
        {
            "fingerprint": fingerprint,
            "public_key": public_key,
            "node_id": node_id,
            "name": name,
            "added_at": now(),
        }
    )


# -- conflicts ---------------------------------------------------------------------------


def resolve_conflict(store: Store, conflict_id: str, keep: str, who: str) -> dict:
    """Decide which of two divergent revisions is current; the other is kept in history.

    :param keep: ``"held"`` (the revision this node had) or ``"incoming"``.
    """
    if keep not in ("held", "incoming"):
        raise ValueError("keep must be 'held' or 'incoming'")
    conflict = store.get_conflict(conflict_id)
    if conflict["status"] != "open":
        raise Conflict(f"conflict {conflict_id} is already resolved")
    held = store.get_review(conflict["review_id"])
    incoming = conflict["incoming"]
    if keep == "incoming":
        # Whoever wrote or edits the review here keeps it in their list.
        incoming = {**incoming, **{k: held[k] for k in ("author", "editor") if k in held}}
    current, archive = (incoming, held) if keep == "incoming" else (held, incoming)
    resolved = {
        **conflict,
        "status": "resolved",
        "kept": keep,
        "resolved_at": now(),
        "resolved_by": who,
    }
    store.resolve_conflict(resolved, current, archive, expected_hash=held["content_hash"])
    audit(store, "conflict_resolved", who, review_id=conflict["review_id"], kept=keep)
    return resolved


# -- receipts ----------------------------------------------------------------------------

RECEIPT_FORMAT = "deployment-review-receipt"


def make_receipt(
    store: Store, node: dict, node_key: keys.NodeKey, for_node_id: str, who: str = "system"
) -> bytes:
    """A signed list of the revisions this node holds that came from ``for_node_id``."""
    held = []
    for review in store.iter_reviews():
        if (review.get("origin") or {}).get("id", review.get("node_id")) == for_node_id and review[
            "status"
        ] == "submitted":
            held.append(
                {k: review.get(k) for k in ("id", "revision_id", "content_hash", "original_hash")}
            )
    body = {
        "format": RECEIPT_FORMAT,
        "format_version": 1,
        "receipt_id": str(uuid.uuid4()),
        "created_at": now(),
        "issuer": {
            "node_id": node["id"],
            "name": node["name"],
            "country": node["country"],
            "level": node["level"],
        },
        "for_node_id": for_node_id,
        "held": sorted(held, key=lambda h: h["id"]),
        "signer": {
            "public_key": node_key.public_key,
            "fingerprint": node_key.fingerprint,
            "algorithm": "ed25519",
        },
    }
    signed = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    audit(store, "receipt_made", who, for_node=for_node_id, reviews=len(held))
    return orjson.dumps(
        {**body, "signature": node_key.sign(signed)},
        option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS,
    )


class ReceiptError(ValueError):
    """A receipt that cannot be used; nothing was changed."""


def apply_receipt(
    store: Store,
    node: dict,
    data: bytes,
    archive: bool = False,
    who: str = "system",
    trust: bool | str = False,
) -> dict:
    """Mark the reviews a receipt lists as delivered; optionally archive them.

    A receipt counts only when signed by a key this node trusts for its issuer: a
    receipt signed by the key it carries proves nothing about who wrote it.

    :param trust: trust the issuer's key first (an administrator compared its
        fingerprint); a text trusts it only if it is that fingerprint.
    :returns: counts of delivered, archived and unmatched entries, and the issuer.
    :raises ReceiptError: not a receipt, for another node, altered, or not signed by
        a trusted key of its issuer; nothing was changed.
    """
    try:
        receipt = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise ReceiptError(str(_l("This file is not a receipt (not JSON)."))) from None
    if not isinstance(receipt, dict) or receipt.get("format") != RECEIPT_FORMAT:
        raise ReceiptError(str(_l("This file is not a Deployment Review receipt.")))
    if receipt.get("format_version") != 1:
        raise ReceiptError(
            str(_l("Receipt format version {found} is not known to this app.")).format(
                found=str(receipt.get("format_version"))[:20]
            )
        )
    if receipt.get("for_node_id") != node["id"]:
        raise ReceiptError(
            str(_l("This receipt is for another node ({other}).")).format(
                other=str(receipt.get("for_node_id"))[:80]
            )
        )
    issuer, signer = receipt.get("issuer"), receipt.get("signer")
    if (
        not isinstance(issuer, dict)
        or not all(_text(issuer.get(k)) for k in ("node_id", "name", "country", "level"))
        or not isinstance(signer, dict)
        or not isinstance(signer.get("public_key"), str)
        or not is_timestamp(receipt.get("created_at"))
    ):
        raise ReceiptError(str(_l("The receipt's issuer, signer or date is malformed.")))
    body = {k: v for k, v in receipt.items() if k != "signature"}
    if not keys.verify(
        signer["public_key"],
        str(receipt.get("signature")),
        orjson.dumps(body, option=orjson.OPT_SORT_KEYS),
    ):
        raise ReceiptError(str(_l("The receipt's signature does not match: it was altered.")))
    held = receipt.get("held")
    if not isinstance(held, list) or not all(isinstance(h, dict) for h in held):
        raise ReceiptError(str(_l("The receipt's list of reviews is malformed.")))
    issuer = {k: issuer[k] for k in ("node_id", "name", "country", "level")}
    fingerprint = keys.fingerprint(signer["public_key"])
    trusted = store.find_trusted_key(fingerprint)
    trusted_here = trusted is not None and trusted["node_id"] == issuer["node_id"]
    if not trusted_here and not (trust is True or (trust and trust.strip().lower() == fingerprint)):
        raise ReceiptError(
            str(
                _l(
                    "The receipt is signed by key {fingerprint}, which this node does not trust for {name}; nothing was marked delivered. Compare the fingerprint with {name} before trusting it."
                )
            ).format(fingerprint=fingerprint, name=issuer["name"][:80])
        )
    stamp, deliveries, unmatched = now(), {}, 0
    heads = store.review_heads()
    archivable = []
    for item in held:
        head = heads.get(item.get("id"))
        if head is None:
            unmatched += 1
            continue
        hashes = {head["content_hash"], head.get("original_hash")} - {None}
        if head["revision_id"] == item.get("revision_id") and hashes & {
            item.get("content_hash"),
            item.get("original_hash"),
        }:
            deliveries[item["revision_id"]] = {
                "review_id": item["id"],
                "revision_id": item["revision_id"],
                "to": issuer,
                "receipt_id": str(receipt.get("receipt_id"))[:80],
                "delivered_at": stamp,
            }
            archivable.append(item["id"])
        else:
            unmatched += 1
    with store.atomic():
        if not trusted_here:
            try:
                trust_key(store, signer["public_key"], issuer["node_id"], issuer["name"])
            except BundleError as exc:
                raise ReceiptError(str(exc)) from None
        store.record_deliveries(deliveries)
        archived = store.archive_reviews(archivable, stamp) if archive else 0
    audit(
        store,
        "receipt_applied",
        who,
        issuer=issuer["name"],
        delivered=len(deliveries),
        archived=archived,
    )
    return {
        "delivered": len(deliveries),
        "archived": archived,
        "unmatched": unmatched,
        "issuer": issuer,
        "fingerprint": fingerprint,
    }


def list_source_nodes(store: Store, node: dict) -> list[dict]:
    """Nodes whose reviews this node holds (for making receipts)."""
    found: dict[str, dict] = {}
    for review in store.iter_reviews():
        origin = review.get("origin") or {}
        if origin.get("id") and origin["id"] != node["id"]:
            found.setdefault(origin["id"], {**origin, "reviews": 0})["reviews"] += 1
    return sorted(found.values(), key=lambda o: (o.get("name") or "", o["id"]))


def parse_date(text: str | None) -> str | None:
    """``YYYY-MM-DD`` or None; anything else is refused with a ValueError."""
    if not text:
        return None
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        pass
    raise ValueError(f"{text!r} is not a date (YYYY-MM-DD)")
