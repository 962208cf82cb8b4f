"""Deployment Review command line.

    python run.py                       serve on http://127.0.0.1:5000 (the default)
    python run.py serve --port 8080     serve elsewhere (--host 0.0.0.0 for a LAN)
    python run.py demo --reviews 500    fill the node with synthetic reviews
    python run.py backup --out DIR      write a consistent copy of the data folder

Every command takes --data DIR (or the REVIEWAPP_DATA environment variable) to pick
the node's data folder; the default is ./instance.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="run.py", description="Deployment Review")
    parser.add_argument("--data", help="data folder (default: ./instance or $REVIEWAPP_DATA)")
    sub = parser.add_subparsers(dest="command")

    serve = sub.add_parser("serve", help="run the web app (default)")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    serve.add_argument("--port", type=int, default=5000, help="port (default 5000)")

    demo = sub.add_parser("demo", help="add realistic synthetic reviews")
    demo.add_argument("--reviews", type=_positive, default=200, help="how many (default 200)")
    demo.add_argument("--seed", type=int, default=1, help="random seed (default 1)")

    backup = sub.add_parser("backup", help="copy the data folder consistently")
    backup.add_argument("--out", required=True, help="an empty or new folder")

    args = parser.parse_args(argv)
    if args.data:
        os.environ["REVIEWAPP_DATA"] = str(Path(args.data).resolve())

    from reviewapp import create_app
    from reviewapp.formdefs import DefinitionError

    try:
        app = create_app()
    except DefinitionError as exc:
        print(f"error: a form definition is broken: {exc}", file=sys.stderr)
        return 2

    command = args.command or "serve"
    if command == "serve":
        print(
            f"Deployment Review on http://{args.host}:{args.port}/  (data: {app.config['DATA_DIR']})"
        )
        app.run(host=args.host, port=args.port, threaded=True)
        return 0
    if command == "demo":
        from reviewapp import demo as demo_data

        store = app.extensions["store"]
        node = demo_data.ensure_node(store)
        count = demo_data.add_demo_reviews(
            store, app.extensions["catalogue"], node, args.reviews, args.seed
        )
        print(f"added {count} demo reviews to {app.config['DATA_DIR']}")
        return 0
    if command == "backup":
        out = Path(args.out)
        if out.exists() and any(out.iterdir()):
            print(f"error: --out {out} is not empty; choose a new folder", file=sys.stderr)
            return 2
        written = app.extensions["store"].backup(out)
        print(f"backed up {len(written)} files to {out}")
        return 0
    return 1


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 1 <= value <= 200_000:
        raise argparse.ArgumentTypeError("must be between 1 and 200000")
    return value


if __name__ == "__main__":
    sys.exit(main())
