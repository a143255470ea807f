"""DNC entries from users: each address read as a phone number (E.164, by the same
`PhoneNormaliser` as contacts) or an e-mail address (the same check as contacts), from a
request's list or from the records of a DNC file.

A DNC file has a header; the columns named like a phone or e-mail field of a contact (or
`address`, `number`) are read, every other column is ignored. A mapping may name them:
`{"<column>": "phone" | "email" | "address" | "ignore"}` (`address`: an e-mail address if it
holds `@`, else a phone number). Each record gives one entry per non-empty address cell; a
record with a bad address, no address, a wrong column count or a bad cell is rejected with its
line and why (the same faults and report as a contact file).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..contacts import EMAIL
from .phones import PhoneError, PhoneNormaliser
from .reader import Dialect, FileError, records
from .rows import SYNONYMS, Options, _norm, _reject, header_names, record_fault

MAX_ADDRESS_CHARS = 320                  # the longest e-mail address; phones are far shorter
TARGETS = ("phone", "email", "address")
_GUESS = {**{s: "phone" for s in SYNONYMS["phone1"] + SYNONYMS["phone2"] + ("number", "msisdn")},
          **{s: "email" for s in SYNONYMS["email"]}, "address": "address"}


def normalise_address(raw: str, phones: PhoneNormaliser, kind: str = "address") -> str:
    """The stored form of one address: an e-mail address lower-cased, a phone number in
    E.164. ValueError saying why not (`kind` "phone" or "email" forces the reading)."""
    text = raw.strip()
    if not text:
        raise ValueError("empty address")
    if len(text) > MAX_ADDRESS_CHARS:
        raise ValueError(f"longer than {MAX_ADDRESS_CHARS} characters")
    if kind == "email" or (kind == "address" and "@" in text):
        if not EMAIL.match(text):
            raise ValueError("not an e-mail address")
        return text.lower()
    try:
        return phones(text).e164
    except PhoneError as exc:
        raise ValueError(str(exc)) from None


def map_dnc_header(header: list[str], mapping: Mapping[str, str] | None = None) -> list[tuple[str, str] | None]:
    """Per column: ("field", "phone" | "email" | "address") or None (ignored). FileError when
    the header is bad, a mapping names an unknown target, or no column holds addresses."""
    mapping = dict(mapping or {})
    names = header_names(header, mapping)
    explicit = {k.strip().lower(): v.strip() for k, v in mapping.items()}
    out: list[tuple[str, str] | None] = []
    for name in names:
        target = explicit.get(name.lower())
        if target is None:
            target = _GUESS.get(_norm(name), "ignore")
        if target in ("", "ignore", "-"):
            out.append(None)
        elif target in TARGETS:
            out.append(("field", target))
        else:
            raise FileError(f"column {name!r}: unknown field {target!r}; use one of "
                            f"{', '.join(TARGETS)} or ignore")
    if not any(out):
        raise FileError("no column holds addresses (name one phone, email or address, or map one: "
                        "{\"<column>\": \"phone\"})")
    return out


@dataclass
class DncParsed:
    """One chunk of a DNC file: the entries ({line, address}) and the rejects, in line order."""
    entries: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    rows_read: int = 0


def parse_dnc_records(recs: Iterable[tuple[int, list[str] | None, str]], columns: list[tuple[str, str] | None],
                      options: Options, phones: PhoneNormaliser) -> DncParsed:
    """Check and normalise the records of a DNC file (from `reader.records`)."""
    out = DncParsed()
    for line, cells, fault in recs:
        out.rows_read += 1
        reject = record_fault(line, cells, fault, columns, options.max_field_chars)
        if reject is not None:
            out.rejects.append(reject)
            continue
        addresses, fault = [], None
        for target, cell in zip(columns, cells):
            if target is None or not cell.strip():
                continue
            try:
                addresses.append(normalise_address(cell, phones, target[1]))
            except ValueError as exc:
                fault = (target[1], str(exc))
                break
        if fault is None and not addresses:
            fault = ("", "no address in this row")
        if fault is not None:
            out.rejects.append(_reject(line, fault[0], fault[1], cells))
            continue
        out.entries += [{"line": line, "address": a} for a in addresses]
    return out


def parse_dnc_text(text: str, dialect: Dialect, columns, options: Options, first_line: int,
                   phones: PhoneNormaliser) -> DncParsed:
    """Parse a chunk of decoded text whose first record starts on `first_line`."""
    return parse_dnc_records(records(text, dialect, first_line), columns, options, phones)


def normalise_addresses(raw: Iterable[Any], region: str | None) -> tuple[list[str | None], list[dict[str, Any]]]:
    """A request's list of addresses: each one's stored form (None where it is bad), in the
    order sent, and the errors {index, message}."""
    phones = PhoneNormaliser(region)
    out: list[str | None] = []
    errors: list[dict[str, Any]] = []
    for i, value in enumerate(raw):
        try:
            if not isinstance(value, str):
                raise ValueError("an address is a string")
            out.append(normalise_address(value, phones))
        except ValueError as exc:
            out.append(None)
            errors.append({"index": i, "message": str(exc)})
    return out, errors
