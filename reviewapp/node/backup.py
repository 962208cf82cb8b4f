"""Backups that bring a node back whole: its data, its signing key and its session key.

A backup is a folder (or the same files in a zip, from the Settings page):

- one plain TinyDB JSON file per collection, taken from :meth:`Store.backup` under
  the store's lock, so the collections are consistent with each other;
- ``node_key.pem`` and ``secret_key``, so a restored node signs bundles with the key
  other nodes already know and keeps its sessions valid;
- ``backup-manifest.json``: app version, node, time, the key's fingerprint, and the
  sha256 and size of every other file. It is written last: a folder without it is
  not a complete backup.

:func:`restore_backup` writes only into an empty or new data folder, and only after
every file matched the manifest.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import IO, Any

import orjson

from reviewapp import __version__
from reviewapp.exchange.keys import NodeKey, load_node_key
from reviewapp.node import operations
from reviewapp.reviews.operations import now
from reviewapp.storage import Store, StoreError, fsync_dir

MANIFEST = "backup-manifest.json"
FORMAT = "deployment-review-backup"
FORMAT_VERSION = 1
NODE_KEY = "node_key.pem"
SESSION_KEY = "secret_key"
SECRET_FILES = (NODE_KEY, SESSION_KEY)
_CHUNK = 2**20


class BackupError(ValueError):
    """A backup cannot be written or restored as asked (a wrong folder, say).

    :param path: the file or folder concerned.
    """

    def __init__(self, message: str, path: Path | str | None = None) -> None:
        super().__init__(message)
        self.path = str(path) if path is not None else None


class BackupDamaged(BackupError):
    """A backup's files do not match its manifest: nothing was restored from it."""


# -- writing -----------------------------------------------------------------------


def write_backup(
    store: Store, data_dir: str | Path, out_dir: str | Path, who: str = "cli"
) -> dict[str, Any]:
    """Write a complete backup of the node into ``out_dir`` (new or empty).

    :param data_dir: the node's data folder, where its keys are.
    :param who: who asked, for the audit log; the time is recorded as the node's
        last backup, in the backup itself too.
    :returns: the manifest.
    :raises BackupError: ``out_dir`` is not empty, or a key file is missing.
    """
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise BackupError(f"--out {out_dir} is not empty; choose a new or empty folder", out_dir)
    session_key = data_dir / SESSION_KEY
    if not session_key.is_file():
        raise BackupError(
            f"{session_key} is missing: is {data_dir} a node's data folder?", session_key
        )
    # Made now if the node never signed anything; a key lost after signing is damage.
    node_key = load_node_key(data_dir, store)
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        return _write_backup(store, data_dir, out_dir, node_key, who)
    except BaseException:
        _empty(out_dir, remove=created)  # no half backup that looks like one
        raise


def _write_backup(
    store: Store, data_dir: Path, out_dir: Path, node_key: NodeKey, who: str
) -> dict[str, Any]:
    stamp = now()
    # Recorded first, so that the backup holds its own time as the node's last
    # backup (a restored node then says when the copy it came from was taken);
    # taken back if the backup fails.
    previous = operations.record_backup(store, stamp, who)
    try:
        store.backup(out_dir)  # every collection, consistent, under the store's lock
        node = store.find_node()
        for name in SECRET_FILES:
            _copy_file(data_dir / name, out_dir / name, mode=0o600)
        files = {
            p.name: _describe(p)
            for p in sorted(out_dir.iterdir())
            if p.is_file() and p.name != MANIFEST
        }
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "app_version": __version__,
            "created_at": stamp,
            "node": {k: node.get(k) for k in ("id", "name", "country", "level")} if node else None,
            "key_fingerprint": node_key.fingerprint,
            "files": files,
        }
        _write_new(out_dir / MANIFEST, orjson.dumps(manifest, option=orjson.OPT_INDENT_2), 0o644)
        fsync_dir(out_dir)
    except BaseException:
        with contextlib.suppress(StoreError):  # the first error is the one to report
            operations.forget_backup(store, stamp, previous, who)
        raise
    return manifest


def backup_zip(store: Store, data_dir: str | Path, who: str) -> tuple[IO[bytes], dict]:
    """A fresh backup as a zip (the same files and manifest as a backup folder).

    The work happens in the data folder, next to the keys it copies, and nothing is
    left there: the zip is an unlinked temporary file that the caller reads and closes.

    :returns: the open zip file, at its start, and the manifest.
    """
    data_dir = Path(data_dir)
    work = Path(tempfile.mkdtemp(prefix=".backup-", dir=data_dir))
    try:
        folder = work / "backup"
        manifest = write_backup(store, data_dir, folder, who)
        archive = tempfile.TemporaryFile(dir=data_dir)  # noqa: SIM115 (the caller closes it)
        try:
            with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                for name in [*sorted(manifest["files"]), MANIFEST]:
                    info = zipfile.ZipInfo(name, date_time=_zip_time(manifest["created_at"]))
                    info.compress_type = zipfile.ZIP_DEFLATED
                    mode = 0o600 if name in SECRET_FILES else 0o644
                    info.external_attr = (0o100000 | mode) << 16
                    with open(folder / name, "rb") as src, zf.open(info, "w") as dst:
                        shutil.copyfileobj(src, dst, _CHUNK)
            archive.seek(0)
        except BaseException:
            archive.close()
            raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return archive, manifest


# -- restoring ---------------------------------------------------------------------


def restore_backup(src_dir: str | Path, data_dir: str | Path) -> dict[str, Any]:
    """Restore a backup folder into an empty or new data folder.

    Every file is checked against the manifest before anything is written; the
    files are then written through temp files, fsync'ed and renamed, and the result
    is opened as a :class:`Store` to prove that it loads.

    :returns: the backup's manifest.
    :raises BackupError: ``src_dir`` is not a backup, or ``data_dir`` is not empty.
    :raises BackupDamaged: a file is missing, extra, or not what the manifest says;
        nothing was written.
    """
    src, target = Path(src_dir), Path(data_dir)
    manifest = read_manifest(src)
    _check_target(target)
    expected = manifest["files"]
    present = {p.name for p in src.iterdir()} - {MANIFEST}
    missing, extra = sorted(set(expected) - present), sorted(present - set(expected))
    if missing:
        raise BackupDamaged(
            f"backup {src} is incomplete: {missing[0]} is missing", src / missing[0]
        )
    if extra:
        raise BackupDamaged(
            f"backup {src} holds {extra[0]}, which its manifest does not list; "
            "a backup folder must hold only what was backed up",
            src / extra[0],
        )
    for name in sorted(expected):
        _check_file(src / name, expected[name])

    created = not target.exists()
    target.mkdir(parents=True, exist_ok=True)
    temps: list[Path] = []
    try:
        for name in sorted(expected):
            tmp = target / f".{name}.restore"
            temps.append(tmp)
            digest = _copy_file(src / name, tmp, mode=0o600 if name in SECRET_FILES else 0o644)
            if digest != expected[name]["sha256"]:
                raise BackupDamaged(f"{src / name} changed while it was being restored", src / name)
        for name in sorted(expected):
            os.replace(target / f".{name}.restore", target / name)
        fsync_dir(target)
        _check_restored(target, manifest)
    except BaseException:
        _empty(target, remove=created)
        raise
    return manifest


def read_manifest(src: Path) -> dict[str, Any]:
    """A backup folder's manifest, checked for shape.

    :raises BackupError: not a backup folder. :raises BackupDamaged: a broken manifest.
    """
    if not src.is_dir():
        raise BackupError(
            f"{src} is not a folder; give --from the backup folder (unzip a backup downloaded "
            "from Settings into a new folder first)",
            src,
        )
    path = src / MANIFEST
    if not path.is_file():
        raise BackupError(
            f"{src} is not a backup folder: it has no {MANIFEST} "
            "(backups are made with `run.py backup --out DIR` or Settings -> Download backup; "
            "unzip a downloaded backup into a new folder first)",
            path,
        )
    try:
        manifest = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise BackupDamaged(f"{path} is damaged: not JSON ({exc})", path) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupDamaged(f"{path} is not a Deployment Review backup manifest", path)
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BackupError(
            f"{path}: backup format version {manifest.get('format_version')!r} is not one "
            f"this version ({__version__}) can restore",
            path,
        )
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(
        _safe_name(n) and isinstance(d, dict) and isinstance(d.get("sha256"), str)
        and isinstance(d.get("bytes"), int)
        for n, d in files.items()
    ):  # fmt: skip
        raise BackupDamaged(f"{path} is damaged: its list of files is malformed", path)
    allowed = {*SECRET_FILES, *(f"{c}.json" for c in Store.COLLECTIONS)}
    for name in files:
        if name not in allowed:  # a backup never holds a journal, a script, a link...
            raise BackupDamaged(
                f"{path} lists {name}, which no backup of this app holds; restore refuses it",
                src / name,
            )
    for name in (*SECRET_FILES, "node.json"):
        if name not in files:
            raise BackupDamaged(f"{path} does not list {name}: the backup is incomplete", path)
    return manifest


def _check_target(target: Path) -> None:
    if target.exists() and not target.is_dir():
        raise BackupError(f"{target} is a file, not a folder; restore into a new folder", target)
    if target.is_dir():
        for left in target.glob(".*.restore"):  # an earlier restore that was killed
            left.unlink()
        found = sorted(p.name for p in target.iterdir())
        if found:
            shown = ", ".join(found[:3]) + (", ..." if len(found) > 3 else "")
            raise BackupError(
                f"{target} is not empty ({shown}); restore only into an empty or new folder "
                "so that no node's data is overwritten",
                target,
            )


def _check_file(path: Path, declared: dict) -> None:
    if path.is_symlink() or not path.is_file():
        raise BackupDamaged(f"{path} is not a plain file (a link, a folder...)", path)
    size = path.stat().st_size
    if size != declared["bytes"]:
        raise BackupDamaged(
            f"{path} is damaged or was altered: {size} bytes, the manifest says {declared['bytes']}",
            path,
        )
    if _sha256(path) != declared["sha256"]:
        raise BackupDamaged(
            f"{path} is damaged or was altered: its sha256 does not match the manifest", path
        )


def _check_restored(target: Path, manifest: dict) -> None:
    """The restored folder loads as a store, and is the node the manifest names."""
    try:
        store = Store(target)
        try:
            node = store.find_node()
            fingerprint = load_node_key(target, store).fingerprint  # the key its exports name
        finally:
            store.close()
    except (StoreError, ValueError) as exc:
        raise BackupDamaged(f"the restored data in {target} does not load: {exc}", target) from None
    described = manifest.get("node") or {}
    for field in ("id", "name", "country", "level"):
        if (node or {}).get(field) != described.get(field):
            raise BackupDamaged(
                f"the backup's node.json holds node {field} {(node or {}).get(field)!r}, "
                f"its manifest says {described.get(field)!r}",
                target / "node.json",
            )
    if fingerprint != manifest.get("key_fingerprint"):
        raise BackupDamaged(
            "the backup's node_key.pem is not the key its manifest names", target / NODE_KEY
        )


def _empty(target: Path, remove: bool) -> None:
    """Undo a failed restore: the target is left as it was found (empty or absent)."""
    for child in target.iterdir() if target.is_dir() else ():
        if child.is_dir():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
    if remove:
        shutil.rmtree(target, ignore_errors=True)


# -- files -------------------------------------------------------------------------


def _safe_name(name: object) -> bool:
    return (
        isinstance(name, str)
        and name not in ("", ".", "..", MANIFEST)
        and "/" not in name
        and "\\" not in name
        and not name.startswith(".")
    )


def _sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _describe(path: Path) -> dict[str, Any]:
    return {"sha256": _sha256(path), "bytes": path.stat().st_size}


def _copy_file(src: Path, dst: Path, mode: int) -> str:
    """Copy into a new file with ``mode``, fsync'ed. :returns: the sha256 copied."""
    digest = hashlib.sha256()
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as out, open(src, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest()


def _write_new(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def _zip_time(stamp: str) -> tuple[int, int, int, int, int, int]:
    date, time = stamp[:10], stamp[11:19]
    y, mo, d = (int(x) for x in date.split("-"))
    h, mi, s = (int(x) for x in time.split(":"))
    return (y, mo, d, h, mi, s)
