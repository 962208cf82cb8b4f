"""The demo generator and the command line."""

from __future__ import annotations

import random

import pytest

import run
from reviewapp import demo
from reviewapp.storage import Store


def test_demo_reviews_are_complete_valid_and_varied(catalogue):
    node = {"id": "node-1", "country": "PE"}
    rng = random.Random(5)
    reviews = [demo.make_review(rng, catalogue, node) for _ in range(200)]
    form = catalogue.latest("deployment-review")
    for review in reviews:
        assert form.validate(review["answers"], "submit") == review["answers"]
        assert review["status"] == "submitted"
        assert review["answers"]["deployment_end"] > review["answers"]["deployment_start"]
    assert {r["answers"]["language"] for r in reviews} == {"es", "pt", "en", "fr"}
    assert len({r["answers"]["country"] for r in reviews}) >= 8
    assert len({r["answers"]["operation"] for r in reviews}) >= 10
    observations = [o for r in reviews for o in r["answers"]["observations"]]
    assert {o["kind"] for o in observations} == {"issue", "good_practice"}
    brazil = [
        r for r in reviews if r["answers"]["country"] == "BR" and r["answers"]["language"] == "pt"
    ]
    assert brazil and "desdobramento" in brazil[0]["answers"]["observations"][0]["observation"]


def test_same_seed_gives_the_same_reviews(tmp_path, catalogue):
    stores = [Store(tmp_path / name) for name in ("a", "b")]
    for store in stores:
        demo.add_demo_reviews(store, catalogue, demo.ensure_node(store), 30, seed=9)
    hashes = [sorted(r["content_hash"] for r in s.list_reviews()[0]) for s in stores]
    assert hashes[0] == hashes[1] and len(hashes[0]) == 30


def test_cli_demo_fills_the_data_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("REVIEWAPP_DATA", str(tmp_path / "data"))
    assert run.main(["--data", str(tmp_path / "data"), "demo", "--reviews", "25"]) == 0
    assert "added 25 demo reviews" in capsys.readouterr().out
    assert Store(tmp_path / "data").count_reviews() == 25


@pytest.mark.parametrize("value", ["0", "-3", "many", "300000"])
def test_cli_demo_refuses_a_bad_count(tmp_path, monkeypatch, capsys, value):
    monkeypatch.setenv("REVIEWAPP_DATA", str(tmp_path / "data"))
    with pytest.raises(SystemExit) as info:
        run.main(["demo", "--reviews", value])
    assert info.value.code == 2
    assert "--reviews" in capsys.readouterr().err
    assert not (tmp_path / "data" / "reviews.json").exists()


def test_cli_backup_copies_and_refuses_a_non_empty_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("REVIEWAPP_DATA", str(tmp_path / "data"))
    run.main(["demo", "--reviews", "5"])
    assert run.main(["backup", "--out", str(tmp_path / "copy")]) == 0
    assert Store(tmp_path / "copy").count_reviews() == 5
    assert run.main(["backup", "--out", str(tmp_path / "copy")]) == 2
    assert "is not empty" in capsys.readouterr().err


@pytest.mark.parametrize("make", [lambda tmp: tmp / "a-file", lambda tmp: tmp / "a-file" / "below"])
def test_cli_says_when_the_data_folder_cannot_be_used(tmp_path, monkeypatch, capsys, make):
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setenv("REVIEWAPP_DATA", str(make(tmp_path)))
    assert run.main(["--data", str(make(tmp_path)), "demo", "--reviews", "3"]) == 2
    assert "cannot use" in capsys.readouterr().err
