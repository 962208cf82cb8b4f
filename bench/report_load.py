"""Benchmark: autosaving while a lessons report is being made (issue 11).

    python bench/report_load.py [--sizes 1000 10000] [--users 10] [--baseline 20]

For each size: a node with N demo reviews and ten contributors, served by a real
``run.py serve`` on 127.0.0.1. Each contributor autosaves a draft of their own about
about once a second (a pause of 0.5-1.5 s after each answer, as the page does after a pause in typing), for ``--baseline``
seconds with nothing else going on, then while an analyst's regional PDF report (all of
Latin America and the Caribbean, up to CONFIDENTIAL, annex of 150) is made by its job
process, the analyst's page polling its status every second as the progress page does.
Quiet and report phases alternate (``--rounds``, default 3) so that load from elsewhere on
the machine falls on both. Reports autosave p50 / p95 / max in both phases, the job's
time, its stages, and the 5-minute load average (other work on the machine).
Target: autosave p95 during the report within 2x of the p95 without it. Not part of the
test run.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PASSWORD = "bench password 2026"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
ETAG = re.compile(r'name="_etag" value="([^"]*)"')


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]


def fill(data: Path, count: int, users: int) -> None:
    """In a process of its own, so that this one stays small."""
    code = f"""
import sys; sys.path.insert(0, {str(ROOT)!r})
from reviewapp import create_app, demo
from reviewapp.accounts.operations import create_user
app = create_app({{"DATA_DIR": {str(data)!r}}})
store, catalogue = app.extensions["store"], app.extensions["catalogue"]
node = demo.ensure_node(store)
demo.add_demo_reviews(store, catalogue, node, {count}, seed=1)
for name, role in [("reporter", "analyst")] + [(f"officer{{i}}", "contributor") for i in range({users})]:
    create_user(store, {{"username": name, "display_name": name, "role": role,
                         "password": {PASSWORD!r}}}, "bench", "pbkdf2:sha256:1000")
store.compact()
store.close()
"""
    subprocess.run([sys.executable, "-c", code], check=True, stdout=subprocess.DEVNULL)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Browser:
    def __init__(self, base: str) -> None:
        self.base = base
        jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(jar), NoRedirect
        )

    def get(self, path: str) -> str:
        with self.opener.open(self.base + path, timeout=60) as r:
            return r.read().decode()

    def post(self, path: str, fields: dict, accept: str = "text/html") -> tuple[int, str, str]:
        body = urllib.parse.urlencode(fields, doseq=True).encode()
        request = urllib.request.Request(self.base + path, data=body, headers={"Accept": accept})
        try:
            with self.opener.open(request, timeout=60) as r:
                return r.status, r.headers.get("Location") or "", r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers.get("Location") or "", exc.read().decode()

    def login(self, username: str) -> None:
        token = TOKEN.search(self.get("/login")).group(1)
        status, _, _ = self.post(
            "/login", {"csrf_token": token, "username": username, "password": PASSWORD}
        )
        assert status == 302, status


class Officer(threading.Thread):
    """Autosaves its own draft until told to stop; keeps (time, latency in ms)."""

    def __init__(self, base: str, username: str, seed: int) -> None:
        super().__init__(daemon=True)
        self.browser, self.username = Browser(base), username
        self.random, self.stop = random.Random(seed), threading.Event()
        self.samples: list[tuple[float, float]] = []
        self.errors = 0

    def prepare(self) -> None:
        b = self.browser
        b.login(self.username)
        token = TOKEN.search(b.get("/reviews/")).group(1)
        status, location, _ = b.post("/reviews/new", {"csrf_token": token, "language": "es"})
        assert status == 302, status
        self.edit = urllib.parse.urlsplit(location).path
        page = b.get(self.edit)
        self.token, self.etag = TOKEN.search(page).group(1), ETAG.search(page).group(1)
        self.autosave = self.edit.removesuffix("/edit") + "/autosave"

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            i += 1
            fields = {"csrf_token": self.token, "_etag": self.etag, "operation": "MONUSCO",
                      "contingent": f"URUBATT {i}", "expected": "x" * 2000,
                      "happened": "y" * 2000}  # fmt: skip
            t0 = time.perf_counter()
            status, _, body = self.browser.post(self.autosave, fields, "application/json")
            ms = (time.perf_counter() - t0) * 1000
            if status == 200:
                self.etag = json.loads(body)["etag"]
                self.samples.append((time.monotonic(), ms))
            else:
                self.errors += 1
            self.stop.wait(self.random.uniform(0.5, 1.5))


def summary(values: list[float]) -> dict:
    return {"n": len(values), "p50": statistics.median(values), "p95": percentile(values, 95),
            "max": max(values)}  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(data: Path, users: int, baseline: float, rounds: int) -> dict:
    port = free_port()
    env = {**os.environ, "REVIEWAPP_DATA": str(data)}
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), "serve", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        started = time.monotonic()
        while True:
            try:
                urllib.request.urlopen(base + "/static/css/app.css", timeout=1).close()
                break
            except OSError:
                if time.monotonic() - started > 180 or server.poll() is not None:
                    raise RuntimeError("server did not start") from None
                time.sleep(0.2)
        officers = [Officer(base, f"officer{i}", i) for i in range(users)]
        for officer in officers:
            officer.prepare()
        reporter = Browser(base)
        reporter.login("reporter")
        for officer in officers:
            officer.start()
        time.sleep(2)  # warm up
        # Quiet and busy phases alternate, so that load from elsewhere on the machine
        # falls on both alike.
        quiet_spans, busy_spans, jobs_s, messages, polls = [], [], [], [], []
        for _ in range(rounds):
            quiet_from = time.monotonic()
            time.sleep(baseline)
            quiet_spans.append((quiet_from, time.monotonic()))
            token = TOKEN.search(reporter.get("/reports/")).group(1)
            fields = {"csrf_token": token, "output": "pdf", "scope": "lac", "lang": "es",
                      "max_sensitivity": "confidential"}  # fmt: skip
            asked = time.monotonic()
            status, location, _ = reporter.post("/reports/jobs", fields)
            assert status == 303, status
            job_url = urllib.parse.urlsplit(location).path
            stages = []
            while True:
                t0 = time.perf_counter()
                job = json.loads(reporter.get(job_url + "/status"))
                polls.append((time.perf_counter() - t0) * 1000)
                if not stages or stages[-1] != job["stage"]:
                    stages.append(job["stage"])
                if job["state"] in ("done", "failed"):
                    break
                time.sleep(1)
            busy_spans.append((asked, time.monotonic()))
            jobs_s.append(time.monotonic() - asked)
            messages = stages
            assert job["state"] == "done", job
            with reporter.opener.open(base + job_url + "/file", timeout=60) as r:
                pdf = r.read()
            assert pdf.startswith(b"%PDF")
        for officer in officers:
            officer.stop.set()
        for officer in officers:
            officer.join()
        samples = [s for o in officers for s in o.samples]

        def within(spans):
            return [ms for t, ms in samples if any(a <= t < b for a, b in spans)]

        return {"quiet": summary(within(quiet_spans)), "busy": summary(within(busy_spans)),
                "job_s": statistics.median(jobs_s), "stages": messages,
                "status_poll_p50": statistics.median(polls), "load": os.getloadavg()[1],
                "errors": sum(o.errors for o in officers), "pdf_kb": len(pdf) / 1024}  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000])
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument(
        "--baseline", type=float, default=15.0, help="seconds without a report before each report"
    )
    parser.add_argument("--rounds", type=int, default=3, help="quiet + report phases")
    args = parser.parse_args()
    print("| reviews | autosaves p50 / p95 / max without a report | with a report being made "
          "| p95 ratio | report (job, median) | status poll p50 | load avg |")  # fmt: skip
    print("|--:|--:|--:|--:|--:|--:|--:|")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            data = Path(tmp) / f"n{size}"
            fill(data, size, args.users)
            r = measure(data, args.users, args.baseline, args.rounds)
            q, b = r["quiet"], r["busy"]
            print(f"| {size:,} | {q['p50']:.0f} / {q['p95']:.0f} / {q['max']:.0f} ms (n={q['n']}) "
                  f"| {b['p50']:.0f} / {b['p95']:.0f} / {b['max']:.0f} ms (n={b['n']}) "
                  f"| {b['p95'] / q['p95']:.2f}x | {r['job_s']:.1f} s | {r['status_poll_p50']:.0f} ms | {r['load']:.1f} |",
                  flush=True)  # fmt: skip
            print(f"  stages seen by the progress page: {' > '.join(r['stages'])}; "
                  f"autosave errors: {r['errors']}", file=sys.stderr, flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
