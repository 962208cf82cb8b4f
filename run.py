"""Deployment Review command line.

    python run.py                       serve on http://127.0.0.1:5000 (the default)
    python run.py serve --port 8080     serve elsewhere (--host 0.0.0.0 for a LAN)
    python run.py demo --reviews 500    fill the node with synthetic reviews
    python run.py backup --out DIR      back up the node: data, signing key, session key
    python run.py restore --from DIR    restore a backup into an empty data folder
    python run.py export --out FILE     write a bundle of submitted reviews (see --help)
    python run.py import FILE_OR_DIR... import bundles (--dry-run to preview, --json)
    python run.py receipt make|apply    receipts: what a centre holds from a laptop
    python run.py user add|reset-password   accounts (e.g. a forgotten admin password)
    python run.py report --scope alcopaz --from 2023-01-01 --to 2024-12-31 --lang es --out r.pdf

Exit codes:
    0  done
    1  an unexpected error
    2  bad arguments (e.g. a backup --out or restore --data folder that is not empty,
       a restore --from folder that is not a backup)
    3  refused or nothing to do (export with no matching review, a bundle or receipt
       refused, a damaged or altered backup)
    4  the node is busy: another process (an import, a backup) holds the data folder
    5  the data folder cannot be written: disk full or read-only
    6  a file of the data folder is damaged (the message names it and says how to restore)

A backup holds the node's secret keys (``node_key.pem``, ``secret_key``): keep it like
a password.

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

    backup = sub.add_parser(
        "backup", help="back up the node (its data and secret keys) into a new folder"
    )
    backup.add_argument("--out", required=True, help="an empty or new folder")

    restore = sub.add_parser("restore", help="restore a backup into an empty data folder")
    restore.add_argument(
        "--from", dest="source", metavar="DIR", required=True, help="the backup folder"
    )
    restore.add_argument(
        "--data",
        dest="restore_data",
        metavar="DIR",
        help="the empty or new data folder to restore into (default: as for every command)",
    )

    export = sub.add_parser("export", help="write a bundle (.drb) of submitted reviews")
    export.add_argument("--out", required=True, help="the bundle file to write (.drb)")
    export.add_argument("--level", choices=["national", "regional", "un"], default="national",
                        help="the destination's level: reviews go only where their sharing consent allows (default national)")  # fmt: skip
    export.add_argument("--to", default="", help="the destination's name (remembered for --unsent)")
    export.add_argument(
        "--unsent", action="store_true", help="only reviews not yet exported to --to"
    )
    export.add_argument(
        "--since", type=_date, help="only reviews submitted on or after this date (YYYY-MM-DD)"
    )
    export.add_argument(
        "--anonymise",
        action="store_true",
        help="remove personal data; attribution becomes anonymous",
    )
    export.add_argument("--max-sensitivity", choices=["unclassified", "confidential", "strictly_confidential"],
                        default="strictly_confidential", help="leave out anything classified above this")  # fmt: skip

    imp = sub.add_parser("import", help="import bundles: files or folders of .drb files")
    imp.add_argument("paths", nargs="+", metavar="FILE_OR_DIR")
    imp.add_argument(
        "--dry-run", action="store_true", help="show what would happen; change nothing"
    )
    imp.add_argument("--json", action="store_true", help="print one JSON report for all bundles")
    imp.add_argument(
        "--trust-signer",
        action="store_true",
        help="trust the signing keys of these bundles (compare their fingerprints with the "
        "senders first; refused for a key claiming a node known by another key)",
    )

    receipt = sub.add_parser("receipt", help="make or apply a receipt of delivered reviews")
    rsub = receipt.add_subparsers(dest="receipt_command", required=True)
    make = rsub.add_parser("make", help="list what this node holds from another node")
    make.add_argument("--for", dest="for_node", required=True, help="the other node's id")
    make.add_argument("--out", required=True, help="the receipt file to write")
    apply = rsub.add_parser("apply", help="mark reviews listed in a receipt as delivered")
    apply.add_argument("file")
    apply.add_argument("--archive", action="store_true", help="also archive the delivered reviews")
    apply.add_argument(
        "--trust-signer",
        action="store_true",
        help="trust the issuer's signing key (compare its fingerprint with the issuer first)",
    )

    report = sub.add_parser("report", help="write a lessons report (PDF, or HTML with --html)")
    report.add_argument(
        "--scope", choices=["alcopaz", "relacopaz", "lac", "countries"], default="alcopaz"
    )
    report.add_argument(
        "--country",
        action="append",
        default=[],
        help="ISO code; repeat; one country makes a national report",
    )
    report.add_argument(
        "--from", dest="date_from", type=_date, help="deployments ended on or after (YYYY-MM-DD)"
    )
    report.add_argument(
        "--to", dest="date_to", type=_date, help="deployments ended on or before (YYYY-MM-DD)"
    )
    report.add_argument("--operation", action="append", default=[], help="operation code; repeat")
    report.add_argument(
        "--category", action="append", default=[], help="personnel category; repeat"
    )
    report.add_argument("--area", action="append", default=[], help="functional area; repeat")
    report.add_argument(
        "--max-sensitivity",
        choices=["unclassified", "confidential", "strictly_confidential"],
        default="unclassified",
    )
    report.add_argument("--lang", choices=["es", "pt", "en", "fr"], default="es")
    report.add_argument(
        "--annex", type=int, default=150, help="observations in the annex at most (default 150)"
    )
    report.add_argument(
        "--format",
        choices=["pdf", "html", "csv", "xlsx"],
        default="pdf",
        help="pdf (default), its html twin, or the data: csv (observations) or xlsx (reviews and observations)",
    )
    report.add_argument("--out", required=True, help="the file to write")

    users = sub.add_parser("user", help="add an account or reset a password")
    usub = users.add_subparsers(dest="user_command", required=True)
    add = usub.add_parser("add", help="create an account")
    add.add_argument("username")
    add.add_argument("--role", choices=["contributor", "analyst", "viewer", "admin"], required=True)
    add.add_argument("--name", help="full name (default: the user name)")
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    reset = usub.add_parser("reset-password", help="set a new password (ends open sessions)")
    reset.add_argument("username")
    reset.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )

    args = parser.parse_args(argv)
    if getattr(args, "restore_data", None):
        args.data = args.restore_data
    if args.data:
        os.environ["REVIEWAPP_DATA"] = str(Path(args.data).resolve())
    from reviewapp import REPO_ROOT

    folder = os.environ.get("REVIEWAPP_DATA") or str(REPO_ROOT / "instance")  # as create_app()
    if args.command == "restore":
        # Before create_app(), which would start a new node in the empty folder.
        return _restore(args.source, Path(folder))

    from reviewapp.storage import StoreError

    try:
        return _dispatch(args, folder)
    except StoreError as exc:
        code, message = _store_error(exc, folder)
        print(message, file=sys.stderr)
        return code


def _dispatch(args, folder: str) -> int:
    from reviewapp import create_app
    from reviewapp.formdefs import DefinitionError

    # A command compacts inline: a thread of its own would die with the command.
    inline = {} if (args.command or "serve") == "serve" else {"STORE_BACKGROUND_COMPACTION": False}
    try:
        app = create_app(inline)
    except DefinitionError as exc:
        print(f"error: a form definition is broken: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(
            f"error: cannot use {folder} as the data folder ({exc.strerror}); give --data a folder that exists or can be created",
            file=sys.stderr,
        )
        return 2

    command = args.command or "serve"
    if command == "report":
        from reviewapp.reports import cli as report_cli

        with app.test_request_context():
            return report_cli.report(app, args)
    if command == "user":
        from flask_babel import force_locale

        from reviewapp.accounts import cli as account_cli

        with app.test_request_context(), force_locale("en"):
            return account_cli.user(app, args)
    if command in ("export", "import", "receipt"):
        from flask_babel import force_locale

        from reviewapp.exchange import cli

        with app.test_request_context(), force_locale("en"):
            return getattr(cli, command)(app, args)
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
        password = demo_data.ensure_admin(store, app.config["PASSWORD_HASH_METHOD"])
        if password:
            print(
                f"created the account admin with the password {password} (change it under My account)"
            )
        count = demo_data.add_demo_reviews(
            store, app.extensions["catalogue"], node, args.reviews, args.seed
        )
        print(f"added {count} demo reviews to {app.config['DATA_DIR']}")
        return 0
    if command == "backup":
        return _backup(app, Path(args.out))
    return 1


def _backup(app, out: Path) -> int:
    from reviewapp.node.backup import BackupError, write_backup

    try:
        manifest = write_backup(
            app.extensions["store"], app.config["DATA_DIR"], out, who=_cli_who()
        )
    except BackupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"backed up {len(manifest['files'])} files and backup-manifest.json to {out}")
    print(
        "warning: this backup contains the node's secret keys (node_key.pem signs its "
        "bundles, secret_key its sessions): keep it like a password, in a safe place, "
        "and never send it to another node",
        file=sys.stderr,
    )
    return 0


def _restore(source: str, target: Path) -> int:
    from reviewapp.node.backup import BackupDamaged, BackupError, restore_backup

    try:
        manifest = restore_backup(Path(source), target)
    except BackupDamaged as exc:
        print(f"refused: {exc}; nothing was restored", file=sys.stderr)
        return 3
    except BackupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    node = manifest.get("node") or {}
    print(
        f"restored node {node.get('name', '(not set up)')} ({node.get('id', '-')}), "
        f"backed up on {manifest['created_at']}, into {target}; "
        f"signing key {manifest['key_fingerprint']}"
    )
    return 0


def _store_error(exc, folder: str) -> tuple[int, str]:
    """One line and an exit code for a data folder that cannot be used right now."""
    from reviewapp.storage import StoreBusy, StoreDamaged, StoreFull, StoreReadOnly, StoreUnwritable

    if isinstance(exc, StoreBusy):
        return 4, (
            "error: the node is busy (another process such as an import holds the data "
            "folder); try again in a few seconds"
        )
    if isinstance(exc, StoreUnwritable):
        where = folder + (f" ({exc.path})" if exc.path and exc.path != folder else "")
        if isinstance(exc, StoreFull):
            why = "disk full; free some space on the disk and try again"
        elif isinstance(exc, StoreReadOnly):
            why = "read-only; give the app's user write access or choose another --data folder"
        else:
            why = str(exc)
        return 5, f"error: cannot write to the data folder {where}: {why}"
    if isinstance(exc, StoreDamaged):
        return 6, f"error: {exc}"
    return 1, f"error: {exc}"


def _cli_who() -> str:
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _date(text: str) -> str:
    from reviewapp.exchange.operations import parse_date

    try:
        return parse_date(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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
