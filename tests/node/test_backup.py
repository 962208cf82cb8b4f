"""Backups that restore the node: its data, its signing key and its session key.

Everything goes through run.py's main() or the web client, as an administrator would.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import stat
import zipfile
from pathlib import Path

import pytest

import run
from reviewapp import create_app
from reviewapp.exchange import keys
from reviewapp.exchange.bundle import read_bundle
from reviewapp.reviews import operations as reviews
from reviewapp.storage import Store
from tests.conftest import FAST, add_user, make_answers

SECRETS = ("node_key.pem", "secret_key")


@pytest.fixture
def cli(monkeypatch):
    """run.py's main(); it exports --data to the environment, which monkeypatch restores."""
    monkeypatch.setenv("REVIEWAPP_DATA", "/nonexistent/unused")

    def call(*args: str) -> int:
        return run.main([str(a) for a in args])

    return call


@pytest.fixture
def data(app, node_web, store, cli, tmp_path) -> Path:
    """A node with something in every kind of collection: reviews and revisions,
    users, the audit log, an export, a trusted key."""
    catalogue = app.extensions["catalogue"]
    add_user(app, "ana", "contributor")
    draft = reviews.start_review(store, catalogue, store.find_node(), "es", "ana")
    reviews.submit_review(store, catalogue, draft["id"], make_answers(), draft["content_hash"])
    again = reviews.revise_review(store, draft["id"])
    reviews.submit_review(
        store, catalogue, draft["id"], make_answers(contingent="URUBATT 43"), again["content_hash"]
    )
    folder = Path(app.config["DATA_DIR"])
    assert cli("--data", folder, "export", "--out", tmp_path / "first.drb", "--to", "ENOPU") == 0
    store.trust_key({"fingerprint": "ab:cd", "public_key": "x", "node_id": "n", "name": "ENOPU"})
    return folder


def contents(store: Store) -> dict:
    """Every collection of a store, through its public methods."""
    review_list = sorted(store.iter_reviews(), key=lambda r: r["id"])
    return {
        "node": store.find_node(),
        "reviews": review_list,
        "revisions": [store.list_revisions(r["id"]) for r in review_list],
        "imports": store.list_imports(),
        "conflicts": store.list_conflicts(),
        "quarantine": store.list_quarantine(),
        "exports": store.list_exports(),
        "deliveries": store.list_deliveries(),
        "forms": store.list_received_forms(),
        "keys": store.list_trusted_keys(),
        "users": store.list_users(),
        "audit": store.list_audit(),
    }


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


# -- backup and restore from the command line ----------------------------------------


def test_backup_then_restore_gives_back_every_collection_and_both_keys(
    data, store, cli, tmp_path, capsys
):
    assert cli("--data", data, "backup", "--out", tmp_path / "backup") == 0
    out = capsys.readouterr()
    assert "secret keys" in out.err and "keep it like a password" in out.err
    for name in SECRETS:
        assert (tmp_path / "backup" / name).read_bytes() == (data / name).read_bytes()
        assert stat.S_IMODE((tmp_path / "backup" / name).stat().st_mode) == 0o600

    assert cli("restore", "--from", tmp_path / "backup", "--data", tmp_path / "restored") == 0
    restored = Store(tmp_path / "restored")
    assert contents(restored) == contents(store)
    assert contents(store)["reviews"] and contents(store)["revisions"][0]  # not vacuous
    for name in SECRETS:
        assert (tmp_path / "restored" / name).read_bytes() == (data / name).read_bytes()
        assert stat.S_IMODE((tmp_path / "restored" / name).stat().st_mode) == 0o600


def test_backup_manifest_lists_every_file_with_its_hash_and_size(data, store, cli, tmp_path):
    assert cli("--data", data, "backup", "--out", tmp_path / "b") == 0
    manifest = json.loads((tmp_path / "b" / "backup-manifest.json").read_text())
    node = store.find_node()
    assert manifest["node"]["id"] == node["id"] and manifest["node"]["name"] == node["name"]
    assert manifest["app_version"] and manifest["created_at"] == node["last_backup_at"]
    assert manifest["key_fingerprint"] == keys.NodeKey(data).fingerprint
    on_disk = {p.name for p in (tmp_path / "b").iterdir()} - {"backup-manifest.json"}
    assert set(manifest["files"]) == on_disk >= {*SECRETS, "reviews.json", "users.json"}
    for name, entry in manifest["files"].items():
        body = (tmp_path / "b" / name).read_bytes()
        assert entry == {"sha256": hashlib.sha256(body).hexdigest(), "bytes": len(body)}


def test_restored_node_signs_its_next_export_with_the_original_key(data, cli, tmp_path, capsys):
    original = keys.NodeKey(data).fingerprint
    # A training centre that already trusts the laptop's key, from its first bundle.
    centre = tmp_path / "centre"
    create_app({"DATA_DIR": str(centre), "TESTING": True, **FAST}).extensions["store"].save_node(
        {"id": "c", "name": "ENOPU", "country": "UY", "level": "centre", "language": "es",
         "created_at": "2026-01-01T00:00:00Z"}
    )  # fmt: skip
    assert cli("--data", centre, "import", tmp_path / "first.drb", "--trust-signer") == 0

    assert cli("--data", data, "backup", "--out", tmp_path / "backup") == 0
    assert cli("--data", tmp_path / "restored", "restore", "--from", tmp_path / "backup") == 0
    out = tmp_path / "after-restore.drb"
    assert cli("--data", tmp_path / "restored", "export", "--out", out) == 0
    assert read_bundle(out).signer["fingerprint"] == original
    capsys.readouterr()
    assert cli("--data", centre, "import", out, "--dry-run", "--json") == 0
    report = json.loads(capsys.readouterr().out)["bundles"][0]
    assert report["signer"] == {"status": "trusted", "fingerprint": original}


def test_restore_into_a_folder_that_is_not_empty_is_refused_and_changes_nothing(
    data, cli, tmp_path, capsys
):
    assert cli("--data", data, "backup", "--out", tmp_path / "backup") == 0
    other = tmp_path / "other-node"
    create_app({"DATA_DIR": str(other), "TESTING": True, **FAST})
    before = folder_bytes(other)
    capsys.readouterr()
    assert cli("restore", "--from", tmp_path / "backup", "--data", other) == 2
    err = capsys.readouterr().err
    assert f"{other} is not empty" in err and err.count("\n") == 1
    assert folder_bytes(other) == before


def test_backup_refuses_an_out_folder_that_is_not_empty(data, cli, tmp_path, capsys):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "notes.txt").write_text("mine")
    assert cli("--data", data, "backup", "--out", tmp_path / "b") == 2
    assert "is not empty" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["notes.txt"]


def _flip_a_byte(path: Path) -> None:
    body = bytearray(path.read_bytes())
    body[len(body) // 2] ^= 0x01
    path.write_bytes(bytes(body))


@pytest.mark.parametrize(
    ("damage", "named", "why"),
    [
        (lambda b: _flip_a_byte(b / "reviews.json"), "reviews.json", "sha256 does not match"),
        (lambda b: _flip_a_byte(b / "node_key.pem"), "node_key.pem", "sha256 does not match"),
        (lambda b: (b / "users.json").write_bytes((b / "users.json").read_bytes()[:-5]), "users.json", "the manifest says"),
        (lambda b: (b / "secret_key").unlink(), "secret_key", "is missing"),
        (lambda b: (b / "stray.json").write_text("{}"), "stray.json", "does not list"),
        (lambda b: (b / "backup-manifest.json").write_text("{not json"), "backup-manifest.json", "not JSON"),
    ],
    ids=["altered-collection", "altered-key", "truncated", "missing", "extra", "bad-manifest"],
)  # fmt: skip
def test_damaged_backup_is_refused_naming_the_file_and_nothing_is_restored(
    data, cli, tmp_path, capsys, damage, named, why
):
    assert cli("--data", data, "backup", "--out", tmp_path / "backup") == 0
    damage(tmp_path / "backup")
    (tmp_path / "empty").mkdir()
    capsys.readouterr()
    assert cli("restore", "--from", tmp_path / "backup", "--data", tmp_path / "empty") == 3
    err = capsys.readouterr().err
    assert named in err and why in err and "nothing was restored" in err, err
    assert err.count("\n") == 1
    assert list((tmp_path / "empty").iterdir()) == []
    assert cli("restore", "--from", tmp_path / "backup", "--data", tmp_path / "new") == 3
    assert not (tmp_path / "new").exists()


def test_restore_that_fails_after_writing_takes_back_what_it_wrote(data, cli, tmp_path, capsys):
    # Every file matches its hash, but the manifest names another node: found only
    # once the restored folder is opened, after the files were written.
    assert cli("--data", data, "backup", "--out", tmp_path / "backup") == 0
    path = tmp_path / "backup" / "backup-manifest.json"
    manifest = json.loads(path.read_text())
    manifest["node"]["id"] = "another-node"
    path.write_text(json.dumps(manifest))
    (tmp_path / "empty").mkdir()
    capsys.readouterr()
    assert cli("restore", "--from", tmp_path / "backup", "--data", tmp_path / "empty") == 3
    assert "another-node" in capsys.readouterr().err
    assert list((tmp_path / "empty").iterdir()) == []


def test_restore_from_a_folder_that_is_not_a_backup_is_a_bad_argument(data, cli, tmp_path, capsys):
    assert cli("restore", "--from", data, "--data", tmp_path / "new") == 2
    assert "is not a backup folder" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


# -- storage errors on the command line ------------------------------------------------


def _errors():
    from reviewapp.storage import StoreBusy, StoreDamaged, StoreFull, StoreReadOnly

    return [
        (StoreBusy("lock held", "/d/store.lock"), 4, "error: the node is busy (another process such as an import holds the data folder); try again in a few seconds"),
        (StoreFull("no space", "/d/journal.log"), 5, "error: cannot write to the data folder {folder} (/d/journal.log): disk full"),
        (StoreReadOnly("read-only", "/d"), 5, "error: cannot write to the data folder {folder} (/d): read-only"),
        (StoreDamaged("journal.log is damaged at byte 120: restore from a backup", "/d/journal.log", 120), 6,
         "error: journal.log is damaged at byte 120: restore from a backup"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("error", "code", "line"), _errors(), ids=["busy", "full", "ro", "damaged"]
)
@pytest.mark.parametrize("when", ["create_app", "command"])
def test_storage_errors_become_one_line_and_an_exit_code(
    monkeypatch, cli, tmp_path, capsys, error, code, line, when
):
    import reviewapp

    def fail(*args, **kwargs):
        raise error

    if when == "create_app":
        monkeypatch.setattr(reviewapp, "Store", fail)
    else:
        monkeypatch.setattr(reviewapp.storage.Store, "backup", fail)
    folder = tmp_path / "d"
    assert cli("--data", folder, "backup", "--out", tmp_path / "b") == code
    err = capsys.readouterr().err
    assert err.startswith(line.format(folder=folder)) and err.count("\n") == 1, err


# -- the Settings page ---------------------------------------------------------------


def test_admin_downloads_a_zip_backup_that_restores_the_node(data, node_web, store, cli, tmp_path):
    response = node_web.post("/settings/backup", page="/settings")
    assert response.status_code == 200 and response.mimetype == "application/zip"
    assert "attachment" in response.headers["Content-Disposition"]
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_data()
    response.close()
    with zipfile.ZipFile(io.BytesIO(body)) as zf:
        manifest = json.loads(zf.read("backup-manifest.json"))
        assert set(zf.namelist()) == {*manifest["files"], "backup-manifest.json"}
        for name in SECRETS:
            assert zf.read(name) == (data / name).read_bytes()
            assert stat.S_IMODE(zf.getinfo(name).external_attr >> 16) == 0o600
        zf.extractall(tmp_path / "unzipped")
    assert not [p for p in data.iterdir() if p.name.startswith(".backup-")]  # nothing left behind
    assert cli("restore", "--from", tmp_path / "unzipped", "--data", tmp_path / "restored") == 0
    assert contents(Store(tmp_path / "restored")) == contents(store)
    assert any(e["event"] == "backup" and e["who"] == "admin" for e in store.list_audit())


@pytest.mark.parametrize("role", ["analyst", "viewer", "contributor"])
def test_only_administrators_may_download_a_backup(as_role, role):
    client = as_role(role)
    response = client.post("/settings/backup", page="/account")
    response.close()
    assert response.status_code == 403
    assert response.mimetype != "application/zip"


def test_settings_page_shows_the_data_folder_its_size_and_the_last_backup(app, node_web, store):
    page = node_web.get("/settings").get_data(as_text=True)
    assert app.config["DATA_DIR"] in page
    assert re.search(r"Tamaño en disco</dt><dd>\d+,\d (KB|MB)</dd>", page), page
    assert re.search(r"Última copia de seguridad</dt><dd>Nunca</dd>", page)
    assert "claves secretas" in page and "Descargar copia de seguridad" in page

    node_web.post("/settings/backup", page="/settings").close()
    page = node_web.get("/settings").get_data(as_text=True)
    shown = re.search(r"Última copia de seguridad</dt><dd>([^<]+)</dd>", page).group(1)
    assert shown != "Nunca" and re.search(r"\d{1,2}/\d{1,2}/\d{2}", shown), shown
    assert store.find_node()["last_backup_at"]

    node_web.post("/language", {"lang": "fr", "next": "/settings"}, page="/settings")
    page = node_web.get("/settings").get_data(as_text=True)
    assert re.search(r"Taille sur le disque</dt><dd>\d+,\d (Ko|Mo)</dd>", page), page


def test_human_sizes_follow_the_language(app):
    from flask_babel import force_locale

    from reviewapp.node.views import human_size

    with app.test_request_context():
        with force_locale("en"):
            assert human_size(1536) == "1.5 KB" and human_size(5 * 2**30) == "5.0 GB"
            assert human_size(999) == "999 bytes"
        with force_locale("fr"):
            assert human_size(3 * 2**20 + 2**19) == "3,5 Mo"
        with force_locale("pt"):
            assert human_size(1536) == "1,5 KB"


def test_backup_of_a_data_folder_leaves_it_loadable(data, cli, tmp_path):
    # The backup runs inside a store transaction; the node must still accept writes.
    assert cli("--data", data, "backup", "--out", tmp_path / "b") == 0
    app = create_app({"DATA_DIR": str(data), "TESTING": True, **FAST})
    store = app.extensions["store"]
    store.save_node({**store.find_node(), "name": "after"})
    assert Store(data).find_node()["name"] == "after"
    assert os.listdir(tmp_path / "b")


def _relist(backup: Path, **changes) -> None:
    """Rewrite the manifest as someone editing the backup would, hashes included."""
    manifest = json.loads((backup / "backup-manifest.json").read_text())
    manifest.update(changes)
    manifest["files"] = {
        p.name: {"sha256": hashlib.sha256(p.read_bytes()).hexdigest(), "bytes": p.stat().st_size}
        for p in sorted(backup.iterdir())
        if p.name != "backup-manifest.json"
    }
    (backup / "backup-manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("attack", ["journal added", "node renamed", "file is a link"])
def test_a_backup_edited_to_match_its_manifest_is_still_refused(data, cli, tmp_path, capsys, attack):  # fmt: skip
    backup = tmp_path / "backup"
    assert cli("--data", data, "backup", "--out", backup) == 0
    if attack == "journal added":
        (backup / "journal.log").write_bytes((data / "journal.log").read_bytes())
        _relist(backup)
    elif attack == "node renamed":
        manifest = json.loads((backup / "backup-manifest.json").read_text())
        _relist(backup, node={**manifest["node"], "name": "Other"})
    else:
        outside = tmp_path / "outside.json"
        outside.write_bytes((backup / "audit.json").read_bytes())
        (backup / "audit.json").unlink()
        (backup / "audit.json").symlink_to(outside)
    capsys.readouterr()
    target = tmp_path / "restored"
    assert cli("restore", "--from", backup, "--data", target) == 3
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not target.exists() or not any(target.iterdir())


def test_a_restore_killed_half_way_can_simply_be_run_again(data, cli, tmp_path):
    backup, target = tmp_path / "backup", tmp_path / "restored"
    assert cli("--data", data, "backup", "--out", backup) == 0
    target.mkdir()
    (target / ".reviews.json.restore").write_bytes(b"half a file")  # what a kill leaves
    assert cli("restore", "--from", backup, "--data", target) == 0
    assert not list(target.glob(".*.restore"))
    assert Store(target).count_reviews() == Store(data).count_reviews()
