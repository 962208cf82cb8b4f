"""run.py report: a lessons report from the command line, made in this process with the
same stages a web job reports, shown on standard error."""

from __future__ import annotations

import dataclasses
import getpass
import sys
import time
from pathlib import Path

from reviewapp.reports import aggregate, jobs


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
    spec = {"kind": args.format, "options": dataclasses.asdict(options), "who": who}
    progress = TerminalProgress(sys.stderr)
    body, figures = jobs.make(app, spec, progress)
    progress.finish()
    out.write_bytes(body)
    if args.format in ("csv", "xlsx"):
        print(f"wrote {out}: {figures['reviews']} reviews, {figures['observations']} observations")
        return 0
    print(f"wrote {out}: {figures['reviews']} reviews, {figures['observations']} observations, "
          f"classification {figures['classification']}")  # fmt: skip
    return 0


STAGES = {"collecting": "collecting reviews", "aggregating": "aggregating",
          "rendering": "writing the report", "styling": "preparing the page layout",
          "layout": "laying out", "writing": "writing the file"}  # fmt: skip


class TerminalProgress:
    """The job's stages on a terminal: one line rewritten in place when ``stream`` is a
    TTY, otherwise one plain line per stage (and per 10 pages of layout)."""

    def __init__(self, stream) -> None:
        self.stream, self.tty = stream, stream.isatty()
        self.stage, self.started, self.width = None, time.monotonic(), 0

    def text(self, stage: str, details: dict) -> str:
        words = STAGES.get(stage, stage)
        if stage == "collecting" and details.get("total"):
            words += f" ({details.get('done', 0)} of {details['total']})"
        elif stage == "layout":
            pages = f" of {details['pages']}" if details.get("pages") else ""
            words = f"laying out page {details.get('page')}{pages}"
        elif stage == "writing" and details.get("pages"):
            words = f"writing the PDF ({details['pages']} pages)"
        return f"[{time.monotonic() - self.started:6.1f} s] {words}"

    def __call__(self, stage: str, **details) -> None:
        line = self.text(stage, details)
        if self.tty:
            self.stream.write("\r" + line.ljust(self.width))
            self.width = len(line)
        elif stage != self.stage or (stage == "layout" and details.get("page", 0) % 10 == 0):
            self.stream.write(line + "\n")
        self.stage = stage
        self.stream.flush()

    def finish(self) -> None:
        if self.tty and self.width:
            self.stream.write("\n")
            self.stream.flush()
