"""DNC addresses and files: the same normalisation as contacts (E.164, e-mail lower-cased), the
columns read from a DNC file's header, and each bad row rejected with its line and field."""
from __future__ import annotations

import pytest

from pom_actors.core.imports.dnc import map_dnc_header, normalise_address, normalise_addresses, parse_dnc_text
from pom_actors.core.imports.phones import PhoneNormaliser
from pom_actors.core.imports.reader import Dialect, FileError
from pom_actors.core.imports.rows import Options


def test_addresses_are_stored_as_contacts_addresses_are():
    phones = PhoneNormaliser("US")
    assert normalise_address("(212) 555-0101", phones) == "+12125550101"
    assert normalise_address(" Ann@Example.COM ", phones) == "ann@example.com"
    assert normalise_address("+44 20 7946 0000", phones) == "+442079460000"
    for bad, why in (("+1212", "phone number"), ("ann@", "not an e-mail address"), ("  ", "empty"),
                     ("x" * 400 + "@example.com", "longer than 320")):
        with pytest.raises(ValueError, match=why):
            normalise_address(bad, phones)
    with pytest.raises(ValueError, match="not an e-mail"):
        normalise_address("+12125550101", phones, "email")


def test_a_request_list_keeps_its_order_and_names_each_bad_index():
    out, errors = normalise_addresses(["212-555-0101", 7, "bad@", "b@example.com"], "US")
    assert out == ["+12125550101", None, None, "b@example.com"]
    assert [e["index"] for e in errors] == [1, 2] and errors[0]["message"] == "an address is a string"


def test_the_header_names_the_address_columns_and_ignores_the_rest():
    assert map_dnc_header(["Phone", "E-mail", "added on", "Mobile"]) == [
        ("field", "phone"), ("field", "email"), None, ("field", "phone")]
    assert map_dnc_header(["who", "contact"], {"contact": "address"}) == [None, ("field", "address")]
    with pytest.raises(FileError, match="no column holds addresses"):
        map_dnc_header(["name", "note"])
    with pytest.raises(FileError, match="unknown field 'phone1'"):
        map_dnc_header(["number"], {"number": "phone1"})
    with pytest.raises(FileError, match="duplicate header name"):
        map_dnc_header(["phone", "Phone"])


def test_each_bad_row_is_rejected_with_its_line_and_the_good_ones_give_one_entry_per_address():
    columns = map_dnc_header(["phone", "email", "note"])
    text = ("(212) 555-0101,a@example.com,x\n"     # line 2: two entries
            "+1212,,x\n"                          # a bad number
            ",,nothing\n"                         # no address
            "+12125550104,,x,extra\n"             # wrong width
            ",b@example.com,\x00\n"               # a NUL byte
            "+12125550106,,\n")
    parsed = parse_dnc_text(text, Dialect(","), columns, Options(region="US"), 2, PhoneNormaliser("US"))
    assert parsed.rows_read == 6
    assert parsed.entries == [{"line": 2, "address": "+12125550101"}, {"line": 2, "address": "a@example.com"},
                              {"line": 7, "address": "+12125550106"}]
    assert [(r["line"], r["field"]) for r in parsed.rejects] == [(3, "phone"), (4, ""), (5, ""), (6, "")]
    assert parsed.rejects[1]["reason"] == "no address in this row"
    assert parsed.rejects[2]["reason"] == "expected 3 fields, found 4"
    assert "NUL" in parsed.rejects[3]["reason"]
