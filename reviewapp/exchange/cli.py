"""The exchange commands of run.py: export, import, receipt."""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path

from reviewapp.exchange import keys, operations
from reviewapp.exchange.bundle import BundleError

DONE, REFUSED = 0, 3


def _who() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _node(app):
    node = app.extensions["store"].find_node()
    if node is None:
        print("error: this node is not set up yet; open the app once to set it up", file=sys.stderr)
    return node


def export(app, args) -> int:
    store, catalogue = app.extensions["store"], app.extensions["catalogue"]
    node = _node(app)
    if node is None:
        return REFUSED
    out = Path(args.out)
    if out.exists():
        print(f"error: {out} exists; choose a new file name", file=sys.stderr)
        return 2
    if not out.parent.is_dir():
        print(f"error: folder {out.parent} does not exist", file=sys.stderr)
        return 2
    options = operations.ExportOptions(
        level=args.level,
        destination=args.to,
        unsent_only=args.unsent,
        since=args.since,
        anonymise=args.anonymise,
        max_sensitivity=args.max_sensitivity,
    )
    records, excluded = operations.select_for_export(store, catalogue, node, options)
    if not records:
        print(
            f"nothing to export: no submitted review matches (left out: {_excluded(excluded)})",
            file=sys.stderr,
        )
        return REFUSED
    entry = operations.export_bundle(
        store,
        catalogue,
        node,
        keys.load_node_key(app.config["DATA_DIR"], store),
        out,
        options,
        _who(),
    )
    counts = entry["counts"]
    print(f"wrote {out}: {counts['reviews']} reviews, {counts['observations']} observations "
          f"(left out: {_excluded(counts['excluded'])}); sha256 {entry['sha256']}")  # fmt: skip
    return DONE


def _excluded(excluded: dict) -> str:
    parts = [f"{n} {reason.replace('_', ' ')}" for reason, n in excluded.items() if n]
    return ", ".join(parts) or "none"


def _bundle_files(paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for name in paths:
        path = Path(name)
        files.extend(sorted(path.glob("*.drb")) if path.is_dir() else [path])
    return files


def import_(app, args) -> int:
    store, catalogue = app.extensions["store"], app.extensions["catalogue"]
    if _node(app) is None:
        return REFUSED
    files = _bundle_files(args.paths)
    if not files:
        print("error: no .drb files found in " + ", ".join(args.paths), file=sys.stderr)
        return 2
    reports, refused = [], 0
    for path in files:
        if not path.is_file():
            reports.append({"file": str(path), "refused": "no such file"})
            refused += 1
            continue
        try:
            # Trusting the key lands with the import in one write, or not at all.
            report = operations.import_file(
                store, catalogue, path, _who(), dry_run=args.dry_run, trust=args.trust_signer
            )
        except BundleError as exc:
            reports.append({"file": str(path), "refused": str(exc), "code": exc.code})
            refused += 1
            continue
        reports.append(report)
    if args.json:
        print(
            json.dumps({"dry_run": args.dry_run, "bundles": reports}, indent=2, ensure_ascii=False)
        )
    else:
        for report in reports:
            print(_describe(report, args.dry_run))
    return REFUSED if refused else DONE


def _describe(report: dict, dry_run: bool) -> str:
    if "refused" in report:
        return f"{report['file']}: REFUSED — {report['refused']}"
    if report.get("already_imported_at"):
        return f"{report['file']}: already imported on {report['already_imported_at']}; nothing changed"
    c = report["counts"]
    verb = "would import" if dry_run else "imported"
    source = report["source"]
    lines = [
        f"{report['file']}: {verb} from {source['name']} ({source['country']}, {source['level']}): "
        f"{c['new']} new, {c['newer']} newer revisions, {c['unchanged']} unchanged, "
        f"{c['conflicts']} conflicts, {c['invalid']} invalid; signature: {report['signer']['status']}"
        + (
            f" (key {report['signer']['fingerprint']})"
            if report["signer"].get("fingerprint")
            else ""
        )
        + ("; key now trusted" if report["signer"].get("newly_trusted") else "")
    ]
    if report.get("held_for_review"):
        lines.append(
            f"  {report['held_for_review']} newer revisions from a signer not trusted to replace "
            "reviews wait in the conflict queue"
        )
    for item in report["invalid"][:10]:
        lines.append(f"  line {item['line']}: {'; '.join(item['reasons'])}")
    if len(report["invalid"]) > 10:
        lines.append(f"  ... and {len(report['invalid']) - 10} more invalid records")
    return "\n".join(lines)


def receipt(app, args) -> int:
    store = app.extensions["store"]
    node = _node(app)
    if node is None:
        return REFUSED
    if args.receipt_command == "make":
        out = Path(args.out)
        if out.exists():
            print(f"error: {out} exists; choose a new file name", file=sys.stderr)
            return 2
        data = operations.make_receipt(
            store, node, keys.load_node_key(app.config["DATA_DIR"], store), args.for_node, _who()
        )
        out.write_bytes(data)
        held = json.loads(data)["held"]
        print(f"wrote {out}: {len(held)} reviews held from node {args.for_node}")
        return DONE
    path = Path(args.file)
    if not path.is_file():
        print(f"error: no such file {path}", file=sys.stderr)
        return 2
    try:
        result = operations.apply_receipt(
            store,
            node,
            path.read_bytes(),
            archive=args.archive,
            who=_who(),
            trust=getattr(args, "trust_signer", False),
        )
    except operations.ReceiptError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return REFUSED
    print(f"{result['delivered']} reviews confirmed delivered to {result['issuer']['name']}; "
          f"{result['archived']} archived; {result['unmatched']} entries not matched here")  # fmt: skip
    return DONE


# "import" is a keyword; run.py looks commands up by name.
globals()["import"] = import_
