"""The filter-template language: parsing, errors with positions, bounds, Python semantics."""
from __future__ import annotations

import time
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest

from pom_actors.core import filters as F
from pom_actors.core.filters import FilterError, evaluate, parse, truth
from pom_actors.store.filters import compile_sql

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=timezone.utc)
ATTRS = ["segment", "age", "since", "vip", "score", "first name"]


def contact(**kw) -> dict:
    base = {"id": 1, "external_id": "c1", "first_name": "Ann", "last_name": "Lee", "phone1": "+12125551234",
            "phone2": None, "email": "ann@example.com", "timezones": ["America/New_York"],
            "attributes": {"segment": "gold", "age": 42, "since": "2024-02-29", "vip": True},
            "created_at": datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)}
    attributes = kw.pop("attributes", None)
    base.update(kw)
    if attributes is not None:
        base["attributes"] = attributes
    return base


def fails(text: str, attributes=ATTRS, **kw) -> FilterError:
    with pytest.raises(FilterError) as info:
        parse(text, attributes, **kw)
    return info.value


# ------------------------------------------------------------------------------------ parsing

def test_example_parses_and_prints_canonically():
    f = parse("attr.segment IN ('gold','silver') AND NOT email IS NULL and created_at > now - 7 days "
              "and area_code(phone1) in ('212', '646')", ATTRS)
    assert str(f) == ("(attr.segment in ('gold', 'silver')) and (not (email is null)) and "
                      "(created_at > now - 7 days) and (area_code(phone1) in ('212', '646'))")
    assert f.attributes == {"segment"}
    assert parse(str(f), ATTRS).root == f.root


def test_precedence_not_and_or():
    f = parse("not first_name = 'a' or last_name = 'b' and email = 'c'")
    assert isinstance(f.root, F.Or)
    assert isinstance(f.root.items[0], F.Not)
    assert isinstance(f.root.items[1], F.And)


def test_chains_are_flat():
    f = parse(" or ".join(f"first_name = '{i}'" for i in range(50)))
    assert isinstance(f.root, F.Or) and len(f.root.items) == 50


def test_strings_double_their_quotes_and_keep_backslashes():
    f = parse(r"last_name = 'O''Brien' or last_name = 'a\b'")
    assert [item.right.value for item in f.root.items] == ["O'Brien", "a\\b"]


def test_keywords_are_case_insensitive_attribute_names_are_not():
    assert parse("FIRST_NAME = 'a' AND attr.segment IS NOT NULL", ATTRS)
    assert "unknown attribute 'Segment'" in fails("attr.Segment = 'a'").message


def test_quoted_attribute_names():
    f = parse('attr."first name" = \'Ann\'', ATTRS)
    assert f.root.left == F.AttrRef("first name")
    assert 'attr."first name"' in str(f)


def test_literals():
    f = parse("attr.age = -12.50 and attr.since = date '2024-02-29' and created_at < timestamp '2026-01-02 03:04Z' "
              "and attr.vip = true", ATTRS)
    values = [item.right.value for item in f.root.items]
    assert values == [Decimal("-12.50"), date(2024, 2, 29), datetime(2026, 1, 2, 3, 4, tzinfo=timezone.utc), True]


def test_types_are_inferred_from_what_an_attribute_is_compared_with():
    kinds = [parse(t, ATTRS).root.kind for t in
             ("attr.age > 3", "attr.age = '3'", "attr.since < today", "attr.vip = false", "attr.age = attr.score",
              "created_at > date '2026-01-01'", "attr.age in (1, 2)")]
    assert kinds == ["number", "text", "date", "bool", "text", "timestamp", "number"]


def test_between_desugars():
    f = parse("attr.age not between 18 and 65", ATTRS)
    assert f.root == F.Not(F.And((F.Compare(">=", F.AttrRef("age"), F.Literal(Decimal(18), "number"), "number"),
                                  F.Compare("<=", F.AttrRef("age"), F.Literal(Decimal(65), "number"), "number"))))


def test_attributes_none_allows_any_name():
    assert parse("attr.anything = 'x'").attributes == {"anything"}


# ------------------------------------------------------------------------------------- errors

@pytest.mark.parametrize("text, column, words", [
    ("segment = 'gold'", 1, "attr.segment"),
    ("attr.colour = 'red'", 6, "unknown attribute 'colour'"),
    ("first_name = 3", 12, "cannot compare text with a number"),
    ("created_at > '2026-01-01'", 12, "date '2026-01-01'"),
    ("first_name = null", 14, "is null"),
    ("first_name = 'a' and", 21, "end of the filter"),
    ("(first_name = 'a'", 18, "to close the '(' at column 1"),
    ("first_name = 'a')", 17, "expected 'and', 'or'"),
    ("first_name = 'it\\'s'", 20, "doubled"),
    ("first_name = 'abc", 14, "unterminated string"),
    ("first_name like 'a\\'", 17, "escape character"),
    ("timezone in ('Mars/Base')", 14, "unknown time zone"),
    ("timezone > 'UTC'", 10, "timezone takes"),
    ("attr.age > now", 10, "not timestamps"),
    ("today - 3 hours < created_at", 11, "hours apply to timestamps"),
    ("created_at + 3 days > now", 12, "date arithmetic applies"),
    ("attr.vip < true", 10, "booleans take = and !="),
    ("attr.age in (1, 'a')", 17, "mixes a number and text"),
    ("attr.age in (first_name)", 14, "holds values"),
    ("first_name", 11, "expected a comparison"),
    ("first_name = \"Ann\"", 14, "quoted name"),
    ("first_name = ‘Ann’", 14, "single quotes"),
    ("attr.age > 1234567890123456789012345678901", 12, "at most 30 digits"),
    ("attr.since = date '2023-02-29'", 19, "not a date"),
    ("created_at > timestamp 'yesterday'", 24, "not a timestamp"),
    ("attr.since > today - 100000 years", 20, "out of range"),
    ("   ", 1, "empty filter"),
    ("first_name = 'a' and\n  last_name ~ 'b'", 13, "unexpected character '~'"),
])
def test_errors_carry_position_and_reason(text, column, words):
    try:
        f = parse(text, ATTRS)
        compile_sql(f, NOW)                 # range faults of date arithmetic surface when bound
    except FilterError as err:
        assert words in err.message, err.message
        assert err.column == column, (err.column, err.message)
        assert str(err).endswith(f"line {err.line}, column {err.column})")
        assert err.as_dict()["position"] == err.position
    else:
        pytest.fail(f"{text!r} was accepted")


def test_error_lines_count_newlines():
    err = fails("first_name = 'a'\nand\n   bogus = 1")
    assert (err.line, err.column, err.position) == (3, 4, 24)


def test_nul_and_surrogates_refused():
    assert fails("first_name = 'a\x00'").column == 16
    assert fails("first_name = '\ud800'").column == 15


# ------------------------------------------------------------------------------------- bounds

def test_huge_input_refused_fast():
    start = time.perf_counter()
    err = fails("first_name = 'a' or " * 60_000)        # about 1.2 MB
    assert "too long" in err.message
    err = fails("x" * 1_000_000)
    assert "too long" in err.message
    assert time.perf_counter() - start < 1


@pytest.mark.parametrize("opener", ["(", "not ", "not ("])
def test_deep_nesting_refused_without_recursion_error(opener):
    text = opener * 10_000 + "first_name = 'a'" + ")" * (10_000 if "(" in opener else 0)
    start = time.perf_counter()
    err = fails(text, max_length=None)
    assert "nested too deeply" in err.message
    before = text[:err.position]
    assert before.count("not") + before.count("(") == F.MAX_DEPTH       # refused at the first level too many
    assert time.perf_counter() - start < 2


def test_depth_limit_is_exact():
    ok = "(" * F.MAX_DEPTH + "first_name = 'a'" + ")" * F.MAX_DEPTH
    assert parse(ok)
    assert "nested too deeply" in fails("(" + ok + ")").message


def test_node_limit():
    text = " or ".join("attr.age = 1" for _ in range(400))
    assert "too large" in fails(text, max_length=None).message
    long_list = "area_code(phone1) in (" + ", ".join(f"'{200 + i}'" for i in range(300)) + ")"
    assert len(long_list) < F.MAX_LENGTH
    assert parse(long_list)


@pytest.mark.parametrize("unit", ["'a' ", "(", "first_name = 'a' or "])
def test_parse_time_is_linear(unit):
    def cost(n: int) -> float:
        text = unit * n + "true"
        start = time.perf_counter()
        try:
            parse(text, max_length=None, max_nodes=10**9, max_depth=10**9 if unit != "(" else F.MAX_DEPTH)
        except FilterError:
            pass
        return time.perf_counter() - start
    small, big = min(cost(500) for _ in range(3)), min(cost(8_000) for _ in range(2))
    assert big < small * 16 * 4 + 0.05           # 16 times the input: far from 256 times the time


# ------------------------------------------------------------------------------ Python semantics

def sel(text: str, c: dict, attributes=ATTRS) -> bool | None:
    return truth(parse(text, attributes), c, NOW)


def test_three_valued_logic():
    c = contact(phone2=None)
    assert sel("phone2 = 'x'", c) is None
    assert sel("not phone2 = 'x'", c) is None
    assert sel("phone2 = 'x' or true", c) is True
    assert sel("phone2 = 'x' and false", c) is False
    assert sel("phone2 = 'x' and true", c) is None
    assert sel("phone2 in ('x')", c) is None and sel("phone2 not in ('x')", c) is None
    assert sel("phone2 is null", c) is True
    assert evaluate(parse("not phone2 = 'x'"), c, NOW) is False


def test_attribute_views():
    c = contact(attributes={"age": "042", "score": 2.5, "vip": "true", "since": "2024-02-29", "segment": 7,
                            "bad": "4 2", "flag": True, "nothing": None, "list": [1]})
    assert sel("attr.age = 42", c) is True
    assert sel("attr.age = '042'", c) is True
    assert sel("attr.score > 2.49 and attr.score < 2.51", c) is True
    assert sel("attr.vip = true", c) is True
    assert sel("attr.since = date '2024-02-29' and attr.since > today - 3 years", c) is True
    assert sel("attr.segment = '7' and attr.segment = 7", c) is True
    assert sel("attr.bad = 42", c, None) is None
    assert sel("attr.flag = 'true' and attr.flag = true", c, None) is True
    assert sel("attr.flag = 1", c, None) is None
    assert sel("attr.nothing is null and attr.missing is null and attr.list is not null", c, None) is True
    assert sel("attr.list = '[1]'", c, None) is None


@pytest.mark.parametrize("value, text", [
    (1e-05, "0.00001"), (1.5e16, "15000000000000000"), (-0.0, "0.0"), (2.0, "2.0"), (10, "10"),
    (Decimal("1.10"), "1.10"), (True, "true"), ("x", "x"), (None, None), ({"a": 1}, None),
    (float("nan"), None),
])
def test_attribute_text_is_postgres_spelling(value, text):
    assert F.attr_text(value) == text


@pytest.mark.parametrize("value, number", [
    ("42", Decimal(42)), ("+7", Decimal(7)), ("-1.50", Decimal("-1.5")), (" 5", None), ("5.", None),
    (".5", None), ("1e3", None), ("NaN", None), ("٤٢", None), ("1" * 31, None), (True, None), (3, Decimal(3)),
    (0.1, Decimal("0.1")),
])
def test_attribute_numbers(value, number):
    assert F.attr_number(value) == number


def test_date_pattern_matches_exactly_the_real_days():
    for year in list(range(1, 30)) + [100, 400, 1600, 1900, 2000, 2023, 2024, 2100, 2400, 9996, 9999]:
        for month in range(1, 13):
            for day in range(0, 33):
                text = f"{year:04d}-{month:02d}-{day:02d}"
                try:
                    real = date(year, month, day).isoformat() == text
                except ValueError:
                    real = False
                assert (F.attr_date(text) is not None) == real, text
    for bad in ["0000-01-01", "2024-2-29", "2024-02-29\n", " 2024-02-29", "20240-01-01", "2024-13-01"]:
        assert F.attr_date(bad) is None


def test_text_comparison_is_by_code_point_and_ilike_folds_ascii_only():
    c = contact(first_name="Émile", last_name="bob")
    assert sel("first_name > 'Z'", c) is True              # 'É' sorts after every ASCII letter
    assert sel("last_name > 'B'", c) is True
    assert sel("first_name ilike 'émile'", c) is False     # only ASCII letters fold
    assert sel("first_name ilike 'ÉMILE'", c) is True
    assert sel("first_name like 'É%' and first_name like '_mile' and first_name not like 'e%'", c) is True


@pytest.mark.parametrize("text, pattern, ci, expected", [
    ("abc", "abc", False, True), ("abc", "a%", False, True), ("abc", "%c", False, True),
    ("abc", "a_c", False, True), ("abc", "a_", False, False), ("", "%", False, True), ("", "_", False, False),
    ("a%b", "a\\%b", False, True), ("axb", "a\\%b", False, False), ("a\\b", "a\\\\b", False, True),
    ("ABC", "abc", True, True), ("ABC", "abc", False, False), ("a_b", "a\\_b", False, True),
    ("aXb", "a\\_b", False, False), ("abc", "\\a%", False, True), ("mississippi", "%iss%ppi", False, True),
    ("a" * 3000 + "b", "%a%a%a%a%a%c", False, False),
])
def test_like(text, pattern, ci, expected):
    assert F.like(text, pattern, ci) is expected


def test_timezones_any_semantics():
    c = contact(timezones=["America/Chicago", "America/Denver"])
    assert sel("timezone = 'America/Denver'", c) is True
    assert sel("timezone in ('Europe/London', 'America/Chicago')", c) is True
    assert sel("timezone != 'America/Denver'", c) is False
    assert sel("timezone not in ('Europe/London')", c) is True
    assert sel("timezone like 'America/%' and timezone ilike '%DENVER'", c) is True
    assert sel("timezone is null", c) is False
    empty = contact(timezones=[])
    assert sel("timezone in ('UTC')", empty) is False and sel("timezone is null", empty) is True


def test_area_and_country_codes():
    us, uk = contact(phone1="+12125551234"), contact(phone1="+447911123456")
    assert sel("area_code(phone1) in ('212', '646') and country_code(phone1) = '1'", us) is True
    assert sel("area_code(phone1) = '212'", uk) is None     # not a North American number: unknown
    assert sel("area_code(phone1) is null and country_code(phone1) = '44'", uk) is True
    assert sel("country_code(phone2) is null", us) is True
    assert F.call("area_code", "+11125551234") is None       # area codes do not start with 0 or 1
    assert F.call("country_code", "+8801712345678") == "880"
    assert F.call("country_code", "12125551234") is None


def test_date_arithmetic_binds_to_the_injected_clock():
    b = F.Binding.of(NOW, "America/New_York")
    assert b.today == date(2026, 11, 25)
    late = F.Binding.of(datetime(2026, 11, 26, 2, tzinfo=timezone.utc), "America/New_York")
    assert late.today == date(2026, 11, 25)                  # still the 25th in New York
    f = parse("attr.since > today - 1 month and created_at > now - 36 hours", ATTRS)
    params = compile_sql(f, datetime(2026, 3, 31, 12, tzinfo=timezone.utc))[1]
    assert date(2026, 2, 28) in params                       # month arithmetic clamps to the month's end
    assert datetime(2026, 3, 30, 0, tzinfo=timezone.utc) in params
    c = contact(created_at=datetime(2026, 3, 30, 1, tzinfo=timezone.utc), attributes={"since": "2026-03-01"})
    assert evaluate(f, c, datetime(2026, 3, 31, 12, tzinfo=timezone.utc)) is True
    assert evaluate(f, c, datetime(2026, 4, 2, 12, tzinfo=timezone.utc)) is False


def test_dates_against_timestamps_are_midnight_in_the_zone():
    f = parse("created_at >= date '2026-11-25'")
    c = contact(created_at=datetime(2026, 11, 25, 3, tzinfo=timezone.utc))
    assert evaluate(f, c, NOW, "UTC") is True
    assert evaluate(f, c, NOW, "America/New_York") is False   # 03:00 UTC is still the 24th there
    assert compile_sql(f, NOW, tz="America/New_York")[1] == [datetime(2026, 11, 25, 5, tzinfo=timezone.utc)]


def test_now_must_be_aware():
    with pytest.raises(ValueError):
        evaluate(parse("true"), contact(), datetime(2026, 1, 1))


# -------------------------------------------------------------------------------- SQL shapes

def test_sql_fragment_and_params():
    sql, params = compile_sql(parse("first_name = 'Ann' and attr.age >= 30", ATTRS), NOW)
    assert sql == ("(((c.first_name) = (%s::text)) AND ((CASE WHEN jsonb_typeof(c.attributes -> %s::text) = %s::text "
                   "THEN (c.attributes ->> %s::text)::numeric WHEN (c.attributes ->> %s::text) ~ %s::text "
                   "THEN (c.attributes ->> %s::text)::numeric END) >= (%s::numeric)))")
    assert params == ["Ann", "age", "number", "age", "age", F.NUMBER_PATTERN, "age", Decimal(30)]


def test_sql_params_follow_the_placeholders():
    sql, params = compile_sql(parse("attr.segment = first_name or timezone in ('UTC', 'Asia/Tokyo')", ATTRS), NOW)
    assert sql == ("(((CASE WHEN jsonb_typeof(c.attributes -> %s::text) IN (%s::text, %s::text, %s::text) "
                   "THEN c.attributes ->> %s::text END) = (c.first_name)) OR (c.timezones && ARRAY[%s::text, %s::text]))")
    assert params == ["segment", "string", "number", "boolean", "segment", "UTC", "Asia/Tokyo"]


def test_sql_alias_is_checked():
    assert compile_sql("first_name = 'a'", NOW, alias="ct")[0].startswith("((ct.first_name)")
    with pytest.raises(ValueError):
        compile_sql("first_name = 'a'", NOW, alias="c; drop table contacts")


def test_compile_checks_attributes_of_texts_and_filters():
    with pytest.raises(FilterError):
        compile_sql("attr.colour = 'red'", NOW, attributes=["segment"])
    f = parse("attr.segment = 'a' or attr.colour = 'red'")
    assert compile_sql(f, NOW, attributes=["segment", "colour"])
    with pytest.raises(FilterError) as info:
        compile_sql(f, NOW, attributes=["segment"])
    assert info.value.column == 28
    with pytest.raises(TypeError):
        parse("true", "segment")


def test_timestamp_hint():
    assert "timestamp '2026-01-01 10:00'" in fails("created_at > '2026-01-01 10:00'").message
