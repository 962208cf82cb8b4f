"""Durable local storage: the only module that imports tinydb.

Each collection is one TinyDB file under the node's data folder (``reviews.json``,
``revisions.json``, ``node.json``...). A plain TinyDB ``JSONStorage`` rewrites the
whole file on every write, which at 10,000 reviews means ~140 MB per save. Instead,
:class:`JournalStorage` keeps the file as a snapshot and appends each change
(only the documents that changed) to ``<file>.journal`` with a checksum, then
fsyncs. When the journal outgrows the snapshot it is compacted: the snapshot is
rewritten through a temp file, fsync and atomic rename, and the journal emptied.

- An acknowledged write has been fsync'ed, so it survives ``kill -9`` and power loss.
- A torn tail left by a killed writer fails its checksum; it is ignored on read and
  cut off by the next writer.
- A file lock serialises writers across processes (the web server and a CLI import);
  readers notice a changed file by its size and mtime and catch up.

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


class NotFound(LookupError):
    """A record that was asked for by id does not exist."""


class Conflict(RuntimeError):
    """A write that would silently overwrite something stored."""


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
    return b"%08x " % zlib.crc32(body) + body + b"\n"


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


class JournalStorage(Storage):
    """A TinyDB storage: JSON snapshot plus an append-only, fsync'ed journal.

    Changes are found by object identity: :class:`RecordTable` only ever stores new
    document objects (it forbids TinyDB's in-place ``update``), so a document that is
    not the very object we handed out last time is new or changed.

    :param path: the snapshot file; the journal and lock files sit beside it.
    :param compact_min_bytes: never compact a journal smaller than this.
    """

    def __init__(self, path: str | Path, compact_min_bytes: int = 16 * 2**20) -> None:
        self.path = Path(path)
        self.journal_path = self.path.with_name(self.path.name + ".journal")
        self.lock = FileLock(str(self.path.with_name(self.path.name + ".lock")))
        self.compact_min_bytes = compact_min_bytes
        self._tables: dict[str, dict[str, Doc]] = {}
        self._snapshot_key: tuple | None = None
        self._journal_key: tuple | None = None
        self._journal_end = 0
        self._snapshot_size = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.lock:
            if not self.path.exists():
                self._write_snapshot({})
            self._load()

    # -- reading -------------------------------------------------------------------

    def _load(self) -> None:
        """Read the snapshot and replay the whole journal (caller holds the lock)."""
        snapshot_key = _stat_key(self.path)
        raw = self.path.read_bytes()
        self._tables = orjson.loads(raw) if raw.strip() else {}
        self._snapshot_key = snapshot_key
        self._snapshot_size = len(raw)
        self._journal_end = 0
        self._catch_up()

    def _catch_up(self) -> None:
        """Apply journal records written since we last looked."""
        try:
            with open(self.journal_path, "rb") as fh:
                fh.seek(self._journal_end)
                tail = fh.read()
        except FileNotFoundError:
            tail = b""
        records, valid = _decode_records(tail)
        for record in records:
            self._apply(record)
        self._journal_end += valid
        self._journal_key = _stat_key(self.journal_path)

    def _apply(self, record: dict) -> None:
        # New table dicts, never mutated in place, so a thread iterating the old
        # one is not disturbed.
        for name, change in record.items():
            table = dict(self._tables.get(name, {}))
            for key in change.get("del", ()):
                table.pop(key, None)
            table.update(change.get("put", {}))
            self._tables[name] = table

    def refresh(self) -> None:
        """Catch up with writes made by other processes, if there were any."""
        if (
            _stat_key(self.path) == self._snapshot_key
            and _stat_key(self.journal_path) == self._journal_key
        ):
            return
        with self.lock:
            snapshot_key = _stat_key(self.path)
            journal_key = _stat_key(self.journal_path)
            journal_size = journal_key[2] if journal_key else 0
            if snapshot_key != self._snapshot_key or journal_size < self._journal_end:
                self._load()
            else:
                self._catch_up()

    def read(self) -> dict[str, dict[str, Doc]]:
        self.refresh()
        # A fresh outer dict: TinyDB assigns the updated table into it, and we keep
        # the old table to diff against in write().
        return dict(self._tables)

    # -- writing -------------------------------------------------------------------

    def write(self, data: dict[str, dict[str, Doc]]) -> None:
        record = {}
        for name in set(data) | set(self._tables):
            old, new = self._tables.get(name, {}), data.get(name, {})
            puts = {k: v for k, v in new.items() if old.get(k) is not v}
            dels = [k for k in old if k not in new]
            if puts or dels:
                record[name] = {"put": puts, "del": dels}
        if not record:
            return
        with self.lock:
            try:
                self._append(_encode_record(record))
            except BaseException:
                # Memory may hold what the disk refused: start again from the disk.
                self._load()
                raise
            for name in record:
                self._tables[name] = data.get(name, {})
            if self._journal_end > max(self.compact_min_bytes, self._snapshot_size):
                self.compact()

    def _append(self, line: bytes) -> None:
        new = not self.journal_path.exists()
        fd = os.open(self.journal_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            # Anything past the last valid record is the torn write of a killed process.
            if os.fstat(fd).st_size != self._journal_end:
                os.ftruncate(fd, self._journal_end)
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view) :]
            os.fdatasync(fd)
        finally:
            os.close(fd)
        if new:
            _fsync_dir(self.path.parent)
        self._journal_end += len(line)
        self._journal_key = _stat_key(self.journal_path)

    def _write_snapshot(self, tables: dict) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        data = orjson.dumps(tables)
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        _fsync_dir(self.path.parent)
        self._snapshot_size = len(data)

    def compact(self) -> None:
        """Fold the journal into the snapshot.

        Crash-safe in either order: until the journal is emptied, replaying it over
        the new snapshot gives the same state, because every record sets whole
        documents.
        """
        with self.lock:
            self._write_snapshot(self._tables)
            self._snapshot_key = _stat_key(self.path)
            with open(self.journal_path, "wb") as fh:
                os.fsync(fh.fileno())
            self._journal_end = 0
            self._journal_key = _stat_key(self.journal_path)

    def close(self) -> None:
        """Nothing to release: files are opened only for the length of a write."""


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

    def update(self, *args, **kwargs):  # noqa: D102
        raise NotImplementedError("RecordTable stores whole documents: use put_many")

    upsert = update
    update_multiple = update


class Store:
    """The node's records, one TinyDB file per collection under ``folder``.

    Every method takes and returns plain dicts that the caller owns: documents are
    copied on the way in and out, so no caller can change stored data by accident.

    :param folder: the data folder (created if missing).
    """

    COLLECTIONS = ("node", "reviews", "revisions")

    def __init__(self, folder: str | Path, compact_min_bytes: int = 16 * 2**20) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._mutex = threading.RLock()
        self._dbs: dict[str, TinyDB] = {}
        self._tables: dict[str, RecordTable] = {}
        for name in self.COLLECTIONS:
            db = TinyDB(
                self.folder / f"{name}.json",
                storage=JournalStorage,
                compact_min_bytes=compact_min_bytes,
            )
            db.table_class = RecordTable
            self._dbs[name] = db
            # No query cache: another process may change the file under it.
            self._tables[name] = db.table(name, cache_size=0)

    def close(self) -> None:
        for db in self._dbs.values():
            db.close()

    # -- plumbing ------------------------------------------------------------------

    @contextmanager
    def _writing(self, name: str) -> Iterator[RecordTable]:
        """Hold the collection's locks across a read-modify-write."""
        with self._mutex, self._dbs[name].storage.lock:
            yield self._tables[name]

    def _get(self, name: str, key: str) -> Doc | None:
        with self._mutex:
            doc = self._tables[name].get(doc_id=key)
        return _copy(doc) if doc is not None else None

    def _put(self, name: str, docs: dict[str, Doc], remove: Iterable[str] = ()) -> None:
        table = self._tables[name]
        table.put_many({k: _copy(v) for k, v in docs.items()}, remove)

    def _search(self, name: str, cond=None) -> list[Doc]:
        with self._mutex:
            table = self._tables[name]
            return table.search(cond) if cond is not None else table.all()

    def backup(self, folder: str | Path) -> list[Path]:
        """Write each collection, journal folded in, as a plain TinyDB JSON file.

        Each file is taken under its collection's lock, so it is consistent even
        while the app is running. Restore by copying the files into an empty data
        folder.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for name, db in self._dbs.items():
            storage = db.storage
            with self._mutex, storage.lock:
                storage.refresh()
                data = orjson.dumps(storage.read())
            target = folder / f"{name}.json"
            tmp = target.with_suffix(".json.tmp")
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
            written.append(target)
        return written

    def compact(self) -> None:
        """Fold every journal into its snapshot (for backups and benchmarks)."""
        with self._mutex:
            for db in self._dbs.values():
                db.storage.compact()

    # -- node ----------------------------------------------------------------------

    def find_node(self) -> Doc | None:
        """The node's own settings, or None before first-run setup."""
        return self._get("node", "self")

    def save_node(self, node: Doc) -> Doc:
        with self._writing("node"):
            self._put("node", {"self": node})
        return _copy(node)

    # -- reviews -------------------------------------------------------------------

    def add_review(self, review: Doc) -> Doc:
        """Store a new review; refuse an id that is already taken."""
        with self._writing("reviews") as table:
            if table.contains(doc_id=review["id"]):
                raise Conflict(f"review {review['id']} already exists")
            self._put("reviews", {review["id"]: review})
        return _copy(review)

    def add_reviews(self, reviews: list[Doc]) -> None:
        """Store many new reviews in one write (demo data, imports)."""
        with self._writing("reviews") as table:
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

    def replace_review(self, review: Doc, expected_hash: str) -> Doc:
        """Overwrite the current revision, but only the one the caller read.

        :param expected_hash: the ``content_hash`` the caller's edit started from;
            a different stored one means someone else saved in between.
        :raises Conflict: the stored review is not the one the caller read.
        """
        with self._writing("reviews"):
            stored = self.get_review(review["id"])
            if stored["content_hash"] != expected_hash:
                raise Conflict(f"review {review['id']} changed since it was read")
            self._put("reviews", {review["id"]: review})
        return _copy(review)

    def archive_revision(self, revision: Doc) -> None:
        """Keep a superseded revision; an archived revision is never changed."""
        with self._writing("revisions") as table:
            key = revision["revision_id"]
            stored = table.get(doc_id=key)
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

        :param filters: ``status`` matches the record; any other key matches the
            answer of that name (e.g. ``country``, ``operation``).
        :returns: the page of reviews and how many matched in all.
        """
        cond = None
        for key, value in (filters or {}).items():
            if value in (None, ""):
                continue
            part = (Query()[key] == value) if key == "status" else (Query().answers[key] == value)
            cond = part if cond is None else cond & part
        found = self._search("reviews", cond)
        found.sort(key=lambda r: (r.get("updated_at", ""), r["id"]), reverse=True)
        end = None if limit is None else offset + limit
        return [_copy(r) for r in found[offset:end]], len(found)

    def count_reviews(self) -> int:
        with self._mutex:
            return len(self._tables["reviews"])


def _copy(doc: Doc) -> Doc:
    """A deep copy that is also guaranteed to be JSON-serialisable."""
    return orjson.loads(orjson.dumps(doc))
