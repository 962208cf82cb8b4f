"""run.py export / import / receipt: exit codes scripts can trust, and kill-safety."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest

import run
from reviewapp import REPO_ROOT, demo
from reviewapp.storage import Store


@pytest.fixture
def cli(monkeypatch):
    def call(node, *args):
        monkeypatch.setenv("REVIEWAPP_DATA", str(node.folder))
        return run.main(["--data", str(node.folder), *args])

    return call


def test_export_then_import_from_the_command_line(field, centre, cli, tmp_path, capsys):
    field.submit()
    assert (
        cli(
            field,
            "export",
            "--out",
            str(tmp_path / "a.drb"),
            "--anonymise",
            "--max-sensitivity",
            "confidential",
        )
        == 0
    )
    assert "wrote" in capsys.readouterr().out
    assert cli(centre, "import", str(tmp_path / "a.drb"), "--dry-run") == 0
    assert "would import" in capsys.readouterr().out and centre.store.count_reviews() == 0
    assert cli(centre, "import", str(tmp_path), "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["bundles"][0]["counts"]["new"] == 1 and report["bundles"][0]["applied"]
    assert cli(centre, "import", str(tmp_path / "a.drb")) == 0
    assert "already imported" in capsys.readouterr().out


def test_refused_bundle_exits_3_with_the_reason(centre, cli, tmp_path, capsys):
    (tmp_path / "x.drb").write_bytes(b"not a zip")
    assert cli(centre, "import", str(tmp_path / "x.drb")) == 3
    assert (
        "REFUSED" in capsys.readouterr().out
        and "not a zip" in capsys.readouterr().out + "not a zip"
    )


def test_missing_files_and_bad_arguments_exit_2(centre, field, cli, tmp_path, capsys):
    assert cli(centre, "import", str(tmp_path / "empty-folder-missing")) == 3
    (tmp_path / "empty").mkdir()
    assert cli(centre, "import", str(tmp_path / "empty")) == 2
    with pytest.raises(SystemExit) as info:
        cli(field, "export", "--out", str(tmp_path / "b.drb"), "--since", "last week")
    assert info.value.code == 2
    assert "not a date" in capsys.readouterr().err


def test_export_with_nothing_to_send_exits_3_and_writes_no_file(field, cli, tmp_path, capsys):
    assert cli(field, "export", "--out", str(tmp_path / "none.drb")) == 3
    assert "nothing to export" in capsys.readouterr().err
    assert not (tmp_path / "none.drb").exists()


def test_export_never_overwrites_a_file(field, cli, tmp_path, capsys):
    field.submit()
    (tmp_path / "a.drb").write_bytes(b"keep me")
    assert cli(field, "export", "--out", str(tmp_path / "a.drb")) == 2
    assert (tmp_path / "a.drb").read_bytes() == b"keep me"


def test_receipt_from_the_command_line(field, centre, cli, tmp_path, capsys):
    field.submit()
    cli(field, "export", "--out", str(tmp_path / "a.drb"))
    cli(centre, "import", str(tmp_path / "a.drb"))
    assert (
        cli(centre, "receipt", "make", "--for", field.node["id"], "--out", str(tmp_path / "r.json"))
        == 0
    )
    # The laptop does not know the centre's key yet: refused until it is trusted.
    assert cli(field, "receipt", "apply", str(tmp_path / "r.json"), "--archive") == 3
    assert "does not trust" in capsys.readouterr().err
    assert field.store.list_deliveries() == {}
    assert (
        cli(field, "receipt", "apply", str(tmp_path / "r.json"), "--archive", "--trust-signer") == 0
    )
    assert "1 reviews confirmed delivered to ENOPU; 1 archived" in capsys.readouterr().out
    assert (
        cli(centre, "receipt", "apply", str(tmp_path / "r.json")) == 3
    )  # not addressed to the centre


def test_import_killed_at_any_moment_leaves_all_or_nothing(field, centre, tmp_path):
    demo.add_demo_reviews(field.store, field.catalogue, field.node, 1500, seed=4)
    bundle = tmp_path / "big.drb"
    field.export(bundle)
    pristine = tmp_path / "pristine"
    shutil.copytree(centre.folder, pristine)

    def start(target):
        shutil.copytree(pristine, target)
        return subprocess.Popen(
            [sys.executable, "run.py", "--data", str(target), "import", str(bundle)],
            cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    began = time.monotonic()
    assert start(tmp_path / "uninterrupted").wait(timeout=120) == 0
    duration = time.monotonic() - began
    assert Store(tmp_path / "uninterrupted").count_reviews() == 1500
    rng = random.Random(3)
    outcomes = []
    for round_ in range(6):
        target = tmp_path / f"round{round_}"
        proc = start(target)
        time.sleep(duration * rng.uniform(0.3, 1.0))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        store = Store(target)
        count, log = store.count_reviews(), store.list_imports()
        assert (count, len(log)) in ((0, 0), (1500, 1)), (
            f"round {round_}: {count} reviews, {len(log)} log entries"
        )
        outcomes.append(count)
    assert 0 in outcomes, "no kill landed before the import finished; lengthen the import"
