"""Hypothesis generators of filter texts, shared by the unit properties and the SQL test.

Every generated text is a well-typed filter over the attributes ATTRIBUTES; string literals,
like patterns and quoted attribute names include hostile text (quotes, backslashes, `;`, `--`,
`%s`, `$$`, comment openers, non-ASCII). The one test here checks that they all parse.
"""
from __future__ import annotations

from datetime import date

from hypothesis import given, settings, strategies as st

from pom_actors.core.filters import parse

ATTRIBUTES = ("segment", "age", "since", "vip", "score", "odd name; --")
HOSTILE = ["'", "''", "\\", "\\'", ";", "--", "/*", "*/", "%s", "%(x)s", "$$", "$1", "\"", "`", "\n",
           "' OR '1'='1", "'); DROP TABLE contacts; --", "E'\\x41'", "%", "_", "é", "İ", "ß", "Ω", "🙂", " "]
WORDS = ["gold", "Gold", "GOLD", "silver", "", "Émile", "émile", "ann", "Ann", "bob", "O'Brien", "a%b",
         "a_b", "back\\slash", "42", "042", "+7", "1.50", "-3", "2024-02-29", "2023-02-29", "true", "false",
         "212", "646", "44", "1", "+12125551234", "zoë"]
TEXT_OPERANDS = ["first_name", "last_name", "email", "phone1", "phone2", "external_id", "attr.segment",
                 "attr.age", "attr.since", 'attr."odd name; --"', "area_code(phone1)", "area_code(phone2)",
                 "country_code(phone1)", "country_code(phone2)", "area_code(attr.segment)"]
NUMBER_OPERANDS = ["attr.age", "attr.score", "attr.segment", "attr.vip"]
DATE_OPERANDS = ["attr.since", "attr.segment"]
ZONES = ["America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles", "Europe/London",
         "Europe/Berlin", "Asia/Tokyo", "UTC"]
COMPARISONS = ["=", "!=", "<>", "<", "<=", ">", ">="]
UNITS = ["days", "day", "weeks", "months", "years"]
TS_UNITS = ["seconds", "minutes", "hours", "days", "weeks", "months"]


def quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


hostile_text = st.lists(st.sampled_from(HOSTILE + list("abcAB1 -.")), max_size=6).map("".join)
text_value = st.one_of(st.sampled_from(WORDS), hostile_text,
                       st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                               max_size=8))


@st.composite
def like_pattern(draw) -> str:
    items = draw(st.lists(st.one_of(st.sampled_from(["%", "_", "\\%", "\\_", "\\\\", "\\a"]),
                                    st.sampled_from(list("aAbBéÉ'; -12+G")),
                                    st.sampled_from(["gold", "an", "Em", "ö"])), max_size=6))
    return "".join(items)


number = st.one_of(st.integers(-50, 150).map(str),
                   st.decimals(min_value=-1000, max_value=1000, places=2, allow_nan=False,
                               allow_infinity=False).map(lambda d: format(d, "f")))
date_literal = st.dates(min_value=date(1990, 1, 1), max_value=date(2030, 12, 31)).map(
    lambda d: f"date '{d.isoformat()}'")
date_value = st.one_of(
    date_literal,
    st.just("today"),
    st.builds(lambda sign, n, unit: f"today {sign} {n} {unit}", st.sampled_from("+-"), st.integers(0, 400),
              st.sampled_from(UNITS)))
ts_value = st.one_of(
    date_value,
    st.just("now"),
    st.builds(lambda sign, n, unit: f"now {sign} {n} {unit}", st.sampled_from("+-"), st.integers(0, 2000),
              st.sampled_from(TS_UNITS)),
    st.builds(lambda d, h, m, off: f"timestamp '{d.isoformat()} {h:02d}:{m:02d}{off}'",
              st.dates(min_value=date(2025, 1, 1), max_value=date(2027, 1, 1)), st.integers(0, 23),
              st.integers(0, 59), st.sampled_from(["", "Z", "+05:30", "-08:00"])))


def _in(operand: str, values: list[str], negated: bool) -> str:
    return f"{operand} {'not in' if negated else 'in'} ({', '.join(values)})"


text_leaf = st.one_of(
    st.builds(lambda a, op, v: f"{a} {op} {quote(v)}", st.sampled_from(TEXT_OPERANDS), st.sampled_from(COMPARISONS),
              text_value),
    st.builds(lambda v, op, a: f"{quote(v)} {op} {a}", text_value, st.sampled_from(COMPARISONS),
              st.sampled_from(TEXT_OPERANDS)),
    st.builds(lambda a, op, b: f"{a} {op} {b}", st.sampled_from(TEXT_OPERANDS), st.sampled_from(COMPARISONS),
              st.sampled_from(TEXT_OPERANDS)),
    st.builds(lambda v, op, w: f"{quote(v)} {op} {quote(w)}", text_value, st.sampled_from(COMPARISONS), text_value),
    st.builds(lambda a, vs, neg: _in(a, [quote(v) for v in vs], neg), st.sampled_from(TEXT_OPERANDS),
              st.lists(text_value, min_size=1, max_size=4), st.booleans()),
    st.builds(lambda a, neg, word, p: f"{a} {'not ' if neg else ''}{word} {quote(p)}",
              st.sampled_from(TEXT_OPERANDS), st.booleans(), st.sampled_from(["like", "ilike"]), like_pattern()),
    st.builds(lambda a, lo, hi, neg: f"{a} {'not ' if neg else ''}between {quote(lo)} and {quote(hi)}",
              st.sampled_from(TEXT_OPERANDS), text_value, text_value, st.booleans()),
)
number_leaf = st.one_of(
    st.builds(lambda a, op, v: f"{a} {op} {v}", st.sampled_from(NUMBER_OPERANDS), st.sampled_from(COMPARISONS),
              number),
    st.builds(lambda a, vs, neg: _in(a, vs, neg), st.sampled_from(NUMBER_OPERANDS),
              st.lists(number, min_size=1, max_size=4), st.booleans()),
    st.builds(lambda a, lo, hi: f"{a} between {lo} and {hi}", st.sampled_from(NUMBER_OPERANDS), number, number),
)
date_leaf = st.one_of(
    st.builds(lambda a, op, v: f"{a} {op} {v}", st.sampled_from(DATE_OPERANDS), st.sampled_from(COMPARISONS),
              date_value),
    st.builds(lambda a, vs, neg: _in(a, vs, neg), st.sampled_from(DATE_OPERANDS),
              st.lists(date_literal, min_size=1, max_size=3), st.booleans()),
    st.builds(lambda op, v: f"created_at {op} {v}", st.sampled_from(COMPARISONS), ts_value),
    st.builds(lambda lo, hi: f"created_at between {lo} and {hi}", ts_value, ts_value),
)
other_leaf = st.one_of(
    st.builds(lambda a, op, v: f"{a} {op} {v}", st.sampled_from(["attr.vip", "attr.segment", "attr.age"]),
              st.sampled_from(["=", "!="]), st.sampled_from(["true", "false"])),
    st.builds(lambda a, neg: f"{a} is {'not ' if neg else ''}null",
              st.sampled_from(TEXT_OPERANDS + ["created_at", "attr.vip", "attr.score"]), st.booleans()),
    st.builds(lambda zs, neg: _in("timezone", [quote(z) for z in zs], neg),
              st.lists(st.sampled_from(ZONES), min_size=1, max_size=3), st.booleans()),
    st.builds(lambda op, z: f"timezone {op} {quote(z)}", st.sampled_from(["=", "!="]), st.sampled_from(ZONES)),
    st.builds(lambda neg, word, p: f"timezone {'not ' if neg else ''}{word} {quote(p)}", st.booleans(),
              st.sampled_from(["like", "ilike"]), st.sampled_from(["America/%", "%york", "europe/%", "%_%", "UTC"])),
    st.builds(lambda neg: f"timezone is {'not ' if neg else ''}null", st.booleans()),
    st.sampled_from(["true", "false", "1 = 1", "'a' < 'b'", "today > date '2000-01-01'"]),
)
leaf = st.one_of(text_leaf, number_leaf, date_leaf, other_leaf)


def _combine(children):
    return st.one_of(
        children.map(lambda x: f"not ({x})"),
        st.lists(children, min_size=2, max_size=3).map(lambda xs: " and ".join(f"({x})" for x in xs)),
        st.lists(children, min_size=2, max_size=3).map(lambda xs: " or ".join(f"({x})" for x in xs)),
        st.builds(lambda a, b, c: f"{a} and {b} or not {c}", children, children, children),
    )


filters = st.recursive(leaf, _combine, max_leaves=8).filter(lambda s: len(s) <= 4000)


@settings(max_examples=150, deadline=None)
@given(filters)
def test_generated_filters_parse(text):
    f = parse(text, ATTRIBUTES)
    assert f.attributes <= set(ATTRIBUTES)
