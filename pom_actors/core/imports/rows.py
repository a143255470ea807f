"""From file records to contacts: the header mapped to contact fields and attributes, every
record checked with its line, good rows normalised by the rules of `core.contacts.parse_contact`
(the JSON endpoint's), bad rows kept for the rejects report.

A record is refused, with its line, the field at fault and why, for: a wrong number of
fields, a field over the size limit, a NUL byte, bytes the encoding cannot read, a missing
external_id, an invalid phone number or e-mail address, a row with no address at all, and a
second occurrence of an external_id in the same chunk under the `skip` policy is not a fault
(duplicates are counted by the store). A header with a duplicate or empty name fails the file.
"""
from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..contacts import EMAIL, MAX_EXTERNAL_ID
from ..windows import zone_info
from .phones import PhoneError, PhoneNormaliser, number_zones
from .reader import Dialect, FileError, records

CONTACT_FIELDS = ("external_id", "first_name", "last_name", "phone1", "phone2", "email", "timezones")
DEDUPE_KEYS = ("external_id", "phone1", "email")
POLICIES = ("update", "skip", "keep_both")
MAX_FIELD_CHARS = 4096
MAX_COLUMNS = 500
SYNONYMS = {
    "external_id": ("external_id", "externalid", "id", "contact_id", "customer_id", "account", "account_id"),
    "first_name": ("first_name", "firstname", "first", "given_name", "forename"),
    "last_name": ("last_name", "lastname", "last", "surname", "family_name"),
    "phone1": ("phone1", "phone", "phone_1", "telephone", "tel", "mobile", "phone_number"),
    "phone2": ("phone2", "phone_2", "alt_phone", "other_phone", "phone_alt"),
    "email": ("email", "e_mail", "email_address", "mail"),
    "timezones": ("timezone", "timezones", "time_zone", "tz"),
}
_BAD_CHAR = re.compile("[\x00\ud800-\udfff]")
_ZONE_SPLIT = re.compile(r"[\s,;]+")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Options:
    """What an import is told (all optional): see docs/imports.md."""
    encoding: str | None = None
    delimiter: str | None = None
    mapping: dict[str, str] = field(default_factory=dict)   # header name -> field / attributes.x / ignore
    region: str | None = None
    dedupe_key: str = "external_id"
    policy: str = "update"
    max_field_chars: int = MAX_FIELD_CHARS
    splitter: dict[str, Any] | None = None                  # core.imports.splitter's definition

    def __post_init__(self):
        if self.dedupe_key not in DEDUPE_KEYS:
            raise ValueError(f"dedupe_key must be one of {', '.join(DEDUPE_KEYS)}")
        if self.policy not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)}")
        if self.region is not None and not re.fullmatch(r"[A-Za-z]{2}", self.region):
            raise ValueError("region is a two-letter ISO 3166 code (US, GB, ...)")
        if not 1 <= self.max_field_chars <= 1_000_000:
            raise ValueError("max_field_chars must be between 1 and 1000000")
        if self.splitter is not None:
            from .splitter import parse_splitter           # it reads ROW_FIELDS from here
            parse_splitter(self.splitter)


def _norm(name: str) -> str:
    return re.sub(r"[\s\-.]+", "_", name.strip().lower())


def header_names(header: list[str], mapping: Mapping[str, str]) -> list[str]:
    """The column names of a header (FileError when one repeats or is empty, or when the
    mapping names a column the header lacks)."""
    names = [h.strip() for h in header]
    if names and names[0].startswith("\ufeff"):
        names[0] = names[0][1:]
    if len(names) > MAX_COLUMNS:
        raise FileError(f"the header has {len(names)} columns; at most {MAX_COLUMNS}")
    seen: dict[str, int] = {}
    for i, name in enumerate(names, start=1):
        if not name:
            raise FileError(f"header column {i} has no name")
        if _BAD_CHAR.search(name):
            raise FileError(f"header column {i} holds a NUL or undecodable character")
        if name.lower() in seen:
            raise FileError(f"duplicate header name {name!r} (columns {seen[name.lower()]} and {i})")
        seen[name.lower()] = i
    unknown = [m for m in mapping if m.strip().lower() not in seen]
    if unknown:
        raise FileError(f"the mapping names column(s) not in the header: {', '.join(map(repr, unknown))}")
    return names


def map_header(header: list[str], mapping: Mapping[str, str] | None = None) -> list[tuple[str, str] | None]:
    """Per column: ("field", name), ("attr", name) or None (ignored). FileError when a header
    name repeats or is empty, a mapping names an unknown column or field, or no column is the
    external_id."""
    mapping = dict(mapping or {})
    names = header_names(header, mapping)
    explicit = {k.strip().lower(): v.strip() for k, v in mapping.items()}
    by_synonym = {syn: f for f, syns in SYNONYMS.items() for syn in syns}
    out: list[tuple[str, str] | None] = []
    taken: set[str] = set()
    for name in names:
        target = explicit.get(name.lower())
        if target is None:
            guess = by_synonym.get(_norm(name))
            target = guess if guess and guess not in taken and guess not in explicit.values() \
                else f"attributes.{name}"
        if target in ("", "ignore", "-"):
            out.append(None)
        elif target.startswith("attributes."):
            attr = target[len("attributes."):]
            if not attr:
                raise FileError(f"column {name!r}: an attribute needs a name (attributes.<name>)")
            out.append(("attr", attr))
        elif target in CONTACT_FIELDS:
            if target in taken:
                raise FileError(f"two columns are mapped to {target!r}")
            taken.add(target)
            out.append(("field", target))
        else:
            raise FileError(f"column {name!r}: unknown field {target!r}; use one of "
                            f"{', '.join(CONTACT_FIELDS)}, attributes.<name> or ignore")
    if "external_id" not in taken:
        raise FileError("no column is the external_id (map one: {\"<column>\": \"external_id\"})")
    return out


ROW_FIELDS = ("line", "external_id", "first_name", "last_name", "phone1", "phone1_type", "phone2",
              "phone2_type", "email", "timezones", "attributes")


@dataclass
class Parsed:
    """One chunk: the good contacts (tuples of ROW_FIELDS) and the rejects, both in line order."""
    rows: list[tuple] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    rows_read: int = 0
    fast_phones: int = 0
    slow_phones: int = 0

    @property
    def contacts(self) -> list[dict[str, Any]]:
        """The good contacts as dicts (`core.contacts.parse_contact`'s, with `line`)."""
        return [{**dict(zip(ROW_FIELDS, row)), "timezones": list(row[9])} for row in self.rows]


class _Columns:
    """Where each contact field is in a record, and the attribute columns."""

    def __init__(self, columns: list[tuple[str, str] | None]):
        at = {target[1]: i for i, target in enumerate(columns) if target is not None and target[0] == "field"}
        self.external_id = at["external_id"]
        self.first_name, self.last_name = at.get("first_name"), at.get("last_name")
        self.phone1, self.phone2, self.email = at.get("phone1"), at.get("phone2"), at.get("email")
        self.timezones = at.get("timezones")
        self.attributes = [(i, target[1]) for i, target in enumerate(columns)
                           if target is not None and target[0] == "attr"]


def parse_records(recs: Iterable[tuple[int, list[str] | None, str]], columns: list[tuple[str, str] | None],
                  options: Options, phones: PhoneNormaliser | None = None) -> Parsed:
    """Check and normalise records (from `reader.records`): a good record becomes a row of
    ROW_FIELDS by the rules of `core.contacts.parse_contact` (the JSON endpoint's) without
    building its dicts; the unit tests hold both to the same answers."""
    phones = phones or PhoneNormaliser(options.region)
    fast0, slow0 = phones.fast, phones.slow
    out = Parsed()
    limit = options.max_field_chars
    at = _Columns(columns)
    for line, cells, fault in recs:
        out.rows_read += 1
        reject = record_fault(line, cells, fault, columns, limit)
        if reject is not None:
            out.rejects.append(reject)
            continue
        try:
            out.rows.append(_row(line, cells, at, phones))
        except ValueError as exc:
            out.rejects.append(_reject(line, exc.args[0], exc.args[1], cells))
    out.fast_phones, out.slow_phones = phones.fast - fast0, phones.slow - slow0
    return out


def record_fault(line: int, cells: list[str] | None, fault: str, columns: list[tuple[str, str] | None],
                 limit: int) -> dict[str, Any] | None:
    """The reject of a record that no file row may be (unreadable, a wrong number of fields, a
    field too long, a NUL or undecodable byte), or None: what contact and DNC files share."""
    if cells is None:
        return _reject(line, "", fault, [])
    if len(cells) != len(columns):
        return _reject(line, "", f"expected {len(columns)} fields, found {len(cells)}", cells)
    bad = _cell_fault(cells, columns, limit)
    return None if bad is None else _reject(line, bad[0], bad[1], cells)


def _row(line: int, cells: list[str], at: _Columns, phones: PhoneNormaliser) -> tuple:
    """One record as a row; ValueError(field, message) on its first fault, in parse_contact's order."""
    external_id = cells[at.external_id].strip()
    if not external_id:
        raise ValueError("external_id", "required")
    if len(external_id) > MAX_EXTERNAL_ID:
        raise ValueError("external_id", f"longer than {MAX_EXTERNAL_ID} characters")
    numbers: list = []
    for name, i in (("phone1", at.phone1), ("phone2", at.phone2)):
        raw = cells[i] if i is not None else ""
        if raw and raw.strip():
            try:
                numbers.append(phones(raw))
            except PhoneError as exc:
                raise ValueError(name, str(exc)) from None
        else:
            numbers.append(None)
    email = cells[at.email].strip().lower() if at.email is not None else ""
    if email and not EMAIL.match(email):
        raise ValueError("email", "not an e-mail address")
    zones = cells[at.timezones] if at.timezones is not None else ""
    zones = [z for z in _ZONE_SPLIT.split(zones) if z] if zones else []
    for zone in zones:
        if zone_info(zone) is None:
            raise ValueError("timezones", f"unknown time zone {zone!r}")
    phone1, phone2 = numbers
    if not (phone1 or phone2 or email):
        raise ValueError("phone1", "a contact needs at least one phone number or e-mail address")
    if not zones and (phone1 or phone2):
        zones = number_zones(phone1 or phone2)
    return (line, external_id, cells[at.first_name] if at.first_name is not None else "",
            cells[at.last_name] if at.last_name is not None else "",
            phone1.e164 if phone1 else None, phone1.type if phone1 else None,
            phone2.e164 if phone2 else None, phone2.type if phone2 else None, email or None, zones,
            {name: cells[i] for i, name in at.attributes if cells[i] != ""})


def _cell_fault(cells: list[str], columns, limit: int) -> tuple[str, str] | None:
    if max(map(len, cells), default=0) <= limit and _BAD_CHAR.search("".join(cells)) is None:
        return None                                   # the common case, at C speed
    for target, cell in zip(columns, cells):
        name = "" if target is None else (target[1] if target[0] == "field" else f"attributes.{target[1]}")
        if len(cell) > limit:
            return name, f"longer than {limit} characters"
        found = _BAD_CHAR.search(cell)
        if found is not None:
            if found.group() == "\x00":
                return name, "holds a NUL byte"
            return name, "holds bytes the file's encoding cannot read"
    return None


def _reject(line: int, where: str, reason: str, cells: list[str]) -> dict[str, Any]:
    raw = [_BAD_CHAR.sub(lambda m: "\\x%02x" % (ord(m.group()) & 0xFF) if ord(m.group()) >= 0xDC80
                         and ord(m.group()) <= 0xDCFF else "\\u%04x" % ord(m.group()), c[:1000])
           for c in cells[:MAX_COLUMNS]]
    return {"line": line, "field": where, "reason": reason, "raw": raw}


def parse_text(text: str, dialect: Dialect, columns, options: Options, first_line: int,
               phones: PhoneNormaliser | None = None) -> Parsed:
    """Parse a chunk of decoded text whose first record starts on `first_line`."""
    return parse_records(records(text, dialect, first_line), columns, options, phones)


def rejects_csv(rejects: Iterable[Mapping[str, Any]], header: bool = True) -> str:
    """Rejected rows ({line, field, reason, raw}) as CSV: `line, field, reason, row…` (the
    header first unless `header` is false), every cell `neutralise`d."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    if header:
        writer.writerow(["line", "field", "reason", "row"])
    for r in rejects:
        writer.writerow([r["line"], neutralise(r["field"]), neutralise(r["reason"]), *(neutralise(c) for c in r["raw"])])
    return out.getvalue()


def neutralise(cell: Any) -> str:
    """A cell safe to open in a spreadsheet: text starting with =, +, -, @ (or a tab or carriage
    return) gets a leading apostrophe, so it is shown, never evaluated as a formula."""
    text = "" if cell is None else str(cell)
    return "'" + text if text.startswith(_FORMULA) else text
