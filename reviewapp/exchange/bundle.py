"""The bundle file format (``.drb``), version 1: writing it, and reading it safely.

A bundle is a zip holding ``manifest.json``, ``reviews.jsonl`` and, when signed,
``manifest.sig``. ``docs/bundle-format.md`` is the specification; this module is the
reference implementation. Reading refuses the whole file at the first problem,
with a :class:`BundleError` that says what is wrong and where, so that nothing of a
broken or hostile file is ever stored.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from flask_babel import lazy_gettext as _l

from reviewapp.exchange import keys

FORMAT = "deployment-review-bundle"
FORMAT_VERSION = 1
REQUIRED_MEMBERS = {"manifest.json", "reviews.jsonl"}
OPTIONAL_MEMBERS = {"manifest.sig"}

MAX_BUNDLE_BYTES = 256 * 2**20  # the .drb file itself
MAX_UNCOMPRESSED_BYTES = 2 * 2**30  # all members together, once unpacked
MAX_RATIO = 200  # uncompressed / compressed, per member
MAX_MANIFEST_BYTES = 16 * 2**20
MAX_LINE_BYTES = 2**20  # one review revision
MAX_JSON_DEPTH = 32  # nesting of arrays and objects, in the manifest and in each line
COMPRESSION = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}
#: ISO 8601 UTC: ``2026-11-22T18:40:05Z`` or with 1-6 digits of fraction of a second.
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")


MESSAGES = {
    "too_large": _l("The file is {size} MB; bundles of at most {limit} MB are accepted."),
    "not_zip": _l("This is not a bundle: the file is not a zip archive."),
    "damaged": _l("The bundle is damaged or truncated ({detail})."),
    "bad_name": _l("The bundle contains a file with an unsafe name: {name}."),
    "missing": _l("The bundle lacks {names}."),
    "extra": _l("The bundle contains files that do not belong in it: {names}."),
    "bomb": _l("The bundle unpacks to more than this app accepts ({detail})."),
    "encoding": _l("{member} is not UTF-8 text (at byte {offset})."),
    "manifest_json": _l("manifest.json is not valid JSON: {detail}."),
    "manifest_field": _l("manifest.json: {field} {problem}."),
    "format": _l("This file is not a Deployment Review bundle (format “{found}”)."),
    "version": _l(
        "Bundle format version {found} is not known to this app, which reads version {known}."
    ),
    "checksum": _l(
        "{member} does not match its checksum in the manifest: the file was altered or damaged."
    ),
    "signature": _l(
        "The manifest's signature does not match: the bundle was altered after it was signed."
    ),
    "unsigned": _l("The manifest names a signer but the signature file is missing."),
    "line_json": _l("reviews.jsonl line {line} is not valid JSON."),
    "line_object": _l("reviews.jsonl line {line} is not a review record."),
    "line_size": _l("reviews.jsonl line {line} is larger than {limit} KB."),
    "blank_line": _l("reviews.jsonl line {line} is empty."),
    "count": _l("The manifest announces {expected} reviews but the bundle holds {found}."),
    "duplicate": _l("Review {id} appears twice in the bundle (lines {first} and {second})."),
    "unknown_form": _l(
        "The bundle uses form {form}, which this node does not know and the bundle does not include."
    ),
    "bad_form": _l("The form {form} included in the bundle cannot be used: {detail}."),
    "encrypted": _l("{member} is encrypted; bundles are never encrypted."),
    "compression": _l(
        "{member} is compressed with a method bundles do not use ({method}); only stored and deflate are accepted."
    ),
    "polyglot": _l(
        "The file holds other data besides the zip archive ({detail}); a bundle is exactly one zip archive."
    ),
    "nesting": _l("{member} nests lists and objects more than {limit} levels deep."),
    "timestamp": _l("manifest.json: {field} is not a time written as 2026-11-22T18:40:05Z."),
    "untrusted_form": _l(
        "The bundle brings form {form}, which this node does not have; form definitions are accepted only from a trusted signer."
    ),
    "unused_form": _l("The bundle brings form {form}, which none of its reviews uses."),
    "too_many_forms": _l(
        "The bundle brings {count} form definitions; at most {limit} are accepted."
    ),
    "too_many_invalid": _l(
        "{count} records of the bundle are invalid; a bundle with more than {limit} invalid records is refused whole."
    ),
    "quarantine_full": _l(
        "The quarantine is full ({detail}): the bundle's invalid records cannot be kept, so the bundle is refused."
    ),
    "trust_mismatch": _l(
        "The bundle is signed by key {fingerprint}, but this node knows {node} by another key: it will not trust this one. Check with the sender."
    ),
}


class BundleError(ValueError):
    """A bundle refused as a whole.

    :param code: a key of :data:`MESSAGES`, for programs.
    """

    def __init__(self, code: str, **params: Any) -> None:
        self.code, self.params = code, params
        super().__init__(code)

    def __str__(self) -> str:
        return str(MESSAGES[self.code]).format(**self.params)


@dataclass
class Bundle:
    """A bundle that passed every file-level check."""

    sha256: str
    size: int
    manifest: dict
    records: list[dict]
    signer: dict | None = None  # {"public_key", "fingerprint", "node_id", "name"} when signed


def write_bundle(
    path: Path, manifest: dict, records: list[dict], node_key: keys.NodeKey | None
) -> str:
    """Write a bundle atomically; returns the sha256 of the file written.

    :param manifest: every manifest field except ``members`` and ``signer``.
    """
    body = b"".join(orjson.dumps(r) + b"\n" for r in records)
    manifest = {
        **manifest,
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "members": {
            "reviews.jsonl": {"sha256": hashlib.sha256(body).hexdigest(), "bytes": len(body)}
        },
    }
    if node_key is not None:
        manifest["signer"] = {
            "public_key": node_key.public_key,
            "fingerprint": node_key.fingerprint,
            "algorithm": "ed25519",
        }
    manifest_bytes = orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    tmp = path.with_name(path.name + ".part")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        zf.writestr("manifest.json", manifest_bytes)
        if node_key is not None:
            zf.writestr("manifest.sig", node_key.sign(manifest_bytes) + "\n")
        zf.writestr("reviews.jsonl", body)
    with open(tmp, "rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return digest


def read_bundle(path: Path) -> Bundle:
    """Open a bundle and check it completely before anything is trusted.

    :raises BundleError: the first problem found.
    """
    size = path.stat().st_size
    if size > MAX_BUNDLE_BYTES:
        raise BundleError("too_large", size=_mb(size), limit=_mb(MAX_BUNDLE_BYTES))
    with open(path, "rb") as fh:
        head = fh.read(4)
        fh.seek(0)
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        if head == b"PK\x03\x04":
            raise BundleError("damaged", detail="no central directory") from None
        raise BundleError("not_zip") from None
    with zf:
        _check_container(path, size, zf)
        members = _read_members(zf)
    manifest_bytes = members["manifest.json"]
    manifest = _parse_manifest(manifest_bytes)
    body = members["reviews.jsonl"]
    declared = manifest["members"].get("reviews.jsonl")
    if (
        not isinstance(declared, dict)
        or declared.get("sha256") != hashlib.sha256(body).hexdigest()
        or declared.get("bytes") != len(body)
    ):
        raise BundleError("checksum", member="reviews.jsonl")
    signer = _check_signature(manifest, manifest_bytes, members.get("manifest.sig"))
    records = _parse_records(body)
    if manifest["counts"].get("reviews") != len(records):
        raise BundleError("count", expected=manifest["counts"].get("reviews"), found=len(records))
    return Bundle(sha256=digest, size=size, manifest=manifest, records=records, signer=signer)


def _mb(size: int) -> str:
    return f"{size / 2**20:.1f}"


def is_timestamp(value: object) -> bool:
    """Whether ``value`` is a time as bundles write them (see :data:`TIMESTAMP`)."""
    if not isinstance(value, str) or not TIMESTAMP.match(value):
        return False
    try:
        dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _check_container(path: Path, size: int, zf: zipfile.ZipFile) -> None:
    """Exactly one zip archive: the first member at byte 0, members back to back, the
    central directory after them and its end record (without comment) ending the file.
    Anything else could be a second file (a PDF, an executable) read differently by
    other programs."""
    infos = sorted(zf.infolist(), key=lambda i: i.header_offset)
    with open(path, "rb") as fh:
        fh.seek(max(size - 22, 0))
        tail = fh.read(22)
        if not (tail.startswith(b"PK\x05\x06") and tail[20:22] == b"\x00\x00"):
            raise BundleError("polyglot", detail="bytes after the archive or a comment")
        offset = 0
        for info in infos:
            if info.header_offset != offset:
                raise BundleError(
                    "polyglot", detail=f"{info.header_offset - offset} bytes before {info.filename}"
                )
            fh.seek(offset)
            header = fh.read(30)
            if len(header) < 30 or not header.startswith(b"PK\x03\x04"):
                raise BundleError("damaged", detail=f"{info.filename}: no local header")
            name_len, extra_len = struct.unpack("<HH", header[26:30])
            end = offset + 30 + name_len + extra_len + info.compress_size
            if info.flag_bits & 0x08:  # a data descriptor follows the data
                fh.seek(end)
                end += 16 if fh.read(4) == b"PK\x07\x08" else 12
            offset = end
        if infos and zf.start_dir != offset:
            raise BundleError(
                "polyglot", detail=f"{zf.start_dir - offset} bytes before the central directory"
            )


def _read_members(zf: zipfile.ZipFile) -> dict[str, bytes]:
    infos = zf.infolist()
    names = [i.filename for i in infos]
    for name in names:
        if (
            name.startswith(("/", "\\"))
            or ".." in name.replace("\\", "/").split("/")
            or "\\" in name
            or ":" in name
            or name.endswith("/")
        ):
            raise BundleError("bad_name", name=name)
    if len(set(names)) != len(names):
        raise BundleError(
            "extra", names=", ".join(sorted({n for n in names if names.count(n) > 1}))
        )
    missing = REQUIRED_MEMBERS - set(names)
    if missing:
        raise BundleError("missing", names=", ".join(sorted(missing)))
    extra = set(names) - REQUIRED_MEMBERS - OPTIONAL_MEMBERS
    if extra:
        raise BundleError("extra", names=", ".join(sorted(extra)))
    total = sum(i.file_size for i in infos)
    if total > MAX_UNCOMPRESSED_BYTES:
        raise BundleError("bomb", detail=f"{_mb(total)} MB")
    for info in infos:
        if info.flag_bits & 0x01:
            raise BundleError("encrypted", member=info.filename)
        if info.compress_type not in COMPRESSION:
            raise BundleError("compression", member=info.filename, method=info.compress_type)
    members = {}
    for info in infos:
        if info.file_size > MAX_RATIO * max(info.compress_size, 1) and info.file_size > 2**20:
            raise BundleError(
                "bomb",
                detail=f"{info.filename} compressed {info.file_size // max(info.compress_size, 1)}:1",
            )
        if info.filename == "manifest.json" and info.file_size > MAX_MANIFEST_BYTES:
            raise BundleError("bomb", detail=f"manifest.json {_mb(info.file_size)} MB")
        try:
            with zf.open(info) as fh:
                # Never trust the declared size: read at most one byte more than it.
                data = fh.read(info.file_size + 1)
        except (zipfile.BadZipFile, EOFError, OSError, NotImplementedError, RuntimeError) as exc:
            raise BundleError("damaged", detail=f"{info.filename}: {exc}") from None
        if len(data) != info.file_size:
            raise BundleError("damaged", detail=f"{info.filename}: size differs from its header")
        members[info.filename] = data
    return members


def _utf8(member: str, data: bytes) -> None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BundleError("encoding", member=member, offset=exc.start) from None
    if data.startswith(b"\xef\xbb\xbf"):
        raise BundleError("encoding", member=member, offset=0)


def _parse_manifest(data: bytes) -> dict:
    _utf8("manifest.json", data)
    try:
        manifest = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc) or "recursion" in str(exc):
            raise BundleError("nesting", member="manifest.json", limit=MAX_JSON_DEPTH) from None
        raise BundleError("manifest_json", detail=str(exc)) from None
    if too_deep(manifest):
        raise BundleError("nesting", member="manifest.json", limit=MAX_JSON_DEPTH)
    if not isinstance(manifest, dict):
        raise BundleError("manifest_field", field="(top level)", problem="must be an object")
    if manifest.get("format") != FORMAT:
        raise BundleError("format", found=manifest.get("format"))
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError("version", found=manifest.get("format_version"), known=FORMAT_VERSION)
    expected = {
        "bundle_id": str, "created_at": str, "app_version": str, "source": dict,
        "forms": dict, "counts": dict, "members": dict, "filters": dict,
    }  # fmt: skip
    for key, kind in expected.items():
        if not isinstance(manifest.get(key), kind):
            raise BundleError(
                "manifest_field",
                field=key,
                problem=f"must be {'an object' if kind is dict else 'text'}",
            )
    if not is_timestamp(manifest["created_at"]):
        raise BundleError("timestamp", field="created_at")
    source = manifest["source"]
    for key in ("node_id", "name", "country", "level"):
        if not isinstance(source.get(key), str) or not source[key] or len(source[key]) > 200:
            raise BundleError("manifest_field", field=f"source.{key}", problem="must be text")
    return manifest


def too_deep(value: object, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether lists and objects nest more than ``limit`` levels (a scalar is level 0)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _check_signature(manifest: dict, manifest_bytes: bytes, sig: bytes | None) -> dict | None:
    signer = manifest.get("signer")
    if signer is None:
        return None
    if not isinstance(signer, dict) or not isinstance(signer.get("public_key"), str):
        raise BundleError("manifest_field", field="signer", problem="must name a public_key")
    if sig is None:
        raise BundleError("unsigned")
    if not keys.verify(
        signer["public_key"], sig.decode("ascii", "replace").strip(), manifest_bytes
    ):
        raise BundleError("signature")
    return {
        "public_key": signer["public_key"],
        "fingerprint": keys.fingerprint(signer["public_key"]),
        "node_id": manifest["source"]["node_id"],
        "name": manifest["source"]["name"],
    }


def _parse_records(body: bytes) -> list[dict]:
    if body and not body.endswith(b"\n"):
        body += b"\n"  # tolerate a missing final newline
    lines = body.split(b"\n")[:-1] if body else []
    records, first_seen, offset = [], {}, 0
    for number, line in enumerate(lines, start=1):
        start, offset = offset, offset + len(line) + 1
        if len(line) > MAX_LINE_BYTES:
            raise BundleError("line_size", line=number, limit=MAX_LINE_BYTES // 1024)
        if not line.strip():
            raise BundleError("blank_line", line=number)
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            if "depth" in str(exc) or "recursion" in str(exc):
                raise BundleError(
                    "nesting", member=f"reviews.jsonl line {number}", limit=MAX_JSON_DEPTH
                ) from None
            # orjson also refuses invalid UTF-8; say which it was.
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise BundleError(
                    "encoding", member="reviews.jsonl", offset=start + exc.start
                ) from None
            if line.startswith(b"\xef\xbb\xbf"):
                raise BundleError("encoding", member="reviews.jsonl", offset=start) from None
            raise BundleError("line_json", line=number) from None
        if not isinstance(record, dict) or not isinstance(record.get("id"), str):
            raise BundleError("line_object", line=number)
        if too_deep(record):
            raise BundleError(
                "nesting", member=f"reviews.jsonl line {number}", limit=MAX_JSON_DEPTH
            )
        if record["id"] in first_seen:
            raise BundleError(
                "duplicate", id=record["id"], first=first_seen[record["id"]], second=number
            )
        first_seen[record["id"]] = number
        records.append(record)
    return records
