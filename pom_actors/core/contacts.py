"""Contact rows from users: validated and normalised, each fault named by line and field.

Phones become E.164 (a number without a country prefix is read in `default_region`), e-mail
addresses are lower-cased, explicit time zones must be IANA names. A bad row never stops the
good ones (principle 7): `parse_contacts` returns both.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .attributes import AttributesRefused, check_whole
from .imports.phones import PhoneError, PhoneNormaliser, slow_phone

FIELDS = ("external_id", "first_name", "last_name", "phone1", "phone2", "email", "timezones", "attributes")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_EXTERNAL_ID = 200          # characters; longer ids are refused
MAX_NAME_CHARS = 1000          # a first or last name
MAX_ADDRESS_CHARS = 320        # a phone number or e-mail address as sent (the longest e-mail address)
MAX_TIMEZONES = 10             # explicit time zones of a contact


class ContactRowError(ValueError):
    """Some rows were refused; `errors` lists {line, field, message}, `imported` the good rows."""

    def __init__(self, errors: list[dict[str, Any]], imported: int):
        super().__init__(f"{len(errors)} contact row(s) refused")
        self.errors = errors
        self.imported = imported


def normalise_phone(raw: str, default_region: str | None = None) -> str:
    """E.164 form of a phone number; ValueError saying why it is not one."""
    return slow_phone(raw, default_region).e164


def parse_contact(row: Mapping[str, Any], default_region: str | None = None,
                  phones: PhoneNormaliser | None = None) -> dict[str, Any]:
    """One normalised contact; ValueError(field, message) on the first fault. With `phones`
    (a PhoneNormaliser of the same region, caching by number prefix) numbers are read fast,
    and each number's line type is kept as `phone1_type` / `phone2_type`."""
    unknown = set(row) - set(FIELDS)
    if unknown:
        raise ValueError(sorted(unknown)[0], "unknown field (custom data goes in 'attributes')")
    for name in ("first_name", "last_name", "phone1", "phone2", "email"):
        bound = MAX_NAME_CHARS if name.endswith("_name") else MAX_ADDRESS_CHARS
        if len(str(row.get(name) or "")) > bound:
            raise ValueError(name, f"longer than {bound} characters")
    external_id = str(row.get("external_id") or "").strip()
    if not external_id:
        raise ValueError("external_id", "required")
    if len(external_id) > MAX_EXTERNAL_ID:
        raise ValueError("external_id", f"longer than {MAX_EXTERNAL_ID} characters")
    out: dict[str, Any] = {"external_id": external_id,
                           "first_name": str(row.get("first_name") or ""),
                           "last_name": str(row.get("last_name") or "")}
    for name in ("phone1", "phone2"):
        raw = row.get(name)
        if raw and str(raw).strip():
            try:
                phone = phones(str(raw)) if phones is not None else slow_phone(str(raw), default_region)
            except PhoneError as exc:
                raise ValueError(name, str(exc)) from None
            out[name], out[name + "_type"] = phone.e164, phone.type
        else:
            out[name] = out[name + "_type"] = None
    email = str(row.get("email") or "").strip().lower()
    if email and not EMAIL.match(email):
        raise ValueError("email", "not an e-mail address")
    out["email"] = email or None
    zones = row.get("timezones") or []
    zones = [zones] if isinstance(zones, str) else list(zones)
    if len(zones) > MAX_TIMEZONES:
        raise ValueError("timezones", f"at most {MAX_TIMEZONES} time zones ({len(zones)} sent)")
    for zone in zones:
        if not isinstance(zone, str) or len(zone) > MAX_ADDRESS_CHARS:
            raise ValueError("timezones", "a time zone is an IANA name (e.g. Europe/Paris)")
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("timezones", f"unknown time zone {zone!r}") from None
    out["timezones"] = zones
    attributes = row.get("attributes") or {}
    if not isinstance(attributes, Mapping):
        raise ValueError("attributes", "must be an object")
    try:
        check_whole(attributes)
    except AttributesRefused as exc:
        raise ValueError(exc.field, str(exc)) from None
    out["attributes"] = dict(attributes)
    if not (out["phone1"] or out["phone2"] or out["email"]):
        raise ValueError("phone1", "a contact needs at least one phone number or e-mail address")
    return out


def parse_contacts(rows: Iterable[Mapping[str, Any]], default_region: str | None = None,
                   first_line: int = 1) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(good contacts, errors); a duplicate external_id in the batch is an error of the later line.
    Each good contact carries its line under the key `line` (not a column: callers drop it)."""
    good, errors, seen = [], [], set()
    phones = PhoneNormaliser(default_region)
    for line, row in enumerate(rows, start=first_line):
        try:
            if not isinstance(row, Mapping):
                raise ValueError("", "a contact row must be an object")
            contact = parse_contact(row, default_region, phones)
            if contact["external_id"] in seen:
                raise ValueError("external_id", "duplicate in this batch")
        except ValueError as exc:
            field, message = exc.args if len(exc.args) == 2 else ("", str(exc))
            errors.append({"line": line, "field": field, "message": message})
            continue
        seen.add(contact["external_id"])
        contact["line"] = line
        good.append(contact)
    return good, errors
