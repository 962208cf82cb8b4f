"""Form definitions: load ``forms/``, check them, compile them to marshmallow schemas.

A definition is data (``forms/<id>.v<version>.yaml``); the choice lists it refers to
are data too (``forms/choices/*.yaml``), and so is other reference data
(``forms/reference/*.yaml``). Everything is checked once at start-up: a bad file
stops the app with a :class:`DefinitionError` naming the file and the field.

Each definition compiles to two schemas. *Draft* checks types and limits only, so a
half-filled review can be saved. *Submit* adds required fields (when shown), the
repeat's minimum, and cross-field rules such as "end date after start date".
Both reject unknown fields.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    post_load,
    pre_load,
    validate,
    validates_schema,
)

LANGUAGES = ("es", "pt", "en", "fr")
FIELD_TYPES = (
    "text",
    "long_text",
    "integer",
    "date",
    "select_one",
    "select_many",
    "rating",
    "yes_no",
    "repeat",
)
# Limits for text fields that do not set their own.
DEFAULT_MAX_LENGTH = {"text": 200, "long_text": 8000}
UUID_RE = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
FORM_FILE_RE = re.compile(r"^(?P<id>[a-z0-9-]+)\.v(?P<version>[0-9]+)\.yaml$")

MESSAGES = {
    "required": _l("This field is required."),
    "text": _l("Enter text."),
    "too_long": _l("Enter at most {max} characters."),
    "integer": _l("Enter a whole number."),
    "range": _l("Enter a number from {min} to {max}."),
    "date": _l("Enter a valid date (YYYY-MM-DD)."),
    "choice": _l("Choose one of the options offered."),
    "choices": _l("Choose from the options offered."),
    "rating": _l("Choose a rating from 1 to 5, or not applicable."),
    "yes_no": _l("Answer yes or no."),
    "unknown": _l("This field is not part of the form."),
    "min_items": _l("Add at least {min}."),
    "max_items": _l("Add at most {max}."),
    "list": _l("Expected a list of entries."),
    "entry": _l("Expected an entry with fields."),
    "date_after": _l("Must be later than “{other}”."),
    "control": _l(
        "Remove the invisible control characters from this text (they often come with text "
        "pasted from another program)."
    ),
}
# Control characters other than tab, line feed and carriage return: they break exports
# (XLSX refuses them) and mean nothing to a reader.
CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


class DefinitionError(ValueError):
    """A form definition or choice list that cannot be used.

    :param file: the file at fault.
    :param where: the section, field or choice at fault (may be empty).
    :param problem: what is wrong with it.
    """

    def __init__(self, file: Path | str, where: str, problem: str) -> None:
        self.file, self.where, self.problem = str(file), where, problem
        place = f"{self.file}: {where}" if where else self.file
        super().__init__(f"{place}: {problem}")


@dataclass(frozen=True)
class ChoiceList:
    name: str
    choices: tuple[dict, ...]

    @property
    def values(self) -> list[str]:
        return [c["value"] for c in self.choices]

    def find(self, value: Any) -> dict | None:
        return next((c for c in self.choices if c["value"] == value), None)

    def rank(self, value: Any) -> int:
        """The value's place in the list (lists of levels run lowest first); an
        unknown value ranks above every known one."""
        values = self.values
        return values.index(value) if value in values else len(values)

    def label(self, value: Any, lang: str) -> str:
        choice = self.find(value)
        return localized(choice["label"], lang) if choice else str(value)


@dataclass
class FieldDef:
    name: str
    type: str
    label: dict[str, str]
    hint: dict[str, str] | None = None
    required: bool = False
    choices: str | None = None
    min: int | None = None
    max: int | None = None
    max_length: int | None = None
    min_items: int = 0
    max_items: int | None = None
    show_if: dict | None = None
    personal: bool = False
    default: Any = None
    fields: list[FieldDef] = field(default_factory=list)

    def label_in(self, lang: str) -> str:
        return localized(self.label, lang)

    def hint_in(self, lang: str) -> str:
        return localized(self.hint, lang) if self.hint else ""

    def is_shown(self, answers: dict) -> bool:
        """Whether the field applies, given the answers of its own scope."""
        if not self.show_if:
            return True
        return answers.get(self.show_if["field"]) in self.show_if["in"]


@dataclass
class Section:
    id: str
    label: dict[str, str]
    fields: list[FieldDef]
    hint: dict[str, str] | None = None


@dataclass
class FormDefinition:
    id: str
    version: int
    title: dict[str, str]
    sections: list[Section]
    rules: list[dict]
    file: str
    raw: dict = field(default_factory=dict, repr=False)
    choice_lists: dict[str, ChoiceList] = field(default_factory=dict, repr=False)
    schemas: dict[str, type[Schema]] = field(default_factory=dict, repr=False)
    is_canonical: Any = field(default=None, repr=False)

    @property
    def key(self) -> str:
        return f"{self.id}.v{self.version}"

    @property
    def fields(self) -> dict[str, FieldDef]:
        return {f.name: f for s in self.sections for f in s.fields}

    def repeat_fields(self) -> list[FieldDef]:
        return [f for f in self.fields.values() if f.type == "repeat"]

    def personal_fields(self) -> list[str]:
        return [f.name for f in self.fields.values() if f.personal]

    def defaults(self) -> dict[str, Any]:
        return {f.name: f.default for f in self.fields.values() if f.default is not None}

    def embedded(self) -> dict:
        """The definition and the choice lists it uses, as a bundle carries them."""
        return {
            "definition": self.raw,
            "choices": {
                n: {"name": n, "choices": list(c.choices)} for n, c in self.choice_lists.items()
            },
        }

    def digest(self) -> str:
        """sha256 of :meth:`embedded`: equal digests, identical definitions."""
        return hashlib.sha256(
            orjson.dumps(self.embedded(), option=orjson.OPT_SORT_KEYS)
        ).hexdigest()

    def validate(self, answers: Any, mode: str = "draft") -> dict:
        """Check answers and return them cleaned (JSON-ready, hidden fields dropped).

        :param mode: ``"draft"`` (types and limits) or ``"submit"`` (everything).
        :raises ValidationError: ``.messages`` maps each field to its problems.
        """
        schema = self.schemas[mode]()
        return schema.dump(schema.load(answers))


#: Bounds on a form definition received in a bundle (``docs/bundle-format.md``).
MAX_RECEIVED_FORM_BYTES = 256 * 2**10  # the embedded definition and choices, as JSON
MAX_RECEIVED_FORM_FIELDS = 400  # every field, those inside repeat groups included
MAX_RECEIVED_CHOICE_LISTS = 64
MAX_RECEIVED_CHOICES = 5000  # all the lists together
MAX_FORM_VERSION = 1_000_000
RECEIVED_FORM_ID = re.compile(r"^[a-z0-9-]{1,64}$")


@dataclass
class Catalogue:
    """Every form definition, choice list and reference table of the node.

    ``forms`` holds the node's own definitions (its ``forms/`` folder). Definitions
    received in bundles live in a namespace of their own: they are found by
    :meth:`get` for the reviews that use them, never shadow a key of ``forms``, and
    never count for :meth:`latest` (the form of new reviews).
    """

    forms: dict[str, FormDefinition]
    choices: dict[str, ChoiceList]
    reference: dict[str, dict]
    #: where definitions received in bundles are kept (``Store.list_received_forms``);
    #: any process may have received one, so a miss looks there before failing.
    received: Callable[[], dict[str, dict]] | None = field(default=None, repr=False)
    #: received definitions compiled so far (on first use, never at start-up).
    received_forms: dict[str, FormDefinition] = field(default_factory=dict, repr=False)

    def get(self, form_id: str, version: int) -> FormDefinition:
        form = self.find(f"{form_id}.v{version}")
        if form is None:
            raise LookupError(f"unknown form {form_id} version {version}")
        return form

    def find(self, key: str) -> FormDefinition | None:
        """The node's own definition of ``key``, else a received one, else None."""
        if key in self.forms:
            return self.forms[key]
        if key not in self.received_forms and self.received is not None:
            embedded = self.received().get(key)
            if embedded is not None:
                self.received_forms[key] = load_embedded(embedded, f"received form {key}")
        return self.received_forms.get(key)

    def refresh(self) -> None:
        """Forget nothing, compile nothing: received definitions are looked up on a
        miss (:meth:`find`), so start-up does not grow with what was received."""

    def add_received(self, form: FormDefinition) -> None:
        """Remember a definition just stored as received (never one of ``forms``)."""
        if form.key not in self.forms:
            self.received_forms.setdefault(form.key, form)

    def latest(self, form_id: str) -> FormDefinition:
        """The highest version of the node's own definitions: the form of new reviews.
        Received definitions never count, whatever their version."""
        versions = [f for f in self.forms.values() if f.id == form_id]
        if not versions:
            raise LookupError(f"unknown form {form_id}")
        return max(versions, key=lambda f: f.version)

    def label(self, list_name: str, value: Any, lang: str) -> str:
        return self.choices[list_name].label(value, lang)

    def check_received(self, embedded: dict, source: str) -> FormDefinition:
        """A definition that came inside a bundle, checked like a file and against the
        bounds above: this node's copy when it has the same version (own or received)
        and it is identical, else the new definition (not added here).

        :raises DefinitionError: it is broken, too large, or differs from this node's
            copy of the same form version.
        """
        _check_received_size(embedded, source)
        form = load_embedded(embedded, source)
        if not RECEIVED_FORM_ID.match(form.id) or not 1 <= form.version <= MAX_FORM_VERSION:
            raise DefinitionError(
                source, "id/version",
                f"needs an id of 1-64 letters a-z, digits or '-' and a version from 1 to {MAX_FORM_VERSION}",
            )  # fmt: skip
        known = self.find(form.key)
        if known is None:
            return form
        if known.digest() != form.digest():
            raise DefinitionError(
                source, form.key, "differs from this node's copy of the same version"
            )
        return known


def _check_received_size(embedded: Any, source: str) -> None:
    """Refuse a received definition beyond the bounds before compiling it (compiling
    tens of thousands of fields takes seconds and hundreds of MB)."""
    size = len(orjson.dumps(embedded))
    if size > MAX_RECEIVED_FORM_BYTES:
        raise DefinitionError(
            source, "", f"is {size // 1024} KB; at most {MAX_RECEIVED_FORM_BYTES // 1024} KB"
        )
    if not isinstance(embedded, dict):
        return  # load_embedded says what is wrong
    count, stack = 0, []
    definition = embedded.get("definition")
    if isinstance(definition, dict) and isinstance(definition.get("sections"), list):
        stack = [s.get("fields") for s in definition["sections"] if isinstance(s, dict)]
    while stack:
        fdefs = stack.pop()
        if isinstance(fdefs, list):
            count += len(fdefs)
            stack.extend(f.get("fields") for f in fdefs if isinstance(f, dict))
        if count > MAX_RECEIVED_FORM_FIELDS:
            raise DefinitionError(source, "", f"has more than {MAX_RECEIVED_FORM_FIELDS} fields")
    lists = embedded.get("choices")
    if isinstance(lists, dict):
        choices = sum(len(c.get("choices") or ()) for c in lists.values() if isinstance(c, dict))
        if len(lists) > MAX_RECEIVED_CHOICE_LISTS or choices > MAX_RECEIVED_CHOICES:
            raise DefinitionError(
                source, "choices",
                f"at most {MAX_RECEIVED_CHOICE_LISTS} lists of {MAX_RECEIVED_CHOICES} choices in all",
            )  # fmt: skip


def localized(texts: dict[str, str] | None, lang: str) -> str:
    """The text in ``lang``, falling back to English, then to any language."""
    if not texts:
        return ""
    return texts.get(lang) or texts.get("en") or next(iter(texts.values()))


def current_language() -> str:
    locale = get_locale()
    return locale.language if locale else "es"


# -- loading and checking ------------------------------------------------------------


def load_catalogue(folder: str | Path) -> Catalogue:
    """Load and check every definition, choice list and reference table.

    :raises DefinitionError: naming the file and field at fault.
    """
    folder = Path(folder)
    choices = {}
    for path in sorted((folder / "choices").glob("*.yaml")):
        lst = _check_choice_list(path, _read_yaml(path))
        choices[lst.name] = lst
    reference = {p.stem: _read_yaml(p) for p in sorted((folder / "reference").glob("*.yaml"))}
    forms = {}
    for path in sorted(folder.glob("*.yaml")):
        form = load_definition(path, choices)
        forms[form.key] = form
    if not forms:
        raise DefinitionError(folder, "", "no form definitions (*.vN.yaml) found")
    return Catalogue(forms=forms, choices=choices, reference=reference)


def load_definition(path: Path, choices: dict[str, ChoiceList]) -> FormDefinition:
    """Load one definition file, check it against the choice lists and compile it."""
    match = FORM_FILE_RE.match(path.name)
    if not match:
        raise DefinitionError(path, "", "file name must look like <form-id>.v<version>.yaml")
    raw = _read_yaml(path)
    if isinstance(raw, dict) and (
        raw.get("id") != match["id"] or raw.get("version") != int(match["version"])
    ):
        raise DefinitionError(path, "id/version", "must match the file name")
    return build_definition(raw, path, choices)


def load_embedded(embedded: Any, source: str) -> FormDefinition:
    """A definition and its choice lists as a bundle embeds them (see :meth:`embedded`)."""
    if not isinstance(embedded, dict) or set(embedded) != {"definition", "choices"}:
        raise DefinitionError(
            source, "", "an embedded form needs exactly 'definition' and 'choices'"
        )
    if not isinstance(embedded["choices"], dict):
        raise DefinitionError(source, "choices", "expected a mapping of choice lists")
    choices = {
        name: _check_choice_list(Path(f"{source}#{name}"), raw, name)
        for name, raw in embedded["choices"].items()
    }
    return build_definition(embedded["definition"], source, choices)


def build_definition(raw: Any, path: Path | str, choices: dict[str, ChoiceList]) -> FormDefinition:
    """Check a parsed definition and compile its schemas and canonical check."""
    if not isinstance(raw, dict):
        raise DefinitionError(path, "", "expected a mapping at the top level")
    _check_keys(path, "", raw, {"id", "version", "title", "sections", "rules"})
    if not isinstance(raw.get("id"), str) or not isinstance(raw.get("version"), int):
        raise DefinitionError(path, "id/version", "need a text id and a whole-number version")
    _check_texts(path, "title", raw.get("title"))
    if not isinstance(raw.get("sections"), list) or not raw["sections"]:
        raise DefinitionError(path, "sections", "expected a non-empty list")
    sections, names = [], set()
    for sec in raw["sections"]:
        if not isinstance(sec, dict):
            raise DefinitionError(path, "sections", "each section must be a mapping")
        _check_keys(path, f"section {sec.get('id')}", sec, {"id", "label", "hint", "fields"})
        _check_texts(path, f"section {sec.get('id')}", sec.get("label"))
        flds = _check_fields(
            path, sec.get("fields"), choices, names, scope=f"section {sec.get('id')}"
        )
        sections.append(
            Section(id=sec["id"], label=sec["label"], hint=sec.get("hint"), fields=flds)
        )
    form = FormDefinition(
        id=raw["id"],
        version=raw["version"],
        title=raw["title"],
        sections=sections,
        rules=raw.get("rules") or [],
        file=str(path),
        raw=raw,
    )
    _check_show_if(path, list(form.fields.values()))
    _check_rules(path, form)
    used = {f.choices for f in _walk(form.fields.values()) if f.choices}
    form.choice_lists = {name: choices[name] for name in sorted(used)}
    form.schemas = {mode: compile_schema(form, mode, choices) for mode in ("draft", "submit")}
    form.is_canonical = compile_canonical_check(form, choices)
    return form


def _walk(fdefs):
    for fdef in fdefs:
        yield fdef
        yield from _walk(fdef.fields)


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DefinitionError(path, "", f"not valid YAML: {exc}") from None


def _check_keys(path: Path, where: str, raw: dict, allowed: set[str]) -> None:
    extra = sorted(set(raw) - allowed)
    if extra:
        raise DefinitionError(path, where, f"unknown key(s): {', '.join(extra)}")


def _check_texts(path: Path, where: str, texts: Any) -> None:
    if not isinstance(texts, dict):
        raise DefinitionError(path, where, f"label must give {', '.join(LANGUAGES)}")
    missing = [lang for lang in LANGUAGES if not str(texts.get(lang) or "").strip()]
    if missing:
        raise DefinitionError(path, where, f"label missing in: {', '.join(missing)}")
    # An unquoted comma in a YAML {es: ..., pt: ...} mapping splits a label silently.
    extra = [str(key) for key in texts if key not in LANGUAGES]
    if extra:
        raise DefinitionError(
            path, where, f"label has unexpected keys {extra} (quote texts with commas)"
        )


def _check_choice_list(path: Path, raw: Any, name: str | None = None) -> ChoiceList:
    name = name or path.stem
    if not isinstance(raw, dict) or raw.get("name") != name:
        raise DefinitionError(path, "name", f"must be {name!r}, as the file name")
    items = raw.get("choices")
    if not isinstance(items, list) or not items:
        raise DefinitionError(path, "choices", "expected a non-empty list")
    seen = set()
    for item in items:
        if not isinstance(item, dict) or "value" not in item:
            raise DefinitionError(path, "choices", "each choice needs a value")
        value = item["value"]
        if value in seen:
            raise DefinitionError(path, f"choice {value}", "value appears twice")
        seen.add(value)
        _check_texts(path, f"choice {value}", item.get("label"))
    return ChoiceList(name=raw["name"], choices=tuple(items))


FIELD_KEYS = {
    "name", "type", "label", "hint", "required", "choices", "min", "max", "max_length",
    "min_items", "max_items", "show_if", "personal", "default", "fields",
}  # fmt: skip


def _check_fields(
    path: Path, raw_fields: Any, choices: dict, names: set[str], scope: str
) -> list[FieldDef]:
    if not isinstance(raw_fields, list) or not raw_fields:
        raise DefinitionError(path, scope, "expected a non-empty list of fields")
    result = []
    for raw in raw_fields:
        name = raw.get("name") if isinstance(raw, dict) else None
        if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise DefinitionError(path, scope, f"bad field name {name!r} (use a-z, 0-9, _)")
        where = f"field {name}"
        if name in names or name == "id":
            raise DefinitionError(path, where, "duplicate field name")
        names.add(name)
        _check_keys(path, where, raw, FIELD_KEYS)
        for key in ("min", "max", "max_length", "min_items", "max_items"):
            if key in raw and (not isinstance(raw[key], int) or isinstance(raw[key], bool)):
                raise DefinitionError(path, where, f"{key} must be a whole number")
        for key in ("required", "personal"):
            if key in raw and not isinstance(raw[key], bool):
                raise DefinitionError(path, where, f"{key} must be true or false")
        kind = raw.get("type")
        if kind not in FIELD_TYPES:
            raise DefinitionError(path, where, f"unknown field type {kind!r}")
        _check_texts(path, where, raw.get("label"))
        if raw.get("hint") is not None:
            _check_texts(path, f"{where} hint", raw["hint"])
        if kind in ("select_one", "select_many"):
            if raw.get("choices") not in choices:
                raise DefinitionError(path, where, f"choice list {raw.get('choices')!r} not found")
        elif "choices" in raw:
            raise DefinitionError(path, where, "only select fields take choices")
        sub = []
        if kind == "repeat":
            sub = _check_fields(path, raw.get("fields"), choices, set(), scope=where)
        fdef = FieldDef(
            name=name,
            type=kind,
            label=raw["label"],
            hint=raw.get("hint"),
            required=bool(raw.get("required", False)),
            choices=raw.get("choices"),
            min=raw.get("min"),
            max=raw.get("max"),
            max_length=raw.get("max_length", DEFAULT_MAX_LENGTH.get(kind)),
            min_items=raw.get("min_items", 0),
            max_items=raw.get("max_items"),
            show_if=raw.get("show_if"),
            personal=bool(raw.get("personal", False)),
            default=raw.get("default"),
            fields=sub,
        )
        default_ok = kind != "select_one" or fdef.default in choices[fdef.choices].values
        if fdef.default is not None and not default_ok:
            raise DefinitionError(path, where, f"default {fdef.default!r} is not a choice")
        result.append(fdef)
    return result


def _check_show_if(path: Path, scope: list[FieldDef]) -> None:
    """show_if may only refer to another field of the same scope (form or repeat)."""
    by_name = {f.name: f for f in scope}
    for fdef in scope:
        if fdef.type == "repeat":
            _check_show_if(path, fdef.fields)
        cond = fdef.show_if
        if cond is None:
            continue
        where = f"field {fdef.name}"
        if not isinstance(cond, dict) or set(cond) != {"field", "in"}:
            raise DefinitionError(path, where, "show_if needs exactly 'field' and 'in'")
        if cond["field"] not in by_name or cond["field"] == fdef.name:
            raise DefinitionError(path, where, f"show_if refers to unknown field {cond['field']!r}")
        if not isinstance(cond["in"], list) or not cond["in"]:
            raise DefinitionError(path, where, "show_if 'in' must be a non-empty list")


def _check_rules(path: Path, form: FormDefinition) -> None:
    flds = form.fields
    for rule in form.rules:
        if rule.get("rule") != "date_after":
            raise DefinitionError(path, "rules", f"unknown rule {rule.get('rule')!r}")
        for key in ("field", "other"):
            name = rule.get(key)
            if name not in flds or flds[name].type != "date":
                raise DefinitionError(path, "rules", f"date_after: {name!r} is not a date field")


# -- compiling to marshmallow ----------------------------------------------------------


class Rating(fields.Field):
    """1 to 5, or "na" for not applicable."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str) and value.strip().lower() == "na":
            return "na"
        if isinstance(value, bool):
            raise ValidationError(MESSAGES["rating"])
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise ValidationError(MESSAGES["rating"]) from None
        if str(number) != str(value).strip() or not 1 <= number <= 5:
            raise ValidationError(MESSAGES["rating"])
        return number


class StrictDate(fields.Date):
    """An ISO date that a person could have meant (1940 to 2100)."""

    def _deserialize(self, value, attr, data, **kwargs):
        date = super()._deserialize(value, attr, data, **kwargs)
        if not dt.date(1940, 1, 1) <= date <= dt.date(2100, 12, 31):
            raise ValidationError(MESSAGES["date"])
        return date


class _AnswersSchema(Schema):
    class Meta:
        unknown = RAISE

    error_messages = {"unknown": MESSAGES["unknown"]}


def _compile_field(fdef: FieldDef, mode: str, choices: dict[str, ChoiceList]) -> fields.Field:
    common = {"allow_none": False}
    if fdef.type in ("text", "long_text"):
        return fields.String(
            validate=[
                validate.Length(max=fdef.max_length, error=MESSAGES["too_long"]),
                _no_control_characters,
            ],
            error_messages={"invalid": MESSAGES["text"], "invalid_utf8": MESSAGES["text"]},
            **common,
        )
    if fdef.type == "integer":
        bounds = validate.Range(min=fdef.min, max=fdef.max, error=MESSAGES["range"])
        return fields.Integer(
            validate=bounds if fdef.min is not None or fdef.max is not None else None,
            error_messages={"invalid": MESSAGES["integer"], "too_large": MESSAGES["integer"]},
            **common,
        )
    if fdef.type == "date":
        return StrictDate(error_messages={"invalid": MESSAGES["date"]}, **common)
    if fdef.type == "select_one":
        return fields.String(
            validate=validate.OneOf(choices[fdef.choices].values, error=MESSAGES["choice"]),
            error_messages={"invalid": MESSAGES["choice"]},
            **common,
        )
    if fdef.type == "select_many":
        item = fields.String(
            validate=validate.OneOf(choices[fdef.choices].values, error=MESSAGES["choices"]),
            error_messages={"invalid": MESSAGES["choices"]},
        )
        return fields.List(item, error_messages={"invalid": MESSAGES["choices"]}, **common)
    if fdef.type == "rating":
        return Rating(**common)
    if fdef.type == "yes_no":
        return fields.Boolean(error_messages={"invalid": MESSAGES["yes_no"]}, **common)
    if fdef.type == "repeat":
        item_schema = _schema_class(f"{fdef.name}_item", fdef.fields, mode, choices, [], item=True)
        return fields.List(
            fields.Nested(item_schema, error_messages={"type": MESSAGES["entry"]}),
            validate=validate.Length(max=fdef.max_items, error=MESSAGES["max_items"])
            if fdef.max_items
            else None,
            error_messages={"invalid": MESSAGES["list"]},
            **common,
        )
    raise AssertionError(fdef.type)  # _check_fields rejected every other type


def _no_control_characters(value: str) -> None:
    if CONTROL_RE.search(value):
        raise ValidationError(str(MESSAGES["control"]))


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def _schema_class(
    name: str,
    fdefs: list[FieldDef],
    mode: str,
    choices: dict[str, ChoiceList],
    rules: list[dict],
    item: bool = False,
) -> type[Schema]:
    attrs: dict[str, Any] = {f.name: _compile_field(f, mode, choices) for f in fdefs}
    if item:
        attrs["id"] = fields.String(validate=validate.Regexp(UUID_RE))
    labels = {f.name: f for f in fdefs}

    @pre_load
    def tidy(self, data, **kwargs):
        # Blank answers are no answers: a cleared field is simply absent.
        if not isinstance(data, dict):
            return data
        tidied = {}
        for key, value in data.items():
            if isinstance(value, str):
                value = value.strip()
            if not _is_empty(value):
                tidied[key] = value
        return tidied

    @post_load
    def drop_hidden(self, data, **kwargs):
        # Answers to a question that no longer applies are not kept.
        return {k: v for k, v in data.items() if k not in labels or labels[k].is_shown(data)}

    attrs.update(tidy=tidy, drop_hidden=drop_hidden)

    if mode == "submit":

        @validates_schema(pass_original=True, skip_on_field_errors=False)
        def check_complete(self, data, original_data, **kwargs):
            errors: dict[str, list] = {}
            original = original_data if isinstance(original_data, dict) else {}
            for fdef in fdefs:
                if not fdef.is_shown(data):
                    continue
                value = original.get(fdef.name)
                answered = not _is_empty(value.strip() if isinstance(value, str) else value)
                if answered and fdef.name not in data:
                    continue  # already reported as invalid
                if fdef.type == "repeat" and fdef.min_items:
                    count = len(value) if isinstance(value, list) else 0
                    if count < fdef.min_items:
                        errors[fdef.name] = [MESSAGES["min_items"].format(min=fdef.min_items)]
                elif fdef.required and not answered:
                    errors[fdef.name] = [MESSAGES["required"]]
            for rule in rules:
                later, earlier = data.get(rule["field"]), data.get(rule["other"])
                if later and earlier and later <= earlier:
                    other = labels[rule["other"]].label_in(current_language())
                    errors.setdefault(rule["field"], []).append(
                        MESSAGES["date_after"].format(other=other)
                    )
            if errors:
                raise ValidationError(errors)

        attrs["check_complete"] = check_complete

    return _AnswersSchema.from_dict(attrs, name=f"{name}_{mode}")


def compile_schema(form: FormDefinition, mode: str, choices: dict[str, ChoiceList]) -> type[Schema]:
    """The marshmallow schema of a definition's answers, for ``draft`` or ``submit``."""
    all_fields = [f for s in form.sections for f in s.fields]
    return _schema_class(form.key, all_fields, mode, choices, form.rules)


# -- the canonical check -------------------------------------------------------------
#
# Bulk import validates tens of thousands of records; marshmallow takes ~0.7 ms each.
# A record that left another node was dumped by the same schema, so it must already be
# in canonical form: exactly what ``validate(answers, "submit")`` returns. This check
# answers that question directly, in plain Python, ~20x faster. tests/test_formdefs.py
# holds it to the same verdict as the schema on valid and broken records alike.

_DATE_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_UUID_RE = re.compile(UUID_RE)


def _value_check(fdef: FieldDef, choices: dict[str, ChoiceList]):
    if fdef.type in ("text", "long_text"):
        limit = fdef.max_length

        def check(v):
            return (
                type(v) is str
                and v != ""
                and len(v) <= limit
                and v == v.strip()
                and not CONTROL_RE.search(v)
            )

    elif fdef.type == "integer":
        low = -(2**63) if fdef.min is None else fdef.min
        high = 2**63 if fdef.max is None else fdef.max

        def check(v):
            return type(v) is int and low <= v <= high

    elif fdef.type == "date":

        def check(v):
            if type(v) is not str or not _DATE_RE.match(v):
                return False
            try:
                return dt.date(1940, 1, 1) <= dt.date.fromisoformat(v) <= dt.date(2100, 12, 31)
            except ValueError:
                return False

    elif fdef.type == "select_one":
        allowed = frozenset(choices[fdef.choices].values)

        def check(v):
            return type(v) is str and v in allowed

    elif fdef.type == "select_many":
        allowed = frozenset(choices[fdef.choices].values)

        def check(v):
            return type(v) is list and v != [] and all(type(x) is str and x in allowed for x in v)

    elif fdef.type == "rating":

        def check(v):
            return v == "na" if type(v) is str else type(v) is int and 1 <= v <= 5

    elif fdef.type == "yes_no":

        def check(v):
            return type(v) is bool

    else:  # repeat
        item_check = _record_check(fdef.fields, choices, [], item=True)
        limit = fdef.max_items or 2**31

        def check(v):
            return type(v) is list and v != [] and len(v) <= limit and all(item_check(i) for i in v)

    return check


def _record_check(
    fdefs: list[FieldDef], choices: dict[str, ChoiceList], rules: list[dict], item=False
):
    checks = {f.name: _value_check(f, choices) for f in fdefs}
    if item:
        checks["id"] = lambda v: type(v) is str and _UUID_RE.match(v) is not None
    conditional = [f for f in fdefs if f.show_if]
    required = [f.name for f in fdefs if f.required and not f.show_if]
    minimums = [(f.name, f.min_items) for f in fdefs if f.type == "repeat" and f.min_items]

    def check(record) -> bool:
        if type(record) is not dict:
            return False
        for key, value in record.items():
            test = checks.get(key)
            if test is None or not test(value):
                return False
        for fdef in conditional:
            shown = record.get(fdef.show_if["field"]) in fdef.show_if["in"]
            if not shown and fdef.name in record:
                return False  # an answer to a question that does not apply
            if shown and fdef.required and fdef.name not in record:
                return False
        for name in required:
            if name not in record:
                return False
        for name, least in minimums:
            if len(record.get(name, ())) < least:
                return False
        for rule in rules:
            later, earlier = record.get(rule["field"]), record.get(rule["other"])
            if later is not None and earlier is not None and later <= earlier:
                return False
        return True

    return check


def compile_canonical_check(form: FormDefinition, choices: dict[str, ChoiceList]):
    """A function telling whether answers are complete, valid and in canonical form."""
    return _record_check([f for s in form.sections for f in s.fields], choices, form.rules)


# -- HTML forms ----------------------------------------------------------------------


def input_name(field_name: str, index: int | None = None, parent: str | None = None) -> str:
    """The HTML input name of a field: ``country`` or ``observations-0-title``."""
    return field_name if parent is None else f"{parent}-{index}-{field_name}"


def answers_from_form(form: FormDefinition, data) -> dict:
    """Turn posted HTML form data (a MultiDict) into an answers payload.

    Unknown inputs are carried over so that the schema rejects them.
    """
    answers: dict[str, Any] = {}
    known = form.fields
    repeats = {f.name: f for f in form.repeat_fields()}
    items: dict[str, dict[int, dict]] = {name: {} for name in repeats}
    for key in data:
        parts = key.split("-")
        if len(parts) == 3 and parts[0] in repeats and parts[1].isdigit():
            parent, index, name = parts[0], int(parts[1]), parts[2]
            sub = {f.name: f for f in repeats[parent].fields}
            many = name in sub and sub[name].type == "select_many"
            items[parent].setdefault(index, {})[name] = data.getlist(key) if many else data[key]
        elif key in known and known[key].type not in ("repeat",):
            answers[key] = data.getlist(key) if known[key].type == "select_many" else data[key]
        elif key not in ("csrf_token", "action") and not key.startswith("_"):
            answers[key] = data[key]
    for parent, by_index in items.items():
        if by_index:
            answers[parent] = [by_index[i] for i in sorted(by_index)]
    return answers


def flatten_errors(messages: dict, parent: str | None = None) -> dict[str, list[str]]:
    """marshmallow's nested error dict, keyed by HTML input name instead."""
    flat: dict[str, list[str]] = {}
    for key, value in messages.items():
        if isinstance(value, dict) and parent is None:
            # A repeat: {index: {field: [...]}} or {"_schema"...}
            for index, sub in value.items():
                if isinstance(sub, dict):
                    for name, msgs in flatten_errors(sub).items():
                        flat[input_name(name, index, key)] = msgs
                else:
                    flat.setdefault(key, []).extend(str(m) for m in _as_list(sub))
        else:
            flat.setdefault(str(key), []).extend(str(m) for m in _as_list(value))
    return flat


def _as_list(value: Any) -> list:
    if isinstance(value, dict):
        return [m for v in value.values() for m in _as_list(v)]
    return value if isinstance(value, list) else [value]


def display_value(fdef: FieldDef, value: Any, catalogue: Catalogue, lang: str) -> str:
    """An answer as a reader should see it, in ``lang`` (needs an active locale for
    "not applicable", "yes", "no" and dates)."""
    from flask_babel import format_date, gettext

    if value in (None, "", []):
        return "—"
    if fdef.type == "select_one":
        return catalogue.label(fdef.choices, value, lang)
    if fdef.type == "select_many":
        return ", ".join(catalogue.label(fdef.choices, v, lang) for v in value)
    if fdef.type == "rating":
        return gettext("Not applicable") if value == "na" else f"{value} / 5"
    if fdef.type == "yes_no":
        return gettext("Yes") if value else gettext("No")
    if fdef.type == "date":
        return format_date(dt.date.fromisoformat(value), "medium")
    return str(value)


def describe_input(form: FormDefinition, name: str, lang: str) -> str:
    """A person's name for an input: "Deploying country", "Observation 2 — Title"."""
    flds = form.fields
    parts = name.split("-")
    if len(parts) == 3 and parts[0] in flds and parts[1].isdigit():
        repeat = flds[parts[0]]
        sub = {f.name: f for f in repeat.fields}.get(parts[2])
        label = sub.label_in(lang) if sub else parts[2]
        return f"{repeat.label_in(lang)} {int(parts[1]) + 1} — {label}"
    return flds[name].label_in(lang) if name in flds else name
