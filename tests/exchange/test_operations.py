"""Export and import between nodes: provenance, idempotence, revisions, conflicts."""

from __future__ import annotations

import orjson
import pytest

from reviewapp.exchange import operations
from reviewapp.reviews.operations import content_hash
from tests.exchange.conftest import make_answers, make_conflict, make_observation, members_of


def test_round_trip_field_centre_region_keeps_provenance(field, centre, region, tmp_path):
    review = field.submit(contingent="URUBATT 42")
    centre_own = centre.submit(contingent="ENOPU staff")
    centre.trusts(field)
    region.trusts(centre)

    field.export(tmp_path / "field.drb")
    report = centre.import_(tmp_path / "field.drb")
    assert report["applied"] and report["counts"]["new"] == 1
    at_centre = centre.store.get_review(review["id"])
    assert at_centre["answers"] == review["answers"]
    assert at_centre["origin"]["name"] == "URUBATT laptop"
    assert [hop["name"] for hop in at_centre["via"]] == ["URUBATT laptop"]

    centre.export(tmp_path / "centre.drb", level="regional")
    report = region.import_(tmp_path / "centre.drb")
    assert report["counts"]["new"] == 2
    at_region = region.store.get_review(review["id"])
    assert at_region["origin"]["id"] == field.node["id"]
    assert [hop["name"] for hop in at_region["via"]] == ["URUBATT laptop", "ENOPU"]
    assert at_region["content_hash"] == review["content_hash"]
    assert region.store.get_review(centre_own["id"])["origin"]["name"] == "ENOPU"
    log = region.store.list_imports()
    assert (
        log[0]["source"]["name"] == "ENOPU"
        and log[0]["counts"]["new"] == 2
        and log[0]["who"] == "test"
    )


def test_importing_the_same_bundle_twice_changes_nothing(field, centre, tmp_path):
    field.submit()
    field.export(tmp_path / "a.drb")
    centre.import_(tmp_path / "a.drb")
    before = centre.snapshot()
    again = centre.import_(tmp_path / "a.drb")
    assert again["applied"] is False and again["already_imported_at"]
    assert centre.snapshot() == before


def test_a_new_bundle_of_the_same_reviews_is_all_unchanged(field, centre, tmp_path):
    field.submit()
    field.submit()
    field.export(tmp_path / "a.drb")
    field.export(tmp_path / "b.drb")
    centre.import_(tmp_path / "a.drb")
    report = centre.import_(tmp_path / "b.drb")
    assert report["counts"] == {"new": 0, "newer": 0, "unchanged": 2, "conflicts": 0, "invalid": 0}
    assert centre.store.count_reviews() == 2


def test_dry_run_changes_nothing(field, centre, tmp_path):
    field.submit()
    field.export(tmp_path / "a.drb")
    before = centre.snapshot()
    report = centre.import_(tmp_path / "a.drb", dry_run=True)
    assert report["counts"]["new"] == 1 and report["applied"] is False
    assert centre.snapshot() == before
    assert centre.store.list_imports() == []


def test_newer_revision_replaces_and_the_older_is_kept(field, centre, tmp_path):
    centre.trusts(field)
    review = field.submit(contingent="first")
    field.export(tmp_path / "1.drb")
    centre.import_(tmp_path / "1.drb")
    field.revise(review["id"], contingent="second")
    field.export(tmp_path / "2.drb")
    report = centre.import_(tmp_path / "2.drb")
    assert report["counts"]["newer"] == 1
    assert centre.store.get_review(review["id"])["answers"]["contingent"] == "second"
    assert [r["answers"]["contingent"] for r in centre.store.list_revisions(review["id"])] == [
        "first"
    ]
    # The first bundle again: its revision is older than the one held.
    centre.import_(tmp_path / "2.drb")
    field.export(tmp_path / "1b.drb")  # field now only exports revision 2
    assert centre.import_(tmp_path / "1b.drb")["counts"]["unchanged"] == 1


def test_two_revisions_from_the_same_parent_are_both_kept_as_a_conflict(field, centre, tmp_path):
    review = make_conflict(
        field, centre, tmp_path, held="centre's correction", incoming="field's correction"
    )
    assert centre.store.get_review(review["id"])["answers"]["contingent"] == "centre's correction"
    (conflict,) = centre.store.list_conflicts("open")
    assert conflict["incoming"]["answers"]["contingent"] == "field's correction"

    operations.resolve_conflict(centre.store, conflict["id"], "incoming", "analyst")
    assert centre.store.get_review(review["id"])["answers"]["contingent"] == "field's correction"
    kept = {r["answers"]["contingent"] for r in centre.store.list_revisions(review["id"])}
    assert kept == {"original", "centre's correction"}
    assert centre.store.list_conflicts("open") == []
    with pytest.raises(operations.Conflict):
        operations.resolve_conflict(centre.store, conflict["id"], "held", "analyst")


def test_keeping_the_held_revision_keeps_the_incoming_one_in_history(field, centre, tmp_path):
    review = make_conflict(field, centre, tmp_path, held="held", incoming="incoming")
    (conflict,) = centre.store.list_conflicts("open")
    operations.resolve_conflict(centre.store, conflict["id"], "held", "analyst")
    assert centre.store.get_review(review["id"])["answers"]["contingent"] == "held"
    assert "incoming" in {
        r["answers"]["contingent"] for r in centre.store.list_revisions(review["id"])
    }


def test_anonymised_bundle_holds_no_personal_data(field, tmp_path):
    field.submit(
        attribution="named",
        respondent_name="Teniente Ana Pérez Quispe",
        respondent_contact="ana.perez@ejercito.example",
    )
    field.export(tmp_path / "anon.drb", anonymise=True)
    members = members_of(tmp_path / "anon.drb")
    for name, data in members.items():
        for secret in ("Ana Pérez", "Quispe", "ana.perez@ejercito.example"):
            assert secret.encode() not in data, (name, secret)
    # The field names appear only in the embedded form definition, never in a record.
    for field_name in (b"respondent_name", b"respondent_contact"):
        assert field_name not in members["reviews.jsonl"]
    (record,) = [
        orjson.loads(line)
        for line in members_of(tmp_path / "anon.drb")["reviews.jsonl"].splitlines()
    ]
    assert record["answers"]["attribution"] == "anonymous"
    assert record["redaction"] == {"anonymised": True}
    assert record["content_hash"] == content_hash("deployment-review.v1", record["answers"])
    # Without --anonymise the name travels (the field officer agreed to be named).
    field.export(tmp_path / "named.drb")
    assert "Ana Pérez Quispe".encode() in members_of(tmp_path / "named.drb")["reviews.jsonl"]


def test_anonymised_then_full_copy_of_the_same_revision_is_unchanged(field, centre, tmp_path):
    field.submit(attribution="named", respondent_name="Ana")
    field.export(tmp_path / "anon.drb", anonymise=True)
    field.export(tmp_path / "full.drb")
    centre.import_(tmp_path / "anon.drb")
    assert centre.import_(tmp_path / "full.drb")["counts"]["unchanged"] == 1


def test_export_respects_consent_sensitivity_and_dates(field, tmp_path):
    field.submit(sharing_consent="national", contingent="national only")
    field.submit(
        sharing_consent="regional", sensitivity="strictly_confidential", contingent="secret"
    )
    field.submit(sharing_consent="un", contingent="mixed",
                 observations=[make_observation(title="open"), make_observation(title="closed", sensitivity="confidential")])  # fmt: skip
    records, excluded = operations.select_for_export(
        field.store,
        field.catalogue,
        field.node,
        operations.ExportOptions(level="regional", max_sensitivity="unclassified"),
    )
    assert [r["answers"]["contingent"] for r in records] == ["mixed"]
    assert [o["title"] for o in records[0]["answers"]["observations"]] == ["open"]
    assert records[0]["redaction"]["observations_removed"] == 1
    assert excluded["consent"] == 1 and excluded["sensitivity"] == 1
    later = operations.ExportOptions(since="2999-01-01")
    assert operations.select_for_export(field.store, field.catalogue, field.node, later)[0] == []


def test_drafts_are_not_exported_but_the_last_submitted_revision_is(field, tmp_path):
    from reviewapp.reviews import operations as reviews

    reviews.start_review(field.store, field.catalogue, field.node, "es", "officer")
    review = field.submit(contingent="submitted one")
    reviews.revise_review(field.store, review["id"])  # a new draft on top
    records, excluded = operations.select_for_export(
        field.store, field.catalogue, field.node, operations.ExportOptions()
    )
    assert [r["answers"]["contingent"] for r in records] == ["submitted one"]
    assert excluded["draft"] == 1


def test_unsent_only_skips_what_already_went_to_that_destination(field, tmp_path):
    field.submit()
    field.export(tmp_path / "1.drb", destination="ENOPU", unsent_only=True)
    field.submit()
    entry = field.export(tmp_path / "2.drb", destination="ENOPU", unsent_only=True)
    assert entry["counts"]["reviews"] == 1 and entry["counts"]["excluded"]["already_sent"] == 1
    other = field.export(tmp_path / "3.drb", destination="CECOPAZ", unsent_only=True)
    assert other["counts"]["reviews"] == 2


def _rewrite_bundle(path, change):
    """Re-sign-free rewrite: change the records, fix checksums, drop the signature."""
    import hashlib

    from tests.exchange.conftest import write_zip

    members = members_of(path)
    records = [orjson.loads(line) for line in members["reviews.jsonl"].splitlines()]
    change(records)
    body = b"".join(orjson.dumps(r) + b"\n" for r in records)
    manifest = orjson.loads(members["manifest.json"])
    manifest.pop("signer")
    manifest["members"]["reviews.jsonl"] = {
        "sha256": hashlib.sha256(body).hexdigest(),
        "bytes": len(body),
    }
    manifest["counts"]["reviews"] = len(records)
    write_zip(path, {"manifest.json": orjson.dumps(manifest), "reviews.jsonl": body})


def test_invalid_records_are_quarantined_with_their_reasons_and_never_merged(
    field, centre, tmp_path
):
    field.submit(contingent="good")
    field.submit(contingent="bad")
    field.export(tmp_path / "b.drb")

    def spoil(records):
        bad = next(r for r in records if r["answers"]["contingent"] == "bad")
        bad["answers"]["rotation"] = 999  # over the form's maximum
        bad["content_hash"] = content_hash("deployment-review.v1", bad["answers"])
        records.append({**records[0], "id": "not-a-uuid"})

    _rewrite_bundle(tmp_path / "b.drb", spoil)
    report = centre.import_(tmp_path / "b.drb")
    assert report["counts"]["new"] == 1 and report["counts"]["invalid"] == 2
    assert {r["answers"]["contingent"] for r in centre.store.list_reviews()[0]} == {"good"}
    reasons = {q["line"]: q["reasons"] for q in centre.store.list_quarantine()}
    assert any("rotation: Enter a number from 1 to 200." in r for r in reasons[2])
    assert reasons[3] == ["“id” is missing or malformed"]


def test_a_record_whose_content_does_not_match_its_hash_is_quarantined(field, centre, tmp_path):
    field.submit(contingent="original")
    field.export(tmp_path / "b.drb")
    _rewrite_bundle(tmp_path / "b.drb", lambda rs: rs[0]["answers"].update(contingent="forged"))
    report = centre.import_(tmp_path / "b.drb")
    assert report["counts"]["invalid"] == 1
    assert centre.store.list_quarantine()[0]["reasons"] == [
        "its content does not match its content hash"
    ]


def test_receipt_marks_delivered_and_archives(field, centre, tmp_path):
    field.trusts(centre)
    kept = field.submit(contingent="delivered")
    field.export(tmp_path / "1.drb")
    later = field.submit(contingent="not yet sent")
    centre.import_(tmp_path / "1.drb")
    receipt = operations.make_receipt(centre.store, centre.node, centre.key, field.node["id"])
    result = operations.apply_receipt(field.store, field.node, receipt, archive=True)
    assert (result["delivered"], result["archived"], result["unmatched"]) == (1, 1, 0)
    assert field.store.get_review(kept["id"])["archived_at"]
    assert not field.store.get_review(later["id"]).get("archived_at")
    assert field.store.list_deliveries()[kept["revision_id"]]["to"]["name"] == "ENOPU"
    visible = {r["id"] for r in field.store.list_reviews({"archived": "no"})[0]}
    assert visible == {later["id"]}


def test_tampered_or_misaddressed_receipts_are_refused(field, centre, region, tmp_path):
    field.trusts(centre)
    field.submit()
    field.export(tmp_path / "1.drb")
    centre.import_(tmp_path / "1.drb")
    receipt = orjson.loads(
        operations.make_receipt(centre.store, centre.node, centre.key, field.node["id"])
    )
    receipt["held"].append({"id": "x", "revision_id": "y", "content_hash": "z"})
    with pytest.raises(operations.ReceiptError, match="signature does not match"):
        operations.apply_receipt(field.store, field.node, orjson.dumps(receipt))
    other = operations.make_receipt(centre.store, centre.node, centre.key, region.node["id"])
    with pytest.raises(operations.ReceiptError, match="for another node"):
        operations.apply_receipt(field.store, field.node, other)
    with pytest.raises(operations.ReceiptError, match="not a receipt"):
        operations.apply_receipt(field.store, field.node, b"\x00garbage")
    assert field.store.list_deliveries() == {}


def test_signer_is_shown_trusted_unknown_or_mismatched(field, centre, region, tmp_path):
    from reviewapp.exchange.bundle import read_bundle

    field.submit()
    field.export(tmp_path / "1.drb")
    assert centre.import_(tmp_path / "1.drb", dry_run=True)["signer"]["status"] == "unknown"
    operations.trust_signer(centre.store, read_bundle(tmp_path / "1.drb"))
    assert centre.import_(tmp_path / "1.drb", dry_run=True)["signer"]["status"] == "trusted"
    # Another key claiming to be the same node.
    impostor = centre.store.list_trusted_keys()[0]
    centre.store.trust_key({**impostor, "fingerprint": "00" * 8})
    centre.store._put("keys", {}, remove=[read_bundle(tmp_path / "1.drb").signer["fingerprint"]])
    assert centre.import_(tmp_path / "1.drb", dry_run=True)["signer"]["status"] == "mismatch"


def test_form_version_unknown_to_the_node_arrives_embedded(field, centre, tmp_path):
    """A node that lacks a form version learns it from a trusted bundle and keeps it."""
    centre.trusts(field)
    field.submit()
    field.export(tmp_path / "1.drb")
    del centre.catalogue.forms["deployment-review.v1"]  # as if this node never had v1
    report = centre.import_(tmp_path / "1.drb")
    assert report["forms_added"] == ["deployment-review.v1"] and report["counts"]["new"] == 1
    assert "deployment-review.v1" in centre.store.list_received_forms()


def test_answers_sent_are_exactly_what_was_stored(field, tmp_path):
    review = field.submit()
    field.export(tmp_path / "1.drb")
    (line,) = members_of(tmp_path / "1.drb")["reviews.jsonl"].splitlines()
    record = orjson.loads(line)
    assert record["answers"] == make_answers() | {"observations": review["answers"]["observations"]}
    assert set(record) == set(operations.RECORD_FIELDS)
