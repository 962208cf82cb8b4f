"""What a person sees when the data folder is busy, damaged or shared between processes."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from reviewapp import REPO_ROOT, create_app
from reviewapp.storage import StoreDamaged
from tests.conftest import FAST
from tests.exchange.conftest import _node


def run_cli(folder, *args, stdin: str | None = None) -> subprocess.CompletedProcess:
    """``python run.py --data FOLDER ARGS...`` in a process of its own, as a person types it."""
    return subprocess.run(
        [sys.executable, "run.py", "--data", str(folder), *map(str, args)],
        cwd=REPO_ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def field(tmp_path):
    return _node(tmp_path, "URUBATT laptop", "UY", "field")


HOLD_LOCK = textwrap.dedent(
    """
    import sys, time
    from reviewapp.storage import Store
    store = Store(sys.argv[1])
    with store.atomic():
        print("holding", flush=True)
        time.sleep(float(sys.argv[2]))
    """
)


def test_a_busy_node_answers_pages_and_autosave_with_503_and_reads_go_on(node_web, app):
    review_id = node_web.start_review()
    etag = node_web.etag(review_id)
    token_page = node_web.get(f"/reviews/{review_id}/edit").get_data(as_text=True)
    token = token_page.split('name="csrf_token" value="')[1].split('"')[0]
    app.extensions["store"].journal.lock.timeout = 0.5
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, app.config["DATA_DIR"], "8"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        assert node_web.get("/reviews/").status_code == 200  # reading does not wait
        saved = node_web.client.post(
            f"/reviews/{review_id}/edit",
            data={"csrf_token": token, "_etag": etag, "action": "save", "contingent": "X"},
        )
        assert saved.status_code == 503
        assert saved.headers["Retry-After"] == "5"
        assert "ocupado" in saved.get_data(as_text=True)  # the node's language, Spanish
        assert 'value="X"' in saved.get_data(as_text=True)  # the form, with what was typed
        auto = node_web.client.post(
            f"/reviews/{review_id}/autosave",
            data={"csrf_token": token, "_etag": etag, "contingent": "X"},
        )
        assert auto.status_code == 503 and auto.headers["Retry-After"] == "5"
        assert auto.json["status"] == "busy" and "ocupado" in auto.json["title"]
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    assert "contingent" not in app.extensions["store"].get_review(review_id)["answers"]
    assert node_web.save(review_id, {"contingent": "Y"}).status_code == 302


def test_a_form_received_by_a_command_line_import_is_usable_by_a_running_server(tmp_path):
    forms = tmp_path / "forms"
    shutil.copytree(REPO_ROOT / "forms", forms)
    v1 = (forms / "deployment-review.v1.yaml").read_text(encoding="utf-8")
    (forms / "deployment-review.v2.yaml").write_text(
        v1.replace("\nversion: 1\n", "\nversion: 2\n"), encoding="utf-8"
    )
    source = _node(tmp_path, "field", "UY", "field")
    source.app.config["FORMS_DIR"] = str(forms)
    source_app = create_app({"DATA_DIR": str(source.folder), "FORMS_DIR": str(forms), **FAST})
    source.app = source_app
    review = source.submit()
    assert review["form_version"] == 2
    source.export(tmp_path / "v2.drb")

    centre = _node(tmp_path, "centre", "UY", "centre")
    admin = centre.web("admin")
    page = f"/reviews/{review['id']}"
    assert admin.get(page).status_code == 404  # not held yet
    done = run_cli(
        centre.folder, "import", tmp_path / "v2.drb", "--trust-signer"
    )  # forms are learnt only from a trusted signer
    assert done.returncode == 0, done.stderr
    shown = admin.get(page)
    assert shown.status_code == 200
    assert "URUBATT 42" in shown.get_data(as_text=True)


def test_a_missing_node_key_after_exporting_is_reported_not_replaced(field, tmp_path):
    field.submit()
    fingerprint = field.key.fingerprint
    field.export(tmp_path / "1.drb")
    key = field.folder / "node_key.pem"
    key.unlink()
    admin = field.web("admin")
    page = admin.get("/exchange/")
    assert page.status_code == 500
    assert "node_key.pem" in page.get_data(as_text=True)
    assert not key.exists()
    done = run_cli(field.folder, "export", "--out", tmp_path / "2.drb")
    assert done.returncode == 6 and "node_key.pem is missing" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not key.exists() and not (tmp_path / "2.drb").exists()
    key.write_text("garbage")
    with pytest.raises(StoreDamaged, match="not a readable signing key"):
        field.key  # noqa: B018 - loading it is the test
    assert key.read_text() == "garbage"
    assert fingerprint


def test_a_missing_node_file_keeps_the_setup_page_closed(node_web, app, tmp_path):
    folder = Path(app.config["DATA_DIR"])
    node_web.start_review()
    (folder / "node.json").unlink()
    with pytest.raises(StoreDamaged):
        create_app({"DATA_DIR": str(folder), "TESTING": True, **FAST})
    done = run_cli(
        folder,
        "user",
        "add",
        "intruder",
        "--role",
        "admin",
        "--password-stdin",
        stdin="a long enough password\n",
    )
    assert done.returncode == 6, done.stderr
    assert "node.json is missing" in done.stderr and "restore" in done.stderr
    assert not (folder / "node.json").exists()


@pytest.mark.parametrize("content", [b"", b"a", b"0123456789abcdef"])
def test_a_short_or_empty_session_key_is_damage_not_a_guessable_key(node_web, app, content):
    folder = Path(app.config["DATA_DIR"])
    (folder / "secret_key").write_bytes(content)
    with pytest.raises(StoreDamaged, match="secret_key is not a session key"):
        create_app({"DATA_DIR": str(folder), "TESTING": True, **FAST})
    done = run_cli(folder, "serve", "--port", "1")
    assert done.returncode == 6 and "secret_key" in done.stderr
    assert (folder / "secret_key").read_bytes() == content


def test_a_signing_key_left_without_its_node_keeps_the_setup_page_closed(field, tmp_path):
    field.export(tmp_path / "1.drb")  # the key exists now
    for path in field.folder.iterdir():
        if path.name not in ("node_key.pem", "secret_key"):
            path.unlink() if path.is_file() else shutil.rmtree(path)
    with pytest.raises(StoreDamaged, match="signing key"):
        create_app({"DATA_DIR": str(field.folder), "TESTING": True, **FAST})


def test_a_damaged_signing_key_is_reported_on_the_command_line_in_one_line(field, tmp_path):
    field.submit()
    field.export(tmp_path / "1.drb")
    key = field.folder / "node_key.pem"
    lines = key.read_text().splitlines()
    middle = lines[1]
    lines[1] = middle[:10] + ("B" if middle[10] != "B" else "C") + middle[11:]
    key.write_text("\n".join(lines) + "\n")
    done = run_cli(field.folder, "export", "--out", tmp_path / "2.drb")
    assert done.returncode == 6, done.stderr
    assert "node_key.pem" in done.stderr and "Traceback" not in done.stderr
