"""Benchmark: saving one draft on a node that holds many reviews.

    python bench/save.py [--reviews 10000] [--saves 200] [--compact-every 500] [--no-http]

Fills a fresh data folder with demo reviews, then times saving a draft (p50/p95/p99),
once through the domain operation and storage layer — with a compaction of the whole
journal started every ``--compact-every`` saves, far more often than the real
threshold (the journal outgrowing the snapshots, ~9,000 saves at 10,000 reviews), so
that the saves made while one runs are in the figures — and once through HTTP against
``run.py serve`` in its own process, and reports that server's resident memory.
Targets (issues 2 and 9): durable save p50 <= 20 ms, p99 <= 50 ms at 10,000 reviews
including compactions; server RSS <= 1 GB. Not part of the test run.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reviewapp import create_app, demo  # noqa: E402
from reviewapp.reviews import operations  # noqa: E402

PASSWORD = "bench password 2026"


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]


def fill(data: Path, count: int) -> dict:
    app = create_app({"DATA_DIR": str(data)})
    store, catalogue = app.extensions["store"], app.extensions["catalogue"]
    started = time.perf_counter()
    node = demo.ensure_node(store)
    demo.add_demo_reviews(store, catalogue, node, count, seed=1)
    from reviewapp.accounts.operations import create_user

    create_user(
        store,
        {"username": "bench", "display_name": "Bench", "role": "analyst", "password": PASSWORD},
        "bench",
    )
    store.compact()
    filled = time.perf_counter() - started
    size = sum(p.stat().st_size for p in data.glob("*.json"))
    return {"fill_s": filled, "data_mb": size / 2**20}


def bench_storage(data: Path, saves: int, compact_every: int) -> dict:
    started = time.perf_counter()
    app = create_app({"DATA_DIR": str(data)})
    open_s = time.perf_counter() - started
    store, catalogue = app.extensions["store"], app.extensions["catalogue"]
    node = store.find_node()
    review = operations.start_review(store, catalogue, node, "es", "bench")
    answers = json.loads(
        json.dumps(demo.make_review(__import__("random").Random(7), catalogue, node)["answers"])
    )
    etag, times = review["content_hash"], []
    journal, compactions = data / "journal.log", 0
    inode = journal.stat().st_ino if journal.exists() else None
    with app.test_request_context():
        for i in range(saves):
            answers["contingent"] = f"URUBATT {i}"
            t0 = time.perf_counter()
            saved = operations.save_draft(store, catalogue, review["id"], answers, etag)
            if compact_every and i % compact_every == compact_every - 1:
                store.journal._compact_soon()  # what crossing the threshold does
            times.append((time.perf_counter() - t0) * 1000)
            etag = saved["content_hash"]
            now = journal.stat().st_ino
            compactions, inode = compactions + (now != inode), now
    with store.journal._compacting:  # let a compaction in flight finish before cleanup
        pass
    return {"open_s": open_s, "p50_ms": statistics.median(times), "p95_ms": percentile(times, 95),
            "p99_ms": percentile(times, 99), "max_ms": max(times),
            "compactions": compactions}  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> tuple[float, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024
    hwm = int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024
    return rss, hwm


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def bench_http(data: Path, saves: int) -> dict:
    port = free_port()
    env = {**os.environ, "REVIEWAPP_DATA": str(data)}
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), "serve", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        started = time.perf_counter()
        while True:
            try:
                urllib.request.urlopen(base + "/static/css/app.css", timeout=1).close()
                break
            except OSError:
                if time.perf_counter() - started > 120 or server.poll() is not None:
                    raise RuntimeError("server did not start") from None
                time.sleep(0.1)
        ready_s = time.perf_counter() - started
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect)

        def get(path):
            with opener.open(base + path, timeout=30) as r:
                return r.read().decode()

        def post(path, fields):
            body = urllib.parse.urlencode(fields, doseq=True).encode()
            try:
                with opener.open(base + path, data=body, timeout=30) as r:
                    return r.status, r.headers.get("Location")
            except urllib.error.HTTPError as exc:
                return exc.code, exc.headers.get("Location")

        page = get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        status, _ = post("/login", {"csrf_token": token, "username": "bench", "password": PASSWORD})
        assert status == 302, status
        t0 = time.perf_counter()
        listing = get("/reviews/")
        list_ms = (time.perf_counter() - t0) * 1000
        token = re.search(r'name="csrf_token" value="([^"]+)"', listing).group(1)
        status, location = post("/reviews/new", {"csrf_token": token, "language": "es"})
        assert status == 302, status
        edit = location if location.startswith("/") else urllib.parse.urlsplit(location).path
        times = []
        for i in range(saves):
            page = get(edit)
            token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
            etag = re.search(r'name="_etag" value="([^"]+)"', page).group(1)
            fields = {"csrf_token": token, "_etag": etag, "action": "save", "operation": "MONUSCO",
                      "contingent": f"URUBATT {i}", "expected": "x" * 2000, "happened": "y" * 2000}  # fmt: skip
            t0 = time.perf_counter()
            status, _ = post(edit, fields)
            times.append((time.perf_counter() - t0) * 1000)
            assert status == 302, status
        rss, hwm = rss_mb(server.pid)
        return {"ready_s": ready_s, "list_ms": list_ms, "p50_ms": statistics.median(times),
                "p95_ms": percentile(times, 95), "rss_mb": rss, "peak_rss_mb": hwm}  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reviews", type=int, default=10_000)
    parser.add_argument("--saves", type=int, default=200)
    parser.add_argument("--compact-every", type=int, default=500)
    parser.add_argument("--no-http", action="store_true", help="only the storage figures")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        filled = fill(data, args.reviews)
        print(
            f"filled {args.reviews} reviews in {filled['fill_s']:.1f} s, {filled['data_mb']:.0f} MB on disk"
        )
        storage = bench_storage(data, args.saves, args.compact_every)
        print(f"storage: opened in {storage['open_s']:.2f} s; save p50 {storage['p50_ms']:.2f} ms, "
              f"p95 {storage['p95_ms']:.2f} ms, p99 {storage['p99_ms']:.2f} ms, "
              f"max {storage['max_ms']:.1f} ms over {args.saves} saves "
              f"with {storage['compactions']} compactions")  # fmt: skip
        if args.no_http:
            return
        web = bench_http(data, args.saves)
        print(f"http: server ready in {web['ready_s']:.1f} s; list page {web['list_ms']:.0f} ms; "
              f"save p50 {web['p50_ms']:.2f} ms, p95 {web['p95_ms']:.2f} ms; "
              f"RSS {web['rss_mb']:.0f} MB (peak {web['peak_rss_mb']:.0f} MB)")  # fmt: skip
        ok = storage["p50_ms"] <= 20 and web["p50_ms"] <= 20 and web["peak_rss_mb"] <= 1024
        print("targets (p50 <= 20 ms, RSS <= 1 GB):", "met" if ok else "NOT met")


if __name__ == "__main__":
    main()
