"""The data behind a report, in full: CSV (one row per observation) and XLSX (a sheet of
reviews and a sheet of observations), with the report's own filters.

Never any personal field (respondent name and contact). Cells that a spreadsheet would
run as a formula are prefixed with an apostrophe; every text cell of the CSV is quoted.
"""

from __future__ import annotations

import csv
import io

from flask_babel import force_locale, gettext

from reviewapp.cells import cell as _cell
from reviewapp.formdefs import Catalogue
from reviewapp.reports import aggregate

REVIEW_COLUMNS = (
    ("review_id", None), ("country", "countries"), ("operation", "operations"), ("institution", "institutions"),
    ("personnel_category", "personnel_categories"), ("unit_type", "unit_types"), ("rotation", None),
    ("deployment_start", None), ("deployment_end", None), ("rank_band", "rank_bands"), ("sex", "sex"),
    ("sensitivity", "sensitivity"), ("sharing_consent", "sharing_consent"),
    *((f"rating_{p}", None) for p in aggregate.PHASES),
)  # fmt: skip
OBSERVATION_COLUMNS = (
    ("review_id", None), ("country", "countries"), ("operation", "operations"),
    ("personnel_category", "personnel_categories"), ("deployment_end", None), ("observation_id", None),
    ("title", None), ("kind", "observation_kinds"), ("phase", "phases"), ("functional_area", "functional_areas"),
    ("dotmlpfi", "dotmlpfi"), ("observation", None), ("discussion", None), ("conclusion", None),
    ("recommendation", None), ("action_body", "action_bodies"), ("training_module", "training_modules"),
    ("priority", "priorities"), ("observation_sensitivity", "sensitivity"),
)  # fmt: skip


def rows(
    reviews: list[dict], catalogue: Catalogue, options: aggregate.ReportOptions
) -> tuple[list[list], list[list]]:
    """Review rows and observation rows (labels in the report's language)."""
    included, _ = aggregate.select(reviews, catalogue, options)

    def show(value, list_name):
        if list_name is None or value in (None, ""):
            return value
        if isinstance(value, list):
            return ", ".join(catalogue.label(list_name, v, options.lang) for v in value)
        return catalogue.label(list_name, value, options.lang)

    review_rows, observation_rows = [], []
    for review in included:
        a = {**review["answers"], "review_id": review["id"]}
        review_rows.append([_cell(show(a.get(k), lst)) for k, lst in REVIEW_COLUMNS])
        for o in a.get("observations") or []:
            merged = {
                **a,
                **o,
                "observation_id": o.get("id"),
                "observation_sensitivity": o.get("sensitivity"),
            }
            observation_rows.append(
                [_cell(show(merged.get(k), lst)) for k, lst in OBSERVATION_COLUMNS]
            )
    return review_rows, observation_rows


def to_csv(observation_rows: list[list]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_NONNUMERIC)  # every text cell quoted
    writer.writerow([name for name, _ in OBSERVATION_COLUMNS])
    writer.writerows(observation_rows)
    return ("\ufeff" + out.getvalue()).encode("utf-8")  # the BOM lets spreadsheets see UTF-8


def to_xlsx(review_rows: list[list], observation_rows: list[list], lang: str) -> bytes:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    with force_locale(lang):
        names = (gettext("Reviews"), gettext("Observations"))
    for title, columns, data in (
        (names[0], REVIEW_COLUMNS, review_rows),
        (names[1], OBSERVATION_COLUMNS, observation_rows),
    ):
        sheet = book.create_sheet(title)
        sheet.append([name for name, _ in columns])
        for row in data:
            sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
