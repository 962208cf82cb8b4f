"""Report jobs: a report or data export made in a process of its own, off the request path.

A job is a folder under ``<data>/report-jobs/<id>/``:

- ``job.json``: what was asked (kind, options, who, when), written once by the web server;
- ``status.json``: where it stands (``queued``, ``running``, ``done``, ``failed``; the
  stage and its page counts), written only by the job's process, atomically
  (temporary file + rename), and read by the web server;
- ``alive.lock``: locked (``flock``) for as long as the job's process lives. The web
  server takes the lock before starting the process and hands it over, so there is no
  moment when a live job looks dead; a process that died for any reason (``kill -9``,
  out of memory, the machine restarted) releases it, and the job then shows as failed;
- the finished file, written under a temporary name, fsync'ed and renamed.

At most ``at_once`` job processes work at the same time on a node (``REPORT_JOBS_AT_ONCE``,
default 1): each holds one of the ``<data>/report-jobs/slots/N.lock`` locks while it
works, and later ones wait, queued, for a slot. Beyond ``at_once + queued`` unfinished
jobs a new one is refused (:class:`Busy`). The same person asking again for the same
report while theirs is unfinished gets the job already under way.

Clean-up (:func:`clean_up`, run whenever a job starts or jobs are listed): a finished or
failed job and its file are removed :data:`KEEP` (24 hours) after it finished; when its
owner downloads a job's file, their older finished jobs for exactly the same report
are removed at once (the newer one replaces them).

The process is ``python -m reviewapp.reports.jobs <data folder> <job id>``: it opens
the node's data folder itself (the store is safe for several processes), runs at a lower
CPU priority than the web server, and pauses the garbage collector only in itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: jobs cannot tell a dead process
    fcntl = None

FOLDER = "report-jobs"
KEEP = dt.timedelta(hours=24)
KINDS = {
    "pdf": ("application/pdf", "lessons-report-{scope}-{lang}.pdf"),
    "html": ("text/html", "lessons-report-{scope}-{lang}.html"),
    "csv": ("text/csv", "lessons-data-{scope}-{lang}.csv"),
    "xlsx": (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "lessons-data-{scope}-{lang}.xlsx",
    ),
}
UNFINISHED = ("queued", "running")
DIED = "died"  # the error of a job whose process ended without finishing


class Busy(Exception):
    """Too many report jobs are unfinished on this node; try again later."""

    def __init__(self, unfinished: int) -> None:
        super().__init__(f"{unfinished} report jobs are unfinished")
        self.unfinished = unfinished


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def jobs_dir(data_dir: str | Path) -> Path:
    return Path(data_dir) / FOLDER


def _write_json(path: Path, data: dict, durable: bool = False) -> None:
    """Atomically: readers see the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, ensure_ascii=False)
        if durable:
            fh.flush()
            os.fsync(fh.fileno())
    os.replace(tmp, path)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _is_locked(path: Path) -> bool:
    """Whether some process holds the lock on ``path`` (False when nobody does)."""
    if fcntl is None:  # pragma: no cover
        return True
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing drops the lock we may have taken
    return False


# Job processes this server started: polled so that finished ones do not linger as zombies.
_children: list[subprocess.Popen] = []


def _reap() -> None:
    _children[:] = [child for child in _children if child.poll() is None]


def start(data_dir: str | Path, kind: str, options, who: str, *, stylesheet: str = "style.css",
          at_once: int = 1, queued: int = 4) -> dict:  # fmt: skip
    """Start a job making ``kind`` (``pdf``, ``html``, ``csv``, ``xlsx``) for ``who``.

    :param options: the :class:`~reviewapp.reports.aggregate.ReportOptions`.
    :param at_once: job processes that may work at the same time.
    :param queued: unfinished jobs allowed beyond those, waiting for a slot.
    :returns: the job (the one already under way, if ``who`` asked for the same).
    :raises Busy: when ``at_once + queued`` jobs are unfinished.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}")
    clean_up(data_dir)
    asked = dataclasses.asdict(options)
    unfinished = [job for job in list_jobs(data_dir) if job["state"] in UNFINISHED]
    for job in unfinished:
        if job["who"] == who and job["kind"] == kind and job["options"] == asked:
            return job
    if len(unfinished) >= at_once + queued:
        raise Busy(len(unfinished))
    job_id = secrets.token_hex(8)
    folder = jobs_dir(data_dir) / job_id
    folder.mkdir(parents=True)
    spec = {"id": job_id, "kind": kind, "options": asked, "who": who, "stylesheet": stylesheet,
            "created_at": now().isoformat(timespec="seconds"), "at_once": at_once}  # fmt: skip
    _write_json(
        folder / "status.json", {"state": "queued", "stage": "queued", "stages": ["queued"]}
    )
    _write_json(folder / "job.json", spec)
    launch(data_dir, job_id)
    return find(data_dir, job_id)


def launch(data_dir: str | Path, job_id: str) -> subprocess.Popen:
    """The job's process, holding the job's life lock from its first instant."""
    from reviewapp import REPO_ROOT

    folder = jobs_dir(data_dir) / job_id
    fd = os.open(folder / "alive.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        with open(folder / "process.log", "ab") as log:
            child = subprocess.Popen(
                [sys.executable, "-m", "reviewapp.reports.jobs", str(data_dir), job_id, str(fd)],
                cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                pass_fds=(fd,), start_new_session=True,
            )  # fmt: skip
    finally:
        os.close(fd)  # the child's copy keeps the lock
    _reap()
    _children.append(child)
    return child


def find(data_dir: str | Path, job_id: str) -> dict | None:
    """The job and where it stands, or None; a job whose process died is failed."""
    _reap()
    if not job_id.isalnum():
        return None
    folder = jobs_dir(data_dir) / job_id
    spec = _read_json(folder / "job.json")
    if spec is None:
        return None
    status = _read_json(folder / "status.json") or {"state": "queued", "stage": "queued"}
    if status["state"] in UNFINISHED and not _is_locked(folder / "alive.lock"):
        # Read again: it may have finished between the first read and the lock test.
        status = _read_json(folder / "status.json") or status
        if status["state"] in UNFINISHED:
            status = {**status, "state": "failed", "error": DIED,
                      "finished_at": now().isoformat(timespec="seconds")}  # fmt: skip
            _write_json(folder / "status.json", status)
    job = {**spec, **status, "folder": str(folder)}
    if job["state"] == "done":
        job["file"] = str(folder / job["filename"])
    return job


def list_jobs(data_dir: str | Path, who: str | None = None) -> list[dict]:
    """Jobs on this node (only ``who``'s when given), newest first."""
    root = jobs_dir(data_dir)
    if not root.is_dir():
        return []
    found = []
    for folder in root.iterdir():
        if folder.name != "slots" and folder.is_dir():
            job = find(data_dir, folder.name)
            if job is not None and (who is None or job["who"] == who):
                found.append(job)
    return sorted(found, key=lambda j: j["created_at"], reverse=True)


def clean_up(data_dir: str | Path, at: dt.datetime | None = None) -> list[str]:
    """Remove jobs that finished more than :data:`KEEP` ago, with their files.

    :returns: the ids removed.
    """
    at, removed = at or now(), []
    root = jobs_dir(data_dir)
    for folder in root.iterdir() if root.is_dir() else ():
        # A folder left without its job.json by a crash while the job was being started.
        if folder.name != "slots" and not (folder / "job.json").exists():
            age = at.timestamp() - folder.stat().st_mtime
            if age > KEEP.total_seconds():
                shutil.rmtree(folder, ignore_errors=True)
    for job in list_jobs(data_dir):
        finished = job.get("finished_at")
        if (
            job["state"] not in UNFINISHED
            and finished
            and at - dt.datetime.fromisoformat(finished) > KEEP
        ):
            shutil.rmtree(job["folder"], ignore_errors=True)
            removed.append(job["id"])
    return removed


def downloaded(data_dir: str | Path, job: dict) -> list[str]:
    """The owner took the file: their older finished copies of the same report go."""
    removed = []
    for other in list_jobs(data_dir, job["who"]):
        if (other["id"] != job["id"] and other["state"] not in UNFINISHED
                and other["kind"] == job["kind"] and other["options"] == job["options"]
                and other["created_at"] <= job["created_at"]):  # fmt: skip
            shutil.rmtree(other["folder"], ignore_errors=True)
            removed.append(other["id"])
    return removed


def percent(job: dict) -> int:
    """How far along the job is, for the progress bar (an estimate until layout ends)."""
    stage, state = job.get("stage"), job.get("state")
    if state == "done":
        return 100
    if stage == "collecting" and job.get("total"):
        return int(15 * job.get("done", 0) / job["total"])
    if stage == "layout":
        page, pages = job.get("page") or 0, job.get("pages")
        if pages:
            return 40 + int(45 * min(page, pages) / pages)
        return 40 + int(40 * page / (page + 20))  # the count is not known on the first pass
    return {"queued": 0, "running": 0, "collecting": 0, "aggregating": 15, "rendering": 25,
            "styling": 30, "writing": 85}.get(stage, 0)  # fmt: skip


def describe(job: dict) -> str:
    """Where the job stands, in the reader's language."""
    from flask_babel import gettext as _

    if job["state"] == "done":
        return _("Ready")
    if job["state"] == "failed":
        if job.get("error") == DIED:
            return _("The process making this report stopped before it finished (the server was restarted or the process was ended). Please ask for the report again.")  # fmt: skip
        return _("The report could not be made because of an error; the details are in the job's log on the server.")  # fmt: skip
    stage = job.get("stage")
    if stage == "queued":
        return _("Waiting for its turn (one report is made at a time)")
    if stage == "collecting" and job.get("total"):
        return _("Collecting reviews (%(done)s of %(total)s)", done=job.get("done", 0), total=job["total"])  # fmt: skip
    if stage == "layout":
        if job.get("pages"):
            return _("Laying out page %(page)s of %(pages)s", page=job["page"], pages=job["pages"])
        return _("Laying out page %(page)s", page=job.get("page", 1))
    if stage == "writing" and job.get("pages"):
        return _("Writing the PDF (%(pages)s pages)", pages=job["pages"])
    labels = {"aggregating": _("Aggregating the reviews"), "rendering": _("Writing the report"),
              "styling": _("Preparing the page layout"), "writing": _("Writing the file")}  # fmt: skip
    return labels.get(stage, _("Collecting reviews"))


def public(job: dict) -> dict:
    """What the status endpoint shows (no paths of the server)."""
    keys = ("id", "kind", "state", "stage", "page", "pages", "done", "total", "created_at",
            "finished_at")  # fmt: skip
    return {**{k: job.get(k) for k in keys}, "percent": percent(job), "message": describe(job)}


def download_name(job: dict) -> str:
    return KINDS[job["kind"]][1].format(**job["options"])


# --- the job's own process -------------------------------------------------------


class Reporter:
    """Writes a job's progress to its status file; no more often than every 0.2 s
    within a stage, so that layout page by page costs nothing noticeable."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "status.json"
        self.status = _read_json(self.path) or {"state": "queued", "stages": []}
        self.written = 0.0

    def __call__(self, stage: str, **details) -> None:
        new_stage = stage != self.status.get("stage")
        self.status.update(state="running", stage=stage, **details)
        if new_stage:
            self.status["stages"] = [*self.status.get("stages", []), stage]
        if new_stage or time.monotonic() - self.written >= 0.2:
            self.write()

    def write(self, durable: bool = False) -> None:
        _write_json(self.path, self.status, durable)
        self.written = time.monotonic()


def _take_slot(data_dir: Path, at_once: int) -> int:
    """Wait for one of the node's ``at_once`` report slots; held until the process ends."""
    if fcntl is None:  # pragma: no cover
        return -1
    slots = jobs_dir(data_dir) / "slots"
    slots.mkdir(parents=True, exist_ok=True)
    while True:
        for n in range(max(1, at_once)):
            fd = os.open(slots / f"{n}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except OSError:
                os.close(fd)
        time.sleep(0.25)


def make(app, spec: dict, progress) -> tuple[bytes, dict]:
    """The job's file, made in this process with ``app`` (its store, its catalogue).

    :returns: the file and a few figures about it.
    """
    from reviewapp.reports import aggregate, operations

    store, catalogue = app.extensions["store"], app.extensions["catalogue"]
    options = aggregate.ReportOptions(**spec["options"])
    kind = spec["kind"]
    with app.test_request_context():
        if kind in ("csv", "xlsx"):
            body, reviews, observations = operations.export_data(
                store, catalogue, options, kind, spec["who"], progress
            )
            return body, {"reviews": reviews, "observations": observations}
        document, report = operations.produce(
            store, catalogue, store.find_node(), options, kind, spec["who"],
            # The preview links the app's URL of the stylesheet; the PDF reads the file.
            spec.get("stylesheet", "style.css") if kind == "html" else "style.css", progress,
        )  # fmt: skip
    body = document if isinstance(document, bytes) else document.encode("utf-8")
    figures = {"reviews": report["totals"]["reviews"],
               "observations": report["totals"]["observations"],
               "classification": report["classification"],
               "refused_urls": report.get("refused_urls", [])}  # fmt: skip
    return body, figures


def run(data_dir: str | Path, job_id: str) -> int:
    """The job's process: wait for a slot, make the file, say how it went."""
    data_dir = Path(data_dir)
    folder = jobs_dir(data_dir) / job_id
    spec = _read_json(folder / "job.json")
    if spec is None:
        return 2
    reporter = Reporter(folder)
    reporter.status["pid"] = os.getpid()
    reporter.write()
    with contextlib.suppress(AttributeError, OSError):  # no os.nice on Windows
        os.nice(10)  # the people typing come first
    _take_slot(data_dir, spec.get("at_once", 1))
    reporter.status["started_at"] = now().isoformat(timespec="seconds")
    reporter("running")
    try:
        from reviewapp import create_app

        app = create_app({"DATA_DIR": str(data_dir), "STORE_BACKGROUND_COMPACTION": False})
        body, figures = make(app, spec, reporter)
        filename = f"result.{spec['kind']}"
        tmp = folder / f".{filename}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, folder / filename)
        app.extensions["store"].close()
        reporter.status.update(state="done", stage="done", filename=filename, size=len(body),
                               figures=figures)  # fmt: skip
        reporter.status["stages"].append("done")
        code = 0
    except Exception:
        traceback.print_exc()  # into process.log
        reporter.status.update(state="failed", error="error")
        code = 1
    reporter.status["finished_at"] = now().isoformat(timespec="seconds")
    reporter.write(durable=True)
    return code


def main(argv: list[str]) -> int:
    """``python -m reviewapp.reports.jobs DATA_DIR JOB_ID [LOCK_FD]``."""
    data_dir, job_id = argv[0], argv[1]
    # argv[2], the inherited descriptor of alive.lock, stays open until the process ends.
    return run(data_dir, job_id)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
