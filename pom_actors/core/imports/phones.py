"""Phone numbers to E.164 at import speed, with the same answers as `phonenumbers`.

`phonenumbers.parse` + `is_valid_number` + `number_type` cost about 145 µs per number here;
an import of a million contacts cannot pay that. Two things make it cheap:

* **Reading** (which digits are an international prefix, the country code, a national
  prefix) follows `phonenumbers.parse` step by step for a number written with digits, spaces,
  `()-./` and a leading `+`: the + or the default region's international prefix and the
  country code; else the region's own code without + when the whole is too long to be
  national; else a national number; then the national prefix pattern. Where parse's choice
  would depend on more than that (its code without + in a number of a possible length, a
  prefix kept because the rest is not a possible number, a transform rule, non-geographic
  codes, any other character) the number goes to `phonenumbers` itself.
* **Validity and type** are regular expressions of the metadata over the national number.
  Every pattern of a country code (the general pattern, every type's pattern, the leading
  digits of every region sharing the code) is compiled once into one automaton over the ten
  digits, made deterministic lazily; a number walks it digit by digit (a list index per
  digit) and the verdict of the state it ends in, with its length, is computed once and kept.
* **Time zones** of a number depend on its type, its country code and its longest prefix
  in phonenumbers' zone data: `number_zones` looks that prefix up without parsing again.

The unit tests compare both paths, answers and zones, over numbers of every region written
in many forms (hypothesis), and the edge cases parse treats apart.
"""
from __future__ import annotations

import re
from typing import NamedTuple

from ..windows import phone_zones, zone_info
from re import _parser as sre_parse  # the stdlib's own regex parser (3.11+)

import phonenumbers
from phonenumbers import PhoneNumberType
from phonenumbers.timezone import UNKNOWN_TIMEZONE
from phonenumbers.tzdata import TIMEZONE_DATA, TIMEZONE_LONGEST_PREFIX
from phonenumbers.phonenumberutil import (COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata, ValidationResult,
                                          _test_number_length, is_number_type_geographical,
                                          region_code_for_country_code)

_HEAD = 6                # digits whose walk is remembered per number head
_MISSING = object()

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
        self.labels: dict[int, set[tuple[int, str]]] = {}

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

    def walk(self, nsn: str) -> int:
        """The automaton's state after the digits of a national significant number."""
        head = nsn[:_HEAD]
        d = self.heads.get(head)
        if d is None:
            d = self._walk(self.start, head)
            if len(self.heads) < 500_000:
                self.heads[head] = d
        return self._walk(d, nsn[_HEAD:]) if len(nsn) > _HEAD else d

    def judge(self, d: int, length: int) -> tuple[str, str] | None:
        """(region, type name) of the number that ended in state `d`, None when invalid."""
        key = (d, length)
        verdict = self.verdicts.get(key, _MISSING)
        if verdict is _MISSING:
            verdict = self.verdicts[key] = self._verdict(d, length)
        return verdict

    def viable(self, d: int, region: int) -> bool:
        """Whether the general pattern of region `region` (an index of `regions`) matches the
        whole number that ended in state `d`, lengths aside (phonenumbers' `_match_national_number`)."""
        return (region, "general") in self._matched(d)

    def _matched(self, d: int) -> set[tuple[int, str]]:
        found = self.labels.get(d)
        if found is None:
            found = self.labels[d] = {self.accepts[s] for s in self.sets[d] if s in self.accepts}
        return found

    def _walk(self, d: int, digits: str) -> int:
        moves = self.moves
        for ch in digits:
            digit = ord(ch) - 48
            nxt = moves[d][digit]
            d = self._move(d, digit) if nxt is None else nxt
        return d

    def _verdict(self, d: int, length: int) -> tuple[str, str] | None:
        matched = self._matched(d)

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


class _Parsing:
    """What phonenumbers' `parse` reads a national number with, for one region's metadata:
    its national prefix pattern and which lengths keep a stripped prefix stripped."""

    def __init__(self, region: str):
        md = PhoneMetadata.metadata_for_region(region)
        self.cc = str(md.country_code)
        self.idd = re.compile(md.international_prefix) if md.international_prefix else None
        self.prefix = re.compile(md.national_prefix_for_parsing) if md.national_prefix_for_parsing else None
        self.transform = bool(md.national_prefix_transform_rule)
        self.automaton = _automaton(self.cc)
        regions = [r for r, _ in self.automaton.regions] if self.automaton else []
        self.index = regions.index(region) if region in regions else None
        self._md = md
        self._lengths: dict[int, int] = {}

    def length(self, n: int) -> int:
        """phonenumbers' `_test_number_length` verdict for a number of n digits (it reads only the length)."""
        found = self._lengths.get(n)
        if found is None:
            found = self._lengths[n] = _test_number_length("0" * n, self._md)
        return found


_PARSINGS: dict[str, _Parsing] = {}


def _parsing(region: str) -> _Parsing:
    found = _PARSINGS.get(region)
    if found is None:
        found = _PARSINGS[region] = _Parsing(region)
    return found


def _country_code(digits: str) -> str | None:
    """The country calling code the digits start with (phonenumbers' `_extract_country_code`)."""
    if digits[:1] == "0":
        return None
    for n in (1, 2, 3):
        if int(digits[:n]) in COUNTRY_CODE_TO_REGION_CODE:
            return digits[:n]
    return None


class PhoneNormaliser:
    """E.164, type and region of raw numbers read in one default region, with exactly the
    answers of `slow_phone`; keeps its caches (one per process: each parsing task builds its
    own). `fast`/`slow` count the answers of each path."""

    def __init__(self, region: str | None = None):
        self.region = region.upper() if region else None
        known = self.region in phonenumbers.SUPPORTED_REGIONS
        self.home = _parsing(self.region) if known else None
        main = region_code_for_country_code(int(self.home.cc)) if known else None
        self.home_cc = _parsing(main) if main and main != self.region else self.home
        self.fast = self.slow = 0

    def __call__(self, raw: str) -> Phone:
        read = self._read(raw) if len(raw) <= _MAX_INPUT else None
        if read is None:
            self.slow += 1
            return slow_phone(raw, self.region)
        self.fast += 1
        if read is _INVALID:
            raise PhoneError("not a valid phone number")
        return read

    def _read(self, raw: str):
        """The number as phonenumbers reads it, `_INVALID`, or None when this path is not
        certain of phonenumbers' reading (it then answers)."""
        digits = raw.translate(_PUNCTUATION)
        plus = digits[:1] == "+"
        if plus:
            digits = digits[1:]
        if len(digits) < 3 or not (digits.isascii() and digits.isdigit()):
            return None
        home = self.home
        if plus:                                         # + and a country calling code
            cc = _country_code(digits)
            if cc is None:
                return None
            parsing, rest = self._international(cc), digits[len(cc):]
            if parsing is None:
                return None
        elif home is None:
            return None                                  # no default region: phonenumbers refuses
        else:
            idd = home.idd.match(digits) if home.idd else None
            if idd is not None and digits[idd.end():idd.end() + 1] != "0":
                after = digits[idd.end():]               # an international prefix (00, 011...)
                cc = _country_code(after) if len(after) > 2 else None
                if cc is None:
                    return None
                parsing, rest = self._international(cc), after[len(cc):]
                if parsing is None:
                    return None
            elif digits.startswith(home.cc):
                # the default region's code without +: phonenumbers takes it as one when the whole
                # is too long to be national; any other case depends on more than the digits' length
                rest = digits[len(home.cc):]
                if home.length(len(digits)) != _TOO_LONG or _strips(home, rest) != 0:
                    return None
                cc, parsing = home.cc, self.home_cc
            else:
                cc, parsing, rest = home.cc, home, digits
        if len(rest) < 2:
            return None
        stripped = _strips(parsing, rest)
        if stripped is None:
            return None
        nsn = rest[stripped:]
        auto = parsing.automaton
        if auto is None or parsing.index is None or not 2 <= len(nsn) <= 17:
            return None
        d = auto.walk(nsn)
        if stripped and (not auto.viable(d, parsing.index) or parsing.length(len(nsn)) in _UNSTRIPPED):
            return None                                  # phonenumbers would keep the prefix: not certain
        verdict = auto.judge(d, len(nsn))
        if verdict is None:
            return _INVALID
        return Phone(f"+{cc}{nsn}", verdict[1], verdict[0])

    def _international(self, cc: str) -> _Parsing | None:
        """The metadata phonenumbers parses a number of code `cc` with: its main region's."""
        home = self.home
        if home is not None and home.cc == cc:
            return self.home_cc
        return _main_parsing(cc)


def _main_parsing(cc: str) -> _Parsing | None:
    region = region_code_for_country_code(int(cc))
    return _parsing(region) if region in phonenumbers.SUPPORTED_REGIONS else None


def _strips(parsing: _Parsing, rest: str) -> int | None:
    """How many digits of a national number phonenumbers' national prefix step may take: 0
    when its pattern does not match, None when that depends on more (a transform rule)."""
    match = parsing.prefix.match(rest) if parsing.prefix else None
    if match is None:
        return 0
    if parsing.transform:
        return None
    return match.end()


_MAX_INPUT = 250                                  # phonenumbers' _MAX_INPUT_STRING_LENGTH
_PUNCTUATION = str.maketrans("", "", " ().-/")    # in phonenumbers' punctuation, never an extension
_INVALID = object()
_TOO_LONG = ValidationResult.TOO_LONG
_UNSTRIPPED = (ValidationResult.TOO_SHORT, ValidationResult.IS_POSSIBLE_LOCAL_ONLY,
               ValidationResult.INVALID_LENGTH)


_CODES: dict[str, tuple[str, _Parsing | None]] = {}       # first 3 digits -> code, its parsing
_GEOGRAPHIC: dict[tuple[str, str], bool] = {}
_ZONES: dict[str, tuple[str, ...]] = {}                     # zone data prefix -> usable zones
_TYPES = {name: kind for kind, name in TYPE_NAMES.items()}


def number_zones(phone: Phone) -> tuple[str, ...]:
    """The candidate time zones of a number read here: what `windows.zones_for(None, e164)`
    finds by parsing its E.164 form again. phonenumbers' `time_zones_for_number` takes them
    from the longest prefix of the number (or, for a type that is not geographical, of its
    code) in its zone data; done here without the parse for a number that parse reads as it
    is (no national prefix at the start of its national number), any other is parsed again."""
    e164 = phone.e164
    code = _CODES.get(e164[1:4])
    if code is None:
        cc = _country_code(e164[1:4]) or ""
        code = _CODES[e164[1:4]] = (cc, _main_parsing(cc) if cc else None)
    cc, parsing = code
    if parsing is None or phone.type == "unknown" or _strips(parsing, e164[1 + len(cc):]) != 0:
        return phone_zones(e164)
    geographic = _GEOGRAPHIC.get((phone.type, cc))
    if geographic is None:
        geographic = _GEOGRAPHIC[(phone.type, cc)] = is_number_type_geographical(_TYPES[phone.type], int(cc))
    digits, shortest = (e164[1:], 1) if geographic else (cc, 2)     # as phonenumbers' loops go
    for n in range(TIMEZONE_LONGEST_PREFIX + shortest - 1, shortest - 1, -1):
        if digits[:n] in TIMEZONE_DATA:
            prefix = digits[:n]
            break
    else:
        return ()
    zones = _ZONES.get(prefix)
    if zones is None:
        names = TIMEZONE_DATA[prefix]
        usable = names and UNKNOWN_TIMEZONE not in names and all(zone_info(n) is not None for n in names)
        zones = _ZONES[prefix] = tuple(names) if usable else ()
    return zones
