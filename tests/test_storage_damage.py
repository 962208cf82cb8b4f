"""Damaged files, deleted lock files, a busy lock: reported, never made worse."""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from reviewapp import REPO_ROOT
from reviewapp.storage import Conflict, Store, StoreBusy, StoreDamaged


def _filled(folder: Path) -> Store:
    """A store with records both in the snapshots and in the journal."""
    store = Store(folder)
    for i in range(6):
        store.add_review({"id": f"old{i}", "content_hash": f"h{i}", "answers": {"t": "é" * i}})
    store.add_user({"username": "ana", "role": "admin"})
    store.save_node({"id": "n1", "name": "CECOPAZ"})
    store.compact()
    for i in range(6):
        store.add_review({"id": f"new{i}", "content_hash": f"n{i}", "answers": {"t": "ç" * i}})
    store.add_audit({"id": "a1", "event": "login"})
    return store


def _contents(store: Store) -> dict:
    return {name: dict(store._all(name)) for name in Store.COLLECTIONS}


FILES = ["journal.log", "reviews.json", "users.json", "node.json", "audit.json"]


@pytest.mark.parametrize("name", FILES)
def test_a_flipped_bit_anywhere_is_reported_and_the_file_left_as_it_is(tmp_path, name):
    original = tmp_path / "original"
    expected = _contents(_filled(original))
    rng = random.Random(name)
    size = (original / name).stat().st_size
    offsets = sorted({*rng.sample(range(size), min(size, 25)), size - 1})
    for offset in offsets:
        folder = tmp_path / f"flip{offset}"
        shutil.copytree(original, folder)
        path = folder / name
        data = bytearray(path.read_bytes())
        data[offset] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(data))
        try:
            store = Store(folder)
        except StoreDamaged as exc:
            assert exc.path == str(path), (offset, exc.path)
            assert path.read_bytes() == bytes(data), f"{name} at {offset} was changed"
            continue
        # Opened: then nothing may differ (the flip hit no record, e.g. a timestamp
        # in the snapshot's own metadata) — silence about a changed record is the bug.
        assert _contents(store) == expected, f"{name}: a flip at byte {offset} went unnoticed"
        assert name.endswith(".json"), f"journal flip at {offset} went unnoticed"


def test_damage_seen_by_a_running_node_stops_writes_but_not_reads(tmp_path):
    folder = tmp_path / "data"
    store = _filled(folder)
    journal = folder / "journal.log"
    data = bytearray(journal.read_bytes())
    first_end = data.index(b"\n")
    data[first_end - 3] ^= 0x04  # the first record of the journal, with more after it
    journal.write_bytes(bytes(data))
    assert store.get_review("new5")  # still serving what it had read
    with pytest.raises(StoreDamaged) as caught:
        store.add_review({"id": "later", "content_hash": "x", "answers": {}})
    assert caught.value.offset == 0
    assert journal.read_bytes() == bytes(data)
    assert "restore" in str(caught.value)


def test_a_missing_collection_file_of_a_used_folder_is_damage_not_a_new_node(tmp_path):
    folder = tmp_path / "data"
    _filled(folder)
    (folder / "node.json").unlink()
    with pytest.raises(StoreDamaged, match="node.json is missing"):
        Store(folder)
    assert not (folder / "node.json").exists()  # not silently recreated empty


@pytest.mark.parametrize(
    "content", [b"", b"{}", b'{"users": {}}', b"{not json", b'{"reviews": []}']
)
def test_an_empty_or_wrong_snapshot_is_damage(tmp_path, content):
    folder = tmp_path / "data"
    _filled(folder)
    (folder / "reviews.json").write_bytes(content)
    with pytest.raises(StoreDamaged) as caught:
        Store(folder)
    assert "reviews.json" in str(caught.value) and "backup" in str(caught.value)
    assert (folder / "reviews.json").read_bytes() == content


def test_a_new_collection_in_a_newer_version_is_simply_created(tmp_path):
    folder = tmp_path / "data"
    _filled(folder)

    class Newer(Store):
        COLLECTIONS = (*Store.COLLECTIONS, "lessons")

    assert Newer(folder)._all("lessons") == {}
    assert (folder / "lessons.json").exists()


ADD_USERS = textwrap.dedent(
    """
    import sys
    from reviewapp.storage import Conflict, Store
    store = Store(sys.argv[1], compact_min_bytes=2000)
    for i in range(int(sys.argv[3])):
        try:
            store.add_user({"username": f"u{i}", "role": "admin", "by": sys.argv[2]})
        except Conflict:
            continue
        print(f"u{i}", flush=True)
    """
)


def test_deleting_lock_files_while_two_processes_add_the_same_accounts_loses_nothing(tmp_path):
    folder = tmp_path / "data"
    Store(folder)
    stop = threading.Event()

    def vandal():
        while not stop.is_set():
            for lock in [*folder.glob("*.lock"), *folder.glob("*lock*")]:
                lock.unlink(missing_ok=True)
            (folder / "store.lock").write_text("")  # and a fresh one, as a new process would
            (folder / "store.lock").unlink(missing_ok=True)

    thread = threading.Thread(target=vandal)
    thread.start()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", ADD_USERS, str(folder), who, "1000"],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for who in ("a", "b", "c")
    ]
    outputs = {
        who: p.communicate(timeout=120)[0].split() for who, p in zip("abc", procs, strict=True)
    }
    stop.set()
    thread.join()
    created = [name for names in outputs.values() for name in names]
    assert len(created) == len(set(created)), "two processes created the same account"
    users = {u["username"]: u["by"] for u in Store(folder).list_users()}
    assert len(users) == 1000
    for who, created in outputs.items():
        assert all(users[name] == who for name in created)


HOLD_LOCK = textwrap.dedent(
    """
    import sys, time
    from reviewapp.storage import Store
    store = Store(sys.argv[1])
    with store.atomic():
        store.add_review({"id": "held", "content_hash": "h", "answers": {}})
        print("holding", flush=True)
        time.sleep(float(sys.argv[2]))
    """
)


def test_a_lock_held_elsewhere_lets_reads_answer_and_makes_writes_fail_in_bounded_time(
    tmp_path,
):
    folder = tmp_path / "data"
    store = _filled(folder)
    store.journal.lock.timeout = 1.0
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(folder), "8"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        started = time.monotonic()
        assert store.get_review("new1")["id"] == "new1"
        assert store.list_reviews()[1] == 12
        assert Store(folder, lock_timeout=1.0).count_reviews() == 12  # opening too
        assert time.monotonic() - started < 0.2 * 3
        started = time.monotonic()
        with pytest.raises(StoreBusy):
            store.add_review({"id": "blocked", "content_hash": "b", "answers": {}})
        assert 0.9 < time.monotonic() - started < 2.5
    finally:
        holder.wait(timeout=20)
        holder.stdout.close()
    assert store.find_review("blocked") is None
    assert store.get_review("held")  # the other process's write, seen once committed
    with pytest.raises(Conflict):
        store.add_review({"id": "held", "content_hash": "again", "answers": {}})


def test_a_used_folder_that_lost_every_collection_file_is_damage_not_a_new_node(tmp_path):
    folder = tmp_path / "data"
    _filled(folder)
    for snapshot in folder.glob("*.json"):
        snapshot.unlink()
    with pytest.raises(StoreDamaged, match="lost all its collection files"):
        Store(folder)
    assert not list(folder.glob("*.json"))  # nothing recreated


@pytest.mark.parametrize("where", ["inside a record", "at a record boundary"])
def test_a_journal_cut_short_is_damage_not_a_torn_write(tmp_path, where):
    folder = tmp_path / "data"
    _filled(folder)
    journal = folder / "journal.log"
    data = journal.read_bytes()
    first = data.index(b"\n") + 1
    cut = first + 25 if where == "inside a record" else first
    journal.write_bytes(data[:cut])
    with pytest.raises(StoreDamaged, match="cut short") as caught:
        Store(folder)
    assert caught.value.offset == first
    assert journal.read_bytes() == data[:cut]  # and not cut further


def test_a_deleted_journal_is_damage(tmp_path):
    folder = tmp_path / "data"
    _filled(folder)
    (folder / "journal.log").unlink()
    with pytest.raises(StoreDamaged, match="journal.log is missing"):
        Store(folder)


def test_a_collection_file_from_another_node_is_damage(tmp_path):
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    _filled(ours)
    Store(theirs).add_user({"username": "eve", "role": "admin"})
    Store(theirs).compact()
    shutil.copy(theirs / "users.json", ours / "users.json")
    with pytest.raises(StoreDamaged, match="users.json comes from another data folder"):
        Store(ours)


def test_a_damaged_file_is_copied_aside_once_however_often_the_node_is_opened(tmp_path):
    folder = tmp_path / "data"
    _filled(folder)
    (folder / "reviews.json").write_bytes(b"{broken")
    for _ in range(3):
        with pytest.raises(StoreDamaged):
            Store(folder)
    assert [p.suffix for p in (folder / "damaged").iterdir()] == [".json"]


def test_a_torn_write_that_was_cut_is_shown_to_administrators(node_web, app):
    folder = Path(app.config["DATA_DIR"])
    with open(folder / "journal.log", "ab") as fh:
        fh.write(b'00000400 0badc0de {"reviews"')  # a killed writer's unfinished line
    app.extensions["store"].add_audit({"id": "x1", "event": "test"})  # cuts it, keeps a copy
    page = node_web.get("/settings").get_data(as_text=True)
    assert "damaged" in page and "torn-at-" in page
