"""Durable local storage: the only module that imports tinydb.

The node's data folder holds one TinyDB JSON file per collection (``reviews.json``,
``users.json``...: the *snapshots*) and one shared journal, ``journal.log``. A plain
TinyDB ``JSONStorage`` rewrites a whole file on every write (~80 MB per save at 10,000
reviews); here a write appends only the documents that changed to the journal, with
its length and checksum, and fdatasyncs it. When the journal outgrows the snapshots it
is compacted: every collection named in it is rewritten through a temp file, fsync and
rename, and a new journal starts with what was written meanwhile.

- An acknowledged write is on disk: it survives ``kill -9``, power loss, other
  processes' writes and compactions.
- A change to several collections (a revision, a whole import) is one journal
  record, applied entirely or not at all (:meth:`Journal.atomic`).
- Only a killed writer's unfinished last line is cut (a copy kept in ``damaged/``);
  anything else that does not check out is :class:`StoreDamaged`, never repaired.
- Writers lock the data folder itself, for a bounded time (:class:`StoreBusy`);
  readers take no lock and catch up with what other processes wrote.

docs/storage.md says what each file holds and what survives what. The rest of the app
talks to :class:`Store`, whose methods speak the domain and take and return plain dicts.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import hashlib
import logging
import os
import threading
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from filelock import FileLock, Timeout
from tinydb import Query, TinyDB
from tinydb.storages import Storage
from tinydb.table import Table

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

log = logging.getLogger(__name__)
Doc = dict[str, Any]


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


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in ``path`` durable (a no-op on Windows)."""
    if os.name == "nt":  # directories cannot be opened, nor need to be synced, there
        return
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


def _unwritable(exc: OSError, path: Path) -> StoreError | OSError:
    """The domain error for a refused write, or the OSError itself when it is another."""
    if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return StoreFull(f"no space left on the disk that holds {path}", path)
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return StoreReadOnly(f"{path} cannot be written ({exc.strerror})", path)
    return exc


@contextmanager
def _writing(path: Path) -> Iterator[None]:
    """Turn the disk's refusal of a write into :class:`StoreUnwritable`."""
    try:
        yield
    except OSError as exc:
        raise _unwritable(exc, path) from exc


# -- the journal's records -----------------------------------------------------------
#
# One line per record: "<length:8 hex> <crc32:8 hex> <orjson body>\n". The length
# tells a torn tail (a killed writer's unfinished line, which never contains a newline)
# from a damaged record (a complete line that fails its checksum). Lines written by
# version 0.2 ("<crc32:8 hex> <body>\n") are still read.

_HEADER = 18


def _encode_record(record: dict) -> bytes:
    body = orjson.dumps(record)
    return b"".join((b"%08x %08x " % (len(body), zlib.crc32(body)), body, b"\n"))


def _parse_record(data: bytes, pos: int) -> tuple[dict, int] | None:
    """The record that starts at ``pos`` and where the next one starts, or None."""
    head = data[pos : pos + _HEADER]
    try:
        if len(head) == _HEADER and head[8:9] == b" " and head[17:18] == b" ":
            length, crc = int(head[:8], 16), int(head[9:17], 16)
            start = pos + _HEADER
            end = start + length
            body = data[start:end]
            if len(body) != length or data[end : end + 1] != b"\n" or zlib.crc32(body) != crc:
                return None
        elif head[8:9] == b" " and head[9:10] == b"{":  # the 0.2 layout
            end = data.find(b"\n", pos)
            if end < 0:
                return None
            body, crc = data[pos + 9 : end], int(head[:8], 16)
            if zlib.crc32(body) != crc:
                return None
        else:
            return None
        record = orjson.loads(body)
    except ValueError:
        return None
    return (record, end + 1) if isinstance(record, dict) else None


def _decode_records(data: bytes) -> tuple[list[dict], int, int | None]:
    """Parse journal bytes up to the first record that does not check out.

    :returns: the records, the byte length of the valid prefix, and the offset of
        damage (None when what follows the valid prefix is only a torn tail).
    """
    records, pos = [], 0
    while pos < len(data):
        parsed = _parse_record(data, pos)
        if parsed is None:
            return records, pos, None if _is_torn(data[pos:]) else pos
        record, pos = parsed
        records.append(record)
    return records, pos, None


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _write_synced(path: Path, data: bytes, mode: int = 0o644) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _is_torn(rest: bytes) -> bool:
    """Whether bytes that are not a valid record can be a killed writer's unfinished
    one: shorter than the length its header declares, and without the final newline
    (or zeros, as a power cut leaves). A complete line that fails is damage."""
    if not rest.strip(b"\x00"):
        return True
    if b"\n" in rest:
        return False
    head = rest[:_HEADER]
    if len(head) < _HEADER or head[8:9] != b" " or head[17:18] != b" ":
        return len(head) < _HEADER or head[8:9] == b" "  # an unfinished header
    try:
        return len(rest) < _HEADER + int(head[:8], 16) + 1
    except ValueError:
        return False


def _document_pieces(docs: dict[str, Doc]) -> Iterator[bytes]:
    """``orjson.dumps(docs)``, in pieces of one document each."""
    yield b"{"
    first = True
    for key, doc in docs.items():
        yield (b"" if first else b",") + orjson.dumps(key) + b":" + orjson.dumps(doc)
        first = False
    yield b"}"


def _write_file(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically and durably; no temp file is left."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with _writing(path):
            _write_synced(tmp, data)
            os.replace(tmp, path)
            fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def write_new_file(path: Path, data: bytes, mode: int = 0o600) -> bool:
    """Create ``path`` holding ``data``, whole or not at all (never an empty or half
    file, e.g. on a full disk), unless it exists already.

    :returns: whether this call created it (False: another process did first).
    :raises StoreUnwritable: the disk refused.
    """
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with _writing(path):
            _write_synced(tmp, data, mode)
            try:
                os.link(tmp, path)  # unlike a rename, never replaces an existing file
            except FileExistsError:
                return False
            fsync_dir(path.parent)
            return True
    finally:
        tmp.unlink(missing_ok=True)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _Bad(Exception):
    """A file that does not check out (turned into :class:`StoreDamaged` once sure)."""

    def __init__(self, path: Path, what: str, offset: int | None = None) -> None:
        super().__init__(what)
        self.path, self.what, self.offset = path, what, offset


class FolderLock:
    """One writer at a time across processes and threads, with a bounded wait.

    On POSIX the lock is ``flock`` on the data folder itself, which nobody can delete
    while files are in it (a lock *file* can be deleted under a holder, and the next
    process then locks a new file while the first still writes). On Windows an open,
    locked file cannot be deleted, so ``store.lock`` with filelock does the same job.
    Re-entrant within a thread.

    :param timeout: seconds to wait before :class:`StoreBusy`.
    """

    def __init__(self, folder: Path, timeout: float) -> None:
        self.folder, self.timeout = folder, timeout
        self._thread = threading.RLock()
        self._depth = 0
        self._fd: int | None = None
        self._file_lock = None if fcntl else FileLock(str(folder / "store.lock"))

    def held(self) -> bool:
        """Whether the calling thread holds the lock."""
        return self._thread._is_owned() and self._depth > 0  # type: ignore[attr-defined]

    def __enter__(self) -> FolderLock:
        self.acquire(self.timeout)
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self, timeout: float) -> None:
        """:raises StoreBusy: not had within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        if not self._thread.acquire(timeout=timeout):
            raise self._busy()
        try:
            if self._depth == 0:
                self._lock_folder(deadline)
            self._depth += 1
        except BaseException:
            self._thread.release()
            raise

    def release(self) -> None:
        self._depth -= 1
        if self._depth == 0:
            if self._file_lock is not None:
                self._file_lock.release()
            else:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
                os.close(self._fd)
                self._fd = None
        self._thread.release()

    def _lock_folder(self, deadline: float) -> None:
        if self._file_lock is not None:
            try:
                self._file_lock.acquire(timeout=max(0.0, deadline - time.monotonic()))
            except Timeout:
                raise self._busy() from None
            return
        fd = os.open(self.folder, os.O_RDONLY)
        delay = 0.001
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._fd = fd
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise self._busy() from None
                time.sleep(delay)
                delay = min(delay * 2, 0.05)

    def _busy(self) -> StoreBusy:
        return StoreBusy(
            f"another process has held {self.folder} for over {self.timeout:g} s", self.folder
        )


class Journal:
    """Every collection of a data folder: snapshots, the shared journal, the lock.

    Three kinds of access, and what each may wait for:

    - Reads take nothing: they see the last committed state, catching up with other
      processes' writes without the write lock (a load is checked against the files'
      identities and retried if a compaction replaced them meanwhile).
    - A write (:meth:`atomic`) takes the folder lock for a bounded time, catches up
      with everything on disk, and appends one checksummed record.
    - A compaction writes the new snapshots without the lock and takes it only to
      rename them in and to start a new journal with the records written meanwhile.

    :param folder: the data folder.
    :param names: the collections.
    :param compact_min_bytes: never compact a journal smaller than this.
    :param lock_timeout: seconds a write waits for another process's lock.
    :param background: compact in a thread of this process (the web server) rather
        than inside the write that crossed the threshold.
    """

    def __init__(
        self,
        folder: Path,
        names: Iterable[str],
        compact_min_bytes: int,
        lock_timeout: float = 5.0,
        background: bool = False,
    ) -> None:
        self.folder = folder
        self.names = tuple(names)
        self.path = folder / "journal.log"
        self.end_path = folder / "journal.end"  # where the last acknowledged record ends
        self.damaged_folder = folder / "damaged"
        self.folder_id: str | None = None  # recorded in every snapshot
        self.lock = FolderLock(folder, lock_timeout)
        self.compact_min_bytes = compact_min_bytes
        self.background = background
        self.tables: dict[str, dict[str, Doc]] = {}  # committed; outer dict replaced whole
        self.damage: StoreDamaged | None = None
        self._mutex = threading.RLock()  # this process's view of the files
        self._txn: dict[str, dict] | None = None
        self._txn_tables: dict[str, dict[str, Doc]] = {}
        self._txn_owner: int | None = None
        self._keys: dict[Path, tuple | None] = {}
        self._end = 0
        self._journal_names: set[str] = set()
        self._snapshot_bytes = 0
        self.compactions = 0  # completed by this process (for tests and benchmarks)
        self._wake = threading.Event()
        self._compacting = threading.Lock()
        self._compactor: threading.Thread | None = None
        with self._mutex:
            ready = self.folder.exists() and not any(self.folder.glob("*.json.journal"))
            if ready and all(self._snapshot(n).exists() for n in self.names):
                self._load(locked=False, wait=lock_timeout)  # an import may be running
            else:
                with self.lock:
                    self._adopt_old_layout()
                    self._remove_temp_files()
                    self._create_missing_snapshots()
                    self._load(locked=True)
        if self.damage is not None:
            raise self.damage

    def _snapshot(self, name: str) -> Path:
        return self.folder / f"{name}.json"

    def _watched(self) -> list[Path]:
        return [self.path, *(self._snapshot(n) for n in self.names)]

    def _stat_all(self) -> dict[Path, tuple | None]:
        return {p: _stat_key(p) for p in self._watched()}

    def view(self, name: str) -> dict[str, Doc]:
        """A collection as the calling thread should see it (its own open transaction
        included). Never changed in place: safe to iterate while others write."""
        if self._txn is not None and self._txn_owner == threading.get_ident():
            return self._txn_tables.get(name, {})
        return self.tables.get(name, {})

    # -- opening -------------------------------------------------------------------

    def _create_missing_snapshots(self) -> None:
        """A new folder gets empty collections; a missing file on a used one is damage.

        Every snapshot records the collections that existed when it was written, so a
        file deleted from a node in use is told from a collection new in this version.
        """
        present = [n for n in self.names if self._snapshot(n).exists()]
        if not present and (self.path.exists() or self.end_path.exists()):
            raise self._damaged(
                self.folder, "has lost all its collection files although its journal is there"
            )
        known: set[str] = set()
        held = 0
        for name in present:
            try:
                docs, meta, _size = self._read_snapshot(name)
            except _Bad as bad:
                raise self._damaged(bad.path, bad.what) from None
            known.update(meta.get("collections", ()))
            self.folder_id = self.folder_id or meta.get("folder")
            held += len(docs)
        if not held and not self.path.exists() and not self.end_path.exists():
            known = set()  # never written to: a first start that was killed half-way
        for name in self.names:
            if name in present:
                continue
            if name in known:
                raise self._damaged(
                    self._snapshot(name), "is missing although this data folder holds it"
                )
            self._write_snapshot(name, {})

    def _remove_temp_files(self) -> None:
        """Temp files that a killed process left behind (``<file>.<pid>.tmp``,
        ``<name>.json.<pid>.compact``); a live process's are its own business."""
        for tmp in (*self.folder.glob("*.tmp"), *self.folder.glob("*.compact")):
            pid = tmp.name.rsplit(".", 2)[-2]
            if pid.isdigit() and _alive(int(pid)):
                continue
            with contextlib.suppress(OSError):
                tmp.unlink()

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

    # -- reading -------------------------------------------------------------------

    def _damaged(self, path: Path, what: str, offset: int | None = None) -> StoreDamaged:
        """Report damage once, keeping a copy of the file aside for whoever repairs it."""
        where = f" at byte {offset}" if offset is not None else ""
        kept = self._keep_aside(path)
        message = (
            f"{path}{where} {what}. Nothing was changed and nothing will be written until "
            "it is repaired. Restore the data folder from a backup "
            "(python run.py restore --from BACKUP --data NEW_FOLDER)"
            + (f"; a copy of the damaged file is in {kept}" if kept else "")
            + "."
        )
        return StoreDamaged(message, path, offset)

    def _keep_aside(self, path: Path, data: bytes | None = None, label: str = "") -> Path | None:
        """Copy damaged bytes to ``damaged/`` (once: the same bytes are not copied again
        on every attempt to open the folder)."""
        try:
            if data is None:
                data = path.read_bytes()
            self.damaged_folder.mkdir(exist_ok=True)
            digest = hashlib.sha256(data).hexdigest()[:12]
            for kept in self.damaged_folder.glob(f"{path.stem}-*-{digest}{label}{path.suffix}"):
                return kept
            stamp = _now().replace(":", "").replace(".", "-")
            target = self.damaged_folder / f"{path.stem}-{stamp}-{digest}{label}{path.suffix}"
            _write_file(target, data)
            return target
        except (OSError, StoreError):
            return None

    def list_set_aside(self) -> list[dict]:
        """What ``damaged/`` holds: files found damaged, and torn writes that were cut."""
        if not self.damaged_folder.is_dir():
            return []
        return [
            {"name": p.name, "bytes": p.stat().st_size, "at": p.stat().st_mtime}
            for p in sorted(self.damaged_folder.iterdir())
            if p.is_file()
        ]

    def _read_snapshot(self, name: str) -> tuple[dict[str, Doc], dict, int]:
        """One collection file, checked: it parses, holds its collection, and holds as
        many documents as were written to it.

        :returns: the documents, the file's ``_meta`` and its size.
        :raises _Bad: the file is not what this app wrote.
        """
        path = self._snapshot(name)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise _Bad(path, "was removed while in use") from None
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise _Bad(path, f"is not valid JSON ({exc})") from None
        if not isinstance(data, dict) or not isinstance(data.get(name), dict):
            raise _Bad(path, f"does not hold the collection {name!r}")
        docs, meta = data[name], data.get("_meta")
        meta = meta if isinstance(meta, dict) else {}  # files of version 0.2 have none
        written = meta.get("documents")
        if written is not None and written != len(docs):
            raise _Bad(path, f"holds {len(docs)} records where {written} were written")
        if "crc32" in meta:
            start, end = len(name) + 4, raw.rfind(b',"_meta":')
            if zlib.crc32(raw[start:end]) != meta["crc32"]:
                raise _Bad(path, "fails its checksum (its records were changed after writing)")
        return docs, meta, len(raw)

    def _stream_snapshot(self, name: str, docs: dict[str, Doc], path: Path) -> None:
        """Write ``{"<name>": {docs}, "_meta": {...}}`` to ``path`` and fsync it: a TinyDB
        file whose ``_meta`` table records the count and CRC-32 of the documents' bytes
        and the folder's collections.

        Document by document, never the whole collection in one string: a compaction
        running in a thread of the web server then lets requests run between documents
        (one ``orjson.dumps`` of 400 MB would hold the interpreter for seconds), and
        memory stays flat.
        """
        crc, size, buffer = 0, 0, []
        self.folder_id = self.folder_id or uuid.uuid4().hex  # a new folder, or one of 0.2
        with open(path, "wb") as fh:
            fh.write(b'{"' + name.encode() + b'":')
            for piece in _document_pieces(docs):
                crc = zlib.crc32(piece, crc)
                buffer.append(piece)
                size += len(piece)
                if size > 2**20:
                    fh.write(b"".join(buffer))
                    buffer, size = [], 0
            fh.write(b"".join(buffer))
            meta = {
                "documents": len(docs),
                "crc32": crc,
                "collections": list(self.names),
                "folder": self.folder_id,
                "written_at": _now(),
            }
            fh.write(b',"_meta":' + orjson.dumps(meta) + b"}")
            fh.flush()
            os.fsync(fh.fileno())

    def _write_snapshot(self, name: str, docs: dict[str, Doc], path: Path | None = None) -> None:
        """Replace a snapshot (or write one at ``path``) atomically and durably."""
        target = path or self._snapshot(name)
        tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
        try:
            with _writing(target):
                self._stream_snapshot(name, docs, tmp)
                os.replace(tmp, target)
                fsync_dir(target.parent)
        finally:
            tmp.unlink(missing_ok=True)

    def _read_files(self) -> tuple[dict, int, list[dict], int]:
        """:returns: the snapshots' documents, their size, the journal's records and the
        length of its valid prefix. :raises _Bad: naming the file at fault."""
        tables, sizes, folders = {}, 0, {}
        for name in self.names:
            tables[name], meta, size = self._read_snapshot(name)
            sizes += size
            if meta.get("folder"):
                folders[name] = meta["folder"]
        if folders:
            ours = Counter(folders.values()).most_common(1)[0][0]
            for name, folder in folders.items():
                if folder != ours:
                    raise _Bad(self._snapshot(name), "comes from another data folder")
            self.folder_id = ours
        # journal.end before the journal: appends only grow it, so what it says was
        # acknowledged is then never ahead of the journal read just after.
        acknowledged = self._acknowledged_end()
        try:
            with open(self.path, "rb") as fh:
                inode = os.fstat(fh.fileno()).st_ino
                data = fh.read()
        except FileNotFoundError:
            data, inode = b"", None
        records, valid, damage_at = _decode_records(data)
        if damage_at is not None:
            raise _Bad(
                self.path, "holds a record that fails its checksum, with more after it", damage_at
            )
        if acknowledged and (inode is None or acknowledged[0] == inode) and acknowledged[1] > valid:
            what = (
                f"is missing, although {acknowledged[1]} bytes of records were acknowledged"
                if inode is None
                else f"ends at byte {valid}, but records up to byte {acknowledged[1]} were "
                "acknowledged: it was cut short"
            )
            raise _Bad(self.path, what, valid if inode is not None else None)
        return tables, sizes, records, valid

    def _acknowledged_end(self) -> tuple[int, int] | None:
        """(journal inode, length) as last acknowledged, from ``journal.end``; None when
        there is none or it cannot be trusted (it is a hint: never synced, so after a
        power cut it may be behind, which only makes the check weaker)."""
        try:
            line = self.end_path.read_bytes()
            inode, end, crc = (int(x) for x in line.split())
        except (OSError, ValueError):
            return None
        return (inode, end) if zlib.crc32(b"%d %d" % (inode, end)) == crc else None

    def _record_end(self) -> None:
        key = _stat_key(self.path)
        if key is None:
            return
        body = b"%d %d" % (key[0], self._end)
        line = b"%s %d\n" % (body, zlib.crc32(body))
        with contextlib.suppress(OSError):
            fd = os.open(self.end_path, os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                os.pwrite(fd, line.ljust(64), 0)
            finally:
                os.close(fd)

    def _load(self, locked: bool, wait: float = 0.05) -> None:
        """Read every snapshot and replay the whole journal.

        Without the lock, the files' identities are compared before and after, and the
        load is retried while a compaction replaced any of them meanwhile; anything
        that looks damaged is looked at again under the lock before it is reported.
        """
        for _attempt in range(5):
            before = self._stat_all()
            try:
                state: tuple | _Bad = self._read_files()
            except _Bad as bad:
                state = bad
            after = self._stat_all()
            journal_same = (before[self.path] or (None,))[0] == (after[self.path] or (None,))[0]
            if locked or (journal_same and all(before[p] == after[p] for p in self._watched()[1:])):
                break
        else:
            return self._load_under_lock(wait)
        if isinstance(state, _Bad):
            if not locked:
                return self._load_under_lock(wait)
            self.damage = self.damage or self._damaged(state.path, state.what, state.offset)
            return None
        tables, sizes, records, valid = state
        self._journal_names = set()
        self._replay(tables, records)  # tables just read are this call's: changed in place
        self.tables, self._snapshot_bytes = tables, sizes
        self._end, self._keys = valid, before
        return None

    def _load_under_lock(self, wait: float) -> None:
        # Briefly, once running: a reader must not wait for a writer (which, in this
        # process, may itself be waiting for _mutex, held here). At opening, the
        # whole lock timeout: there is no state yet to serve instead.
        try:
            self.lock.acquire(timeout=wait)
        except StoreBusy:
            if not self._keys:
                raise
            return  # keep serving the last state we could trust; the next read retries
        try:
            self._load(locked=True)
        finally:
            self.lock.release()

    def _catch_up(self, locked: bool) -> None:
        """Apply what other processes appended since we last looked."""
        key = self._keys.get(self.path)
        try:
            with open(self.path, "rb") as fh:
                if key is None or os.fstat(fh.fileno()).st_ino != key[0]:
                    return self._load(locked)  # a new journal: a compaction happened
                fh.seek(self._end)
                tail = fh.read()
        except FileNotFoundError:
            return self._load(locked)
        records, valid, damage_at = _decode_records(tail)
        if damage_at is not None:
            return self._load(locked)  # reports it, or looks again under the lock
        if records:
            # New table dicts, each copied once, never changed in place: a reader
            # iterating the old ones is not disturbed.
            tables = dict(self.tables)
            for name in {n for r in records for n in r}:
                tables[name] = dict(tables.get(name, {}))
            self._replay(tables, records)
            self.tables = tables
        self._end += valid
        self._keys[self.path] = _stat_key(self.path)
        return None

    def _replay(self, tables: dict[str, dict[str, Doc]], records: list[dict]) -> None:
        """Apply journal records to ``tables``, in place (the caller owns them)."""
        for record in records:
            for name, change in record.items():
                table = tables.setdefault(name, {})
                for key in change.get("del", ()):
                    table.pop(key, None)
                table.update(change.get("put", {}))
                self._journal_names.add(name)

    def _sync(self, locked: bool) -> None:
        keys = self._stat_all()
        if keys == self._keys:
            return
        old, new = self._keys.get(self.path), keys[self.path]
        snapshots_same = all(keys[p] == self._keys.get(p) for p in self._watched()[1:])
        # Appends only ever grow the journal: anything else (same size, new time) is a
        # rewrite in place, which only damage does, so it is read again from the start.
        if snapshots_same and old and new and old[0] == new[0] and new[2] > old[2]:
            self._catch_up(locked)
        else:
            self._load(locked)

    def refresh(self) -> None:
        """Catch up with writes made by other processes, never waiting for them."""
        if not self._mutex.acquire(blocking=False):
            return  # this process is writing: serve the last committed state
        try:
            if self._txn is None:
                self._sync(locked=self.lock.held())
        finally:
            self._mutex.release()

    # -- writing -------------------------------------------------------------------

    def stage(self, name: str, puts: dict[str, Doc], dels: Iterable[str] = ()) -> None:
        """Add whole documents (and removals) to the calling thread's transaction."""
        if self._txn is None or self._txn_owner != threading.get_ident():
            raise RuntimeError("stage() outside atomic()")
        pending = self._txn.get(name)
        if pending is None:  # first change to it in this transaction: a private copy
            pending = self._txn[name] = {"put": {}, "del": set()}
            self._txn_tables = {**self._txn_tables, name: dict(self._txn_tables.get(name, {}))}
        table = self._txn_tables[name]
        for key in dels:
            pending["put"].pop(key, None)
            pending["del"].add(key)
            table.pop(key, None)
        for key, doc in puts.items():
            pending["del"].discard(key)
            pending["put"][key] = doc
        table.update(puts)

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """Gather every write made inside the block into one journal record.

        :raises StoreBusy: another process held the lock for longer than we wait.
        :raises StoreUnwritable: the disk refused; nothing of the block was stored.
        :raises StoreDamaged: the folder is damaged; nothing is written until repaired.
        """
        if self._txn is not None and self._txn_owner == threading.get_ident():
            yield  # already inside one: the outer block commits
            return
        record: dict = {}
        with self.lock, self._mutex:
            self._sync(locked=True)
            if self.damage is not None:
                raise self.damage
            self._txn, self._txn_tables = {}, dict(self.tables)
            self._txn_owner = threading.get_ident()
            try:
                yield
                record = {
                    n: {"put": c["put"], "del": sorted(c["del"])} for n, c in self._txn.items()
                }
                if record:
                    self._append(_encode_record(record))
                    self.tables = self._txn_tables
                    self._journal_names.update(record)
            finally:
                self._txn, self._txn_tables, self._txn_owner = None, {}, None
        if record and self._end > max(self.compact_min_bytes, self._snapshot_bytes):
            self._compact_soon()

    def _append(self, line: bytes) -> None:
        """Append one record and fdatasync it (the caller holds the lock, caught up)."""
        with _writing(self.path):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size != self._end:
                # Past the last valid record: a killed writer's torn line (damage
                # would have stopped us in _sync). Kept aside, then cut.
                os.lseek(fd, self._end, os.SEEK_SET)
                kept = self._keep_aside(
                    self.path, os.read(fd, size - self._end), f"-torn-at-{self._end}"
                )
                log.warning(
                    "cut an unfinished write of %d bytes (kept in %s)", size - self._end, kept
                )
                os.ftruncate(fd, self._end)
            try:
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view) :]
                os.fdatasync(fd) if hasattr(os, "fdatasync") else os.fsync(fd)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, self._end)  # no half record stays behind
                raise _unwritable(exc, self.path) from exc
        finally:
            os.close(fd)
        if size == 0:
            fsync_dir(self.folder)
        self._end += len(line)
        self._keys[self.path] = _stat_key(self.path)
        self._record_end()

    # -- compaction ----------------------------------------------------------------

    def _compact_soon(self) -> None:
        if not self.background:
            try:
                self.compact()
            except (StoreError, OSError) as exc:  # the write itself is stored
                log.warning("compaction postponed: %s", exc)
            return
        if self._compactor is None or not self._compactor.is_alive():
            self._compactor = threading.Thread(
                target=self._compact_forever, name="store-compactor", daemon=True
            )
            self._compactor.start()
        self._wake.set()

    def _compact_forever(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            try:
                self.compact()
            except (StoreError, OSError) as exc:
                log.warning("compaction postponed: %s", exc)

    def compact(self) -> None:
        """Fold the whole journal, whoever wrote it, into the snapshots.

        The snapshots are written without the lock, then renamed in under it, and a new
        journal starts with the records written meanwhile. Crash-safe at any point:
        replaying a journal over newer snapshots gives the same state, because every
        record sets whole documents.
        """
        with self._compacting:  # one at a time in this process (the thread and a call)
            self._compact()

    def _compact(self) -> None:
        with self.lock, self._mutex:
            self._sync(locked=True)
            if self.damage is not None:
                raise self.damage
            self._remove_temp_files()
            if self._end == 0:
                return
            tables, names, end = self.tables, sorted(self._journal_names), self._end
            # Any other compaction replaces the journal and at least one snapshot; an
            # inode number alone may be reused, a snapshot's (inode, mtime) is not.
            files = dict(self._keys)
        temps = {n: self.folder / f"{n}.json.{os.getpid()}.compact" for n in names}
        try:
            with _writing(self.folder):
                for name in names:
                    self._stream_snapshot(name, tables.get(name, {}), temps[name])
            with self.lock, self._mutex:
                self._sync(locked=True)
                journal_same = (self._keys[self.path] or (None,))[0] == (files[self.path] or (None,))[0]  # fmt: skip
                if not journal_same or any(self._keys[p] != files[p] for p in self._watched()[1:]):
                    return  # another process (or thread) compacted meanwhile
                if not all(t.exists() for t in temps.values()):
                    return  # removed as a dead process's (a reused pid): try again later
                with open(self.path, "rb") as fh:
                    fh.seek(end)
                    tail = fh.read(self._end - end)
                with _writing(self.folder):
                    for name in names:
                        os.replace(temps[name], self._snapshot(name))
                    fsync_dir(self.folder)
                    self.end_path.unlink(missing_ok=True)  # it speaks of the old journal
                    _write_file(self.path, tail)
                self._end = len(tail)
                self._record_end()
                self._journal_names = {n for r in _decode_records(tail)[0] for n in r}
                self._snapshot_bytes = sum(self._snapshot(n).stat().st_size for n in self.names)
                self._keys = self._stat_all()
                self.compactions += 1
        finally:
            for temp in temps.values():
                temp.unlink(missing_ok=True)


class CollectionStorage(Storage):
    """TinyDB's view of one collection of a :class:`Journal` (for its queries).

    Writes do not go through TinyDB, which would copy the whole collection for each
    one: :meth:`Store._put` stages whole documents in the journal directly.
    """

    def __init__(self, journal: Journal, name: str) -> None:
        self.journal, self.name = journal, name

    def read(self) -> dict[str, dict[str, Doc]]:
        self.journal.refresh()
        return {self.name: self.journal.view(self.name)}

    def write(self, data: dict[str, dict[str, Doc]]) -> None:
        raise NotImplementedError("the store writes through Journal.stage")


class RecordTable(Table):
    """A TinyDB table keyed by our own string ids, read-only through TinyDB."""

    document_id_class = str

    def update(self, *args, **kwargs):
        raise NotImplementedError("the store writes whole documents through Store._put")

    insert = insert_multiple = upsert = update_multiple = remove = truncate = update


class Accounts:
    """Users, the node's sign-in limits and the audit log (mixed into :class:`Store`)."""

    # Not a valid user name: the node-wide sign-in counters (PIN budget, unknown names)
    # live beside the accounts they protect, out of every user listing.
    SIGN_IN_LIMITS = "#sign-in-limits"

    def find_user(self, username: str) -> Doc | None:
        if username == self.SIGN_IN_LIMITS:
            return None
        return self._get("users", username)

    def list_users(self) -> list[Doc]:
        return sorted(
            (_copy(u) for k, u in self._all("users").items() if k != self.SIGN_IN_LIMITS),
            key=lambda u: u["username"],
        )

    def count_admins(self) -> int:
        return sum(
            1
            for k, u in self._all("users").items()
            if k != self.SIGN_IN_LIMITS and u["role"] == "admin" and not u.get("disabled")
        )

    def add_user(self, user: Doc) -> None:
        with self.atomic():
            if self._contains("users", user["username"]):
                raise Conflict(f"user {user['username']} already exists")
            self._put("users", {user["username"]: user})

    def save_user(self, user: Doc) -> None:
        self._put("users", {user["username"]: user})

    def find_sign_in_limits(self) -> Doc:
        """The node's sign-in counters (an empty dict before the first failure)."""
        return self._get("users", self.SIGN_IN_LIMITS) or {}

    def save_sign_in_limits(self, limits: Doc) -> None:
        self._put("users", {self.SIGN_IN_LIMITS: limits})

    def add_audit(self, entry: Doc) -> None:
        """Append to the audit log; entries are never changed or removed."""
        with self.atomic():
            if self._contains("audit", entry["id"]):
                raise Conflict(f"audit entry {entry['id']} exists")
            self._put("audit", {entry["id"]: entry})

    def find_audit(self, entry_id: str) -> Doc | None:
        return self._get("audit", entry_id)

    def count_audit(self, entry: Doc) -> Doc:
        """Add ``entry`` to the counting entry of the same id, or start it.

        For events counted rather than listed (failed sign-ins): ``count`` is added,
        the ``reasons`` counts are merged, ``last_at`` and ``who`` are the newest.

        :returns: the entry as stored.
        """
        with self.atomic():
            held = self._get("audit", entry["id"])
            if held is None:
                held = {**entry, "last_at": entry.get("last_at", entry["at"])}
            else:
                reasons = dict(held.get("reasons", {}))
                for reason, n in entry.get("reasons", {}).items():
                    reasons[reason] = reasons.get(reason, 0) + n
                held.update(
                    count=held.get("count", 0) + entry.get("count", 1),
                    reasons=reasons,
                    last_at=entry.get("last_at", entry["at"]),
                    who=entry["who"],
                )
            self._put("audit", {held["id"]: held})
            return _copy(held)

    def list_audit(self, limit: int | None = None) -> list[Doc]:
        """The audit log, newest first (a counting entry by its latest event)."""
        entries = self._all("audit")

        # Ids start with the entry's time; a counting entry is placed by its latest event.
        def when(key: str) -> tuple[str, str]:
            return (entries[key].get("last_at") or entries[key].get("at") or key, key)

        keys = sorted(entries, key=when, reverse=True)[:limit]
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

    def __init__(
        self,
        folder: str | Path,
        compact_min_bytes: int = 16 * 2**20,
        lock_timeout: float = 5.0,
        background_compaction: bool = False,
    ) -> None:
        """
        :param lock_timeout: seconds a write waits for another process before
            :class:`StoreBusy`.
        :param background_compaction: compact in a thread (the web server), off the
            request that crossed the threshold.
        :raises StoreDamaged: a file of the folder is damaged; nothing was changed.
        """
        self.folder = Path(folder)
        with _writing(self.folder):
            self.folder.mkdir(parents=True, exist_ok=True)
        self.journal = Journal(
            self.folder, self.COLLECTIONS, compact_min_bytes, lock_timeout, background_compaction
        )
        self._tables: dict[str, RecordTable] = {}
        for name in self.COLLECTIONS:
            db = TinyDB(self.journal, name, storage=CollectionStorage)
            db.table_class = RecordTable
            # No query cache: another process may change the data under it.
            self._tables[name] = db.table(name, cache_size=0)

    def close(self) -> None:
        """Nothing to release: files are opened only for the length of a write."""

    # -- plumbing ------------------------------------------------------------------

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """Everything written inside the block lands together or not at all.

        :raises StoreBusy: another process held the data folder too long.
        :raises StoreUnwritable: the disk refused the write; nothing was stored.
        """
        with self.journal.atomic():
            yield

    def _get(self, name: str, key: str) -> Doc | None:
        self.journal.refresh()
        doc = self.journal.view(name).get(key)
        return _copy(doc) if doc is not None else None

    def _put(self, name: str, docs: dict[str, Doc], remove: Iterable[str] = ()) -> None:
        with self.atomic():
            self.journal.stage(name, {k: _copy(v) for k, v in docs.items()}, remove)

    def _search(self, name: str, cond=None) -> list[Doc]:
        table = self._tables[name]
        return table.search(cond) if cond is not None else table.all()

    def _all(self, name: str) -> dict[str, Doc]:
        """The live documents of a collection: read-only, never handed out."""
        self.journal.refresh()
        return self.journal.view(name)

    def _contains(self, name: str, key: str) -> bool:
        return key in self._all(name)

    def backup(self, folder: str | Path) -> list[Path]:
        """Write each collection, journal folded in, as a plain TinyDB JSON file.

        One consistent state of every collection (taken after catching up under the
        lock), even while the app runs. Restore by copying them into an empty data
        folder.
        """
        folder = Path(folder)
        with _writing(folder):
            folder.mkdir(parents=True, exist_ok=True)
        with self.journal.lock:
            self.journal.refresh()
            tables = self.journal.tables
        if self.journal.damage is not None:
            raise self.journal.damage
        written = []
        for name in self.COLLECTIONS:
            target = folder / f"{name}.json"
            self.journal._write_snapshot(name, tables.get(name, {}), target)
            written.append(target)
        return written

    def compact(self) -> None:
        """Fold the journal into the collection files (for backups and benchmarks)."""
        self.journal.compact()

    def list_set_aside(self) -> list[Doc]:
        """Files kept in ``damaged/``: ``[{name, bytes, at}]`` (``at``: a Unix time)."""
        return self.journal.list_set_aside()

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
            if self._contains("reviews", review["id"]):
                raise Conflict(f"review {review['id']} already exists")
            self._put("reviews", {review["id"]: review})
        return _copy(review)

    def add_reviews(self, reviews: list[Doc]) -> None:
        """Store many new reviews in one write (demo data)."""
        with self.atomic():
            held = self._all("reviews")
            taken = [r["id"] for r in reviews if r["id"] in held]
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
            stored = self._all("revisions").get(key)
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
        found.sort(key=lambda r: (str(r.get("updated_at", "")), r["id"]), reverse=True)
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
            stage = self.journal.stage
            stage("reviews", reviews)
            stage("revisions", {r["revision_id"]: r for r in archived})
            stage("conflicts", {c["id"]: c for c in conflicts})
            stage("quarantine", {q["id"]: q for q in quarantined})
            stage("forms", forms)
            stage("imports", {entry["id"]: entry})

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

    def quarantine_totals(self) -> tuple[int, int]:
        """How many records the quarantine holds, and the bytes of those kept whole."""
        held = self._all("quarantine").values()
        return len(held), sum(q.get("bytes", 0) for q in held if q.get("record") is not None)

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
