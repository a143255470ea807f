"""File splitters: the definition checked whole, each parsed row routed to exactly one list."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from pom_actors.core.imports.reader import decode, detect_dialect, header_end
from pom_actors.core.imports.rows import Options, map_header, parse_text
from pom_actors.core.imports.splitter import MAX_RULE_CHARS, MAX_RULES, NO_MATCH, SplitterError, parse_splitter

NOW = datetime(2026, 11, 30, 12, tzinfo=timezone.utc)
CSV = ("id,phone,region,score\n"
       "a,+12125550100,north,10\n"
       "b,+12125550101,south,70\n"
       "c,+442079460000,north,90\n"
       "d,+12125550102,west,\n")


def parsed(text: str = CSV, **options):
    dialect = detect_dialect(text, None)
    header, end = header_end(text, dialect)
    return parse_text(decode(text[end:].encode(), "utf-8"), dialect, map_header(header), Options(**options), 2)


def test_first_true_rule_wins_and_the_default_takes_the_rest():
    splitter = parse_splitter({"rules": [{"when": "attr.score >= 50", "list_id": 2},
                                         {"when": "attr.region = 'north'", "list_id": 3}], "default": 4})
    routed, rejects = splitter.route(parsed().rows, NOW)
    assert {k: [r[1] for r in v] for k, v in routed.items()} == {3: ["a"], 2: ["b", "c"], 4: ["d"]}
    assert rejects == []
    assert splitter.list_ids == [2, 3, 4]


def test_unknown_is_not_a_match_and_without_default_the_row_is_rejected_with_its_line():
    splitter = parse_splitter({"rules": [{"when": "attr.score < 50", "list_id": 2},
                                         {"when": "country_code(phone1) = '44'", "list_id": 5}]})
    routed, rejects = splitter.route(parsed().rows, NOW)
    assert {k: [r[1] for r in v] for k, v in routed.items()} == {2: ["a"], 5: ["c"]}
    assert [(r["line"], r["field"], r["reason"]) for r in rejects] == [(3, "splitter", NO_MATCH),
                                                                      (5, "splitter", NO_MATCH)]


def test_every_row_lands_once():
    rows = parsed().rows
    splitter = parse_splitter({"rules": [{"when": "attr.region in ('north', 'south')", "list_id": 1},
                                         {"when": "true", "list_id": 2}]})
    routed, rejects = splitter.route(rows, NOW)
    assert sorted(r[0] for part in routed.values() for r in part) == [r[0] for r in rows] and not rejects


@pytest.mark.parametrize("raw, field", [
    (None, "splitter"),
    ({"rules": []}, "rules"),
    ({"rules": [{"when": "true", "list_id": 1}] * (MAX_RULES + 1)}, "rules"),
    ({"rules": [{"when": "true", "list_id": 1}], "other": 1}, "other"),
    ({"rules": [{"when": "true"}]}, "rules[0]"),
    ({"rules": [{"when": "true", "list_id": 1}, {"when": "attr.x ==", "list_id": 1}]}, "rules[1].when"),
    ({"rules": [{"when": 3, "list_id": 1}]}, "rules[0].when"),
    ({"rules": [{"when": "x" * (MAX_RULE_CHARS + 1), "list_id": 1}]}, "rules[0].when"),
    ({"rules": [{"when": "true", "list_id": 0}]}, "rules[0].list_id"),
    ({"rules": [{"when": "true", "list_id": True}]}, "rules[0].list_id"),
    ({"rules": [{"when": "true", "list_id": 1}], "default": "2"}, "default"),
])
def test_bad_definitions_name_the_field(raw, field):
    with pytest.raises(SplitterError) as caught:
        parse_splitter(raw)
    assert caught.value.field == field


def test_options_check_the_splitter():
    with pytest.raises(ValueError, match=r"rules\[0\]\.when"):
        Options(splitter={"rules": [{"when": "attr.a = ", "list_id": 1}]})
    assert Options(splitter={"rules": [{"when": "true", "list_id": 1}]}).splitter


@pytest.mark.parametrize("field, value, message", [
    ("splitter", "{bad", "splitter: Invalid JSON"),
    ("splitter", '{"rules": []}', "rules: a splitter needs a list of at least one rule"),
    ("splitter", '{"rules": [{"when": "attr.x =", "list_id": 2}]}', "rules[0].when"),
    ("mapping", "[1", "mapping: Invalid JSON")])
def test_the_gateway_refuses_a_bad_splitter_field_with_a_422_before_anything(tmp_path, field, value, message):
    from .test_api_validation import _client
    http = _client(data_dir=str(tmp_path))
    r = http.post("/api/v1/lists/1/imports", data={field: value},
                  files={"file": ("a.csv", b"id,phone\n1,+12125550100\n", "text/csv")})
    assert r.status_code == 422 and message in r.json()["detail"], r.text
    assert r.json()["errors"][0]["path"] == field
