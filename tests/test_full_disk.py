"""A full disk and a read-only folder, on a small tmpfs (needs root to mount; CI runs as
root, elsewhere these tests skip when the mount is refused)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from reviewapp import REPO_ROOT, create_app
from reviewapp.storage import Store, StoreFull, StoreReadOnly
from tests.conftest import FAST, Web


@pytest.fixture
def disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        if os.environ.get("CI") == "true" and os.geteuid() == 0:
            pytest.fail(f"cannot mount a tmpfs as root: {done.stderr.decode()}")
        pytest.skip("mounting a small tmpfs needs root")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(folder: Path, leave: int = 0) -> Path:
    """Fill the disk that holds ``folder``, leaving about ``leave`` bytes free."""
    filler = folder.parent / "filler"
    stat = os.statvfs(folder)
    free = stat.f_bavail * stat.f_frsize - leave
    with open(filler, "ab") as fh:
        while free > 0:
            chunk = min(free, 2**20)
            try:
                fh.write(b"\0" * chunk)
                fh.flush()
            except OSError:
                break
            free -= chunk
    return filler


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith((".tmp", ".compact"))]


def test_saves_on_a_full_disk_say_so_and_keep_what_was_stored(disk):
    folder = disk / "data"
    app = create_app({"DATA_DIR": str(folder), "TESTING": True, **FAST})
    web = Web(app.test_client())
    web.set_up_node()
    review_id = web.start_review()
    assert web.save(review_id, {"contingent": "ANTES"}).status_code == 302
    page = web.get(f"/reviews/{review_id}/edit").get_data(as_text=True)
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    etag = web.etag(review_id)
    filler = fill(folder)

    saved = web.client.post(
        f"/reviews/{review_id}/edit",
        data={"csrf_token": token, "_etag": etag, "action": "save", "contingent": "NUEVO", "handover_note": "N" * 7000},
    )
    assert saved.status_code == 507
    assert "disco" in saved.get_data(as_text=True) and "lleno" in saved.get_data(as_text=True)
    assert "NUEVO" in saved.get_data(as_text=True)  # the form comes back with what was typed
    auto = web.client.post(
        f"/reviews/{review_id}/autosave",
        data={"csrf_token": token, "_etag": etag, "contingent": "NUEVO", "handover_note": "N" * 7000},
    )
    assert auto.status_code == 507 and auto.json["status"] == "unwritable"
    assert "lleno" in auto.json["message"]
    assert leftovers(folder) == []
    assert app.extensions["store"].get_review(review_id)["answers"]["contingent"] == "ANTES"

    filler.unlink()
    assert web.save(review_id, {"contingent": "DESPUÉS"}).status_code == 302
    reopened = Store(folder)
    assert reopened.get_review(review_id)["answers"]["contingent"] == "DESPUÉS"


def test_an_import_on_a_full_disk_exits_with_one_line_and_changes_nothing(disk, tmp_path):
    from tests.exchange.conftest import _node

    field = _node(tmp_path, "field", "UY", "field")
    for _ in range(3):
        field.submit()
    field.export(tmp_path / "1.drb")
    centre = _node(disk, "centre", "UY", "centre")
    before = centre.snapshot()
    filler = fill(centre.folder)
    done = subprocess.run(
        [sys.executable, "run.py", "--data", str(centre.folder), "import", str(tmp_path / "1.drb")],  # fmt: skip
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 5, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "disk full" in done.stderr
    assert "Traceback" not in done.stderr
    filler.unlink()
    assert centre.snapshot() == before
    assert leftovers(centre.folder) == []
    assert Store(centre.folder).count_reviews() == 0


def test_a_compaction_that_runs_out_of_space_does_not_fail_the_save_it_follows(disk):
    folder = disk / "data"
    store = Store(folder, compact_min_bytes=10**9)
    for i in range(40):
        store.add_review({"id": f"r{i}", "content_hash": str(i), "answers": {"t": "x" * 40_000}})
    filler = fill(folder, leave=200_000)  # room for a small record, not for the snapshot
    store.journal.compact_min_bytes = 1
    store.add_review({"id": "small", "content_hash": "s", "answers": {}})  # acknowledged
    assert leftovers(folder) == []
    assert (folder / "journal.log").stat().st_size > 1_000_000  # not folded in, not lost
    with pytest.raises(StoreFull):
        store.add_review({"id": "big", "content_hash": "b", "answers": {"t": "y" * 400_000}})
    assert leftovers(folder) == []
    filler.unlink()
    reopened = Store(folder)
    assert reopened.count_reviews() == 41 and reopened.find_review("big") is None
    reopened.compact()
    assert Store(folder).count_reviews() == 41


def test_a_read_only_folder_refuses_writes_clearly_and_still_reads(disk):
    folder = disk / "data"
    store = Store(folder)
    store.add_review({"id": "a", "content_hash": "a", "answers": {}})
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    try:
        with pytest.raises(StoreReadOnly, match="cannot be written"):
            store.add_review({"id": "b", "content_hash": "b", "answers": {}})
        assert Store(folder).get_review("a")
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(disk)], check=True)
    assert Store(folder).find_review("b") is None


def test_making_the_signing_key_on_a_full_disk_leaves_no_empty_key_behind(disk, tmp_path):
    from tests.exchange.conftest import _node

    node = _node(disk, "field", "UY", "field")
    node.submit()
    filler = fill(node.folder)
    done = subprocess.run(
        [sys.executable, "run.py", "--data", str(node.folder), "backup", "--out", str(tmp_path / "b")],  # fmt: skip
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 5, done.stderr
    assert "Traceback" not in done.stderr
    assert not (node.folder / "node_key.pem").exists()
    assert leftovers(node.folder) == []
    filler.unlink()
    node.export(tmp_path / "1.drb")  # the key is made now, whole
    assert (node.folder / "node_key.pem").stat().st_size > 100
