"""Benchmark: exporting and importing bundles at regional scale.

    python bench/ingest.py [--sizes 1000 10000 50000]

For each size N: fill a field node with N demo reviews, export a bundle, import it
into an empty centre node, import the same file again (recognised, nothing changes),
and import a second bundle of the same reviews (every record classified unchanged).
Each step runs in its own process, so its wall time and peak memory (ru_maxrss) are
its own. The raw floor is what no importer can beat: orjson parse of reviews.jsonl
plus one fsync'ed write of the result. Targets (issue 3): import of 10,000 reviews
<= 3x the floor, validation included; re-import <= 2x. Not part of the test run.
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

PRELUDE = textwrap.dedent(
    """
    import json, os, resource, sys, time, uuid, zipfile
    from pathlib import Path
    sys.path.insert(0, {root!r})
    import orjson
    from reviewapp import create_app
    def node(folder, name, level):
        app = create_app({{"DATA_DIR": folder}})
        store = app.extensions["store"]
        if store.find_node() is None:
            store.save_node({{"id": str(uuid.uuid4()), "name": name, "country": "PE", "level": level,
                              "language": "es", "created_at": "2026-01-01T00:00:00Z"}})
        return app
    def report(**figures):
        figures["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(figures))
    """
)

STEPS = {
    "fill": """
        from reviewapp import demo
        app = node(sys.argv[1], "Demo field", "field")
        store = app.extensions["store"]
        demo.add_demo_reviews(store, app.extensions["catalogue"], store.find_node(), int(sys.argv[2]), seed=1)
        store.compact()
        report()
    """,
    "export": """
        from reviewapp.exchange import keys, operations
        app = node(sys.argv[1], "Demo field", "field")
        store = app.extensions["store"]
        with app.test_request_context():
            t = time.perf_counter()
            entry = operations.export_bundle(store, app.extensions["catalogue"], store.find_node(),
                                             keys.NodeKey(sys.argv[1]), Path(sys.argv[2]), operations.ExportOptions(), "bench")
            wall = time.perf_counter() - t
        report(wall=wall, reviews=entry["counts"]["reviews"], observations=entry["counts"]["observations"],
               bundle_mb=Path(sys.argv[2]).stat().st_size / 2**20)
    """,
    "floor": """
        with zipfile.ZipFile(sys.argv[1]) as zf:
            body = zf.read("reviews.jsonl")
        t = time.perf_counter()
        records = [orjson.loads(line) for line in body.splitlines()]
        with open(sys.argv[2], "wb") as fh:
            fh.write(orjson.dumps(records))
            fh.flush()
            os.fsync(fh.fileno())
        report(wall=time.perf_counter() - t, jsonl_mb=len(body) / 2**20)
    """,
    "import": """
        from reviewapp.exchange import operations
        app = node(sys.argv[1], "Demo centre", "centre")
        with app.test_request_context():
            t = time.perf_counter()
            result = operations.import_file(app.extensions["store"], app.extensions["catalogue"], Path(sys.argv[2]), "bench")
            wall = time.perf_counter() - t
        report(wall=wall, counts=result["counts"], applied=result["applied"])
    """,
}


def step(name: str, *args: str) -> dict:
    code = PRELUDE.format(root=str(ROOT)) + textwrap.dedent(STEPS[name])
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(size: int, tmp: Path) -> dict:
    field, centre = tmp / f"field-{size}", tmp / f"centre-{size}"
    bundle, again = tmp / f"b-{size}.drb", tmp / f"b2-{size}.drb"
    step("fill", str(field), str(size))
    exported = step("export", str(field), str(bundle))
    step("export", str(field), str(again))
    floor = step("floor", str(bundle), str(tmp / f"floor-{size}.json"))
    first = step("import", str(centre), str(bundle))
    assert first["counts"]["new"] == size, first
    same_file = step("import", str(centre), str(bundle))
    assert same_file["applied"] is False
    second = step("import", str(centre), str(again))
    assert second["counts"]["unchanged"] == size, second
    return {
        "size": size,
        "export": exported,
        "floor": floor,
        "import": first,
        "same_file": same_file,
        "reimport": second,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 50_000])
    args = parser.parse_args()
    print(
        "| reviews | observations | JSONL | bundle | export | floor | import (x floor, peak) | same file again | re-import (x floor, peak) |"
    )
    print("|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            r = run(size, Path(tmp))
            f = r["floor"]["wall"]
            print(
                f"| {size:,} | {r['export']['observations']:,} | {r['floor']['jsonl_mb']:.0f} MB | {r['export']['bundle_mb']:.0f} MB "
                f"| {r['export']['wall']:.2f} s | {f:.2f} s ({r['floor']['peak_mb']:.0f} MB) "
                f"| {r['import']['wall']:.2f} s ({r['import']['wall'] / f:.1f}x, {r['import']['peak_mb']:.0f} MB) "
                f"| {r['same_file']['wall']:.2f} s "
                f"| {r['reimport']['wall']:.2f} s ({r['reimport']['wall'] / f:.1f}x, {r['reimport']['peak_mb']:.0f} MB) |",
                flush=True,
            )


if __name__ == "__main__":
    main()
