"""Nodes for exchange tests: a field laptop, a training centre, the region."""

from __future__ import annotations

import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from reviewapp import create_app
from reviewapp.exchange import keys, operations
from reviewapp.reviews import operations as reviews
from tests.conftest import FAST, Web, add_user, make_answers, make_observation


@dataclass
class Node:
    app: object
    folder: Path

    @property
    def store(self):
        return self.app.extensions["store"]

    @property
    def catalogue(self):
        return self.app.extensions["catalogue"]

    @property
    def node(self):
        return self.store.find_node()

    @property
    def key(self):
        return keys.NodeKey(self.folder)

    def submit(self, **answers) -> dict:
        """A review filled and submitted on this node."""
        draft = reviews.start_review(self.store, self.catalogue, self.node, "es", "officer")
        return reviews.submit_review(
            self.store, self.catalogue, draft["id"], make_answers(**answers), draft["content_hash"]
        )

    def revise(self, review_id: str, **answers) -> dict:
        draft = reviews.revise_review(self.store, review_id)
        return reviews.submit_review(
            self.store, self.catalogue, review_id, make_answers(**answers), draft["content_hash"]
        )

    def web(self, role: str = "analyst") -> Web:
        """A client signed in on this node with the given role."""
        if self.store.find_user(role) is None:
            add_user(self.app, role, role)
        client = Web(self.app.test_client())
        assert client.login(role).status_code == 302
        return client

    def export(self, path: Path, **options) -> dict:
        return operations.export_bundle(
            self.store,
            self.catalogue,
            self.node,
            self.key,
            path,
            operations.ExportOptions(**options),
            "test",
        )

    def import_(self, path: Path, dry_run=False, trust=False) -> dict:
        return operations.import_file(
            self.store, self.catalogue, path, "test", dry_run=dry_run, trust=trust
        )

    def trusts(self, *others: Node) -> Node:
        """This node trusts the others' keys (as if an administrator had compared them)."""
        for other in others:
            operations.trust_key(
                self.store, other.key.public_key, other.node["id"], other.node["name"]
            )
        return self

    def snapshot(self) -> dict[str, bytes]:
        """Every data file's bytes, to prove that nothing changed."""
        return {
            p.name: p.read_bytes()
            for p in sorted(self.folder.iterdir())
            if p.is_file() and p.suffix in (".json", ".log")
        }

    def exchange_state(self) -> dict:
        """Every collection an import or a receipt could change, for web tests (where
        signing in writes the session to the node's files)."""
        names = ("reviews", "revisions", "imports", "conflicts", "quarantine", "forms",
                 "keys", "deliveries")  # fmt: skip
        return {name: dict(self.store._all(name)) for name in names}


def _node(tmp_path: Path, name: str, country: str, level: str) -> Node:
    folder = tmp_path / name
    app = create_app({"DATA_DIR": str(folder), "TESTING": True, **FAST})
    app.extensions["store"].save_node(
        {
            "id": str(uuid.uuid4()),
            "name": name,
            "country": country,
            "level": level,
            "language": "es",
            "created_at": "2026-01-01T00:00:00Z",
        }
    )
    return Node(app=app, folder=folder)


@pytest.fixture
def field(tmp_path):
    return _node(tmp_path, "URUBATT laptop", "UY", "field")


@pytest.fixture
def centre(tmp_path):
    return _node(tmp_path, "ENOPU", "UY", "centre")


@pytest.fixture
def region(tmp_path):
    return _node(tmp_path, "ALCOPAZ", "UY", "regional")


def make_conflict(field: Node, centre: Node, folder: Path, held: str, incoming: str) -> dict:
    """A review the centre and the field both revised from the same submitted revision;
    the field's revision has just been imported at the centre (an open conflict)."""
    review = field.submit(contingent="original")
    field.export(folder / "first.drb")
    centre.import_(folder / "first.drb")
    centre.revise(review["id"], contingent=held)
    field.revise(review["id"], contingent=incoming)
    field.export(folder / "second.drb")
    assert centre.import_(folder / "second.drb")["counts"]["conflicts"] == 1
    return review


def write_zip(path: Path, members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def members_of(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


__all__ = ["make_answers", "make_observation", "make_conflict", "write_zip", "members_of"]
