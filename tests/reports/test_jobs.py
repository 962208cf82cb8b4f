"""Report jobs: made in a process of their own, followed on a progress page, kept for
their owner, failed when their process dies, cleaned up after a while."""

from __future__ import annotations

import csv
import datetime as dt
import fcntl
import io
import json
import os
import re
import signal
import time

import pypdf
import pytest

from reviewapp.reports import aggregate, jobs, operations
from tests.conftest import make_answers, make_observation

PDF_STAGES = ["queued", "running", "collecting", "aggregating", "rendering", "styling",
              "layout", "writing", "done"]  # fmt: skip


@pytest.fixture
def filled(app, node_web, store, catalogue):
    """Six submitted reviews from two countries, two observations each."""
    from reviewapp.reviews import operations as reviews

    node = store.find_node()
    for i in range(6):
        answers = make_answers(
            country=("AR", "UY")[i % 2],
            observations=[make_observation(title=f"Obs {i}"),
                          make_observation(title=f"GP {i}", kind="good_practice")],
        )  # fmt: skip
        draft = reviews.start_review(store, catalogue, node, "es", "admin")
        reviews.submit_review(store, catalogue, draft["id"], answers, draft["content_hash"])
    return app


def data_dir(app) -> str:
    return app.config["DATA_DIR"]


def start(client, output: str, **fields):
    form = {"scope": "lac", "lang": "es", "output": output, **fields}
    return client.post("/reports/jobs", form, page="/reports/")


def job_id_of(response) -> str:
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    return response.location.rsplit("/", 1)[1]


def wait(app, job_id: str, until=("done", "failed"), timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = jobs.find(data_dir(app), job_id)
        if job["state"] in until:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {job['state']} after {timeout} s")


@pytest.fixture
def held_slot(app):
    """The node's only report slot, taken by the test: jobs started now wait, queued."""
    slots = jobs.jobs_dir(data_dir(app)) / "slots"
    slots.mkdir(parents=True, exist_ok=True)
    fd = os.open(slots / "0.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    yield
    os.close(fd)


def test_a_pdf_job_is_queued_runs_and_gives_the_pdf_of_the_direct_path(filled, as_role):
    viewer = as_role("viewer")
    job_id = job_id_of(start(viewer, "pdf"))
    page = viewer.get(f"/reports/jobs/{job_id}").get_data(as_text=True)
    assert '<progress id="job-progress" max="100"' in page
    assert '<meta http-equiv="refresh"' in page and f"/reports/jobs/{job_id}" in page
    job = wait(filled, job_id)
    assert job["state"] == "done" and job["stages"] == PDF_STAGES
    assert job["figures"]["refused_urls"] == []
    status = viewer.get(f"/reports/jobs/{job_id}/status").get_json()
    assert status["state"] == "done" and status["percent"] == 100 and status["message"] == "Listo"
    assert status["download"] == f"/reports/jobs/{job_id}/file"
    done_page = viewer.get(f"/reports/jobs/{job_id}").get_data(as_text=True)
    assert 'http-equiv="refresh"' not in done_page and "Descargar el archivo" in done_page
    response = viewer.get(status["download"])
    assert response.mimetype == "application/pdf" and response.data.startswith(b"%PDF")
    assert "lessons-report-lac-es.pdf" in response.headers["Content-Disposition"]
    from_job = pypdf.PdfReader(io.BytesIO(response.data))
    response.close()
    store, catalogue = filled.extensions["store"], filled.extensions["catalogue"]
    with filled.test_request_context():
        direct, _ = operations.produce(store, catalogue, store.find_node(),
                                       aggregate.ReportOptions(scope="lac", lang="es"), "pdf", "t")  # fmt: skip
    reader = pypdf.PdfReader(io.BytesIO(direct))
    assert len(from_job.pages) == len(reader.pages)

    def text(r):  # the generation time differs by a few seconds
        return re.sub(r"\d{1,2}:\d{2}:\d{2}", "", " ".join(p.extract_text() for p in r.pages))

    assert text(from_job) == text(reader) and "Informe regional" in text(reader)
    listing = viewer.get("/reports/").get_data(as_text=True)
    assert f"/reports/jobs/{job_id}" in listing and "Informe de lecciones (PDF)" in listing


def test_a_data_job_gives_the_same_csv_as_the_direct_export(filled, as_role):
    analyst = as_role("analyst")
    job = wait(filled, job_id_of(start(analyst, "csv")))
    assert job["stages"] == ["queued", "running", "collecting", "aggregating", "writing", "done"]
    response = analyst.get(f"/reports/jobs/{job['id']}/file")
    body = response.data
    response.close()
    store, catalogue = filled.extensions["store"], filled.extensions["catalogue"]
    with filled.test_request_context():
        direct, reviews, observations = operations.export_data(
            store, catalogue, aggregate.ReportOptions(scope="lac", lang="es"), "csv", "t"
        )
    assert body == direct and (reviews, observations) == (6, 12)
    assert len(list(csv.reader(body.decode("utf-8-sig").splitlines()))) == 1 + 12
    events = [e["event"] for e in store.list_audit()]
    assert events.count("data_exported") == 2  # the job's process wrote its own audit entry


def test_the_html_preview_is_a_job_that_opens_in_the_browser(filled, as_role):
    viewer = as_role("viewer")
    job = wait(filled, job_id_of(start(viewer, "html", lang="fr")))
    response = viewer.get(f"/reports/jobs/{job['id']}/file")
    assert response.mimetype == "text/html" and "attachment" not in response.headers.get(
        "Content-Disposition", ""
    )
    assert "Rapport régional" in response.get_data(as_text=True)
    assert 'href="/reports/style.css"' in response.get_data(as_text=True)
    response.close()


def test_progress_stages_come_in_order_with_pages_counted(filled):
    seen = []
    spec = {"kind": "pdf", "options": {"scope": "lac", "lang": "pt"}, "who": "t"}
    body, figures = jobs.make(filled, spec, lambda stage, **d: seen.append((stage, d)))
    stages = [s for i, (s, _) in enumerate(seen) if i == 0 or seen[i - 1][0] != s]
    assert stages == PDF_STAGES[2:-1]
    pages = [d["page"] for s, d in seen if s == "layout"]
    total = len(pypdf.PdfReader(io.BytesIO(body)).pages)
    assert pages[:3] == [1, 2, 3] and max(pages) == total
    assert seen[-1] == ("writing", {"pages": total}) and figures["reviews"] == 6


def test_a_job_whose_process_was_killed_shows_as_failed(filled, as_role, held_slot):
    viewer = as_role("viewer")
    job_id = job_id_of(start(viewer, "pdf"))
    deadline = time.monotonic() + 60
    while "pid" not in (job := jobs.find(data_dir(filled), job_id)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert job["state"] == "queued"
    assert "Esperando" in viewer.get(f"/reports/jobs/{job_id}/status").get_json()["message"]
    os.kill(job["pid"], signal.SIGKILL)
    failed = wait(filled, job_id, until=("failed",), timeout=10)
    assert failed["error"] == jobs.DIED and failed["finished_at"]
    status = viewer.get(f"/reports/jobs/{job_id}/status").get_json()
    assert status["state"] == "failed" and "se detuvo antes de terminar" in status["message"]
    page = viewer.get(f"/reports/jobs/{job_id}").get_data(as_text=True)
    assert "se detuvo antes de terminar" in page and 'http-equiv="refresh"' not in page
    assert viewer.get(f"/reports/jobs/{job_id}/file").status_code == 302  # back to its page


def test_only_the_owner_and_administrators_see_a_job(filled, as_role, node_web):
    job_id = job_id_of(start(as_role("analyst", "ana"), "csv"))
    wait(filled, job_id)
    other = as_role("analyst", "beto")
    for url in (f"/reports/jobs/{job_id}", f"/reports/jobs/{job_id}/status",
                f"/reports/jobs/{job_id}/file"):  # fmt: skip
        assert other.get(url).status_code == 404, url
        response = node_web.get(url)  # the administrator
        assert response.status_code == 200, url
        response.close()
    assert f"/reports/jobs/{job_id}" not in other.get("/reports/").get_data(as_text=True)
    assert other.get("/reports/jobs/..%2F..%2Fsecret_key/status").status_code == 404


def test_data_files_and_csrf_are_required(filled, as_role):
    viewer = as_role("viewer")
    assert start(viewer, "csv").status_code == 403
    assert start(viewer, "exe").status_code == 400
    assert viewer.client.post("/reports/jobs", data={"output": "pdf"}).status_code == 400
    bad = start(viewer, "pdf", scope="countries", **{"from": "2024-99-01"})
    page = bad.get_data(as_text=True)
    assert bad.status_code == 422 and "Elija al menos un país." in page and "fecha válida" in page
    assert not jobs.list_jobs(data_dir(filled))


def test_jobs_queue_up_to_a_bound_and_the_same_request_reuses_its_job(filled, as_role, held_slot):
    filled.config.update(REPORT_JOBS_AT_ONCE=1, REPORT_JOBS_QUEUED=1)
    viewer = as_role("viewer")
    first = job_id_of(start(viewer, "pdf"))
    assert job_id_of(start(viewer, "pdf")) == first  # asked again: the same job
    second = job_id_of(start(viewer, "pdf", lang="en"))
    refused = start(viewer, "pdf", lang="fr")
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "30"
    assert "ya está generando 2 informes" in refused.get_data(as_text=True)
    for job_id in (first, second):
        assert jobs.find(data_dir(filled), job_id)["state"] == "queued"
    for child in list(jobs._children):
        child.kill()
        child.wait()


def test_clean_up_removes_old_jobs_and_superseded_downloads(filled, as_role):
    viewer = as_role("viewer")
    old, newer = (
        wait(filled, job_id_of(start(viewer, "html", lang=lang)))["id"] for lang in ("es", "pt")
    )
    root = jobs.jobs_dir(data_dir(filled))
    status = json.loads((root / old / "status.json").read_text())
    status["finished_at"] = (jobs.now() - dt.timedelta(hours=25)).isoformat()
    (root / old / "status.json").write_text(json.dumps(status))
    assert jobs.clean_up(data_dir(filled)) == [old]
    assert not (root / old).exists() and (root / newer / "result.html").exists()
    # Downloading a newer copy of the same report removes the older ones of its owner.
    again = wait(filled, job_id_of(start(viewer, "html", lang="pt")))["id"]
    assert again != newer
    viewer.get(f"/reports/jobs/{again}/file").close()
    assert not (root / newer).exists() and (root / again).exists()


def test_the_command_line_shows_the_stages(filled, monkeypatch, tmp_path, capsys):
    import run

    monkeypatch.setenv("REVIEWAPP_DATA", data_dir(filled))
    assert run.main(["report", "--scope", "lac", "--out", str(tmp_path / "r.pdf")]) == 0
    err = capsys.readouterr().err.splitlines()
    words = [re.sub(r"^\[\s*[\d.]+ s\] ", "", line) for line in err]
    assert words[:4] == ["collecting reviews (0 of 6)", "aggregating", "writing the report",
                         "preparing the page layout"]  # fmt: skip
    assert words[4] == "laying out page 1" and words[-1].startswith("writing the PDF (")
    assert (tmp_path / "r.pdf").read_bytes().startswith(b"%PDF")


def test_on_a_terminal_progress_is_one_line_rewritten():
    from reviewapp.reports.cli import TerminalProgress

    class Tty(io.StringIO):
        def isatty(self):
            return True

    stream = Tty()
    progress = TerminalProgress(stream)
    for page in (1, 2, 3):
        progress("layout", page=page, pages=3)
    progress.finish()
    assert stream.getvalue().count("\r") == 3 and stream.getvalue().endswith("of 3\n")
