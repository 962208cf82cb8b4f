"""Durable local storage: the only module that imports tinydb.

The node's data folder holds one TinyDB JSON file per collection (``reviews.json``,
``revisions.json``, ``imports.json``...) and one shared journal, ``journal.log``.
A plain TinyDB ``JSONStorage`` rewrites a whole file on every write, which at 10,000
reviews means ~80 MB per save. Here a write appends only the documents that changed
to the journal, with a checksum, and fsyncs it. When the journal outgrows the
snapshots it is compacted: each changed collection file is rewritten through a temp
file, fsync and atomic rename, then the journal is emptied.

- An acknowledged write has been fsync'ed: it survives ``kill -9`` and power loss.
- A change to several collections (a revision, a whole import) is one journal
  record, so it is applied entirely or not at all (:meth:`Journal.atomic`).
- A torn tail left by a killed writer fails its checksum; it is ignored on read and
  cut off by the next writer.
- A file lock serialises writers across processes (the web server and a CLI
  import); readers notice changed files by size and mtime and catch up.

The rest of the app talks to :class:`Store`, whose methods speak the domain and take
and return plain dicts.
"""

from __future__ import annotations

import os
import threading
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from filelock import FileLock
from tinydb import Query, TinyDB
from tinydb.storages import Storage
from tinydb.table import Table

Doc = dict[str, Any]
Changes = dict[str, dict[str, Any]]  # {collection: {"put": {key: doc}, "del": [key]}}


class NotFound(LookupError):
    """A record that was asked for by id does not exist."""


class Conflict(RuntimeError):
    """A write that would silently overwrite something stored."""


class StoreError(RuntimeError):
    """The data folder cannot be used right now; nothing acknowledged was lost.

    :param path: the file or folder concerned.
    """

    def __init__(self, message: str, path: Path | str | None = None) -> None:
        super().__init__(message)
        self.path = str(path) if path is not None else None


class StoreBusy(StoreError):
    """Another process (an import, a backup) held the write lock longer than we wait."""


class StoreUnwritable(StoreError):
    """The disk refused a write: nothing was stored by it and no temp file is left."""


class StoreFull(StoreUnwritable):
    """No space left on the device (or over quota)."""


class StoreReadOnly(StoreUnwritable):
    """The data folder is read-only or not ours to write."""


class StoreDamaged(StoreError):
    """A file of the data folder is not what this app wrote: reported, never made worse.

    :param offset: the byte offset of the first bad record, for the journal.
    """

    def __init__(self, message: str, path: Path | str, offset: int | None = None) -> None:
        super().__init__(message, path)
        self.offset = offset


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _stat_key(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _encode_record(record: dict) -> bytes:
    body = orjson.dumps(record)
    return b"".join((b"%08x " % zlib.crc32(body), body, b"\n"))


def _decode_records(data: bytes) -> tuple[list[dict], int]:
    """Parse journal bytes; stop at the first torn or corrupt line.

    :returns: the records and the byte length of the valid prefix.
    """
    records, pos = [], 0
    while True:
        end = data.find(b"\n", pos)
        if end < 0:
            break
        line = data[pos:end]
        if len(line) < 10 or line[8:9] != b" ":
            break
        body = line[9:]
        try:
            if int(line[:8], 16) != zlib.crc32(body):
                break
            records.append(orjson.loads(body))
        except ValueError:
            break
        pos = end + 1
    return records, pos


def _write_file(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically and durably."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class Journal:
    """Every collection of a data folder: snapshots, the shared journal, the lock.

    :param folder: the data folder.
    :param names: the collections.
    :param compact_min_bytes: never compact a journal smaller than this.
    """

    def __init__(self, folder: Path, names: Iterable[str], compact_min_bytes: int) -> None:
        self.folder = folder
        self.names = tuple(names)
        self.path = folder / "journal.log"
        self.lock = FileLock(str(folder / "store.lock"))
        self.compact_min_bytes = compact_min_bytes
        self.tables: dict[str, dict[str, Doc]] = {}
        self._keys: dict[Path, tuple | None] = {}
        self._end = 0
        self._snapshot_bytes = 0
        self._dirty: set[str] = set()
        self._pending: dict[str, dict] | None = None
        with self.lock:
            self._adopt_old_layout()
            for name in self.names:
                if not self._snapshot(name).exists():
                    _write_file(self._snapshot(name), orjson.dumps({name: {}}))
            self._load()

    def _snapshot(self, name: str) -> Path:
        return self.folder / f"{name}.json"

    def _watched(self) -> list[Path]:
        return [self.path, *(self._snapshot(n) for n in self.names)]

    # -- reading -------------------------------------------------------------------

    def _load(self) -> None:
        """Read every snapshot and replay the whole journal (caller holds the lock)."""
        self.tables, self._snapshot_bytes = {}, 0
        for name in self.names:
            raw = self._snapshot(name).read_bytes()
            self.tables[name] = orjson.loads(raw).get(name, {}) if raw.strip() else {}
            self._snapshot_bytes += len(raw)
        self._end = 0
        self._catch_up()
        self._keys = {p: _stat_key(p) for p in self._watched()}

    def _catch_up(self) -> None:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self._end)
                tail = fh.read()
        except FileNotFoundError:
            tail = b""
        records, valid = _decode_records(tail)
        for record in records:
            self._apply(record)
        self._end += valid
        self._keys[self.path] = _stat_key(self.path)

    def _apply(self, record: dict) -> None:
        # New table dicts, never changed in place, so a reader iterating the old
        # one is not disturbed.
        for name, change in record.items():
            table = dict(self.tables.get(name, {}))
            for key in change.get("del", ()):
                table.pop(key, None)
            table.update(change.get("put", {}))
            self.tables[name] = table

    def refresh(self) -> None:
        """Catch up with writes made by other processes, if there were any."""
        if self._pending is not None:
            return  # inside our own transaction: memory is ahead of the disk
        if all(_stat_key(p) == self._keys.get(p) for p in self._watched()):
            return
        with self.lock:
            keys = {p: _stat_key(p) for p in self._watched()}
            size = keys[self.path][2] if keys[self.path] else 0
            snapshots_changed = any(keys[p] != self._keys.get(p) for p in self._watched()[1:])
            if snapshots_changed or size < self._end:
                self._load()
            else:
                self._catch_up()

    # -- writing -------------------------------------------------------------------

    def commit(self, changes: Changes, tables: dict[str, dict[str, Doc]]) -> None:
        """Make ``changes`` durable and ``tables`` the collections' new state.

        Inside :meth:`atomic`, changes are gathered and written once at the end.
        """
        if self._pending is not None:
            for name, change in changes.items():
                pending = self._pending.setdefault(name, {"put": {}, "del": set()})
                for key in change["del"]:
                    pending["put"].pop(key, None)
                    pending["del"].add(key)
                for key, doc in change["put"].items():
                    pending["del"].discard(key)
                    pending["put"][key] = doc
            self.tables.update(tables)
            return
        with self.lock:
            self._append(_encode_record(changes))
            self.tables.update(tables)
            self._dirty.update(changes)
            if self._end > max(self.compact_min_bytes, self._snapshot_bytes):
                self.compact()

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """Gather every write made inside the block into one journal record."""
        if self._pending is not None:
            yield  # already inside one: the outer block commits
            return
        with self.lock:
            self.refresh()
            self._pending = {}
            try:
                yield
            except BaseException:
                self._pending = None
                self._load()  # forget what memory holds but the disk does not
                raise
            pending, self._pending = self._pending, None
            record = {n: {"put": c["put"], "del": sorted(c["del"])} for n, c in pending.items()}
            if record:
                try:
                    self._append(_encode_record(record))
                except BaseException:
                    self._load()
                    raise
                self._dirty.update(record)
                if self._end > max(self.compact_min_bytes, self._snapshot_bytes):
                    self.compact()

    def _append(self, line: bytes) -> None:
        new = not self.path.exists()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            # Anything past the last valid record is the torn write of a killed process.
            if os.fstat(fd).st_size != self._end:
                os.ftruncate(fd, self._end)
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view) :]
            os.fdatasync(fd)
        except BaseException:
            self._load()  # memory may hold what the disk refused
            raise
        finally:
            os.close(fd)
        if new:
            _fsync_dir(self.folder)
        self._end += len(line)
        self._keys[self.path] = _stat_key(self.path)

    def compact(self) -> None:
        """Fold the journal into the snapshots.

        Crash-safe at any point: until the journal is emptied, replaying it over the
        new snapshots gives the same state, because every record sets whole documents.
        """
        with self.lock:
            self.refresh()
            for name in sorted(self._dirty or self.names):
                _write_file(self._snapshot(name), orjson.dumps({name: self.tables.get(name, {})}))
            with open(self.path, "wb") as fh:
                os.fsync(fh.fileno())
            self._dirty.clear()
            self._end = 0
            self._snapshot_bytes = sum(self._snapshot(n).stat().st_size for n in self.names)
            self._keys = {p: _stat_key(p) for p in self._watched()}

    def _adopt_old_layout(self) -> None:
        """Fold per-collection journals (``<name>.json.journal``, version 0.1) in."""
        for old in self.folder.glob("*.json.journal"):
            name = old.name.removesuffix(".json.journal")
            snapshot = self._snapshot(name)
            raw = snapshot.read_bytes() if snapshot.exists() else b""
            tables = orjson.loads(raw) if raw.strip() else {}
            for record in _decode_records(old.read_bytes())[0]:
                for table, change in record.items():
                    docs = tables.setdefault(table, {})
                    for key in change.get("del", ()):
                        docs.pop(key, None)
                    docs.update(change.get("put", {}))
            _write_file(snapshot, orjson.dumps(tables))
            old.unlink()
            old.with_name(f"{name}.json.lock").unlink(missing_ok=True)


class CollectionStorage(Storage):
    """TinyDB's view of one collection of a :class:`Journal`.

    Changes are found by object identity: :class:`RecordTable` only ever stores new
    document objects (it forbids TinyDB's in-place ``update``), so a document that is
    not the very object handed out last time is new or changed.
    """

    def __init__(self, journal: Journal, name: str) -> None:
        self.journal, self.name = journal, name

    def read(self) -> dict[str, dict[str, Doc]]:
        self.journal.refresh()
        # A fresh outer dict: TinyDB assigns the updated table into it, and the old
        # table stays in the journal to diff against in write().
        return {self.name: self.journal.tables.get(self.name, {})}

    def write(self, data: dict[str, dict[str, Doc]]) -> None:
        old, new = self.journal.tables.get(self.name, {}), data.get(self.name, {})
        puts = {k: v for k, v in new.items() if old.get(k) is not v}
        dels = [k for k in old if k not in new]
        if puts or dels:
            self.journal.commit({self.name: {"put": puts, "del": dels}}, {self.name: new})


class RecordTable(Table):
    """A TinyDB table keyed by our own string ids, with replace-only writes."""

    document_id_class = str

    def put_many(self, docs: dict[str, Doc], remove: Iterable[str] = ()) -> None:
        """Store whole documents under their keys, and drop others, in one write."""

        def updater(table: dict) -> None:
            for key in remove:
                table.pop(key, None)
            table.update(docs)

        self._update_table(updater)

    def update(self, *args, **kwargs):
        raise NotImplementedError("RecordTable stores whole documents: use put_many")

    upsert = update
    update_multiple = update


class Accounts:
    """Users and the audit log (mixed into :class:`Store`)."""

    def find_user(self, username: str) -> Doc | None:
        return self._get("users", username)

    def list_users(self) -> list[Doc]:
        return sorted((_copy(u) for u in self._all("users").values()), key=lambda u: u["username"])

    def count_admins(self) -> int:
        return sum(
            1 for u in self._all("users").values() if u["role"] == "admin" and not u.get("disabled")
        )

    def add_user(self, user: Doc) -> None:
        with self.atomic():
            if self._tables["users"].contains(doc_id=user["username"]):
                raise Conflict(f"user {user['username']} already exists")
            self._put("users", {user["username"]: user})

    def save_user(self, user: Doc) -> None:
        self._put("users", {user["username"]: user})

    def add_audit(self, entry: Doc) -> None:
        """Append to the audit log; entries are never changed or removed."""
        with self.atomic():
            if self._tables["audit"].contains(doc_id=entry["id"]):
                raise Conflict(f"audit entry {entry['id']} exists")
            self._put("audit", {entry["id"]: entry})

    def list_audit(self, limit: int | None = None) -> list[Doc]:
        """The audit log, newest first."""
        keys = sorted(self._all("audit"), reverse=True)[:limit]
        entries = self._all("audit")
        return [_copy(entries[k]) for k in keys]


class Store(Accounts):
    """The node's records, one TinyDB file per collection under ``folder``.

    Every method takes and returns plain dicts that the caller owns: documents are
    copied on the way in and out, so no caller can change stored data by accident.

    :param folder: the data folder (created if missing).
    """

    COLLECTIONS = (
        "node",  # this installation's settings, under the key "self"
        "reviews",  # the current revision of every review, by review id
        "revisions",  # superseded revisions, by revision id
        "imports",  # the import log, by import id
        "conflicts",  # divergent revisions waiting for an analyst, by conflict id
        "quarantine",  # imported records that failed validation, by entry id
        "exports",  # the export log, by export id
        "deliveries",  # receipts: what another node confirmed it holds, by revision id
        "forms",  # form definitions received in bundles, by form key
        "keys",  # signing keys this node trusts, by fingerprint
        "users",  # accounts, by user name
        "audit",  # the audit log, append-only, by time-ordered id
    )

    def __init__(self, folder: str | Path, compact_min_bytes: int = 16 * 2**20) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._mutex = threading.RLock()
        self.journal = Journal(self.folder, self.COLLECTIONS, compact_min_bytes)
        self._db: dict[str, TinyDB] = {}
        self._tables: dict[str, RecordTable] = {}
        for name in self.COLLECTIONS:
            db = TinyDB(self.journal, name, storage=CollectionStorage)
            db.table_class = RecordTable
            self._db[name] = db
            # No query cache: another process may change the data under it.
            self._tables[name] = db.table(name, cache_size=0)

    def close(self) -> None:
        """Nothing to release: files are opened only for the length of a write."""

    # -- plumbing ------------------------------------------------------------------

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """Everything written inside the block lands together or not at all."""
        with self._mutex, self.journal.atomic():
            yield

    def _get(self, name: str, key: str) -> Doc | None:
        with self._mutex:
            doc = self._tables[name].get(doc_id=key)
        return _copy(doc) if doc is not None else None

    def _put(self, name: str, docs: dict[str, Doc], remove: Iterable[str] = ()) -> None:
        with self._mutex, self.journal.lock:
            self._tables[name].put_many({k: _copy(v) for k, v in docs.items()}, remove)

    def _search(self, name: str, cond=None) -> list[Doc]:
        with self._mutex:
            table = self._tables[name]
            return table.search(cond) if cond is not None else table.all()

    def _all(self, name: str) -> dict[str, Doc]:
        """The live documents of a collection: read-only, never handed out."""
        with self._mutex:
            self.journal.refresh()
            return self.journal.tables.get(name, {})

    def backup(self, folder: str | Path) -> list[Path]:
        """Write each collection, journal folded in, as a plain TinyDB JSON file.

        Taken under the lock, so the files are consistent with each other even while
        the app runs. Restore by copying them into an empty data folder.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with self._mutex, self.journal.lock:
            self.journal.refresh()
            written = []
            for name in self.COLLECTIONS:
                target = folder / f"{name}.json"
                _write_file(target, orjson.dumps({name: self.journal.tables.get(name, {})}))
                written.append(target)
        return written

    def compact(self) -> None:
        """Fold the journal into the collection files (for backups and benchmarks)."""
        with self._mutex:
            self.journal.compact()

    # -- node ----------------------------------------------------------------------

    def find_node(self) -> Doc | None:
        """The node's own settings, or None before first-run setup."""
        return self._get("node", "self")

    def save_node(self, node: Doc) -> Doc:
        self._put("node", {"self": node})
        return _copy(node)

    # -- reviews -------------------------------------------------------------------

    def add_review(self, review: Doc) -> Doc:
        """Store a new review; refuse an id that is already taken."""
        with self.atomic():
            if self._tables["reviews"].contains(doc_id=review["id"]):
                raise Conflict(f"review {review['id']} already exists")
            self._put("reviews", {review["id"]: review})
        return _copy(review)

    def add_reviews(self, reviews: list[Doc]) -> None:
        """Store many new reviews in one write (demo data)."""
        with self.atomic():
            table = self._tables["reviews"]
            taken = [r["id"] for r in reviews if table.contains(doc_id=r["id"])]
            if taken:
                raise Conflict(f"{len(taken)} review ids already exist, e.g. {taken[0]}")
            self._put("reviews", {r["id"]: r for r in reviews})

    def get_review(self, review_id: str) -> Doc:
        review = self._get("reviews", review_id)
        if review is None:
            raise NotFound(review_id)
        return review

    def find_review(self, review_id: str) -> Doc | None:
        return self._get("reviews", review_id)

    def replace_review(self, review: Doc, expected_hash: str, archive: Doc | None = None) -> Doc:
        """Overwrite the current revision, but only the one the caller read.

        :param expected_hash: the ``content_hash`` the caller's edit started from;
            a different stored one means someone else saved in between.
        :param archive: a superseded revision to keep in history, in the same write.
        :raises Conflict: the stored review is not the one the caller read.
        """
        with self.atomic():
            stored = self.get_review(review["id"])
            if stored["content_hash"] != expected_hash:
                raise Conflict(f"review {review['id']} changed since it was read")
            if archive is not None:
                self.archive_revision(archive)
            self._put("reviews", {review["id"]: review})
        return _copy(review)

    def archive_revision(self, revision: Doc) -> None:
        """Keep a superseded revision; an archived revision is never changed."""
        with self.atomic():
            key = revision["revision_id"]
            stored = self._tables["revisions"].get(doc_id=key)
            if stored is not None:
                if stored.get("content_hash") != revision.get("content_hash"):
                    raise Conflict(f"revision {key} is archived with other content")
                return
            self._put("revisions", {key: revision})

    def list_revisions(self, review_id: str) -> list[Doc]:
        """Earlier revisions of a review, oldest first."""
        found = self._search("revisions", Query().id == review_id)
        return sorted((_copy(r) for r in found), key=lambda r: r["revision"])

    def get_revision(self, revision_id: str) -> Doc:
        revision = self._get("revisions", revision_id)
        if revision is None:
            raise NotFound(revision_id)
        return revision

    def list_reviews(
        self,
        filters: dict[str, str] | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> tuple[list[Doc], int]:
        """Current revisions, most recently updated first.

        :param filters: ``status`` matches the record; ``archived`` ("yes"/"no")
            matches whether it was archived after delivery; any other key matches
            the answer of that name (e.g. ``country``, ``operation``).
        :returns: the page of reviews and how many matched in all.
        """
        active = [(k, v) for k, v in (filters or {}).items() if v not in (None, "")]

        def matches(review: Doc) -> bool:
            for key, value in active:
                if key == "status":
                    if review["status"] != value:
                        return False
                elif key == "author":
                    if review.get("author") != value:
                        return False
                elif key == "archived":
                    if bool(review.get("archived_at")) != (value == "yes"):
                        return False
                elif review["answers"].get(key) != value:
                    return False
            return True

        found = [r for r in self._all("reviews").values() if matches(r)]
        found.sort(key=lambda r: (r.get("updated_at", ""), r["id"]), reverse=True)
        end = None if limit is None else offset + limit
        return [_copy(r) for r in found[offset:end]], len(found)

    def count_reviews(self) -> int:
        return len(self._all("reviews"))

    def iter_reviews(self) -> Iterator[Doc]:
        """Every current review (copies), in no particular order."""
        for review in list(self._all("reviews").values()):
            yield _copy(review)

    def review_heads(self) -> dict[str, Doc]:
        """What an import needs to know of each stored review, without copying it.

        :returns: ``{review id: {revision_id, content_hash, original_hash, ancestors,
            status}}``.
        """
        fields = ("revision_id", "content_hash", "original_hash", "ancestors", "status", "revision")
        return {k: {f: r.get(f) for f in fields} for k, r in self._all("reviews").items()}

    def archived_revision_ids(self) -> dict[str, Doc]:
        """``{revision id: {id, content_hash, original_hash}}`` of every archived revision."""
        return {
            k: {
                "id": r["id"],
                "content_hash": r.get("content_hash"),
                "original_hash": r.get("original_hash"),
            }
            for k, r in self._all("revisions").items()
        }

    def archive_reviews(self, review_ids: Iterable[str], stamp: str) -> int:
        """Mark reviews archived (hidden from the default list, never deleted)."""
        with self.atomic():
            changed = {}
            for review_id in review_ids:
                review = self._get("reviews", review_id)
                if review is not None and not review.get("archived_at"):
                    changed[review_id] = {**review, "archived_at": stamp}
            if changed:
                self._put("reviews", changed)
        return len(changed)

    # -- exchange ------------------------------------------------------------------

    def apply_import(
        self,
        entry: Doc,
        reviews: dict[str, Doc],
        archived: list[Doc],
        conflicts: list[Doc],
        quarantined: list[Doc],
        forms: dict[str, Doc],
    ) -> None:
        """Apply one whole import in a single write: all of it lands, or none.

        The documents are taken as they are (not copied): the caller hands them over.
        """
        with self.atomic():
            table = self._tables
            table["reviews"].put_many(reviews)
            table["revisions"].put_many({r["revision_id"]: r for r in archived})
            table["conflicts"].put_many({c["id"]: c for c in conflicts})
            table["quarantine"].put_many({q["id"]: q for q in quarantined})
            table["forms"].put_many(forms)
            table["imports"].put_many({entry["id"]: entry})

    def find_import_of_bundle(self, bundle_sha256: str) -> Doc | None:
        """The earlier import of exactly this bundle file, if any."""
        for entry in self._all("imports").values():
            if entry.get("bundle_sha256") == bundle_sha256:
                return _copy(entry)
        return None

    def list_imports(self) -> list[Doc]:
        """The import log, newest first."""
        return sorted(
            (_copy(e) for e in self._all("imports").values()),
            key=lambda e: e["imported_at"],
            reverse=True,
        )

    def list_conflicts(self, status: str | None = None) -> list[Doc]:
        found = [c for c in self._all("conflicts").values() if status in (None, c["status"])]
        return sorted((_copy(c) for c in found), key=lambda c: c["detected_at"], reverse=True)

    def get_conflict(self, conflict_id: str) -> Doc:
        conflict = self._get("conflicts", conflict_id)
        if conflict is None:
            raise NotFound(conflict_id)
        return conflict

    def resolve_conflict(
        self, conflict: Doc, current: Doc, archive: Doc, expected_hash: str
    ) -> None:
        """Close a conflict: ``current`` becomes the review, ``archive`` is kept in history."""
        with self.atomic():
            stored = self.get_review(current["id"])
            if stored["content_hash"] != expected_hash:
                raise Conflict(f"review {current['id']} changed since the conflict was opened")
            self.archive_revision(archive)
            self._put("reviews", {current["id"]: current})
            self._put("conflicts", {conflict["id"]: conflict})

    def list_quarantine(self) -> list[Doc]:
        found = self._all("quarantine").values()
        return sorted(
            (_copy(q) for q in found), key=lambda q: (q["imported_at"], q["line"]), reverse=True
        )

    def list_received_forms(self) -> dict[str, Doc]:
        return {k: _copy(v) for k, v in self._all("forms").items()}

    def add_export(self, entry: Doc) -> None:
        self._put("exports", {entry["id"]: entry})

    def list_exports(self) -> list[Doc]:
        return sorted(
            (_copy(e) for e in self._all("exports").values()),
            key=lambda e: e["created_at"],
            reverse=True,
        )

    def revisions_sent_to(self, destination: str) -> set[str]:
        """Revision ids already exported to a destination (by its name)."""
        sent: set[str] = set()
        for entry in self._all("exports").values():
            if entry.get("destination") == destination:
                sent.update(entry.get("revision_ids", ()))
        return sent

    def record_deliveries(self, deliveries: dict[str, Doc]) -> None:
        """Remember, per revision id, that another node confirmed holding it."""
        self._put("deliveries", deliveries)

    def list_deliveries(self) -> dict[str, Doc]:
        return {k: _copy(v) for k, v in self._all("deliveries").items()}

    def find_trusted_key(self, fingerprint: str) -> Doc | None:
        return self._get("keys", fingerprint)

    def list_trusted_keys(self) -> list[Doc]:
        return sorted((_copy(k) for k in self._all("keys").values()), key=lambda k: k["name"])

    def trust_key(self, key: Doc) -> None:
        self._put("keys", {key["fingerprint"]: key})


def _copy(doc: Doc) -> Doc:
    """A deep copy that is also guaranteed to be JSON-serialisable."""
    return orjson.loads(orjson.dumps(doc))
