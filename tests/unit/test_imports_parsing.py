"""Reading contact files: encodings, dialects, header mapping, every bad-input class by line."""
from __future__ import annotations

import codecs
import random
import re

import pytest

from pom_actors.core.contacts import parse_contact, parse_contacts
from pom_actors.core.imports.phones import PhoneError, PhoneNormaliser, slow_phone
from pom_actors.core.imports.reader import (Dialect, FileError, chunk_bounds, decode, detect_dialect,
                                            detect_encoding, header_end, records)
from pom_actors.core.imports.rows import Options, map_header, neutralise, parse_text
from pom_actors.core.windows import phone_zones

HEADER = "external_id,first_name,last_name,phone1,email,segment\n"


def parse_bytes(data: bytes, **options):
    opts = Options(**options)
    encoding = detect_encoding(data[:65536], opts.encoding)
    text = decode(data, encoding)
    dialect = detect_dialect(text[:65536], opts.delimiter)
    header, end = header_end(text, dialect)
    columns = map_header(header, opts.mapping)
    first_line = 1 + text.count("\n", 0, end)
    return parse_text(text[end:], dialect, columns, opts, first_line)


def good(parsed):
    return [(c["line"], c["external_id"]) for c in parsed.contacts]


def bad(parsed):
    return [(r["line"], r["field"], r["reason"]) for r in parsed.rejects]


# -- encodings ---------------------------------------------------------------------------------
@pytest.mark.parametrize("encoding,bom", [("utf-8", b""), ("utf-8", codecs.BOM_UTF8),
                                          ("utf-16-le", codecs.BOM_UTF16_LE),
                                          ("utf-16-be", codecs.BOM_UTF16_BE), ("latin-1", b"")])
def test_encodings_are_detected(encoding, bom):
    text = HEADER + "1,Zoë,Müller,+12125550123,zoe@example.com,Ä\n2,José,Núñez,+442079460123,,é\n"
    parsed = parse_bytes(bom + text.encode(encoding))
    assert good(parsed) == [(2, "1"), (3, "2")] and not parsed.rejects
    assert parsed.contacts[0]["first_name"] == "Zoë" and parsed.contacts[1]["attributes"] == {"segment": "é"}


def test_declared_encoding_wins():
    data = (HEADER + "1,Zoë,M,+12125550123,,\n").encode("cp1252")
    assert parse_bytes(data, encoding="windows-1252").contacts[0]["first_name"] == "Zoë"
    with pytest.raises(FileError, match="unknown encoding"):
        parse_bytes(data, encoding="klingon")


def test_undecodable_bytes_reject_their_row_only():
    lines = [HEADER.encode()] + [f"{i},Name{i},X,+1212555{i:04d},,é\n".encode() for i in range(1, 40)]
    lines[5] = b"5,Bad\xff\xfeName,X,+12125550005,,x\n"
    parsed = parse_bytes(b"".join(lines))
    assert bad(parsed) == [(6, "first_name", "holds bytes the file's encoding cannot read")]
    assert len(parsed.contacts) == 38
    assert "\\xff" in parsed.rejects[0]["raw"][1]


# -- dialects ----------------------------------------------------------------------------------
@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiters_are_detected(delimiter):
    rows = [["external_id", "first_name", "phone1", "note"],
            ["1", "Ann", "+12125550101", f"a{delimiter}b"], ["2", "Bob", "+12125550102", "x"]]
    text = "".join(delimiter.join(f'"{c}"' if delimiter in c else c for c in r) + "\r\n" for r in rows)
    assert detect_dialect(text).delimiter == delimiter
    parsed = parse_bytes(text.encode())
    assert good(parsed) == [(2, "1"), (3, "2")]
    assert parsed.contacts[0]["attributes"]["note"] == f"a{delimiter}b"


def test_quoted_newlines_and_crlf_keep_line_numbers():
    text = (HEADER.replace("\n", "\r\n") + '1,"Ann\r\nMarie",X,+12125550101,,"multi\nline; with, delimiters"\r\n'
            '2,Bob,Y,12,,s\r\n3,Cy,Z,+12125550103,,"he said ""hi"""\r\n')
    parsed = parse_bytes(text.encode())
    assert good(parsed) == [(2, "1"), (6, "3")]
    assert bad(parsed) == [(5, "phone1", bad(parsed)[0][2])]
    assert parsed.contacts[0]["first_name"] == "Ann\r\nMarie"
    assert parsed.contacts[1]["attributes"]["segment"] == 'he said "hi"'


def test_chunk_bounds_never_split_a_quoted_record():
    body = "".join(f'{i},"line one\nline two, {i}",+1212555{i:04d}\n' for i in range(500))
    data = ("external_id,note,phone1\n" + body).encode()
    start = data.index(b"\n") + 1
    chunks = chunk_bounds(data, 300, start)
    assert chunks[0][0] == start and chunks[-1][1] == len(data)
    seen = []
    for s, e, line in chunks:
        for rec_line, cells, _ in records(data[s:e].decode(), detect_dialect(data.decode()), line):
            seen.append((rec_line, cells[0]))
    assert seen == [(2 + 2 * i, str(i)) for i in range(500)]


# -- the header --------------------------------------------------------------------------------
def test_header_mapping_synonyms_and_attributes():
    columns = map_header(["ID", "First Name", "Surname", "Mobile", "E-mail", "Plan"])
    assert columns == [("field", "external_id"), ("field", "first_name"), ("field", "last_name"),
                       ("field", "phone1"), ("field", "email"), ("attr", "Plan")]
    columns = map_header(["acct", "tel", "x"], {"acct": "external_id", "tel": "phone2", "x": "ignore"})
    assert columns == [("field", "external_id"), ("field", "phone2"), None]


@pytest.mark.parametrize("header,mapping,message", [
    (["id", "phone", "Phone"], None, "duplicate header name"),
    (["id", "", "x"], None, "column 2 has no name"),
    (["name", "phone"], None, "external_id"),
    (["id", "x"], {"y": "phone1"}, "not in the header"),
    (["id", "x"], {"x": "salary"}, "unknown field"),
])
def test_bad_headers_fail_the_file(header, mapping, message):
    with pytest.raises(FileError, match=message):
        map_header(header, mapping)


def test_empty_file_fails():
    with pytest.raises(FileError, match="empty"):
        parse_bytes(b"")
    with pytest.raises(FileError, match="empty"):
        parse_bytes(b"\n\n")


# -- bad rows ----------------------------------------------------------------------------------
def test_every_bad_row_class_is_rejected_with_its_line():
    long = "x" * 5000
    text = (HEADER + "1,Ann,A,+12125550101,ann@example.com,s\n"
            "2,Bob,B,+12125550102\n"                       # wrong column count
            f"3,{long},C,+12125550103,,s\n"                 # field over the limit
            "4,Nul\x00,D,+12125550104,,s\n"                 # NUL
            ",Eve,E,+12125550105,,s\n"                      # missing external_id
            "6,Fay,F,+1212,,s\n"                            # invalid number
            "7,Gus,G,+12125550107,not-mail,s\n"             # invalid e-mail
            "8,Hal,H,,,s\n"                                 # no address
            "9,Ida,I,+12125550109,,s\n")
    parsed = parse_bytes(text.encode())
    assert good(parsed) == [(2, "1"), (10, "9")]
    assert [(line, field) for line, field, _ in bad(parsed)] == [
        (3, ""), (4, "first_name"), (5, "first_name"), (6, "external_id"), (7, "phone1"),
        (8, "email"), (9, "phone1")]
    reasons = dict(((line, reason) for line, _, reason in bad(parsed)))
    assert reasons[3] == "expected 6 fields, found 4"
    assert reasons[4] == "longer than 4096 characters"
    assert reasons[5] == "holds a NUL byte"
    assert parsed.rows_read == 9


def test_field_limit_is_an_option():
    parsed = parse_bytes((HEADER + "1,Ann,A,+12125550101,,abcdefghijklm\n").encode(), max_field_chars=12)
    assert bad(parsed) == [(2, "attributes.segment", "longer than 12 characters")]


def test_default_region_type_and_zones():
    parsed = parse_bytes((HEADER + "1,A,B,020 7946 0123,,s\n2,C,D,07911 123456,,s\n").encode(), region="GB")
    first, second = parsed.contacts
    assert first["phone1"] == "+442079460123" and first["phone1_type"] == "fixed_line"
    assert second["phone1_type"] == "mobile" and first["timezones"] == ["Europe/London"]


def test_formulas_are_neutralised():
    assert [neutralise(c) for c in ["=1+1", "+1", "-2", "@SUM(A1)", "ok", "", None, "\t=x"]] == \
        ["'=1+1", "'+1", "'-2", "'@SUM(A1)", "ok", "", "", "'\t=x"]


def test_json_rows_share_the_validator():
    good_rows, errors = parse_contacts([{"external_id": "1", "phone1": "+12125550101"},
                                        {"external_id": "2", "phone1": "+1212"}])
    assert [c["phone1"] for c in good_rows] == ["+12125550101"]
    assert good_rows[0]["phone1_type"] == "fixed_line_or_mobile"
    assert errors == [{"line": 2, "field": "phone1", "message": "not a valid phone number"}]


# -- the fast phone path agrees with phonenumbers ----------------------------------------------
def _numbers(rnd: random.Random, n: int) -> list[str]:
    forms = [lambda: f"({rnd.randint(200, 999)}) {rnd.randint(200, 999)}-{rnd.randint(0, 9999):04d}",
             lambda: f"1 {rnd.randint(200, 999)} {rnd.randint(0, 9999999):07d}",
             lambda: f"0{rnd.randint(1000, 7999)} {rnd.randint(0, 999999):06d}",
             lambda: f"+44 (0) {rnd.randint(1000, 7999)} {rnd.randint(0, 999999):06d}",
             lambda: f"00{rnd.choice([33, 49, 39, 34, 353, 351, 61, 81, 91, 55])} {rnd.randint(10**7, 10**10)}",
             lambda: f"011 {rnd.choice([33, 49, 44, 7, 86])} {rnd.randint(10**7, 10**10)}",
             lambda: f"+{rnd.choice([1, 7, 20, 27, 30, 31, 32, 33, 34, 36, 39, 40, 41, 43, 44, 45, 46, 47, 48, 49, 52, 54, 55, 61, 64, 81, 82, 86, 91, 352, 353, 358, 420, 972])} "
                     f"{rnd.randint(10**6, 10**11)}"]
    return [rnd.choice(forms)() for _ in range(n)]


@pytest.mark.parametrize("region", ["US", "GB", "DE", "FR", "AU", None])
def test_fast_path_equals_phonenumbers(region):
    rnd = random.Random(region or "none")
    phones = PhoneNormaliser(region)
    numbers = _numbers(rnd, 3000)
    for raw in numbers * 2:                              # the second pass is served by the cache
        try:
            fast = phones(raw)
        except PhoneError:
            fast = None
        try:
            slow = slow_phone(raw, region)
        except PhoneError:
            slow = None
        assert fast == slow, raw
    assert phones.fast > 0


# -- the row path gives what the JSON endpoint's validator gives --------------------------------
def _reference(text: str, region: str | None):
    """The slow path: each record as a dict through `parse_contact` (phonenumbers itself) and
    the zones of its first number parsed again (`windows.phone_zones`)."""
    columns = map_header(next(iter(records(text, Dialect(",")))) [1])
    rows, rejects = [], []
    for line, cells, _ in list(records(text, Dialect(",")))[1:]:
        row = {"attributes": {}}
        for target, cell in zip(columns, cells):
            if target[0] == "field":
                row[target[1]] = cell
            elif cell != "":
                row["attributes"][target[1]] = cell
        zones = row.pop("timezones", "")
        row["timezones"] = [z for z in re.split(r"[\s,;]+", zones) if z] if zones else []
        try:
            c = parse_contact(row, region)
        except ValueError as exc:
            rejects.append((line, *exc.args))
            continue
        zones = c["timezones"] or list(phone_zones(c["phone1"] or c["phone2"] or ""))
        rows.append((line, c["external_id"], c["first_name"], c["last_name"], c["phone1"], c["phone1_type"],
                     c["phone2"], c["phone2_type"], c["email"], list(zones), c["attributes"]))
    return rows, rejects


def test_rows_are_what_parse_contact_makes_of_them():
    rnd = random.Random(11)
    numbers = _numbers(rnd, 400) + ["+1212", "12", "not a number", "+44 20 7946 0123 ext 5", ""]
    numbers += [f"+1 212 555 {i:04d}" for i in range(200)] + [f"+44 7911 {i:06d}" for i in range(200)]
    zones = ["", "", "", "Europe/Paris", "America/New_York; Asia/Tokyo", "Mars/Olympus", "UTC"]
    mails = ["", "a@example.com", " B@Example.COM ", "not-mail"]
    ids = ["", " ", "x" * 201, "x" * 200]
    lines = ["external_id,first_name,last_name,phone1,phone2,email,timezone,plan,tier"]
    for i in range(1500):
        eid = rnd.choice(ids) if rnd.random() < 0.05 else f" C{i} "
        lines.append(",".join([eid, rnd.choice(["Ann", ""]), rnd.choice(["Lee", ""]), rnd.choice(numbers),
                               rnd.choice(numbers + [""] * 300), rnd.choice(mails), rnd.choice(zones),
                               rnd.choice(["gold", ""]), rnd.choice(["1", ""])]))
    text = "\n".join(lines) + "\n"
    for region in ("US", "GB", None):
        head, end = header_end(text, Dialect(","))
        parsed = parse_text(text[end:], Dialect(","), map_header(head), Options(region=region), 2)
        rows, rejects = _reference(text, region)
        assert [(*r[:9], list(r[9]), r[10]) for r in parsed.rows] == rows
        assert [(r["line"], r["field"], r["reason"]) for r in parsed.rejects] == rejects
        assert len(rows) > 100 and len(rejects) > 100
