"""Benchmark: lessons report at regional scale.

    python bench/report.py [--sizes 1000 10000]

For each size: a node with N demo reviews; time the aggregation alone, the PDF without
annex, and the PDF with the default annex (150 observations); count pages; each PDF in
its own process so its peak memory (ru_maxrss) is its own. Targets (issue 4):
aggregation of 10,000 reviews under 2 s; the PDF without annex for 10,000 reviews
under 15 s. Not part of the test run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

STEP = textwrap.dedent(
    """
    import io, json, resource, sys, time
    sys.path.insert(0, {root!r})
    import pypdf
    from reviewapp import create_app, demo
    from reviewapp.reports import aggregate, operations
    folder, size, step = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    app = create_app({{"DATA_DIR": folder}})
    store, catalogue = app.extensions["store"], app.extensions["catalogue"]
    if step == "fill":
        demo.add_demo_reviews(store, catalogue, demo.ensure_node(store), size, seed=1)
        store.compact()
        print(json.dumps({{}}))
        sys.exit()
    options = aggregate.ReportOptions(scope="lac", lang="es", max_sensitivity="confidential",
                                      annex_limit=0 if step == "pdf-no-annex" else 150)
    with app.test_request_context():
        records = operations.records(store)
        t = time.perf_counter()
        if step == "aggregate":
            report = aggregate.build(records, catalogue, options)
            figures = {{"wall": time.perf_counter() - t, "reviews": report["totals"]["reviews"],
                        "observations": report["totals"]["observations"]}}
        else:
            pdf, report = operations.produce(store, catalogue, store.find_node(), options, "pdf", "bench")
            figures = {{"wall": time.perf_counter() - t, "pages": len(pypdf.PdfReader(io.BytesIO(pdf)).pages),
                        "mb": len(pdf) / 2**20}}
    figures["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(figures))
    """
)


def step(folder: Path, size: int, name: str) -> dict:
    code = STEP.format(root=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-c", code, str(folder), str(size), name],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000])
    args = parser.parse_args()
    print(
        "| reviews | included | observations | aggregation | PDF without annex (pages, peak) | PDF with annex (pages, peak) |"
    )
    print("|--:|--:|--:|--:|--:|--:|")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            folder = Path(tmp) / f"n{size}"
            step(folder, size, "fill")
            agg = step(folder, size, "aggregate")
            bare = step(folder, size, "pdf-no-annex")
            full = step(folder, size, "pdf-annex")
            print(
                f"| {size:,} | {agg['reviews']:,} | {agg['observations']:,} | {agg['wall']:.2f} s "
                f"| {bare['wall']:.2f} s ({bare['pages']} pages, {bare['peak_mb']:.0f} MB) "
                f"| {full['wall']:.2f} s ({full['pages']} pages, {full['peak_mb']:.0f} MB) |",
                flush=True,
            )


if __name__ == "__main__":
    main()
