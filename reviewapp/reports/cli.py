"""run.py report: a lessons report from the command line."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path

from reviewapp.reports import aggregate, operations


def report(app, args) -> int:
    store, catalogue = app.extensions["store"], app.extensions["catalogue"]
    node = store.find_node()
    if node is None:
        print("error: this node is not set up yet; open the app once to set it up", file=sys.stderr)
        return 3
    problems = []
    checks = [("country", "countries", args.country), ("operation", "operations", args.operation),
              ("category", "personnel_categories", args.category), ("area", "functional_areas", args.area)]  # fmt: skip
    for what, list_name, values in checks:
        for value in values:
            if value not in catalogue.choices[list_name].values:
                problems.append(f"unknown {what} {value!r} (see forms/choices/{list_name}.yaml)")
    if args.scope == "countries" and not args.country:
        problems.append("--scope countries needs at least one --country")
    if args.date_from and args.date_to and args.date_from > args.date_to:
        problems.append("--from is after --to")
    if args.annex < 0:
        problems.append("--annex must be 0 or more")
    out = Path(args.out)
    if out.exists():
        problems.append(f"{out} exists; choose a new file name")
    if problems:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    options = aggregate.ReportOptions(
        scope=args.scope, countries=args.country, date_from=args.date_from or "1900-01-01",
        date_to=args.date_to or "2999-12-31", operations=args.operation, categories=args.category,
        areas=args.area, max_sensitivity=args.max_sensitivity, lang=args.lang, annex_limit=args.annex,
    )  # fmt: skip
    who = f"cli:{getpass.getuser()}"
    if args.format in ("csv", "xlsx"):
        from reviewapp.accounts.operations import audit
        from reviewapp.reports import export

        review_rows, observation_rows = export.rows(operations.records(store), catalogue, options)
        if args.format == "csv":
            out.write_bytes(export.to_csv(observation_rows))
        else:
            out.write_bytes(export.to_xlsx(review_rows, observation_rows, options.lang))
        audit(
            store,
            "data_exported",
            who,
            format=args.format,
            scope=options.scope,
            observations=len(observation_rows),
        )
        print(f"wrote {out}: {len(review_rows)} reviews, {len(observation_rows)} observations")
        return 0
    document, figures = operations.produce(store, catalogue, node, options, args.format, who)
    out.write_bytes(document if isinstance(document, bytes) else document.encode("utf-8"))
    t = figures["totals"]
    print(f"wrote {out}: {t['reviews']} reviews, {t['observations']} observations, "
          f"classification {figures['classification']}")  # fmt: skip
    return 0
