"""Hostile or broken bundle files: a clear error, and nothing stored."""

from __future__ import annotations

import hashlib
import secrets
import zipfile

import orjson
import pytest

from reviewapp.exchange import bundle as bundle_format
from reviewapp.exchange.bundle import BundleError, read_bundle
from tests.exchange.conftest import members_of, write_zip


@pytest.fixture
def good(field, tmp_path):
    field.submit(contingent="one")
    field.submit(contingent="two")
    path = tmp_path / "good.drb"
    field.export(path)
    return path


def _manifest(members):
    return orjson.loads(members["manifest.json"])


def _unsigned(members, records_body=None, **manifest_changes):
    """Members of a valid unsigned bundle, optionally with other records or manifest fields."""
    manifest = _manifest(members)
    manifest.pop("signer", None)
    body = members["reviews.jsonl"] if records_body is None else records_body
    manifest["members"]["reviews.jsonl"] = {
        "sha256": hashlib.sha256(body).hexdigest(),
        "bytes": len(body),
    }
    manifest["counts"]["reviews"] = len(body.splitlines())
    manifest.update(manifest_changes)
    return {"manifest.json": orjson.dumps(manifest), "reviews.jsonl": body}


def _lines(members):
    return members["reviews.jsonl"].splitlines()


CASES = {
    "not-a-zip": (
        lambda m, p: p.write_bytes(b"%PDF-1.7 this is a report, not a bundle"),
        "not_zip",
    ),
    "truncated": (
        lambda m, p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
        "damaged",
    ),
    "parent-path": (lambda m, p: write_zip(p, {**m, "../../etc/cron.d/x": b"x"}), "bad_name"),
    "absolute-path": (lambda m, p: write_zip(p, {**m, "/etc/passwd": b"x"}), "bad_name"),
    "missing-member": (lambda m, p: write_zip(p, {"manifest.json": m["manifest.json"]}), "missing"),
    "extra-member": (lambda m, p: write_zip(p, {**m, "notes.txt": b"hello"}), "extra"),
    "checksum": (
        lambda m, p: write_zip(
            p, {**m, "reviews.jsonl": m["reviews.jsonl"].replace(b"one", b"uno")}
        ),
        "checksum",
    ),
    "signature": (
        lambda m, p: write_zip(
            p,
            {
                **m,
                "manifest.json": m["manifest.json"].replace(b"URUBATT laptop", b"URUBATT laptoq"),
            },
        ),
        "signature",
    ),
    "signature-missing": (
        lambda m, p: write_zip(p, {k: v for k, v in m.items() if k != "manifest.sig"}),
        "unsigned",
    ),
    "format-version": (lambda m, p: write_zip(p, _unsigned(m, format_version=2)), "version"),
    "not-a-bundle-manifest": (
        lambda m, p: write_zip(p, _unsigned(m, format="something-else")),
        "format",
    ),
    "manifest-not-json": (
        lambda m, p: write_zip(p, {**m, "manifest.json": b"{not json"}),
        "manifest_json",
    ),
    "malformed-line": (
        lambda m, p: write_zip(p, _unsigned(m, m["reviews.jsonl"] + b'{"id": "broken\n')),
        "line_json",
    ),
    "duplicate-id": (
        lambda m, p: write_zip(p, _unsigned(m, m["reviews.jsonl"] + _lines(m)[0] + b"\n")),
        "duplicate",
    ),
    "wrong-encoding": (
        lambda m, p: write_zip(
            p,
            _unsigned(
                m,
                m["reviews.jsonl"]
                .replace("Pérez".encode(), "Pérez".encode("latin-1"))
                .replace(b'"one"', b'"\xf1o"'),
            ),
        ),
        "encoding",
    ),
    "oversized-line": (
        lambda m, p: write_zip(
            p,
            _unsigned(
                m, _lines(m)[0][:-1] + b', "x": "' + secrets.token_hex(2**19).encode() + b'"}\n'
            ),
        ),
        "line_size",
    ),
    "count-mismatch": (
        lambda m, p: write_zip(
            p,
            {
                **_unsigned(m),
                "manifest.json": orjson.dumps(
                    {**_manifest(_unsigned(m)), "counts": {"reviews": 7}}
                ),
            },
        ),
        "count",
    ),
    "unknown-form": (
        lambda m, p: write_zip(
            p, _unsigned(m, _lines(m)[0].replace(b'"form_version":1', b'"form_version":9') + b"\n")
        ),
        "unknown_form",
    ),
    "blank-line": (
        lambda m, p: write_zip(p, _unsigned(m, _lines(m)[0] + b"\n\n" + _lines(m)[1] + b"\n")),
        "blank_line",
    ),
    "encrypted-entry": (lambda m, p: _encrypted(write_zip(p, m, zipfile.ZIP_STORED)), "encrypted"),
    "bzip2-member": (lambda m, p: write_zip(p, m, compression=zipfile.ZIP_BZIP2), "compression"),
    "lzma-member": (lambda m, p: write_zip(p, m, compression=zipfile.ZIP_LZMA), "compression"),
    "pdf-zip-polyglot": (
        lambda m, p: p.write_bytes(b"%PDF-1.7\n1 0 obj <<>> endobj\n%%EOF\n" + p.read_bytes()),
        "polyglot",
    ),
    "bytes-after-the-zip": (lambda m, p: p.write_bytes(p.read_bytes() + b"MZ\x90\x00"), "polyglot"),
    "archive-comment": (lambda m, p: _commented(p), "polyglot"),
    "deep-line-300": (
        lambda m, p: write_zip(
            p, _unsigned(m, _lines(m)[0][:-1] + b', "x": ' + _deep(300) + b"}\n")
        ),
        "nesting",
    ),
    "deep-line-2000": (
        lambda m, p: write_zip(
            p, _unsigned(m, _lines(m)[0][:-1] + b', "x": ' + _deep(2000) + b"}\n")
        ),
        "nesting",
    ),
    "deep-line-40": (
        lambda m, p: write_zip(
            p, _unsigned(m, _lines(m)[0][:-1] + b', "x": ' + _deep(40) + b"}\n")
        ),
        "nesting",
    ),
    "deep-manifest": (
        lambda m, p: write_zip(
            p,
            {
                **_unsigned(m),
                "manifest.json": _unsigned(m)["manifest.json"][:-1]
                + b', "x": '
                + _deep(300)
                + b"}",
            },
        ),
        "nesting",
    ),
    "manifest-time": (
        lambda m, p: write_zip(p, _unsigned(m, created_at="2026-02-30T10:00:00Z")),
        "timestamp",
    ),
}


def _deep(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


def _encrypted(path):
    """Set the "encrypted" flag of every entry, as a zip tool with a password would."""
    data = bytearray(path.read_bytes())
    for signature, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.find(signature)
        while at != -1:
            data[at + flag_at] |= 0x01
            at = data.find(signature, at + 4)
    path.write_bytes(bytes(data))


def _commented(path):
    with zipfile.ZipFile(path, "a") as zf:
        zf.comment = b"see attached"


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_bundle_is_refused_and_nothing_changes(case, good, centre, tmp_path):
    make, code = CASES[case]
    bad = tmp_path / f"{case}.drb"
    bad.write_bytes(good.read_bytes())
    make(members_of(good), bad)
    before = centre.snapshot()
    with pytest.raises(BundleError) as info:
        centre.import_(bad)
    assert info.value.code == code
    assert str(info.value)  # a message a person can read
    assert centre.snapshot() == before
    assert centre.store.list_imports() == []


@pytest.mark.parametrize("case", ["encrypted-entry", "lzma-member", "pdf-zip-polyglot",
                                  "deep-line-300", "manifest-time"])  # fmt: skip
def test_hostile_upload_is_refused_with_a_4xx_and_nothing_changes(case, good, centre, tmp_path):
    import io

    make, _code = CASES[case]
    bad = tmp_path / f"{case}.drb"
    bad.write_bytes(good.read_bytes())
    make(members_of(good), bad)
    web = centre.web("analyst")
    before = centre.exchange_state()
    response = web.post(
        "/exchange/import", {"bundles": (io.BytesIO(bad.read_bytes()), "bad.drb")},
        page="/exchange/", content_type="multipart/form-data",
    )  # fmt: skip
    assert response.status_code == 422 and "Rechazado" in response.get_data(as_text=True)
    assert centre.exchange_state() == before
    assert list((centre.folder / "incoming").iterdir()) == []


def test_zip_bomb_by_ratio_is_refused(good, tmp_path, centre):
    bad = tmp_path / "bomb.drb"
    members = _unsigned(members_of(good))
    members["reviews.jsonl"] += b" " * (50 * 2**20)  # 50 MB of spaces compress ~1000:1
    write_zip(bad, members)
    with pytest.raises(BundleError) as info:
        read_bundle(bad)
    assert info.value.code == "bomb" and "compressed" in str(info.value)


def test_zip_bomb_by_total_size_is_refused(good, tmp_path, monkeypatch):
    monkeypatch.setattr(bundle_format, "MAX_UNCOMPRESSED_BYTES", 1000)
    with pytest.raises(BundleError) as info:
        read_bundle(good)
    assert info.value.code == "bomb"


def test_lying_size_header_is_caught(good, tmp_path):
    bad = tmp_path / "liar.drb"
    write_zip(bad, _unsigned(members_of(good)), compression=zipfile.ZIP_STORED)
    data = bytearray(bad.read_bytes())
    # Shrink reviews.jsonl's uncompressed size in its central directory entry.
    at = data.find(b"PK\x01\x02")
    while (
        data[at + 46 : at + 46 + int.from_bytes(data[at + 28 : at + 30], "little")]
        != b"reviews.jsonl"
    ):
        at = data.find(b"PK\x01\x02", at + 4)
    size = int.from_bytes(data[at + 24 : at + 28], "little")
    data[at + 24 : at + 28] = (size - 10).to_bytes(4, "little")
    bad.write_bytes(bytes(data))
    with pytest.raises(BundleError) as info_:
        read_bundle(bad)
    assert info_.value.code == "damaged"


def test_oversized_file_is_refused_before_reading(good, monkeypatch):
    monkeypatch.setattr(bundle_format, "MAX_BUNDLE_BYTES", 100)
    with pytest.raises(BundleError) as info:
        read_bundle(good)
    assert info.value.code == "too_large"


def test_a_good_bundle_reads_back_what_was_written(good):
    bundle = read_bundle(good)
    assert len(bundle.records) == 2 and bundle.signer["name"] == "URUBATT laptop"
    assert bundle.sha256 == hashlib.sha256(good.read_bytes()).hexdigest()
    assert set(members_of(good)) == {"manifest.json", "manifest.sig", "reviews.jsonl"}
