"""A model-based, randomized crash harness for the store (used by tests and bench/soak.py).

Several OS processes — a stand-in web server (background compaction), a bundle import
and a user-adding CLI — perform random operations through :class:`Store` on random
collections with a tiny compaction threshold; the driver SIGKILLs or lets them finish
at random moments and restarts them. Each worker writes only keys of its own namespace
and prints ``B <effect>`` before and ``A`` after each call returns, so the driver's
model holds every acknowledged operation; the one in flight when a worker was killed
may or may not have landed, but only whole. After every round the reopened store must
equal the model exactly.

Run a worker with ``python -m tests.store_harness FOLDER ROLE NAME SEED``.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson

REPO_ROOT = Path(__file__).resolve().parent.parent
COMPACT_MIN_BYTES = 3_000
ROLES = ("web", "import", "cli")
STOPPING = threading.Event()  # SIGTERM: stop between two operations (a clean restart)


# -- the worker (a separate process) ----------------------------------------------------


def _worker(folder: str, role: str, name: str, seed: int) -> None:
    from reviewapp.storage import Store, StoreBusy

    rng = random.Random(seed)
    try:
        store = Store(
            folder,
            compact_min_bytes=COMPACT_MIN_BYTES,
            lock_timeout=2.0,
            background_compaction=(role == "web"),
        )
    except StoreBusy:  # a legitimate answer at start-up too: refused, nothing written
        sys.stdout.write("X\n")
        return
    mine: dict[str, dict] = {}  # this worker's reviews, to replace them with their hash
    ops = OPS[role]
    counter = compacted = 0
    while not STOPPING.is_set():
        counter += 1
        op = rng.choice(ops)
        effect, call = op(rng, name, counter, mine)
        sys.stdout.write("B " + orjson.dumps(effect).decode() + "\n")
        sys.stdout.flush()
        try:
            call(store)
        except StoreBusy:
            sys.stdout.write("X\n")  # refused before anything was written
            sys.stdout.flush()
            continue
        sys.stdout.write("A\n")
        for key, doc in effect.get("reviews", {}).items():
            mine[key] = doc
        if rng.random() < 0.03:
            store.compact()
        if store.journal.compactions > compacted:
            sys.stdout.write("C\n" * (store.journal.compactions - compacted))
            compacted = store.journal.compactions
        sys.stdout.flush()


def _doc(rng: random.Random, key: str, counter: int) -> dict:
    return {"id": key, "n": counter, "text": "ñ" * rng.randint(0, 400)}


def _review(rng: random.Random, key: str, counter: int, revision: int = 1) -> dict:
    return {
        "id": key,
        "revision": revision,
        "revision_id": f"{key}-r{revision}",
        "status": "draft",
        "content_hash": f"{key}-{counter}",
        "updated_at": f"2024-01-01T00:00:{counter % 60:02d}Z",
        "answers": {"text": "x" * rng.randint(0, 600), "n": counter},
    }


def _op_node(rng, name, n, mine):
    node = {"id": "node-1", "name": f"CECOPAZ {n}", "writer": name}
    return {"node": {"self": node}}, lambda s: s.save_node(node)


def _op_user(rng, name, n, mine):
    user = {"username": f"{name}-u{n}", "role": "analyst", "n": n}
    return {"users": {user["username"]: user}}, lambda s: s.add_user(user)


def _op_audit(rng, name, n, mine):
    entry = {"id": f"{name}-a{n:08d}", "event": "test", "n": n}
    return {"audit": {entry["id"]: entry}}, lambda s: s.add_audit(entry)


def _op_add_review(rng, name, n, mine):
    review = _review(rng, f"{name}-r{n}", n)
    return {"reviews": {review["id"]: review}}, lambda s: s.add_review(review)


def _op_revise(rng, name, n, mine):
    if not mine:
        return _op_add_review(rng, name, n, mine)
    key = rng.choice(sorted(mine))
    old = mine[key]
    new = _review(rng, key, n, old["revision"] + 1)
    effect = {"reviews": {key: new}, "revisions": {old["revision_id"]: old}}
    return effect, lambda s: s.replace_review(new, old["content_hash"], archive=old)


def _op_import(rng, name, n, mine):
    reviews = {f"{name}-i{n}-{i}": _review(rng, f"{name}-i{n}-{i}", n) for i in range(3)}
    archived = [_review(rng, f"{name}-old{n}", n)]
    entry = {"id": f"{name}-imp{n}", "imported_at": "2024", "bundle_sha256": f"{name}{n}"}
    conflict = {"id": f"{name}-c{n}", "status": "open", "detected_at": "2024"}
    quarantined = {"id": f"{name}-q{n}", "imported_at": "2024", "line": n}
    forms = {f"{name}-f{n}.v1": {"id": f"{name}-f{n}", "n": n}}
    effect = {
        "reviews": reviews,
        "revisions": {r["revision_id"]: r for r in archived},
        "conflicts": {conflict["id"]: conflict},
        "quarantine": {quarantined["id"]: quarantined},
        "forms": forms,
        "imports": {entry["id"]: entry},
    }
    return effect, lambda s: s.apply_import(
        entry, dict(reviews), list(archived), [conflict], [quarantined], dict(forms)
    )


def _op_export(rng, name, n, mine):
    entry = {"id": f"{name}-e{n}", "created_at": "2024", "destination": "x", "revision_ids": []}
    return {"exports": {entry["id"]: entry}}, lambda s: s.add_export(entry)


def _op_key(rng, name, n, mine):
    key = {"fingerprint": f"{name}-k{n}", "name": f"k{n}", "public_key": "AAAA"}
    return {"keys": {key["fingerprint"]: key}}, lambda s: s.trust_key(key)


def _op_delivery(rng, name, n, mine):
    deliveries = {f"{name}-d{n}": {"by": name, "n": n}}
    return {"deliveries": deliveries}, lambda s: s.record_deliveries(deliveries)


OPS = {
    "web": [_op_node, _op_user, _op_audit, _op_add_review, _op_revise, _op_revise, _op_audit],
    "import": [_op_import, _op_export, _op_key, _op_delivery],
    "cli": [_op_user, _op_audit, _op_audit],
}


# -- the driver ---------------------------------------------------------------------------


@dataclass
class Figures:
    rounds: int = 0
    operations: int = 0
    kills: int = 0
    restarts: int = 0
    in_doubt: int = 0
    lost: int = 0
    compactions: int = 0
    refused_busy: int = 0
    notes: list[str] = field(default_factory=list)


class Model:
    """Every acknowledged write, by collection and key; plus what was in doubt."""

    def __init__(self) -> None:
        self.state: dict[str, dict[str, dict]] = {}
        self.owner: dict[tuple[str, str], str] = {}  # (collection, key) -> worker

    def apply(self, effect: dict, worker: str) -> None:
        for collection, docs in effect.items():
            for key, doc in docs.items():
                self.state.setdefault(collection, {})[key] = doc
                self.owner[(collection, key)] = worker


def _start(folder: Path, role: str, name: str, seed: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.store_harness", str(folder), role, name, str(seed)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _read_effects(output: bytes) -> tuple[list[dict], dict | None, int, int]:
    """:returns: the acknowledged effects, the one in flight (if any), refusals and
    compactions."""
    acknowledged, pending, busy = [], None, 0
    compactions = output.splitlines().count(b"C")
    for line in output.splitlines():
        if line.startswith(b"B "):
            pending = orjson.loads(line[2:])
        elif line == b"A" and pending is not None:
            acknowledged.append(pending)
            pending = None
        elif line == b"X":
            pending, busy = None, busy + 1
    return acknowledged, pending, busy, compactions


def _stored(folder: Path) -> dict[str, dict[str, dict]]:
    from reviewapp.storage import Store

    store = Store(folder, compact_min_bytes=COMPACT_MIN_BYTES)
    return {name: dict(store._all(name)) for name in Store.COLLECTIONS}


def _compare(stored: dict, model: Model, doubts: dict[str, dict]) -> list[str]:
    """Differences between the store and the model, allowing each killed worker's one
    operation in flight to have landed entirely or not at all."""
    expected = {c: dict(d) for c, d in model.state.items()}
    problems: list[str] = []
    for worker, effect in doubts.items():
        landed = [
            stored.get(c, {}).get(k) == doc for c, docs in effect.items() for k, doc in docs.items()
        ]
        if all(landed):
            for c, docs in effect.items():
                expected.setdefault(c, {}).update(docs)
        elif any(landed):
            problems.append(f"{worker}'s operation in flight landed in part: {effect}")
    for collection in sorted(set(expected) | set(stored)):
        want, have = expected.get(collection, {}), stored.get(collection, {})
        for key in sorted(set(want) | set(have)):
            if want.get(key) != have.get(key):
                if key not in have:
                    problems.append(f"lost {collection}/{key}")
                elif key not in want:
                    problems.append(f"unexpected {collection}/{key}")
                else:
                    problems.append(f"changed {collection}/{key}")
    return problems


def run(folder: Path, seed: int, seconds: float, figures: Figures | None = None) -> Figures:
    """Rounds of random work, kills and restarts until ``seconds`` have passed.

    :raises AssertionError: naming the seed, the round and what differs.
    """
    rng = random.Random(seed)
    figures = figures or Figures()
    model = Model()
    deadline = time.monotonic() + seconds
    round_ = 0
    while time.monotonic() < deadline:
        round_ += 1
        procs = {}
        for role in ROLES:
            if rng.random() < 0.85:
                name = f"{role}{round_}"
                procs[name] = _start(folder, role, name, rng.randrange(2**32))
        time.sleep(rng.uniform(0.2, 1.2))
        doubts: dict[str, dict] = {}
        for name, proc in procs.items():
            if rng.random() < 0.7:
                os.kill(proc.pid, signal.SIGKILL)
                figures.kills += 1
            else:
                proc.send_signal(signal.SIGTERM)  # a clean restart, between two operations
                figures.restarts += 1
            output, errors = proc.communicate(timeout=60)
            # (-SIGTERM: stopped while still starting, before its handler was set)
            if proc.returncode not in (-signal.SIGKILL, -signal.SIGTERM, 0):
                raise AssertionError(
                    f"seed {seed}, round {round_}: worker {name} exited "
                    f"{proc.returncode}:\n{errors.decode()}"
                )
            acknowledged, pending, busy, compactions = _read_effects(output)
            figures.compactions += compactions
            for effect in acknowledged:
                model.apply(effect, name)
            figures.operations += len(acknowledged)
            figures.refused_busy += busy
            if pending is not None:
                doubts[name] = pending
                figures.in_doubt += 1
        stored = _stored(folder)
        problems = _compare(stored, model, doubts)
        if problems:
            figures.lost += sum(p.startswith("lost") for p in problems)
            raise AssertionError(
                f"seed {seed}, round {round_}: the store differs from the model in "
                f"{len(problems)} place(s), e.g. {problems[:5]}"
            )
        for effect in doubts.values():  # settled now: it landed or it did not
            if all(stored.get(c, {}).get(k) == d for c, docs in effect.items() for k, d in docs.items()):  # fmt: skip
                model.apply(effect, "settled")
        figures.rounds += 1
    return figures


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: STOPPING.set())
    _worker(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
