"""Lessons report figures: plain functions over review records, returning plain data.

Nothing here renders or stores anything, so every number can be tested on a
hand-made set of reviews. The same records and options always give the same
figures in the same order (ties are broken by code).
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from reviewapp import policy
from reviewapp.bulk import paused_gc
from reviewapp.formdefs import Catalogue

PRIORITY = {"high": 0, "medium": 1, "low": 2}
PHASES = (
    "selection", "predeployment_training", "deployment_induction", "operations",
    "sustainment", "rotation_repatriation", "reintegration",
)  # fmt: skip
SCOPES = ("alcopaz", "relacopaz", "lac", "countries")


@dataclass
class ReportOptions:
    """What a report covers.

    :param scope: ``alcopaz``, ``relacopaz``, ``lac`` (all 33) or ``countries``.
    :param countries: ISO codes, for ``scope="countries"``.
    :param date_from, date_to: the period, on the deployment's end date (YYYY-MM-DD).
    :param max_sensitivity: the most sensitive content the report may include.
    :param annex_limit: at most this many observations in the annex.
    """

    scope: str = "lac"
    countries: list[str] = field(default_factory=list)
    date_from: str = "1900-01-01"
    date_to: str = "2999-12-31"
    operations: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    areas: list[str] = field(default_factory=list)
    max_sensitivity: str = "unclassified"
    lang: str = "es"
    annex_limit: int = 150

    @property
    def national(self) -> bool:
        """One country's report, for its own training centre: national consent suffices."""
        return self.scope == "countries" and len(self.countries) == 1


def scope_countries(catalogue: Catalogue, options: ReportOptions) -> set[str]:
    choices = catalogue.choices["countries"].choices
    if options.scope == "alcopaz":
        return {c["value"] for c in choices if c.get("alcopaz")}
    if options.scope == "relacopaz":
        return {c["value"] for c in choices if c.get("relacopaz")}
    if options.scope == "countries":
        return set(options.countries)
    return {c["value"] for c in choices}


def select(
    reviews: list[dict], catalogue: Catalogue, options: ReportOptions
) -> tuple[list[dict], dict]:
    """The submitted reviews the report may use, and how many were left out and why.

    :returns: ``(included, excluded)``; each included review's ``answers.observations``
        keeps only observations at or below the sensitivity ceiling and in the areas
        asked for.
    """
    countries = scope_countries(catalogue, options)
    ceiling = options.max_sensitivity
    needed = "national" if options.national else "regional"
    included, excluded = [], Counter()
    for review in reviews:
        a = review["answers"]
        if review["status"] != "submitted":
            continue
        end = a.get("deployment_end") or ""
        if a.get("country") not in countries or not options.date_from <= end <= options.date_to:
            continue
        if options.operations and a.get("operation") not in options.operations:
            continue
        if options.categories and a.get("personnel_category") not in options.categories:
            continue
        if not policy.consent_reaches(catalogue, a.get("sharing_consent"), needed):
            excluded["consent"] += 1
            continue
        if not policy.within_ceiling(catalogue, a.get("sensitivity"), ceiling):
            excluded["sensitivity"] += 1
            continue
        observations = []
        for o in a.get("observations") or []:
            if not policy.within_ceiling(catalogue, o.get("sensitivity"), ceiling):
                excluded["observations_sensitivity"] += 1
            elif not options.areas or o.get("functional_area") in options.areas:
                observations.append(o)
        included.append({**review, "answers": {**a, "observations": observations}})
    included.sort(key=lambda r: (r["answers"].get("deployment_end") or "", r["id"]))
    return included, {
        k: excluded[k] for k in ("consent", "sensitivity", "observations_sensitivity")
    }


def _observations(reviews: list[dict]) -> list[tuple[dict, dict]]:
    return [(r, o) for r in reviews for o in r["answers"].get("observations") or []]


def participation(reviews: list[dict]) -> dict:
    def count(key):
        counter = Counter(r["answers"].get(key) for r in reviews if r["answers"].get(key))
        return sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))

    return {
        "by_country": count("country"),
        "by_operation": count("operation"),
        "by_category": count("personnel_category"),
    }


def gender(reviews: list[dict], catalogue: Catalogue, year: int) -> list[dict]:
    """Share of women per personnel category against the UN target for ``year``.

    Only respondents who stated female or male count; categories without a target
    are listed without one.
    """
    targets = catalogue.reference["gender_parity_targets"]["targets"]
    year = min(max(year, 2018), 2028)
    stated = defaultdict(lambda: [0, 0])  # category -> [respondents, women]
    for r in reviews:
        sex = r["answers"].get("sex")
        if sex in ("female", "male"):
            counts = stated[r["answers"].get("personnel_category")]
            counts[0] += 1
            counts[1] += sex == "female"
    rows = []
    for choice in catalogue.choices["personnel_categories"].choices:
        category = choice["value"]
        if category not in stated:
            continue
        respondents, women = stated[category]
        target = targets.get(choice.get("gender_target") or "", {}).get(year)
        share = round(100 * women / respondents, 1)
        rows.append({
            "category": category, "respondents": respondents, "women": women, "share": share,
            "target": target, "gap": None if target is None else round(share - target, 1), "year": year,
        })  # fmt: skip
    return rows


def ratings(reviews: list[dict]) -> dict:
    """Mean 1-5 rating per phase (not-applicable answers left out), overall and by country."""

    def mean(values):
        return round(statistics.fmean(values), 2) if values else None

    by_phase, by_country = {}, defaultdict(dict)
    for phase in PHASES:
        values = [r["answers"].get(f"rating_{phase}") for r in reviews]
        numbers = [v for v in values if isinstance(v, int)]
        by_phase[phase] = {
            "mean": mean(numbers),
            "n": len(numbers),
            "not_applicable": values.count("na"),
        }
        groups = defaultdict(list)
        for r, v in zip(reviews, values, strict=True):
            if isinstance(v, int):
                groups[r["answers"]["country"]].append(v)
        for country, numbers_ in groups.items():
            by_country[country][phase] = mean(numbers_)
    rated = [(p, d["mean"]) for p, d in by_phase.items() if d["mean"] is not None]
    lowest = [p for p, _ in sorted(rated, key=lambda pm: (pm[1], PHASES.index(pm[0])))[:2]]
    return {"by_phase": by_phase, "by_country": dict(sorted(by_country.items())), "lowest": lowest}


def themes(reviews: list[dict]) -> dict:
    areas = defaultdict(lambda: {"issue": 0, "good_practice": 0})
    dotmlpfi = Counter()
    for _, o in _observations(reviews):
        areas[o["functional_area"]][o["kind"]] += 1
        dotmlpfi.update(o.get("dotmlpfi") or [])
    by_area = sorted(
        areas.items(), key=lambda kv: (-(kv[1]["issue"] + kv[1]["good_practice"]), kv[0])
    )
    return {
        "by_area": [
            {"area": a, **counts, "total": counts["issue"] + counts["good_practice"]}
            for a, counts in by_area
        ],
        "dotmlpfi": sorted(dotmlpfi.items(), key=lambda kv: (-kv[1], kv[0])),
    }


def _representative(items: list[tuple[dict, dict]]) -> dict:
    """The observation that speaks for a group: highest priority, then most recent."""
    review, obs = min(
        items,
        key=lambda ro: (
            PRIORITY.get(ro[1].get("priority"), 3),
            _negate(ro[0]["answers"].get("deployment_end") or ""),
            ro[1].get("id", ""),
        ),
    )
    return _annex_entry(review, obs)


def _negate(date: str) -> int:
    """A sort key that puts later ISO dates (YYYY-MM-DD) first."""
    return -int(date.replace("-", "")) if date else 0


def recurring_issues(reviews: list[dict]) -> list[dict]:
    """Issues of one functional area reported from two or more countries or operations."""
    groups = defaultdict(list)
    for review, obs in _observations(reviews):
        if obs["kind"] == "issue":
            groups[obs["functional_area"]].append((review, obs))
    found = []
    for area, items in groups.items():
        countries = sorted({r["answers"]["country"] for r, _ in items})
        operations = sorted({r["answers"]["operation"] for r, _ in items})
        if len(countries) >= 2 or len(operations) >= 2:
            found.append({"area": area, "count": len(items), "countries": countries, "operations": operations,
                          "representative": _representative(items)})  # fmt: skip
    return sorted(found, key=lambda f: (-f["count"], f["area"]))


def good_practices(reviews: list[dict]) -> list[dict]:
    groups = defaultdict(list)
    for review, obs in _observations(reviews):
        if obs["kind"] == "good_practice":
            groups[obs["functional_area"]].append((review, obs))
    found = [
        {
            "area": area,
            "count": len(items),
            "countries": sorted({r["answers"]["country"] for r, _ in items}),
            "representative": _representative(items),
        }  # fmt: skip
        for area, items in groups.items()
    ]
    return sorted(found, key=lambda f: (-f["count"], -len(f["countries"]), f["area"]))


def recommendations(reviews: list[dict]) -> dict:
    """Recommendations by who should act; those for training centres by module."""
    by_body = Counter()
    modules = defaultdict(list)
    for review, obs in _observations(reviews):
        by_body[obs["action_body"]] += 1
        if obs["action_body"] == "training_centre":
            modules[obs.get("training_module") or ""].append(_annex_entry(review, obs))
    for entries in modules.values():
        entries.sort(key=lambda e: (PRIORITY.get(e["priority"], 3), e["area"], e["id"]))
    return {
        "by_body": sorted(by_body.items(), key=lambda kv: (-kv[1], kv[0])),
        "training_modules": sorted(modules.items(), key=lambda kv: (-len(kv[1]), kv[0])),
    }


def _annex_entry(review: dict, obs: dict) -> dict:
    """One observation as the report shows it: never any personal field."""
    a = review["answers"]
    return {
        "id": obs.get("id", ""),
        "title": obs.get("title", ""),
        "kind": obs.get("kind"),
        "area": obs.get("functional_area"),
        "phase": obs.get("phase"),
        "priority": obs.get("priority"),
        "observation": obs.get("observation", ""),
        "discussion": obs.get("discussion", ""),
        "conclusion": obs.get("conclusion", ""),
        "recommendation": obs.get("recommendation", ""),
        "training_module": obs.get("training_module"),
        "country": a.get("country"),
        "operation": a.get("operation"),
        "date": a.get("deployment_end"),
    }


def annex(reviews: list[dict], limit: int) -> dict:
    """At most ``limit`` observations: high priority and most recent first, shown by area."""
    items = _observations(reviews)
    chosen = sorted(
        items,
        key=lambda ro: (
            PRIORITY.get(ro[1].get("priority"), 3),
            _negate(ro[0]["answers"].get("deployment_end") or ""),
            ro[1].get("id", ""),
        ),
    )[: max(limit, 0)]
    entries = sorted(
        (_annex_entry(r, o) for r, o in chosen), key=lambda e: (e["area"], e["date"] or "", e["id"])
    )
    return {
        "entries": entries,
        "total": len(items),
        "left_out": len(items) - len(entries),
        "limit": limit,
    }


def classification(reviews: list[dict], catalogue: Catalogue) -> str:
    """The most sensitive level of anything the reviews hold (their observations too)."""
    order = catalogue.choices["sensitivity"].values
    levels = [r["answers"].get("sensitivity") for r in reviews]
    levels += [o.get("sensitivity") for _, o in _observations(reviews)]
    known = [order.index(level) for level in levels if level in order]
    return order[max(known)] if known else order[0]


def build(reviews: list[dict], catalogue: Catalogue, options: ReportOptions) -> dict:
    """Every figure of the report, as plain data."""
    with paused_gc():
        return _build(reviews, catalogue, options)


def _build(reviews: list[dict], catalogue: Catalogue, options: ReportOptions) -> dict:
    included, excluded = select(reviews, catalogue, options)
    observations = _observations(included)
    year = int(options.date_to[:4]) if options.date_to[:4].isdigit() else 2028
    issues = recurring_issues(included)
    practices = good_practices(included)
    return {
        "options": options,
        "totals": {
            "reviews": len(included),
            "observations": len(observations),
            "issues": sum(1 for _, o in observations if o["kind"] == "issue"),
            "good_practices": sum(1 for _, o in observations if o["kind"] == "good_practice"),
            "countries": len({r["answers"]["country"] for r in included}),
            "operations": len({r["answers"]["operation"] for r in included}),
            "first": included[0]["answers"]["deployment_end"] if included else None,
            "last": included[-1]["answers"]["deployment_end"] if included else None,
        },
        "excluded": excluded,
        "classification": classification(included, catalogue),
        "top_issues": issues[:5],
        "top_practices": practices[:5],
        "participation": participation(included),
        "gender": gender(included, catalogue, year),
        "ratings": ratings(included),
        "themes": themes(included),
        "recurring": issues,
        "recommendations": recommendations(included),
        "annex": annex(included, options.annex_limit),
        "origins": sorted(
            {(r.get("origin") or {}).get("name") or r.get("node_id", "") for r in included}
        ),
    }
