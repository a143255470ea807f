"""Phone numbers to E.164 at import speed, with the same answers as `phonenumbers`.

`phonenumbers.parse` + `is_valid_number` + `number_type` cost about 145 µs per number here;
an import of a million contacts cannot pay that. Two things make it cheap:

* **Reading** (which digits are the country code, which are a trunk or international prefix)
  depends only on the first digits and the length of the number: the reading found by
  `phonenumbers.parse` for one number is reused for every number of the same default region,
  leading `+`, first `READING_DIGITS` digits and length (a cache keyed by that prefix).
* **Validity and type** are regular expressions of the metadata over the national number.
  Every pattern of a country code (the general pattern, every type's pattern, the leading
  digits of every region sharing the code) is compiled once into one automaton over the ten
  digits, made deterministic lazily; a number walks it digit by digit (a list index per
  digit) and the verdict of the state it ends in, with its length, is computed once and kept.

A number the fast path cannot judge with certainty goes to `phonenumbers` itself: any
character other than digits, spaces and `()-./`, a region whose national prefix is rewritten
(a transform rule: its national number is not a suffix of the digits), non-geographic codes, and any number the cached reading finds invalid.
So the cache can never refuse a number `phonenumbers` accepts; the unit tests compare both
paths over numbers of many regions.
"""
from __future__ import annotations

import re
from typing import NamedTuple
from re import _parser as sre_parse  # the stdlib's own regex parser (3.11+)

import phonenumbers
from phonenumbers import PhoneNumberType
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata

READING_DIGITS = 1
_HEAD = 6                # digits whose walk is remembered per number head
_MISSING = object()
_ALLOWED = re.compile(r"^\s*\+?[\d\s().\-/]+$")
_NOT_DIGIT = re.compile(r"\D")

TYPE_NAMES = {PhoneNumberType.FIXED_LINE: "fixed_line", PhoneNumberType.MOBILE: "mobile",
              PhoneNumberType.FIXED_LINE_OR_MOBILE: "fixed_line_or_mobile",
              PhoneNumberType.TOLL_FREE: "toll_free", PhoneNumberType.PREMIUM_RATE: "premium_rate",
              PhoneNumberType.SHARED_COST: "shared_cost", PhoneNumberType.VOIP: "voip",
              PhoneNumberType.PERSONAL_NUMBER: "personal_number", PhoneNumberType.PAGER: "pager",
              PhoneNumberType.UAN: "uan", PhoneNumberType.VOICEMAIL: "voicemail",
              PhoneNumberType.UNKNOWN: "unknown"}

# the order of phonenumbers' _number_type_helper
_ORDERED = (("premium_rate", PhoneNumberType.PREMIUM_RATE), ("toll_free", PhoneNumberType.TOLL_FREE),
            ("shared_cost", PhoneNumberType.SHARED_COST), ("voip", PhoneNumberType.VOIP),
            ("personal_number", PhoneNumberType.PERSONAL_NUMBER), ("pager", PhoneNumberType.PAGER),
            ("uan", PhoneNumberType.UAN), ("voicemail", PhoneNumberType.VOICEMAIL))


class PhoneError(ValueError):
    """Not a phone number, or not a valid one; the message says which."""


class Phone(NamedTuple):
    e164: str
    type: str          # TYPE_NAMES value
    region: str        # ISO region ("US"), "001" for non-geographic codes


# -- a lazily determinised automaton over digits -----------------------------------------------
class _Unsupported(Exception):
    pass


class _Nfa:
    def __init__(self):
        self.eps: list[list[int]] = []
        self.edges: list[list[tuple[frozenset[int], int]]] = []

    def state(self) -> int:
        self.eps.append([])
        self.edges.append([])
        return len(self.eps) - 1

    def build(self, items, start: int) -> int:
        """States for the parsed sequence `items` from `start`; returns the end state."""
        cur = start
        for op, av in items:
            name = str(op)
            if name == "LITERAL":
                nxt = self.state()
                ch = chr(av)
                self.edges[cur].append((frozenset([int(ch)]) if ch.isdigit() and ch.isascii()
                                        else frozenset(), nxt))
                cur = nxt
            elif name == "IN":
                nxt = self.state()
                self.edges[cur].append((_digit_set(av), nxt))
                cur = nxt
            elif name == "ANY":
                nxt = self.state()
                self.edges[cur].append((frozenset(range(10)), nxt))
                cur = nxt
            elif name == "SUBPATTERN":
                cur = self.build(av[3], cur)
            elif name == "BRANCH":
                end = self.state()
                for alt in av[1]:
                    s = self.state()
                    self.eps[cur].append(s)
                    self.eps[self.build(alt, s)].append(end)
                cur = end
            elif name in ("MAX_REPEAT", "MIN_REPEAT"):
                lo, hi, sub = av
                for _ in range(lo):
                    cur = self.build(sub, cur)
                if hi == sre_parse.MAXREPEAT:
                    loop = self.state()
                    self.eps[cur].append(loop)
                    self.eps[self.build(sub, loop)].append(loop)
                    cur = loop
                else:
                    end = self.state()
                    for _ in range(hi - lo):
                        self.eps[cur].append(end)
                        cur = self.build(sub, cur)
                    self.eps[cur].append(end)
                    cur = end
            else:
                raise _Unsupported(name)
        return cur

    def closure(self, states) -> frozenset[int]:
        seen, stack = set(states), list(states)
        while stack:
            for t in self.eps[stack.pop()]:
                if t not in seen:
                    seen.add(t)
                    stack.append(t)
        return frozenset(seen)


def _digit_set(items) -> frozenset[int]:
    digits: set[int] = set()
    negate = False
    for op, av in items:
        name = str(op)
        if name == "LITERAL":
            if chr(av).isdigit() and chr(av).isascii():
                digits.add(int(chr(av)))
        elif name == "RANGE":
            lo, hi = av
            digits.update(d for d in range(10) if lo <= ord(str(d)) <= hi)
        elif name == "CATEGORY" and str(av) == "CATEGORY_DIGIT":
            digits.update(range(10))
        elif name == "NEGATE":
            negate = True
        else:
            raise _Unsupported(name)
    return frozenset(range(10)) - digits if negate else frozenset(digits)


class _CodeAutomaton:
    """Every pattern that decides validity and type for one country calling code."""

    def __init__(self, cc: int, regions: tuple[str, ...]):
        self.cc = str(cc)
        self.regions = [(r, PhoneMetadata.metadata_for_region(r)) for r in regions]
        self.regions = [(r, m) for r, m in self.regions if m is not None]
        nfa = _Nfa()
        start = nfa.state()
        self.accepts: dict[int, tuple[int, str]] = {}     # NFA accept state -> (region index, desc)
        self._lengths: dict[tuple[int, str], tuple[int, ...]] = {}
        for i, (_, md) in enumerate(self.regions):
            descs = [("general", md.general_desc), ("fixed_line", md.fixed_line), ("mobile", md.mobile)]
            descs += [(name, getattr(md, name)) for name, _ in _ORDERED]
            for name, desc in descs:
                if desc is None or not desc.national_number_pattern:
                    continue
                s = nfa.state()
                nfa.eps[start].append(s)
                self.accepts[nfa.build(sre_parse.parse(desc.national_number_pattern), s)] = (i, name)
                self._lengths[(i, name)] = tuple(desc.possible_length or ())
            if md.leading_digits:
                s = nfa.state()
                nfa.eps[start].append(s)
                end = nfa.build(sre_parse.parse(md.leading_digits), s)
                tail = nfa.state()                      # a prefix match: any digits may follow
                nfa.eps[end].append(tail)
                nfa.edges[tail].append((frozenset(range(10)), tail))
                self.accepts[tail] = (i, "leading")
        self.nfa = nfa
        self.sets: list[frozenset[int]] = []
        self.index: dict[frozenset[int], int] = {}
        self.moves: list[list[int | None]] = []
        self.verdicts: dict[tuple[int, int], tuple[str, str] | None] = {}
        self.start = self._dfa(nfa.closure([start]))
        self.heads: dict[str, int] = {}          # the state after the first _HEAD digits

    def _dfa(self, states: frozenset[int]) -> int:
        found = self.index.get(states)
        if found is None:
            found = self.index[states] = len(self.sets)
            self.sets.append(states)
            self.moves.append([None] * 10)
        return found

    def _move(self, d: int, digit: int) -> int:
        targets = [t for s in self.sets[d] for digits, t in self.nfa.edges[s] if digit in digits]
        nxt = self._dfa(self.nfa.closure(targets))
        self.moves[d][digit] = nxt
        return nxt

    def judge(self, nsn: str) -> tuple[str, str] | None:
        """(region, type name) of a national significant number, None when invalid."""
        head = nsn[:_HEAD]
        d = self.heads.get(head)
        if d is None:
            d = self._walk(self.start, head)
            if len(self.heads) < 500_000:
                self.heads[head] = d
        if len(nsn) > _HEAD:
            d = self._walk(d, nsn[_HEAD:])
        key = (d, len(nsn))
        verdict = self.verdicts.get(key, _MISSING)
        if verdict is _MISSING:
            verdict = self.verdicts[key] = self._verdict(d, len(nsn))
        return verdict

    def _walk(self, d: int, digits: str) -> int:
        moves = self.moves
        for ch in digits:
            digit = ord(ch) - 48
            nxt = moves[d][digit]
            d = self._move(d, digit) if nxt is None else nxt
        return d

    def _verdict(self, d: int, length: int) -> tuple[str, str] | None:
        matched = {self.accepts[s] for s in self.sets[d] if s in self.accepts}

        def matches(i: int, name: str) -> bool:
            if (i, name) not in self._lengths:
                return False
            lengths = self._lengths[(i, name)]
            return (not lengths or length in lengths) and (i, name) in matched

        for i, (region, md) in enumerate(self.regions):       # _region_code_for_number_from_list
            if md.leading_digits is not None:
                if (i, "leading") in matched:
                    kind = _type(i, md, matches)
                    return (region, TYPE_NAMES[kind]) if kind != PhoneNumberType.UNKNOWN else None
                continue
            kind = _type(i, md, matches)
            if kind != PhoneNumberType.UNKNOWN:
                return region, TYPE_NAMES[kind]
        return None


def _type(i: int, md, matches) -> int:
    """phonenumbers' _number_type_helper over the automaton's matches."""
    if not matches(i, "general"):
        return PhoneNumberType.UNKNOWN
    for name, kind in _ORDERED:
        if matches(i, name):
            return kind
    if matches(i, "fixed_line"):
        if md.same_mobile_and_fixed_line_pattern or matches(i, "mobile"):
            return PhoneNumberType.FIXED_LINE_OR_MOBILE
        return PhoneNumberType.FIXED_LINE
    if not md.same_mobile_and_fixed_line_pattern and matches(i, "mobile"):
        return PhoneNumberType.MOBILE
    return PhoneNumberType.UNKNOWN


_AUTOMATA: dict[str, _CodeAutomaton | None] = {}


def _automaton(cc: str) -> _CodeAutomaton | None:
    if cc not in _AUTOMATA:
        regions = COUNTRY_CODE_TO_REGION_CODE.get(int(cc), ())
        auto = None
        if regions and "001" not in regions:
            try:
                auto = _CodeAutomaton(int(cc), regions)
            except (_Unsupported, re.error):
                auto = None
        _AUTOMATA[cc] = auto
    return _AUTOMATA[cc]


# -- the normaliser ---------------------------------------------------------------------------
def slow_phone(raw: str, region: str | None) -> Phone:
    """`phonenumbers` itself: the reference the fast path must agree with."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise PhoneError(f"not a phone number: {exc}") from None
    if not phonenumbers.is_valid_number(number):
        raise PhoneError("not a valid phone number")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return Phone(e164, TYPE_NAMES.get(phonenumbers.number_type(number), "unknown"),
                 phonenumbers.region_code_for_number(number) or "")


class PhoneNormaliser:
    """E.164, type and region of raw numbers read in one default region; keeps its caches
    (one per process: each parsing task builds its own). `fast`/`slow` count the paths."""

    def __init__(self, region: str | None = None, cache_size: int = 200_000):
        self.region = region.upper() if region else None
        self.readings: dict[tuple[bool, int, str], list[tuple[str, str, _CodeAutomaton]]] = {}
        self.cache_size = cache_size
        self.fast = self.slow = 0

    def __call__(self, raw: str) -> Phone:
        if not _ALLOWED.match(raw):
            return self._slow(raw)
        plus = raw.lstrip().startswith("+")
        digits = _NOT_DIGIT.sub("", raw)
        if not 2 <= len(digits) <= 17:
            return self._slow(raw)
        readings = self.readings.get((plus, len(digits), digits[:READING_DIGITS]))
        if readings:
            for consumed, cc, auto in readings:          # the longest prefix first
                if digits.startswith(consumed):
                    verdict = auto.judge(digits[len(consumed):])
                    if verdict is None:                  # the cache never refuses: ask phonenumbers
                        break
                    self.fast += 1
                    return Phone(f"+{cc}{digits[len(consumed):]}", verdict[1], verdict[0])
        phone = self._slow(raw)
        self._learn(plus, digits, phone)
        return phone

    def _slow(self, raw: str) -> Phone:
        self.slow += 1
        return slow_phone(raw, self.region)

    def _learn(self, plus: bool, digits: str, phone: Phone) -> None:
        """Remember how this number was read: the digits phonenumbers consumed before its
        national number (international prefix, country code, trunk prefix) and its code."""
        if phone.region in ("", "001"):
            return
        cc = str(phonenumbers.country_code_for_region(phone.region))
        national = phone.e164[1 + len(cc):] if phone.e164.startswith("+" + cc) else ""
        if not national or not digits.endswith(national) or (auto := _automaton(cc)) is None:
            return
        if len(self.readings) >= self.cache_size:
            self.readings.clear()
        consumed = digits[:len(digits) - len(national)]
        readings = self.readings.setdefault((plus, len(digits), digits[:READING_DIGITS]), [])
        if all(r[0] != consumed for r in readings):
            readings.append((consumed, cc, auto))
            readings.sort(key=lambda r: -len(r[0]))
