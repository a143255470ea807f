"""Properties of the filter language (hypothesis): no value of a filter ever reaches the SQL
text, canonical text round-trips, the parser only ever answers a Filter or a FilterError, the
evaluator never raises, and LIKE agrees with a reference matcher."""
from __future__ import annotations

import dataclasses
import re
from datetime import datetime, timezone
from decimal import Decimal

from hypothesis import HealthCheck, given, settings, strategies as st

from pom_actors.core import filters as F
from pom_actors.store.filters import compile_sql

from .test_filters_strategies import ATTRIBUTES, HOSTILE, filters, hostile_text, like_pattern, quote, text_value

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=timezone.utc)
FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Everything the SQL text may consist of: whitelisted words (no digits), operators, placeholders
# and the one quoted identifier "C" (the collation). No quote mark, digit, ';', '--', '$' or '%'
# other than in '%s' can get through this.
_SQL_TOKEN = re.compile(r'\s+|%s|::|->>|->|<>|<=|>=|&&|[()\[\]=<>,.~]|"C"|phone[12](?![A-Za-z0-9_])|[A-Za-z_]+')
_SQL_WORDS = frozenset(
    "c attributes external_id first_name last_name phone1 phone2 email created_at timezones "
    "CASE WHEN THEN END IN NOT AND OR IS NULL LIKE ILIKE COLLATE jsonb_typeof numeric text date "
    "timestamptz boolean integer substring from ARRAY EXISTS SELECT FROM unnest AS _z zone WHERE "
    "cardinality".split())


_SQL_ALPHABET = frozenset("".join(_SQL_WORDS) + ' %s:->()[]=<>,.~&"')


def assert_fixed_sql(sql: str) -> None:
    pos = 0
    while pos < len(sql):
        m = _SQL_TOKEN.match(sql, pos)
        assert m, f"unexpected SQL text at {sql[pos:pos + 30]!r} in {sql!r}"
        word = m.group()
        if word[0].isalpha() or word[0] == "_":
            assert word in _SQL_WORDS, (word, sql)
        pos = m.end()


def values_of(node) -> list:
    """Every value a filter carries: literals, attribute names, patterns, zone names."""
    out: list = []
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, (list, tuple)):
            stack.extend(n)
        elif isinstance(n, F.Literal):
            out.append(n.value)
        elif isinstance(n, F.AttrRef):
            out.append(n.name)
        elif isinstance(n, (F.Like, F.ZoneLike)):
            out.append(n.pattern)
            if isinstance(n, F.Like):
                stack.append(n.operand)
        elif isinstance(n, F.ZoneIn):
            out.extend(n.zones)
        elif dataclasses.is_dataclass(n):
            stack.extend(getattr(n, f.name) for f in dataclasses.fields(n))
    return out


def check_parameterised(f: F.Filter) -> None:
    sql, params = compile_sql(f, NOW)
    assert_fixed_sql(sql)
    assert sql.count("%s") == len(params)
    assert sql.count("(") == sql.count(")")
    for value in values_of(f.root):
        if isinstance(value, str):
            assert value in params, (value, params)
        elif isinstance(value, Decimal):
            assert value in params
    # A value made only of characters fixed SQL uses ('=', 'IN', '%s') may occur in it by
    # coincidence; any other value (a quote, ';', '$', a digit, non-ASCII...) must not.
    for value in (v for v in values_of(f.root) if isinstance(v, str) and v):
        if set(value) - _SQL_ALPHABET:
            assert value not in sql, (value, sql)


@FAST
@given(filters)
def test_no_value_reaches_the_sql_text(text):
    check_parameterised(F.parse(text, ATTRIBUTES))


name_text = st.one_of(st.sampled_from(HOSTILE), hostile_text.filter(bool),
                      st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                              min_size=1, max_size=10))


@FAST
@given(st.lists(st.tuples(name_text, text_value, st.sampled_from(["=", "<", "like", "ilike", "in", "is"])),
                min_size=1, max_size=4))
def test_hostile_attribute_names_and_values_are_parameters(parts):
    clauses = []
    for name, value, op in parts:
        ref = 'attr."' + name.replace('"', '""') + '"'
        if op in ("like", "ilike"):
            value = value.replace("\\", "\\\\")
            clauses.append(f"{ref} {op} {quote(value)}")
        elif op == "in":
            clauses.append(f"{ref} in ({quote(value)}, 'x')")
        elif op == "is":
            clauses.append(f"{ref} is not null")
        else:
            clauses.append(f"{ref} {op} {quote(value)}")
    f = F.parse(" or ".join(clauses))
    assert f.attributes == {name for name, _, _ in parts}
    check_parameterised(f)


@FAST
@given(filters)
def test_canonical_text_round_trips(text):
    f = F.parse(text, ATTRIBUTES)
    again = F.parse(str(f), ATTRIBUTES)
    assert again.root == f.root
    assert str(again) == str(f)


_VOCABULARY = ["first_name", "attr.age", "attr.segment", "timezone", "created_at", "phone1", "area_code",
               "(", ")", ",", ".", "=", "!=", "<", ">=", "+", "-", "and", "or", "not", "in", "like", "ilike",
               "is", "null", "between", "true", "false", "date", "timestamp", "today", "now", "days", "1",
               "2.5", "'a'", "'2026-01-01'", "'UTC'", "'%'", "'", '"', "\\", "attr", "'x''y'", " "]


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(max_size=60), st.lists(st.sampled_from(_VOCABULARY), max_size=25).map(" ".join)))
def test_parser_answers_a_filter_or_a_filter_error(text):
    try:
        f = F.parse(text, ATTRIBUTES)
    except F.FilterError as err:
        assert 0 <= err.position <= len(text)
        assert err.line >= 1 and err.column >= 1
        return
    try:
        compile_sql(f, NOW)
        F.evaluate(f, {}, NOW)
    except F.FilterError:
        pass                         # date arithmetic out of range is found when bound


json_value = st.one_of(
    st.none(), st.booleans(), st.integers(-10**20, 10**20),
    st.floats(allow_nan=True, allow_infinity=True), st.decimals(allow_nan=False, allow_infinity=False),
    text_value, st.sampled_from(["42", "+7", "-1.50", "2024-02-29", "true", "false", "1e3", " 5"]),
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=2), st.integers(), max_size=2))
contact = st.fixed_dictionaries({
    "first_name": st.one_of(text_value, st.none()), "last_name": text_value,
    "phone1": st.one_of(st.none(), st.sampled_from(["+12125551234", "+447911123456", "+11125551234", "x"])),
    "phone2": st.none(), "email": st.one_of(st.none(), text_value), "external_id": text_value,
    "timezones": st.one_of(st.none(), st.lists(st.sampled_from(["UTC", "America/New_York", "Europe/London"]))),
    "attributes": st.one_of(st.none(), st.lists(st.integers()),
                            st.dictionaries(st.sampled_from(ATTRIBUTES), json_value, max_size=6)),
    "created_at": st.one_of(st.none(), st.datetimes(timezones=st.just(timezone.utc)), st.datetimes()),
})


@FAST
@given(filters, contact)
def test_evaluator_is_total(text, c):
    assert F.truth(F.parse(text, ATTRIBUTES), c, NOW) in (True, False, None)


def _reference_like(text: str, pattern: str, ci: bool) -> bool:
    if ci:
        text, pattern = F.ascii_lower(text), F.ascii_lower(pattern)
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return re.fullmatch("".join(out), text, re.DOTALL) is not None


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="aAbB%_\\\n", max_size=12), like_pattern(), st.booleans())
def test_like_agrees_with_a_reference(text, pattern, ci):
    assert F.like(text, pattern, ci) == _reference_like(text, pattern, ci)
