"""Filter templates: a small, safe expression language over contact fields and attributes.

    attr.segment in ('gold', 'silver') and email is not null
        and created_at > now - 7 days and area_code(phone1) in ('212', '646')

`parse` turns a text into a `Filter` (a typed AST); it needs no clock and no database, so a
template is checked when it is saved. Two backends read the same AST with the same meaning:
`predicate`/`evaluate` here (plain Python) and `pom_actors.store.filters.compile_sql` (a WHERE
fragment with every value as a parameter). `today` and `now` are bound when a backend runs,
from the injected clock (principle 4). docs/filters.md is the user's reference; the rules that
both backends must agree on are written once, here:

* Logic is SQL's three-valued logic: a comparison with a missing value is *unknown* (None), `not
  unknown` is unknown, and a contact is selected only when the filter is *true*.
* Built-in fields have fixed types (text; `created_at` a timestamp). A custom attribute
  (`attr.name`, JSON string/number/boolean) is read in the type of what it is compared with:
  as a number when compared with a number (a JSON number, or a string that is a plain decimal:
  `NUMBER_PATTERN`), as a date when compared with a date (a `YYYY-MM-DD` string naming a real day:
  `DATE_PATTERN`), as a boolean with `true`/`false` (JSON boolean, or the strings 'true'/'false'),
  as text otherwise (a string as is, a number in PostgreSQL's numeric spelling, a boolean as
  'true'/'false'). A value that cannot be read in the wanted type is unknown.
* Text compares by code point (PostgreSQL `COLLATE "C"`); `like` is exact, `ilike` folds ASCII
  letters only; `\\` escapes `%`, `_` and itself in patterns.
* `timezone` is true for `=`/`in`/`like` when any of the contact's candidate zones matches; `!=`,
  `not in`, `not like` are the negation; `timezone is null` means "no candidate zone".

Safety: the input is at most MAX_LENGTH characters (NUL and lone surrogates refused), nesting at
most MAX_DEPTH, at most MAX_NODES nodes; the scanner and the parser are linear and check the
depth before they recurse. Every fault is a FilterError with its position.
"""
from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, Union
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

MAX_LENGTH = 4000
MAX_DEPTH = 32
MAX_NODES = 1000
MAX_LIST = 500
MAX_NAME = 200
MAX_SHIFT = 1_000_000

# Built-in contact columns a filter may name, with their types. `timezone` is the pseudo-field
# over the `timezones` array; custom attributes are `attr.NAME`.
FIELDS: dict[str, str] = {
    "external_id": "text", "first_name": "text", "last_name": "text",
    "phone1": "text", "phone2": "text", "email": "text", "created_at": "timestamp",
}
FUNCTIONS = ("area_code", "country_code")
UNITS = {"second": "seconds", "minute": "minutes", "hour": "hours", "day": "days",
         "week": "weeks", "month": "months", "year": "years"}
UNITS.update({plural: plural for plural in list(UNITS.values())})
KEYWORDS = frozenset({"and", "or", "not", "in", "like", "ilike", "is", "null", "true", "false",
                      "between", "date", "timestamp", "today", "now", "attr", "timezone"})
COMPARISONS = ("=", "!=", "<", "<=", ">", ">=")
ORDERING = frozenset({"<", "<=", ">", ">="})

# Patterns shared by both backends (PostgreSQL `~`/`substring(... from ...)` and Python
# `re.fullmatch`): the same strings, written in the subset both regex dialects read alike.
NUMBER_PATTERN = r"^[+-]?[0-9]{1,30}(\.[0-9]{1,30})?$"
_YEAR = r"(?:[0-9]{3}[1-9]|[0-9]{2}[1-9]0|[0-9][1-9]00|[1-9]000)"
_LEAP = r"(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)"
DATE_PATTERN = (r"^(?:" + _YEAR + r"-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
                r"|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|1[0-9]|2[0-8]))"
                r"|" + _LEAP + r"-02-29)$")
AREA_CODE_PATTERN = r"^\+1([2-9][0-9]{2})[2-9][0-9]{6}$"


def _country_pattern() -> str:
    import phonenumbers  # the codes are prefix-free, so at most one alternative can match
    codes = sorted((str(c) for c in phonenumbers.COUNTRY_CODE_TO_REGION_CODE), key=lambda c: (len(c), c))
    return r"^\+(" + "|".join(codes) + r")[0-9]{1,14}$"


COUNTRY_CODE_PATTERN = _country_pattern()
FUNCTION_PATTERNS = {"area_code": AREA_CODE_PATTERN, "country_code": COUNTRY_CODE_PATTERN}
TEXT_JSON_TYPES = ("string", "number", "boolean")

_NUMBER_RE = re.compile(NUMBER_PATTERN)
_DATE_RE = re.compile(DATE_PATTERN)
_FUNCTION_RES = {name: re.compile(p) for name, p in FUNCTION_PATTERNS.items()}
_FORBIDDEN_RE = re.compile("[\x00\ud800-\udfff]")
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DIGITS_RE = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_TIMESTAMP_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?"
                           r"(?:Z|[+-][0-9]{2}:[0-9]{2})?")


class FilterError(ValueError):
    """A filter refused: `message`, the 0-based character `position`, 1-based `line`/`column`."""

    def __init__(self, message: str, source: str = "", position: int = 0):
        position = max(0, min(position, len(source)))
        line = source.count("\n", 0, position) + 1
        column = position - (source.rfind("\n", 0, position) + 1) + 1
        self.message, self.position, self.line, self.column = message, position, line, column
        super().__init__(f"{message} (line {line}, column {column})")

    def as_dict(self) -> dict[str, Any]:
        return {"message": self.message, "position": self.position, "line": self.line, "column": self.column}


# ----------------------------------------------------------------------------------------- AST
# Positions are kept for messages but ignored by equality, so two parses of the same filter
# compare equal however they were spaced.

def _pos() -> Any:
    return field(default=0, compare=False, repr=False)


@dataclass(frozen=True)
class FieldRef:
    name: str
    pos: int = _pos()

    @property
    def type(self) -> str:
        return FIELDS[self.name]


@dataclass(frozen=True)
class AttrRef:
    name: str
    pos: int = _pos()
    type = None          # read in the type of what it is compared with


@dataclass(frozen=True)
class Call:
    """area_code(x) / country_code(x) of a text field or attribute: text, or null."""
    func: str
    arg: Union[FieldRef, AttrRef]
    pos: int = _pos()
    type = "text"


@dataclass(frozen=True)
class Literal:
    value: Any           # str | Decimal | date | datetime (naive: in the bind zone) | bool
    type: str            # text | number | date | timestamp | bool
    pos: int = _pos()


@dataclass(frozen=True)
class Now:
    pos: int = _pos()
    type = "timestamp"


@dataclass(frozen=True)
class Today:
    pos: int = _pos()
    type = "date"


@dataclass(frozen=True)
class Shift:
    """Date arithmetic on a constant: base + sign * amount unit (folded when bound)."""
    base: Union[Literal, Now, Today, "Shift"]
    sign: int
    amount: int
    unit: str            # plural unit name
    pos: int = _pos()

    @property
    def type(self) -> str:
        return self.base.type


Constant = Union[Literal, Now, Today, Shift]
Operand = Union[FieldRef, AttrRef, Call, Constant]


@dataclass(frozen=True)
class Compare:
    op: str              # = != < <= > >=
    left: Operand
    right: Operand
    kind: str            # the type both sides are read in
    pos: int = _pos()


@dataclass(frozen=True)
class InList:
    operand: Operand
    values: tuple[Constant, ...]
    kind: str
    negated: bool = False
    pos: int = _pos()


@dataclass(frozen=True)
class Like:
    operand: Operand
    pattern: str
    ci: bool = False     # ilike
    negated: bool = False
    pos: int = _pos()


@dataclass(frozen=True)
class IsNull:
    operand: Union[FieldRef, AttrRef, Call, Literal]
    negated: bool = False
    pos: int = _pos()


@dataclass(frozen=True)
class ZoneIn:
    zones: tuple[str, ...]
    negated: bool = False
    pos: int = _pos()


@dataclass(frozen=True)
class ZoneLike:
    pattern: str
    ci: bool = False
    negated: bool = False
    pos: int = _pos()


@dataclass(frozen=True)
class ZoneEmpty:
    negated: bool = False
    pos: int = _pos()


@dataclass(frozen=True)
class Const:
    value: bool
    pos: int = _pos()


@dataclass(frozen=True)
class And:
    items: tuple["Expr", ...]
    pos: int = _pos()


@dataclass(frozen=True)
class Or:
    items: tuple["Expr", ...]
    pos: int = _pos()


@dataclass(frozen=True)
class Not:
    item: "Expr"
    pos: int = _pos()


Expr = Union[Compare, InList, Like, IsNull, ZoneIn, ZoneLike, ZoneEmpty, Const, And, Or, Not]


@dataclass(frozen=True)
class Filter:
    """A parsed, type-checked filter: its source, its AST and the attributes it reads."""
    source: str
    root: Expr
    attributes: frozenset[str]

    def __str__(self) -> str:
        return to_text(self.root)


# ------------------------------------------------------------------------------------- scanner

class _Tok:
    __slots__ = ("kind", "value", "pos", "end", "word")

    def __init__(self, kind: str, value: str, pos: int, end: int):
        self.kind = kind          # ident | qident | string | number | op | end
        self.value = value
        self.pos, self.end = pos, end
        self.word = value.lower() if kind == "ident" else ""    # keywords match in any case


_OPS2 = ("<=", ">=", "!=", "<>")
_OPS1 = "=<>(),.+-"


def _scan(src: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n = 0, len(src)
    while i < n:
        ch = src[i]
        if ch in " \t\r\n":
            i += 1
        elif ch == "'" or ch == '"':
            start, i, parts = i, i + 1, []
            while True:
                j = src.find(ch, i)
                if j < 0:
                    what = "string" if ch == "'" else "quoted name"
                    hint = " (a quote inside a string is doubled: 'O''Brien')" if "\\'" in src[:start + 1] else ""
                    raise FilterError(f"unterminated {what} (started here){hint}", src, start)
                parts.append(src[i:j])
                if j + 1 < n and src[j + 1] == ch:      # doubled quote: one quote character
                    parts.append(ch)
                    i = j + 2
                    continue
                i = j + 1
                break
            toks.append(_Tok("string" if ch == "'" else "qident", "".join(parts), start, i))
        elif m := _IDENT_RE.match(src, i):
            toks.append(_Tok("ident", m.group(), i, m.end()))
            i = m.end()
        elif m := _DIGITS_RE.match(src, i):
            toks.append(_Tok("number", m.group(), i, m.end()))
            i = m.end()
        elif src.startswith(_OPS2, i):
            op = src[i:i + 2]
            toks.append(_Tok("op", "!=" if op == "<>" else op, i, i + 2))
            i += 2
        elif ch in _OPS1:
            toks.append(_Tok("op", ch, i, i + 1))
            i += 1
        else:
            hint = " (strings take single quotes)" if ch in "`´‘’“”" else ""
            raise FilterError(f"unexpected character {ch!r}{hint}", src, i)
    toks.append(_Tok("end", "", n, n))
    return toks


# -------------------------------------------------------------------------------------- parser

@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def _describe(tok: _Tok) -> str:
    if tok.kind == "end":
        return "the end of the filter"
    if tok.kind == "string":
        return "a string"
    if tok.kind == "qident":
        return "a quoted name"
    return repr(tok.value)


class _Parser:
    def __init__(self, src: str, attributes: frozenset[str] | None, max_depth: int, max_nodes: int):
        self.src, self.attributes = src, attributes
        self.max_depth, self.max_nodes = max_depth, max_nodes
        self.toks = _scan(src)
        self.i = 0
        self.depth = 0
        self.nodes = 0
        self.used: set[str] = set()

    # -- helpers
    def fail(self, message: str, pos: int) -> FilterError:
        return FilterError(message, self.src, pos)

    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def peek(self, k: int = 1) -> _Tok:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def advance(self) -> _Tok:
        tok = self.toks[self.i]
        self.i = min(self.i + 1, len(self.toks) - 1)
        return tok

    def is_op(self, value: str, tok: _Tok | None = None) -> bool:
        tok = tok or self.tok
        return tok.kind == "op" and tok.value == value

    def is_word(self, *words: str, tok: _Tok | None = None) -> bool:
        return (tok or self.tok).word in words

    def expect_op(self, value: str, context: str) -> _Tok:
        if not self.is_op(value):
            raise self.fail(f"expected '{value}' {context}, found {_describe(self.tok)}", self.tok.pos)
        return self.advance()

    def count(self, n: int = 1) -> None:
        self.nodes += n
        if self.nodes > self.max_nodes:
            raise self.fail(f"filter too large: more than {self.max_nodes} terms", self.tok.pos)

    def enter(self, tok: _Tok) -> None:
        """Checked before every recursion (parentheses and `not`): no RecursionError."""
        self.depth += 1
        if self.depth > self.max_depth:
            raise self.fail(f"filter nested too deeply (more than {self.max_depth} levels)", tok.pos)

    # -- grammar
    def parse(self) -> Expr:
        expr = self.parse_or()
        if self.tok.kind != "end":
            raise self.fail(f"expected 'and', 'or' or the end of the filter, found {_describe(self.tok)}"
                            + self._quote_hint(), self.tok.pos)
        return expr

    def _quote_hint(self) -> str:
        prev = self.toks[self.i - 1] if self.i else None
        if prev is not None and prev.kind == "string" and prev.value.endswith("\\"):
            return " (a quote inside a string is doubled: 'O''Brien')"
        return ""

    def parse_or(self) -> Expr:
        pos = self.tok.pos
        items = [self.parse_and()]
        while self.is_word("or"):
            self.advance()
            items.append(self.parse_and())
        if len(items) == 1:
            return items[0]
        self.count()
        return Or(tuple(items), pos)

    def parse_and(self) -> Expr:
        pos = self.tok.pos
        items = [self.parse_not()]
        while self.is_word("and"):
            self.advance()
            items.append(self.parse_not())
        if len(items) == 1:
            return items[0]
        self.count()
        return And(tuple(items), pos)

    def parse_not(self) -> Expr:
        if self.is_word("not"):
            tok = self.advance()
            self.enter(tok)
            item = self.parse_not()
            self.depth -= 1
            self.count()
            return Not(item, tok.pos)
        return self.parse_predicate()

    def parse_predicate(self) -> Expr:
        start = self.tok
        if self.is_op("("):
            self.advance()
            self.enter(start)
            inner = self.parse_or()
            self.expect_op(")", f"to close the '(' at column {FilterError('', self.src, start.pos).column}")
            self.depth -= 1
            return inner
        if self.is_word("timezone"):
            return self.parse_zone_test(self.advance())
        left = self.parse_value()
        tok = self.tok
        if tok.kind == "op" and tok.value in COMPARISONS:
            self.advance()
            right = self.parse_value()
            return self.compare(tok.value, left, right, tok.pos)
        negated = False
        if self.is_word("not") and self.is_word("in", "like", "ilike", "between", tok=self.peek()):
            self.advance()
            negated = True
        tok = self.tok
        word = tok.word
        if word == "in":
            self.advance()
            values = self.parse_list()
            kind = self.common_type(left, values, tok.pos)
            self.count()
            return InList(left, tuple(values), kind, negated, tok.pos)
        if word in ("like", "ilike"):
            self.advance()
            pattern = self.parse_pattern()
            self.require_text(left, word, tok.pos)
            self.count()
            return Like(left, pattern, word == "ilike", negated, tok.pos)
        if word == "between":
            self.advance()
            low = self.parse_value()
            if not self.is_word("and"):
                raise self.fail(f"expected 'and' in 'between ... and ...', found {_describe(self.tok)}",
                                self.tok.pos)
            self.advance()
            high = self.parse_value()
            self.count(2)
            both = And((self.compare(">=", left, low, tok.pos), self.compare("<=", left, high, tok.pos)), tok.pos)
            return Not(both, tok.pos) if negated else both
        if word == "is":
            self.advance()
            neg = False
            if self.is_word("not"):
                self.advance()
                neg = True
            if not self.is_word("null"):
                raise self.fail(f"expected 'null' after 'is{' not' if neg else ''}', found {_describe(self.tok)}",
                                self.tok.pos)
            self.advance()
            if isinstance(left, (Now, Today, Shift)):
                raise self.fail("today and now are never null", tok.pos)
            self.count()
            return IsNull(left, neg, tok.pos)
        if isinstance(left, Literal) and left.type == "bool":
            self.count()
            return Const(left.value, left.pos)
        raise self.fail("expected a comparison (=, !=, <, <=, >, >=, in, like, ilike, between, is null) "
                        f"after {self.src[start.pos:self.toks[self.i - 1].end]!r}, found {_describe(tok)}",
                        tok.pos)

    def parse_zone_test(self, zone_tok: _Tok) -> Expr:
        tok = self.tok
        if tok.kind == "op" and tok.value in ("=", "!="):
            self.advance()
            value = self.tok
            if value.kind != "string":
                raise self.fail(f"timezone {tok.value} takes a zone name in quotes, "
                                f"like 'America/New_York'", value.pos)
            self.advance()
            self.count(2)
            return ZoneIn((self.zone(value),), tok.value == "!=", zone_tok.pos)
        negated = False
        if self.is_word("not") and self.is_word("in", "like", "ilike", tok=self.peek()):
            self.advance()
            negated = True
        tok = self.tok
        if tok.word == "in":
            self.advance()
            self.expect_op("(", "after 'in'")
            zones: list[str] = []
            while True:
                value = self.tok
                if value.kind != "string":
                    raise self.fail(f"timezone in (...) takes zone names in quotes, found {_describe(value)}",
                                    value.pos)
                self.advance()
                zones.append(self.zone(value))
                self.count()
                if len(zones) > MAX_LIST:
                    raise self.fail(f"a list holds at most {MAX_LIST} values", value.pos)
                if self.is_op(","):
                    self.advance()
                    continue
                self.expect_op(")", "to close the list")
                break
            self.count()
            return ZoneIn(tuple(zones), negated, zone_tok.pos)
        if tok.word in ("like", "ilike"):
            self.advance()
            pattern = self.parse_pattern()
            self.count()
            return ZoneLike(pattern, tok.word == "ilike", negated, zone_tok.pos)
        if tok.word == "is" and not negated:
            self.advance()
            neg = False
            if self.is_word("not"):
                self.advance()
                neg = True
            if not self.is_word("null"):
                raise self.fail(f"expected 'null', found {_describe(self.tok)}", self.tok.pos)
            self.advance()
            self.count()
            return ZoneEmpty(neg, zone_tok.pos)
        raise self.fail("timezone takes =, !=, in, not in, like, ilike or is [not] null "
                        "(it is true when any of the contact's zones matches)", tok.pos)

    def zone(self, tok: _Tok) -> str:
        if tok.value not in _zones():
            raise self.fail(f"unknown time zone {tok.value!r} (IANA names like 'America/New_York')", tok.pos)
        return tok.value

    def parse_list(self) -> list[Constant]:
        self.expect_op("(", "after 'in'")
        values: list[Constant] = []
        while True:
            value = self.parse_value()
            if not isinstance(value, (Literal, Now, Today, Shift)):
                raise self.fail("a list after 'in' holds values (strings, numbers, dates), not fields", value.pos)
            values.append(value)
            if len(values) > MAX_LIST:
                raise self.fail(f"a list holds at most {MAX_LIST} values", value.pos)
            if self.is_op(","):
                self.advance()
                continue
            self.expect_op(")", "to close the list")
            return values

    def parse_pattern(self) -> str:
        tok = self.tok
        if tok.kind != "string":
            raise self.fail(f"like/ilike take a pattern in quotes, found {_describe(tok)}", tok.pos)
        self.advance()
        self.count()
        escaped = False
        for ch in tok.value:
            escaped = (not escaped) and ch == "\\"
        if escaped:
            raise self.fail("a like pattern must not end with the escape character '\\' (write '\\\\' "
                            "for a backslash)", tok.pos)
        return tok.value

    def parse_value(self) -> Operand:
        base = self.parse_term()
        while self.is_op("+") or self.is_op("-"):
            op = self.advance()
            if not isinstance(base, (Literal, Now, Today, Shift)) or base.type not in ("date", "timestamp"):
                raise self.fail("date arithmetic applies to today, now, date '...' and timestamp '...' "
                                "(write created_at > now - 7 days, not created_at + 7 days > now)", op.pos)
            amount = self.tok
            if amount.kind != "number" or "." in amount.value:
                raise self.fail(f"expected a whole number of days, weeks, ... after '{op.value}', "
                                f"found {_describe(amount)}", amount.pos)
            self.advance()
            if int(amount.value) > MAX_SHIFT:
                raise self.fail(f"at most {MAX_SHIFT} units in date arithmetic", amount.pos)
            unit = self.tok
            if unit.word not in UNITS:
                raise self.fail("expected a unit (seconds, minutes, hours, days, weeks, months, years), "
                                f"found {_describe(unit)}", unit.pos)
            self.advance()
            plural = UNITS[unit.word]
            if base.type == "date" and plural in ("seconds", "minutes", "hours"):
                raise self.fail(f"{plural} apply to timestamps (now, timestamp '...'); today is a date",
                                unit.pos)
            self.count()
            base = Shift(base, 1 if op.value == "+" else -1, int(amount.value), plural, op.pos)
        return base

    def parse_term(self) -> Operand:
        tok = self.tok
        self.count()
        if tok.kind == "number":
            self.advance()
            return self.number(tok.value, tok)
        if self.is_op("-") and self.peek().kind == "number":
            self.advance()
            return self.number("-" + self.advance().value, tok)
        if tok.kind == "string":
            self.advance()
            return Literal(tok.value, "text", tok.pos)
        if tok.kind == "qident":
            raise self.fail(f'"{tok.value}" is a quoted name; strings take single quotes, and quoted '
                            f'names follow attr. (attr."{tok.value}")', tok.pos)
        if tok.kind != "ident":
            raise self.fail(f"expected a field, an attribute or a value, found {_describe(tok)}", tok.pos)
        word = tok.word
        self.advance()
        if word in ("true", "false"):
            return Literal(word == "true", "bool", tok.pos)
        if word == "null":
            raise self.fail("null is not a value: write 'x is null' or 'x is not null'", tok.pos)
        if word in ("date", "timestamp"):
            text = self.tok
            if text.kind != "string":
                raise self.fail(f"expected a quoted {word} after '{tok.value}', like "
                                + ("date '2026-01-31'" if word == "date" else "timestamp '2026-01-31 09:30'"),
                                text.pos)
            self.advance()
            return self.date_literal(word, text)
        if word == "today":
            return Today(tok.pos)
        if word == "now":
            return Now(tok.pos)
        if word == "attr":
            self.expect_op(".", "after 'attr' (custom attributes are written attr.NAME)")
            name = self.tok
            if name.kind not in ("ident", "qident"):
                raise self.fail(f"expected an attribute name after 'attr.', found {_describe(name)}", name.pos)
            self.advance()
            return self.attribute(name)
        if word == "timezone":
            raise self.fail("timezone is tested on its own: timezone in ('America/New_York', ...)", tok.pos)
        if word in FUNCTIONS:
            self.expect_op("(", f"after {word}")
            arg_tok = self.tok
            arg = self.parse_term()
            if not isinstance(arg, (FieldRef, AttrRef)) or (isinstance(arg, FieldRef) and arg.type != "text"):
                raise self.fail(f"{word}() takes a phone field or attribute, like {word}(phone1)", arg_tok.pos)
            self.expect_op(")", f"to close {word}(")
            return Call(word, arg, tok.pos)
        if word in FIELDS:
            return FieldRef(word, tok.pos)
        raise self.fail(self.unknown_field(tok.value), tok.pos)

    def unknown_field(self, name: str) -> str:
        fields = ", ".join(FIELDS) + ", timezone"
        if name.lower() in KEYWORDS:
            return f"unexpected '{name}'"
        if name.lower() in ("attributes", "attribute"):
            return "custom attributes are written attr.NAME"
        if self.attributes is None or name in self.attributes:
            return f"unknown field '{name}'; custom attributes are written attr.{name} (fields: {fields})"
        return f"unknown field '{name}' (fields: {fields}; custom attributes: attr.NAME)"

    def attribute(self, tok: _Tok) -> AttrRef:
        name = tok.value
        if not name or len(name) > MAX_NAME:
            raise self.fail(f"an attribute name has 1 to {MAX_NAME} characters", tok.pos)
        if self.attributes is not None and name not in self.attributes:
            known = ", ".join(sorted(self.attributes)[:20]) or "none"
            raise self.fail(f"unknown attribute '{name}' (this list has: {known})", tok.pos)
        self.used.add(name)
        return AttrRef(name, tok.pos)

    def number(self, text: str, tok: _Tok) -> Literal:
        whole, _, frac = text.lstrip("-").partition(".")
        if len(whole) > 30 or len(frac) > 30:
            raise self.fail("a number has at most 30 digits before and 30 after the point", tok.pos)
        return Literal(Decimal(text), "number", tok.pos)

    def date_literal(self, word: str, tok: _Tok) -> Literal:
        text = tok.value
        if word == "date":
            if not _DATE_RE.fullmatch(text):
                raise self.fail(f"not a date {text!r}: write date 'YYYY-MM-DD' with a real day", tok.pos)
            return Literal(date.fromisoformat(text), "date", tok.pos)
        try:
            if not _TIMESTAMP_RE.fullmatch(text) or not _DATE_RE.fullmatch(text[:10]):
                raise ValueError
            value = datetime.fromisoformat(text)
        except ValueError:
            raise self.fail(f"not a timestamp {text!r}: write timestamp 'YYYY-MM-DD HH:MM[:SS][+HH:MM|Z]'",
                            tok.pos) from None
        return Literal(value, "timestamp", tok.pos)

    # -- typing
    def kind_of(self, a: Operand, b: Operand, op: str, pos: int) -> str:
        ta, tb = a.type, b.type
        if ta is None and tb is None:
            kind = "text"
        elif ta is None or tb is None:
            kind = ta or tb
            if kind == "timestamp":
                raise self.fail("attributes compare with dates (today, date '...'), not timestamps (now)", pos)
        elif ta == tb:
            kind = ta
        elif {ta, tb} == {"date", "timestamp"}:
            kind = "timestamp"
        else:
            raise self.fail(f"cannot compare {_type_name(ta)} with {_type_name(tb)}{_hint(a, b)}", pos)
        if kind == "bool" and op in ORDERING:
            raise self.fail(f"booleans take = and !=, not {op}", pos)
        return kind

    def compare(self, op: str, left: Operand, right: Operand, pos: int) -> Compare:
        kind = self.kind_of(left, right, op, pos)
        self.count()
        return Compare(op, left, right, kind, pos)

    def common_type(self, operand: Operand, values: list[Constant], pos: int) -> str:
        kind = None
        for value in values:
            k = self.kind_of(operand, value, "=", value.pos)
            if kind is not None and k != kind:
                if {k, kind} == {"date", "timestamp"}:
                    k = "timestamp"
                else:
                    raise self.fail(f"a list mixes {_type_name(kind)} and {_type_name(k)}", value.pos)
            kind = k
        return kind or "text"

    def require_text(self, operand: Operand, word: str, pos: int) -> None:
        if operand.type not in (None, "text"):
            raise self.fail(f"{word} applies to text, not to {_type_name(operand.type)}", pos)


def _type_name(t: str | None) -> str:
    return {"text": "text", "number": "a number", "date": "a date", "timestamp": "a timestamp",
            "bool": "a boolean", None: "an attribute"}[t]


def _hint(a: Operand, b: Operand) -> str:
    for x, y in ((a, b), (b, a)):
        if x.type in ("timestamp", "date") and isinstance(y, Literal) and y.type == "text":
            if _DATE_RE.fullmatch(y.value):
                return f" (write date '{y.value}')"
            if _TIMESTAMP_RE.fullmatch(y.value):
                return f" (write timestamp '{y.value}')"
    return ""


def parse(source: str, attributes: Iterable[str] | None = None, *, max_length: int | None = MAX_LENGTH,
          max_depth: int = MAX_DEPTH, max_nodes: int = MAX_NODES) -> Filter:
    """Parse and type-check a filter. `attributes` are the custom attribute names allowed
    (None: any). Raises FilterError; never RecursionError, whatever the input."""
    if not isinstance(source, str):
        raise FilterError("a filter is a string")
    if isinstance(attributes, str):
        raise TypeError("attributes is a collection of names, not one string")
    if max_length is not None and len(source) > max_length:
        raise FilterError(f"filter too long: {len(source)} characters, at most {max_length}", source[:max_length],
                          max_length)
    bad = _FORBIDDEN_RE.search(source)
    if bad:
        raise FilterError("NUL characters and lone surrogates are not allowed", source, bad.start())
    if not source.strip():
        raise FilterError("empty filter (write true to select every contact)", source, 0)
    parser = _Parser(source, None if attributes is None else frozenset(attributes), max_depth, max_nodes)
    root = parser.parse()
    return Filter(source, root, frozenset(parser.used))


def ensure(expr: Filter | str, attributes: Iterable[str] | None = None) -> Filter:
    """A Filter from a text or a Filter, checked against `attributes` when given (a Filter
    reading another attribute is parsed again, for the fault's position)."""
    if not isinstance(expr, Filter):
        return parse(expr, attributes)
    if attributes is not None:
        attributes = frozenset(attributes)
        if not expr.attributes <= attributes:
            return parse(expr.source, attributes)
    return expr


# ------------------------------------------------------------------------- binding constants

@dataclass(frozen=True)
class Binding:
    """The values `today`/`now` take for one run of a backend, and the zone of dates."""
    now: datetime
    tz: ZoneInfo
    source: str = ""

    @classmethod
    def of(cls, now: datetime, tz: str | ZoneInfo = "UTC", source: str = "") -> "Binding":
        if not isinstance(now, datetime) or now.tzinfo is None:
            raise ValueError("now must be a timezone-aware datetime (the injected clock's now())")
        if isinstance(tz, str):
            try:
                tz = ZoneInfo(tz)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {tz!r}") from None
        return cls(now.astimezone(timezone.utc), tz, source)

    @property
    def today(self) -> date:
        return self.now.astimezone(self.tz).date()

    def midnight(self, day: date) -> datetime:
        return datetime.combine(day, time(0), self.tz).astimezone(timezone.utc)


def _add_months(value: date | datetime, months: int) -> date | datetime:
    y, m = divmod(value.month - 1 + months, 12)
    year, month = value.year + y, m + 1
    if not 1 <= year <= 9999:
        raise OverflowError
    return value.replace(year=year, month=month, day=min(value.day, calendar.monthrange(year, month)[1]))


def _constant_raw(node: Constant, b: Binding) -> Any:
    if isinstance(node, Literal):
        if node.type == "timestamp":
            value = node.value
            return (value.replace(tzinfo=b.tz) if value.tzinfo is None else value).astimezone(timezone.utc)
        return node.value
    if isinstance(node, Now):
        return b.now
    if isinstance(node, Today):
        return b.today
    base = _constant_raw(node.base, b)
    n = node.sign * node.amount
    try:
        if node.unit in ("months", "years"):
            return _add_months(base, n * (12 if node.unit == "years" else 1))
        return base + timedelta(**{node.unit: n})
    except (OverflowError, ValueError):
        raise FilterError("date arithmetic out of range", b.source, node.pos) from None


def constant(node: Constant, kind: str, b: Binding) -> Any:
    """The value of a constant read as `kind`: str, Decimal, date, aware UTC datetime or bool.
    A date read as a timestamp is its midnight in the binding's zone."""
    value = _constant_raw(node, b)
    if kind == "timestamp" and not isinstance(value, datetime):
        return b.midnight(value)
    if kind == "text" and not isinstance(value, str):    # cannot happen for checked ASTs
        raise FilterError("a constant of the wrong type", b.source, node.pos)
    return value


# -------------------------------------------------------------- value views (shared semantics)

def _decimal_text(value: Decimal) -> str:
    """PostgreSQL's numeric spelling of a JSON number: no exponent, no negative zero."""
    if value == 0:
        value = abs(value)
    return format(value, "f")


def _json_number(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return None
        return Decimal(repr(value))            # the JSON text the database stored
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    return None


def attr_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    number = _json_number(value)
    return None if number is None else _decimal_text(number)


def attr_number(value: Any) -> Decimal | None:
    if isinstance(value, str):
        if _NUMBER_RE.fullmatch(value):
            try:
                return Decimal(value)
            except InvalidOperation:              # pragma: no cover (the pattern excludes it)
                return None
        return None
    return _json_number(value)


def attr_date(value: Any) -> date | None:
    if isinstance(value, str) and _DATE_RE.fullmatch(value):
        return date.fromisoformat(value)
    return None


def attr_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    return None


ATTR_VIEWS: dict[str, Callable[[Any], Any]] = {
    "text": attr_text, "number": attr_number, "date": attr_date, "bool": attr_bool,
}

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def ascii_lower(text: str) -> str:
    return text.translate(_ASCII_LOWER)


@lru_cache(maxsize=512)
def _like_items(pattern: str) -> tuple[str | None, ...]:
    """A like pattern as items: a character, '' for '_' (any one) or None for '%' (any run)."""
    items: list[str | None] = []
    escaped = False
    for ch in pattern:
        if escaped:
            items.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "%":
            if not items or items[-1] is not None:
                items.append(None)
        elif ch == "_":
            items.append("")
        else:
            items.append(ch)
    return tuple(items)


def like(text: str, pattern: str, ci: bool = False) -> bool:
    """SQL LIKE (escape '\\'), in O(len(text) * len(pattern)) at worst: no regex backtracking."""
    if ci:
        text, pattern = ascii_lower(text), ascii_lower(pattern)
    items = _like_items(pattern)
    t = p = 0
    star_p, star_t = -1, 0
    n, m = len(text), len(items)
    while t < n:
        if p < m and items[p] is not None and (items[p] == "" or items[p] == text[t]):
            t += 1
            p += 1
        elif p < m and items[p] is None:
            star_p, star_t = p, t
            p += 1
        elif star_p >= 0:
            star_t += 1
            t, p = star_t, star_p + 1
        else:
            return False
    while p < m and items[p] is None:
        p += 1
    return p == m


def call(func: str, text: str | None) -> str | None:
    if text is None:
        return None
    m = _FUNCTION_RES[func].fullmatch(text)
    return m.group(1) if m else None


# ------------------------------------------------------------------------- the Python backend

Contact = Mapping[str, Any]
Truth = Union[bool, None]


def _raw_attr(contact: Contact, name: str) -> Any:
    attrs = contact.get("attributes")
    return attrs.get(name) if isinstance(attrs, Mapping) else None


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def _operand(node: Operand, kind: str, b: Binding) -> Callable[[Contact], Any]:
    if isinstance(node, FieldRef):
        name = node.name
        if node.type == "timestamp":
            return lambda c: _timestamp(c.get(name))
        return lambda c: (lambda v: v if isinstance(v, str) else None)(c.get(name))
    if isinstance(node, AttrRef):
        name, view = node.name, ATTR_VIEWS[kind]
        return lambda c: view(_raw_attr(c, name))
    if isinstance(node, Call):
        arg, func = _operand(node.arg, "text", b), node.func
        return lambda c: call(func, arg(c))
    value = constant(node, kind, b)
    return lambda c: value


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}


def _zones_of(contact: Contact) -> list[str]:
    zones = contact.get("timezones") or []
    return [z for z in zones if isinstance(z, str)]


def _not(x: Truth) -> Truth:
    return None if x is None else not x


def _build(node: Expr, b: Binding) -> Callable[[Contact], Truth]:
    if isinstance(node, Const):
        value = node.value
        return lambda c: value
    if isinstance(node, Not):
        inner = _build(node.item, b)
        return lambda c: _not(inner(c))
    if isinstance(node, (And, Or)):
        parts = [_build(item, b) for item in node.items]
        stop = isinstance(node, Or)          # True decides an or, False decides an and

        def junction(c: Contact) -> Truth:
            result: Truth = not stop
            for part in parts:
                v = part(c)
                if v is stop:
                    return stop
                if v is None:
                    result = None
            return result
        return junction
    if isinstance(node, Compare):
        left, right, op = _operand(node.left, node.kind, b), _operand(node.right, node.kind, b), _OPS[node.op]

        def comparison(c: Contact) -> Truth:
            x, y = left(c), right(c)
            return None if x is None or y is None else op(x, y)
        return comparison
    if isinstance(node, InList):
        get = _operand(node.operand, node.kind, b)
        values = frozenset(constant(v, node.kind, b) for v in node.values)
        negated = node.negated

        def membership(c: Contact) -> Truth:
            x = get(c)
            return None if x is None else ((x in values) != negated)
        return membership
    if isinstance(node, Like):
        get = _operand(node.operand, "text", b)
        pattern, ci, negated = node.pattern, node.ci, node.negated

        def matching(c: Contact) -> Truth:
            x = get(c)
            return None if x is None else (like(x, pattern, ci) != negated)
        return matching
    if isinstance(node, IsNull):
        operand, negated = node.operand, node.negated
        if isinstance(operand, AttrRef):
            name = operand.name
            raw = lambda c: _raw_attr(c, name)  # noqa: E731 (missing or JSON null)
        elif isinstance(operand, FieldRef):
            name = operand.name
            raw = lambda c: c.get(name)  # noqa: E731
        else:
            raw = _operand(operand, "text" if operand.type is None else operand.type, b)
        return lambda c: (raw(c) is None) != negated
    if isinstance(node, ZoneIn):
        zones, negated = frozenset(node.zones), node.negated
        return lambda c: any(z in zones for z in _zones_of(c)) != negated
    if isinstance(node, ZoneLike):
        pattern, ci, negated = node.pattern, node.ci, node.negated
        return lambda c: any(like(z, pattern, ci) for z in _zones_of(c)) != negated
    if isinstance(node, ZoneEmpty):
        negated = node.negated
        return lambda c: (not _zones_of(c)) != negated
    raise TypeError(f"not a filter node: {node!r}")


def predicate(expr: Filter | str, now: datetime, tz: str | ZoneInfo = "UTC") -> Callable[[Contact], Truth]:
    """The filter as a function of a contact (a `contacts` row as a dict) giving True, False or
    None (unknown); `today`/`now` bound once, from `now`."""
    f = ensure(expr)
    return _build(f.root, Binding.of(now, tz, f.source))


def truth(expr: Filter | str, contact: Contact, now: datetime, tz: str | ZoneInfo = "UTC") -> Truth:
    return predicate(expr, now, tz)(contact)


def evaluate(expr: Filter | str, contact: Contact, now: datetime, tz: str | ZoneInfo = "UTC") -> bool:
    """Whether the filter selects the contact (true; false and unknown do not select)."""
    return truth(expr, contact, now, tz) is True


# ---------------------------------------------------------------------------- canonical text

def _quote(text: str, q: str = "'") -> str:
    return q + text.replace(q, q + q) + q


def _name(name: str) -> str:
    return name if _IDENT_RE.fullmatch(name) else _quote(name, '"')


def _value_text(node: Operand) -> str:
    if isinstance(node, FieldRef):
        return node.name
    if isinstance(node, AttrRef):
        return "attr." + _name(node.name)
    if isinstance(node, Call):
        return f"{node.func}({_value_text(node.arg)})"
    if isinstance(node, Now):
        return "now"
    if isinstance(node, Today):
        return "today"
    if isinstance(node, Shift):
        unit = node.unit[:-1] if node.amount == 1 else node.unit
        return f"{_value_text(node.base)} {'+' if node.sign > 0 else '-'} {node.amount} {unit}"
    v = node.value
    if node.type == "text":
        return _quote(v)
    if node.type == "bool":
        return "true" if v else "false"
    if node.type == "number":
        return _decimal_text(v)
    if node.type == "date":
        return f"date '{v.isoformat()}'"
    return f"timestamp '{v.isoformat()}'"


def to_text(node: Expr) -> str:
    """Canonical text of a filter (fully parenthesised): parse(to_text(x)) gives x again."""
    if isinstance(node, Const):
        return "true" if node.value else "false"
    if isinstance(node, Not):
        return f"not ({to_text(node.item)})"
    if isinstance(node, (And, Or)):
        word = " and " if isinstance(node, And) else " or "
        return word.join(f"({to_text(i)})" for i in node.items)
    if isinstance(node, Compare):
        return f"{_value_text(node.left)} {node.op} {_value_text(node.right)}"
    if isinstance(node, InList):
        return (f"{_value_text(node.operand)} {'not in' if node.negated else 'in'} "
                f"({', '.join(_value_text(v) for v in node.values)})")
    if isinstance(node, Like):
        word = ("not " if node.negated else "") + ("ilike" if node.ci else "like")
        return f"{_value_text(node.operand)} {word} {_quote(node.pattern)}"
    if isinstance(node, IsNull):
        return f"{_value_text(node.operand)} is {'not ' if node.negated else ''}null"
    if isinstance(node, ZoneIn):
        return f"timezone {'not in' if node.negated else 'in'} ({', '.join(_quote(z) for z in node.zones)})"
    if isinstance(node, ZoneLike):
        word = ("not " if node.negated else "") + ("ilike" if node.ci else "like")
        return f"timezone {word} {_quote(node.pattern)}"
    if isinstance(node, ZoneEmpty):
        return f"timezone is {'not ' if node.negated else ''}null"
    raise TypeError(f"not a filter node: {node!r}")
