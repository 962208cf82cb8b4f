"""The journaled TinyDB storage: durability, concurrency, revisions."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from reviewapp import REPO_ROOT
from reviewapp.storage import Conflict, NotFound, Store, StoreDamaged


def review(key: str, **extra) -> dict:
    return {
        "id": key,
        "revision": 1,
        "revision_id": f"{key}-r1",
        "status": "draft",
        "updated_at": extra.pop("updated_at", "2024-01-01T00:00:00.000Z"),
        "content_hash": extra.pop("content_hash", f"h-{key}"),
        "answers": extra.pop("answers", {"country": "PE"}),
        **extra,
    }


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "data"


def test_saved_review_is_there_after_reopening(folder):
    store = Store(folder)
    store.add_review(review("a", answers={"country": "UY", "observations": [{"title": "ñ"}]}))
    store.close()
    assert Store(folder).get_review("a")["answers"] == {
        "country": "UY",
        "observations": [{"title": "ñ"}],
    }


def test_files_are_plain_tinydb_json_after_compaction(folder):
    from tinydb import TinyDB

    store = Store(folder)
    store.add_review(review("a"))
    store.compact()
    store.close()
    with TinyDB(folder / "reviews.json") as db:
        assert db.table("reviews").get(doc_id="a")["revision_id"] == "a-r1"
    assert (folder / "journal.log").stat().st_size == 0


def test_returned_documents_are_copies(folder):
    store = Store(folder)
    store.add_review(review("a"))
    got = store.get_review("a")
    got["answers"]["country"] = "BR"
    assert store.get_review("a")["answers"]["country"] == "PE"


def test_missing_review_raises_or_returns_none(folder):
    store = Store(folder)
    with pytest.raises(NotFound):
        store.get_review("nope")
    assert store.find_review("nope") is None


def test_adding_an_existing_id_is_refused(folder):
    store = Store(folder)
    store.add_review(review("a"))
    with pytest.raises(Conflict):
        store.add_review(review("a", answers={"country": "BR"}))
    assert store.get_review("a")["answers"]["country"] == "PE"


def test_replace_refuses_a_stale_hash(folder):
    store = Store(folder)
    store.add_review(review("a"))
    store.replace_review(review("a", content_hash="h2", answers={"country": "BR"}), "h-a")
    with pytest.raises(Conflict):
        store.replace_review(review("a", content_hash="h3", answers={"country": "CL"}), "h-a")
    assert store.get_review("a")["answers"]["country"] == "BR"


def test_archived_revision_is_kept_and_never_rewritten(folder):
    store = Store(folder)
    first = review("a", status="submitted")
    store.add_review(first)
    store.archive_revision(first)
    store.archive_revision(first)  # again: a no-op
    with pytest.raises(Conflict):
        store.archive_revision({**first, "content_hash": "other"})
    second = {
        **first,
        "revision": 2,
        "revision_id": "a-r2",
        "previous_revision_id": "a-r1",
        "content_hash": "h2",
    }
    store.replace_review(second, "h-a")
    assert [r["revision_id"] for r in store.list_revisions("a")] == ["a-r1"]
    assert store.get_revision("a-r1")["content_hash"] == "h-a"
    assert store.get_review("a")["previous_revision_id"] == "a-r1"


def test_list_filters_sorts_and_pages(folder):
    store = Store(folder)
    store.add_reviews(
        [
            review("a", updated_at="2024-01-01", answers={"country": "PE", "operation": "MINUSCA"}),
            review("b", updated_at="2024-03-01", answers={"country": "UY", "operation": "MONUSCO"}),
            review(
                "c",
                updated_at="2024-02-01",
                answers={"country": "PE", "operation": "MONUSCO"},
                status="submitted",
            ),
        ]
    )
    assert [r["id"] for r in store.list_reviews()[0]] == ["b", "c", "a"]
    assert [r["id"] for r in store.list_reviews({"country": "PE"})[0]] == ["c", "a"]
    assert [r["id"] for r in store.list_reviews({"country": "PE", "status": "draft"})[0]] == ["a"]
    assert [r["id"] for r in store.list_reviews({"operation": "MONUSCO", "country": ""})[0]] == [
        "b",
        "c",
    ]
    page, total = store.list_reviews(offset=1, limit=1)
    assert ([r["id"] for r in page], total) == (["c"], 3)


def test_another_store_sees_writes_without_reopening(folder):
    writer, reader = Store(folder), Store(folder)
    writer.add_review(review("a"))
    assert reader.get_review("a")["id"] == "a"
    writer.replace_review(review("a", content_hash="h2", answers={"country": "CL"}), "h-a")
    assert reader.get_review("a")["answers"]["country"] == "CL"
    writer.compact()
    writer.add_review(review("b"))
    assert {r["id"] for r in reader.list_reviews()[0]} == {"a", "b"}


def test_compaction_happens_when_the_journal_outgrows_the_snapshot(folder):
    store = Store(folder, compact_min_bytes=10_000)
    for i in range(60):
        store.add_review(review(f"r{i}", answers={"text": "x" * 1000}))
    journal = (folder / "journal.log").stat().st_size
    snapshot = (folder / "reviews.json").stat().st_size
    assert snapshot > 30_000  # most of it was folded in
    assert journal <= max(10_000, snapshot) + 3_000
    assert len(Store(folder).list_reviews()[0]) == 60


def test_torn_tail_is_ignored_then_cut_off(folder):
    store = Store(folder)
    store.add_review(review("a"))
    store.close()
    journal = folder / "journal.log"
    with open(journal, "ab") as fh:
        fh.write(b'0badc0de {"reviews": {"put": {"b": {"id": "b"')  # a killed writer's half line
    store = Store(folder)
    assert store.find_review("b") is None and store.get_review("a")
    store.add_review(review("c"))
    store.close()
    assert {r["id"] for r in Store(folder).list_reviews()[0]} == {"a", "c"}
    assert b"0badc0de" not in journal.read_bytes()


def test_a_flipped_byte_in_a_complete_record_is_damage_not_a_torn_tail(folder):
    store = Store(folder)
    store.add_review(review("a"))
    store.add_review(review("b"))
    store.close()
    journal = folder / "journal.log"
    data = bytearray(journal.read_bytes())
    second = data.index(b"\n") + 1
    data[second + 30] ^= 0x01  # flip a bit in the last record: its checksum fails
    journal.write_bytes(bytes(data))
    with pytest.raises(StoreDamaged) as caught:
        Store(folder)
    assert caught.value.offset == second
    assert f"journal.log at byte {second}" in str(caught.value)
    assert journal.read_bytes() == bytes(data)  # never truncated
    kept = list((folder / "damaged").iterdir())
    assert [p.read_bytes() for p in kept] == [bytes(data)]


def test_backup_writes_consistent_tinydb_files(folder, tmp_path):
    store = Store(folder)
    store.add_review(review("a"))
    store.save_node({"id": "n1", "name": "CECOPAZ"})
    written = store.backup(tmp_path / "backup")
    assert {"node.json", "reviews.json", "revisions.json", "imports.json"} <= {
        p.name for p in written
    }
    restored = Store(tmp_path / "backup")
    assert restored.get_review("a")["id"] == "a"
    assert restored.find_node()["name"] == "CECOPAZ"


WRITER = textwrap.dedent(
    """
    import sys
    from reviewapp.storage import Store
    folder, prefix, count, size, compact_every = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
    store = Store(folder)
    for i in range(count):
        key = f"{prefix}{i}"
        store.add_review({"id": key, "revision_id": key, "status": "draft", "content_hash": key,
                          "updated_at": "2024", "answers": {"text": "x" * size}})
        print(key, flush=True)  # acknowledged: add_review returned after fsync
        if compact_every and i % compact_every == compact_every - 1:
            store.compact()
    """
)


def _writer(folder: Path, prefix: str, count: int, size: int = 100, compact_every: int = 0):
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            WRITER,
            str(folder),
            prefix,
            str(count),
            str(size),
            str(compact_every),
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_two_processes_writing_at_once_lose_nothing(folder):
    Store(folder).close()
    procs = [_writer(folder, "p", 150), _writer(folder, "q", 150, compact_every=20)]
    outputs = [p.communicate(timeout=120)[0].split() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    ids = {r["id"] for r in Store(folder).list_reviews()[0]}
    assert ids == set(outputs[0]) | set(outputs[1])
    assert len(ids) == 300


@pytest.mark.parametrize("size", [200, 200_000], ids=["small-records", "large-records"])
def test_writer_killed_mid_write_keeps_every_acknowledged_write(folder, size):
    rng = random.Random(size)
    acknowledged: list[str] = []
    for round_ in range(6):
        # Compact every few writes, so that kills also land inside compactions.
        proc = _writer(folder, f"k{round_}-", 100_000, size=size, compact_every=4)
        assert proc.stdout.readline(), "the writer did not start"
        time.sleep(rng.uniform(0.02, 0.3))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        acknowledged += proc.stdout.read().split()  # every line printed before the kill
        proc.stdout.close()
        assert proc.returncode == -signal.SIGKILL

        store = Store(folder)  # the files must still open...
        json.loads((folder / "reviews.json").read_text())  # ...the snapshot parse...
        stored = {r["id"] for r in store.list_reviews()[0]}
        missing = set(acknowledged) - stored
        assert not missing, f"round {round_}: {len(missing)} acknowledged writes lost"
    assert len(acknowledged) > 20
    # ...and a new write lands after whatever torn tail the last kill left.
    store.add_review(
        {"id": "after", "revision_id": "x", "content_hash": "x", "updated_at": "z", "answers": {}}
    )
    assert Store(folder).get_review("after")


def test_only_the_storage_module_imports_tinydb():
    offenders = [
        str(path.relative_to(REPO_ROOT))
        for path in (REPO_ROOT / "reviewapp").rglob("*.py")
        if path.name != "storage.py" and "tinydb" in path.read_text(encoding="utf-8")
    ]
    assert offenders == []


def test_atomic_block_writes_several_collections_as_one_record(folder):
    store = Store(folder)
    store.add_review(review("a", status="submitted"))
    lines_before = (folder / "journal.log").read_bytes().count(b"\n")
    new = {**review("a"), "revision": 2, "revision_id": "a-r2", "content_hash": "h2"}
    store.replace_review(new, "h-a", archive=store.get_review("a"))
    assert (folder / "journal.log").read_bytes().count(b"\n") == lines_before + 1
    reopened = Store(folder)
    assert reopened.get_review("a")["revision_id"] == "a-r2"
    assert reopened.get_revision("a-r1")["status"] == "submitted"


def test_failed_atomic_block_changes_nothing(folder):
    store = Store(folder)
    store.add_review(review("a"))
    size = (folder / "journal.log").stat().st_size
    with pytest.raises(RuntimeError), store.atomic():
        store.archive_revision(store.get_review("a"))
        store.add_review(review("b"))
        raise RuntimeError("died half-way")
    assert store.find_review("b") is None
    assert store.list_revisions("a") == []
    assert (folder / "journal.log").stat().st_size == size
    assert Store(folder).find_review("b") is None


def test_data_of_the_first_layout_is_adopted(folder):
    """Version 0.1 kept one journal per collection (reviews.json.journal)."""
    from reviewapp.storage import _encode_record

    folder.mkdir(parents=True)
    (folder / "reviews.json").write_bytes(b'{"reviews": {"a": {"id": "a"}}}')
    (folder / "reviews.json.journal").write_bytes(
        _encode_record({"reviews": {"put": {"b": {"id": "b"}}, "del": []}})
    )
    store = Store(folder)
    assert {r for r in store._all("reviews")} == {"a", "b"}
    assert not (folder / "reviews.json.journal").exists()


def test_a_backup_taken_while_another_thread_writes_is_one_consistent_state(folder, tmp_path):
    import threading

    store = Store(folder)
    stop = threading.Event()

    def writer():
        i = 0
        while not stop.is_set():
            with store.atomic():  # a user and its audit entry always land together
                store.add_user({"username": f"u{i}", "role": "analyst"})
                store.add_audit({"id": f"a{i:06d}", "event": "account_created", "username": f"u{i}"})  # fmt: skip
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for round_ in range(8):
            target = tmp_path / f"backup{round_}"
            store.backup(target)
            restored = Store(target)
            users = {u["username"] for u in restored.list_users()}
            audited = {e["username"] for e in restored.list_audit()}
            assert users == audited, f"backup {round_}: {len(users)} users, {len(audited)} audited"
    finally:
        stop.set()
        thread.join()
    assert users  # the writer was running
