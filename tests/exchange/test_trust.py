"""The bundle trust model (docs/bundle-format.md, *Trust*), tried as an outside attacker
would: every rule from both sides, and on refusal the data folder byte-for-byte unchanged."""

from __future__ import annotations

import copy
import io
import uuid

import orjson
import pytest

import run
from reviewapp import create_app
from reviewapp.exchange import keys, operations
from reviewapp.exchange.bundle import BundleError, write_bundle
from reviewapp.reviews import operations as reviews
from reviewapp.reviews.operations import content_hash
from tests.conftest import FAST
from tests.exchange.conftest import members_of

HUGE = 18446744073709551615


def parts(path):
    """The manifest (without members and signer) and the records of a bundle."""
    members = members_of(path)
    manifest = orjson.loads(members["manifest.json"])
    manifest.pop("members")
    manifest.pop("signer", None)
    records = [orjson.loads(line) for line in members["reviews.jsonl"].splitlines()]
    return manifest, records


def rebuild(path, out, key=None, records=None, **manifest_changes):
    """``path`` rewritten with other records or manifest fields, signed by ``key`` (or not)."""
    manifest, old = parts(path)
    records = old if records is None else records
    manifest.update(manifest_changes)
    manifest["counts"] = {**manifest["counts"], "reviews": len(records)}
    write_bundle(out, manifest, records, key)
    return out


def attacker_key(tmp_path):
    folder = tmp_path / f"attacker-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    return keys.NodeKey(folder)


def rehash(record, form_key="deployment-review.v1"):
    record["content_hash"] = record["original_hash"] = content_hash(form_key, record["answers"])
    return record


def refused(node, path, code, trust=False):
    """Importing ``path`` is refused with ``code`` and changes nothing."""
    before = node.snapshot()
    with pytest.raises(BundleError) as info:
        node.import_(path, trust=trust)
    assert info.value.code == code, str(info.value)
    assert str(info.value)
    assert node.snapshot() == before
    return info.value


@pytest.fixture
def exported(field, tmp_path):
    """A review submitted on the field laptop, and its (signed) bundle."""
    review = field.submit(contingent="URUBATT 42")
    path = tmp_path / "field.drb"
    field.export(path)
    return review, path


# -- adding and replacing ----------------------------------------------------------------


def test_unsigned_or_untrusted_bundle_may_add_new_reviews(field, centre, exported, tmp_path):
    review, path = exported
    unsigned = rebuild(path, tmp_path / "unsigned.drb")
    report = centre.import_(unsigned)
    assert report["signer"]["status"] == "unsigned" and report["counts"]["new"] == 1
    assert centre.store.get_review(review["id"])["answers"]["contingent"] == "URUBATT 42"


@pytest.mark.parametrize("signer", ["unsigned", "unknown key", "trusted"])
def test_only_a_trusted_origin_replaces_a_review_with_a_newer_revision(
    signer, field, centre, exported, tmp_path
):
    review, first = exported
    centre.trusts(field)
    centre.import_(first)
    if signer != "trusted":
        centre.store._put("keys", {}, remove=[field.key.fingerprint])  # forget the key
    field.revise(review["id"], contingent="second")
    second = tmp_path / "second.drb"
    field.export(second)
    if signer == "unsigned":
        second = rebuild(second, tmp_path / "second-unsigned.drb")
    report = centre.import_(second)
    held = centre.store.get_review(review["id"])["answers"]["contingent"]
    if signer == "trusted":
        assert report["counts"]["newer"] == 1 and held == "second"
        assert centre.store.list_conflicts() == []
    else:
        assert report["counts"] == {**report["counts"], "newer": 0, "conflicts": 1}
        assert report["held_for_review"] == 1
        assert held == "URUBATT 42"  # nothing replaced: an analyst decides
        (conflict,) = centre.store.list_conflicts("open")
        assert conflict["reason"] == "unverified_newer"
        assert conflict["incoming"]["answers"]["contingent"] == "second"


# -- origin ------------------------------------------------------------------------------


def test_unsigned_bundle_claiming_a_known_nodes_origin_is_quarantined(
    field, centre, exported, tmp_path
):
    """The attacker writes records "from" a node the centre knows by its key."""
    centre.trusts(field)
    _, path = exported
    forged = []
    for record in parts(path)[1]:
        record = {**record, "id": str(uuid.uuid4()), "revision_id": str(uuid.uuid4())}
        forged.append(rehash(record))
    # Both the source and the records claim the field laptop; no signature.
    bundle = rebuild(path, tmp_path / "spoof.drb", records=forged)
    report = centre.import_(bundle)
    assert report["counts"]["new"] == 0 and report["counts"]["invalid"] == 1
    assert "knows by its key" in report["invalid"][0]["reasons"][0]
    # Signed by the attacker's own key, claiming the field laptop: the same.
    signed = rebuild(path, tmp_path / "spoof-signed.drb", key=attacker_key(tmp_path),
                     records=forged)  # fmt: skip
    report = centre.import_(signed)
    assert report["signer"]["status"] == "mismatch" and report["counts"]["new"] == 0
    assert centre.store.count_reviews() == 0


def test_records_of_other_nodes_need_a_trusted_forwarder(field, centre, region, exported, tmp_path):
    review, path = exported
    centre.trusts(field)
    centre.import_(path)
    forwarded = tmp_path / "centre.drb"
    centre.export(forwarded, level="regional")
    # The region does not know the centre's key: the field's review may not come through it.
    report = region.import_(forwarded, dry_run=True)
    assert report["counts"]["new"] == 0 and report["counts"]["invalid"] == 1
    assert "only a bundle signed by a trusted key" in report["invalid"][0]["reasons"][0]
    # An unsigned bundle whose source claims to be whoever created the review: same.
    claimed = rebuild(forwarded, tmp_path / "claimed.drb",
                      source={**parts(forwarded)[0]["source"], "node_id": "someone"})  # fmt: skip
    assert region.import_(claimed, dry_run=True)["counts"]["new"] == 0
    # Once the region trusts the centre, the centre forwards the field's review.
    region.trusts(centre)
    report = region.import_(forwarded)
    assert report["counts"]["new"] == 1
    assert region.store.get_review(review["id"])["origin"]["id"] == field.node["id"]


def test_a_record_whose_via_does_not_start_at_its_origin_is_quarantined(
    field, centre, exported, tmp_path
):
    centre.trusts(field)
    _, path = exported
    (record,) = parts(path)[1]
    record["via"] = [{"node_id": "elsewhere", "name": "X", "country": "UY", "level": "field",
                      "bundle_sha256": "0" * 64, "received_at": "2026-01-01T00:00:00Z"}]  # fmt: skip
    bundle = rebuild(path, tmp_path / "via.drb", key=field.key, records=[record])
    report = centre.import_(bundle)
    assert report["counts"]["invalid"] == 1
    assert "is not its origin" in report["invalid"][0]["reasons"][0]


# -- trusting keys -----------------------------------------------------------------------


def test_trust_signer_refuses_a_key_claiming_a_node_known_by_another_key(
    field, centre, exported, tmp_path, monkeypatch, capsys
):
    centre.trusts(field)
    _, path = exported
    impostor = rebuild(path, tmp_path / "impostor.drb", key=attacker_key(tmp_path))
    assert centre.import_(impostor, dry_run=True)["signer"]["status"] == "mismatch"
    refused(centre, impostor, "trust_mismatch", trust=True)
    before = centre.snapshot()
    monkeypatch.setenv("REVIEWAPP_DATA", str(centre.folder))
    code = run.main(["--data", str(centre.folder), "import", str(impostor), "--trust-signer"])
    assert code == 3 and "another key" in capsys.readouterr().out
    assert centre.snapshot() == before
    assert [k["fingerprint"] for k in centre.store.list_trusted_keys()] == [field.key.fingerprint]


def test_a_trusted_key_claiming_another_node_is_a_mismatch(field, centre, exported, tmp_path):
    centre.trusts(field)
    _, path = exported
    other = {**parts(path)[0]["source"], "node_id": str(uuid.uuid4()), "name": "Other"}
    bundle = rebuild(path, tmp_path / "other.drb", key=field.key, source=other)
    assert centre.import_(bundle, dry_run=True)["signer"]["status"] == "mismatch"
    refused(centre, bundle, "trust_mismatch", trust=True)


def test_the_ui_trusts_a_key_only_for_an_admin_and_never_a_mismatched_one(
    field, centre, exported, tmp_path
):
    import re

    _, path = exported

    def stage(web, data):
        page = web.post("/exchange/import", {"bundles": (io.BytesIO(data), "b.drb")},
                        page="/exchange/", content_type="multipart/form-data")  # fmt: skip
        return re.search(r'name="bundle" value="([0-9a-f]{64})"', page.get_data(as_text=True))[1]

    analyst = centre.web("analyst")
    sha = stage(analyst, path.read_bytes())
    response = analyst.post("/exchange/import/apply", {"bundle": sha, "trust": sha},
                            page="/exchange/")  # fmt: skip
    assert response.status_code == 403 and centre.store.list_trusted_keys() == []

    centre.trusts(field)
    impostor = rebuild(path, tmp_path / "impostor.drb", key=attacker_key(tmp_path))
    admin = centre.web("admin")
    sha = stage(admin, impostor.read_bytes())
    before = centre.exchange_state()
    response = admin.post("/exchange/import/apply", {"bundle": sha, "trust": sha},
                          page="/exchange/")  # fmt: skip
    assert response.status_code == 422
    assert "no confiará" in response.get_data(as_text=True)
    assert centre.exchange_state() == before


# -- ids ---------------------------------------------------------------------------------


@pytest.mark.parametrize("trusted", [False, True])
def test_a_record_reusing_a_local_drafts_id_never_takes_it_over(
    trusted, field, centre, exported, tmp_path
):
    _, path = exported
    draft = reviews.start_review(centre.store, centre.catalogue, centre.node, "es", "contributor")
    (record,) = parts(path)[1]
    record["id"] = draft["id"]
    bundle = rebuild(path, tmp_path / "reuse.drb", key=field.key if trusted else None,
                     records=[record])  # fmt: skip
    if trusted:
        centre.trusts(field)
    report = centre.import_(bundle)
    assert report["counts"]["invalid"] == 1 and report["counts"]["conflicts"] == 0
    assert "already used here by another review" in report["invalid"][0]["reasons"][0]
    assert centre.store.get_review(draft["id"]) == draft
    assert centre.web("contributor").get(f"/reviews/{draft['id']}").status_code == 200


def test_keeping_the_incoming_revision_keeps_the_review_with_its_author(field, centre, tmp_path):
    from tests.exchange.conftest import make_conflict

    review = make_conflict(field, centre, tmp_path, held="centre", incoming="field")
    (conflict,) = centre.store.list_conflicts("open")
    held = centre.store.get_review(review["id"])
    # The centre's revision was written by one of its contributors.
    centre.store._put("reviews", {review["id"]: {**held, "author": "contributor"}})
    operations.resolve_conflict(centre.store, conflict["id"], "incoming", "analyst")
    kept = centre.store.get_review(review["id"])
    assert kept["answers"]["contingent"] == "field" and kept["author"] == "contributor"
    assert centre.web("contributor").get(f"/reviews/{review['id']}").status_code == 200


# -- receipts ----------------------------------------------------------------------------


def _receipt_for(field, issuer_node, key):
    body = {
        "format": "deployment-review-receipt", "format_version": 1,
        "receipt_id": str(uuid.uuid4()), "created_at": "2026-11-22T18:40:05.123Z",
        "issuer": issuer_node, "for_node_id": field.node["id"],
        "held": [{k: r.get(k) for k in ("id", "revision_id", "content_hash", "original_hash")}
                 for r in field.store.iter_reviews()],
        "signer": {"public_key": key.public_key, "fingerprint": key.fingerprint,
                   "algorithm": "ed25519"},
    }  # fmt: skip
    signature = key.sign(orjson.dumps(body, option=orjson.OPT_SORT_KEYS))
    return orjson.dumps({**body, "signature": signature})


def test_a_self_signed_receipt_from_an_unknown_key_marks_nothing(field, centre, tmp_path):
    for n in range(20):
        field.submit(contingent=f"review {n}")
    forged = _receipt_for(field, {**centre.node, "node_id": centre.node["id"]},
                          attacker_key(tmp_path))  # fmt: skip
    before = field.snapshot()
    with pytest.raises(operations.ReceiptError, match="does not trust"):
        operations.apply_receipt(field.store, field.node, forged, archive=True)
    assert field.snapshot() == before
    # Even claiming a centre the laptop trusts: the key is not that centre's.
    field.trusts(centre)
    before = field.snapshot()
    with pytest.raises(operations.ReceiptError, match="another key"):
        operations.apply_receipt(field.store, field.node, forged, archive=True, trust=True)
    assert field.snapshot() == before
    web = field.web("admin")
    before = field.exchange_state()
    response = web.post("/exchange/receipts/apply",
                        {"receipt": (io.BytesIO(forged), "r.json"), "archive": "yes"},
                        page="/exchange/", content_type="multipart/form-data")  # fmt: skip
    assert response.status_code == 422
    assert field.exchange_state() == before
    assert all(not r.get("archived_at") for r in field.store.iter_reviews())


def test_a_receipt_from_the_trusted_issuer_key_is_applied(field, centre, tmp_path):
    field.submit()
    centre_node = {k: centre.node[k] for k in ("name", "country", "level")}
    receipt = _receipt_for(field, {**centre_node, "node_id": centre.node["id"]}, centre.key)
    with pytest.raises(operations.ReceiptError):
        operations.apply_receipt(field.store, field.node, receipt, trust="0000:0000")
    result = operations.apply_receipt(
        field.store, field.node, receipt, archive=True, trust=centre.key.fingerprint
    )
    assert result["delivered"] == result["archived"] == 1
    assert field.store.find_trusted_key(centre.key.fingerprint)["node_id"] == centre.node["id"]


# -- form definitions ---------------------------------------------------------------------


def _hijack_form(catalogue, version):
    embedded = copy.deepcopy(catalogue.get("deployment-review", 1).embedded())
    embedded["definition"]["version"] = version
    embedded["definition"]["title"] = {lang: "ATTACKER" for lang in ("es", "pt", "en", "fr")}
    section = embedded["definition"]["sections"][0]
    section["fields"].append({"name": "passport_number", "type": "text",
                              "label": {lang: "Passport number" for lang in ("es", "pt", "en", "fr")}})  # fmt: skip
    return embedded


def test_an_unsigned_bundle_never_adds_a_form(field, centre, exported, tmp_path):
    """The issue's attack: an empty unsigned bundle bringing a huge-version form."""
    _, path = exported
    key = f"deployment-review.v{HUGE}"
    empty = rebuild(path, tmp_path / "hijack.drb", records=[],
                    forms={key: _hijack_form(field.catalogue, HUGE)})  # fmt: skip
    refused(centre, empty, "unused_form")
    (record,) = parts(path)[1]
    record.update(form_version=HUGE)
    bundle = rebuild(path, tmp_path / "hijack2.drb", records=[rehash(record, key)],
                     forms={key: _hijack_form(field.catalogue, HUGE)})  # fmt: skip
    refused(centre, bundle, "untrusted_form")
    record.update(form_version=2)
    v2 = rebuild(path, tmp_path / "v2.drb", key=attacker_key(tmp_path),
                 records=[rehash(record, "deployment-review.v2")],
                 forms={"deployment-review.v2": _hijack_form(field.catalogue, 2)})  # fmt: skip
    refused(centre, v2, "untrusted_form")
    web = centre.web("analyst")
    response = web.post("/exchange/import", {"bundles": (io.BytesIO(v2.read_bytes()), "v2.drb")},
                        page="/exchange/", content_type="multipart/form-data")  # fmt: skip
    assert response.status_code == 422 and "firmante de confianza" in response.get_data(
        as_text=True
    )
    assert centre.catalogue.latest("deployment-review").version == 1


def test_a_form_from_a_trusted_signer_never_becomes_the_form_for_new_reviews(
    field, centre, exported, tmp_path
):
    _, path = exported
    centre.trusts(field)
    (record,) = parts(path)[1]
    huge_key = f"deployment-review.v{HUGE}"
    record.update(form_version=HUGE)
    huge = rebuild(path, tmp_path / "huge.drb", key=field.key, records=[rehash(record, huge_key)],
                   forms={huge_key: _hijack_form(field.catalogue, HUGE)})  # fmt: skip
    refused(centre, huge, "bad_form")  # versions run from 1 to 1,000,000
    record.update(form_version=2, answers={**record["answers"], "passport_number": "X123"})
    v2 = rebuild(path, tmp_path / "v2.drb", key=field.key,
                 records=[rehash(record, "deployment-review.v2")],
                 forms={"deployment-review.v2": _hijack_form(field.catalogue, 2)})  # fmt: skip
    report = centre.import_(v2)
    assert report["forms_added"] == ["deployment-review.v2"] and report["counts"]["new"] == 1
    assert centre.catalogue.get("deployment-review", 2).title["en"] == "ATTACKER"
    assert centre.catalogue.latest("deployment-review").version == 1
    draft = reviews.start_review(centre.store, centre.catalogue, centre.node, "es", "contributor")
    assert draft["form_version"] == 1
    # Nor after a restart.
    again = create_app({"DATA_DIR": str(centre.folder), "TESTING": True, **FAST})
    catalogue = again.extensions["catalogue"]
    assert catalogue.received_forms == {}  # start-up compiles no received form
    assert catalogue.latest("deployment-review").version == 1
    assert catalogue.get("deployment-review", 2).key == "deployment-review.v2"


@pytest.mark.parametrize("how", ["fields", "bytes"])
def test_an_oversized_form_is_refused_even_from_a_trusted_signer(
    how, field, centre, exported, tmp_path
):
    _, path = exported
    centre.trusts(field)
    embedded = _hijack_form(field.catalogue, 2)
    fields = embedded["definition"]["sections"][0]["fields"]
    if how == "fields":
        fields.extend({"name": f"f{n}", "type": "yes_no", "label": {"en": "x"}}
                      for n in range(400))  # fmt: skip
    else:
        fields[-1]["hint"] = {"en": "x" * (300 * 1024)}
    (record,) = parts(path)[1]
    record.update(form_version=2)
    bundle = rebuild(path, tmp_path / "big.drb", key=field.key,
                     records=[rehash(record, "deployment-review.v2")],
                     forms={"deployment-review.v2": embedded})  # fmt: skip
    error = refused(centre, bundle, "bad_form")
    assert ("400 fields" if how == "fields" else "256 KB") in str(error)


# -- quarantine --------------------------------------------------------------------------


def _invalid_records(path, n, pad=0):
    (record,) = parts(path)[1]
    out = []
    for _ in range(n):
        bad = {**record, "id": str(uuid.uuid4()), "revision_id": str(uuid.uuid4())}
        bad["answers"] = {**bad["answers"], "rotation": 999, "pad": "x" * pad}
        out.append(rehash(bad))
    return out


def test_a_bundle_with_too_many_invalid_records_is_refused_whole(centre, exported, tmp_path):
    _, path = exported
    many = rebuild(path, tmp_path / "many.drb", records=_invalid_records(path, 101))
    error = refused(centre, many, "too_many_invalid")
    assert "101" in str(error)
    assert centre.store.list_quarantine() == []


def test_the_quarantine_is_bounded_in_total(centre, exported, tmp_path, monkeypatch):
    _, path = exported
    monkeypatch.setattr(operations, "MAX_QUARANTINE_ENTRIES", 15)
    centre.import_(rebuild(path, tmp_path / "a.drb", records=_invalid_records(path, 10)))
    assert len(centre.store.list_quarantine()) == 10
    refused(centre, rebuild(path, tmp_path / "b.drb", records=_invalid_records(path, 10)),
            "quarantine_full")  # fmt: skip
    monkeypatch.setattr(operations, "MAX_QUARANTINE_BYTES", 10 * 2**10)
    refused(centre, rebuild(path, tmp_path / "c.drb", records=_invalid_records(path, 1)),
            "quarantine_full")  # fmt: skip


def test_a_large_quarantined_record_is_kept_only_as_its_hash(centre, exported, tmp_path):
    _, path = exported
    records = _invalid_records(path, 2, pad=100 * 1024)
    records[1]["answers"]["pad"] = "small"
    centre.import_(rebuild(path, tmp_path / "big.drb", records=rehash_all(records)))
    entries = {q["line"]: q for q in centre.store.list_quarantine()}
    assert entries[1]["record"] is None and entries[1]["bytes"] > 100 * 1024
    assert len(entries[1]["sha256"]) == 64 and entries[1]["reasons"]
    assert entries[2]["record"]["answers"]["pad"] == "small"
    assert sum(p.stat().st_size for p in centre.folder.iterdir() if p.is_file()) < 2**20


def rehash_all(records):
    return [rehash(r) for r in records]


def test_a_quarantined_records_reasons_are_bounded(centre, exported, tmp_path):
    _, path = exported
    (record,) = parts(path)[1]
    record.update({f"field_{n}_" + "x" * 1000: n for n in range(100)})
    centre.import_(rebuild(path, tmp_path / "reasons.drb", records=[record]))
    (entry,) = centre.store.list_quarantine()
    assert len(entry["reasons"]) == 21 and entry["reasons"][-1] == "and 80 more problems"
    assert all(len(r) <= 300 for r in entry["reasons"])


# -- timestamps -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["created_at", "updated_at", "submitted_at"])
def test_a_record_with_a_malformed_time_is_quarantined_and_pages_still_work(
    name, field, centre, exported, tmp_path
):
    _, path = exported
    (record,) = parts(path)[1]
    record[name] = "last tuesday"
    report = centre.import_(rebuild(path, tmp_path / "time.drb", records=[record]))
    assert report["counts"]["invalid"] == 1 and report["counts"]["new"] == 0
    assert f"“{name}” is not a time" in report["invalid"][0]["reasons"][0]
    for role in ("admin", "analyst", "viewer"):
        web = centre.web(role)
        assert web.get("/", follow_redirects=True).status_code == 200
    assert centre.web("analyst").get("/exchange/quarantine").status_code == 200


@pytest.mark.parametrize("stamp", ["2026-13-01T00:00:00Z", "yesterday", "2026-01-01 00:00:00",
                                   "2026-01-01T00:00:00+02:00"])  # fmt: skip
def test_a_manifest_with_a_malformed_time_is_refused(stamp, centre, exported, tmp_path):
    _, path = exported
    refused(centre, rebuild(path, tmp_path / "m.drb", created_at=stamp), "timestamp")
