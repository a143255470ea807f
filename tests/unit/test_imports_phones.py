"""The import's phone path gives exactly what phonenumbers gives: the same E.164 number, type
and region or the same refusal, and the same candidate time zones — over numbers of every
region written in many forms (hypothesis), and the edge cases parse treats apart."""
from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from pom_actors.core.imports.phones import PhoneError, PhoneNormaliser, number_zones, slow_phone
from pom_actors.core.windows import phone_zones

DEFAULTS = ["US", "CA", "GB", "JE", "DE", "FR", "AU", "IN", "BR", "AR", "IT", "NL", "AT", "JP", "RU", "KZ",
            "CO", "MX", "CN", "GA", None]
REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)
TYPES = [PhoneNumberType.FIXED_LINE, PhoneNumberType.MOBILE, PhoneNumberType.TOLL_FREE,
         PhoneNumberType.PREMIUM_RATE, PhoneNumberType.VOIP, PhoneNumberType.PERSONAL_NUMBER,
         PhoneNumberType.UAN, PhoneNumberType.SHARED_COST, PhoneNumberType.PAGER]
NORMALISERS = {region: PhoneNormaliser(region) for region in DEFAULTS}    # caches live across examples


def answer(read, raw):
    try:
        return read(raw)
    except PhoneError as exc:
        return str(exc)


def assert_same(raw: str, region: str | None) -> None:
    fast = answer(NORMALISERS[region], raw)
    assert fast == answer(lambda r: slow_phone(r, region), raw), (raw, region)
    if not isinstance(fast, str):
        assert number_zones(fast) == phone_zones(fast.e164), (raw, fast)


@st.composite
def written(draw) -> str:
    """A number of some region and type, a few digits changed, added or dropped, written in
    one of the forms people write numbers in."""
    region = draw(st.sampled_from(REGIONS))
    example = None
    for kind in draw(st.permutations(TYPES)):
        example = phonenumbers.example_number_for_type(region, kind)
        if example is not None:
            break
    if example is None:
        example = phonenumbers.example_number(region) or phonenumbers.parse("+12125550101")
    digits = list(phonenumbers.national_significant_number(example))
    for _ in range(draw(st.integers(0, 4))):
        digits[draw(st.integers(0, len(digits) - 1))] = str(draw(st.integers(0, 9)))
    change = draw(st.sampled_from(["", "", "add", "drop", "zero"]))
    if change == "add":
        digits.append(str(draw(st.integers(0, 9))))
    elif change == "drop" and len(digits) > 3:
        digits.pop()
    elif change == "zero":
        digits.insert(0, "0")
    nsn, cc = "".join(digits), str(example.country_code)
    try:
        number = phonenumbers.parse(f"+{cc}{nsn}", None)
        national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
        international = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
    except phonenumbers.NumberParseException:
        national = international = f"+{cc}{nsn}"
    forms = [f"+{cc}{nsn}", f"+{cc} {nsn}", international, national, f"{cc}{nsn}", f"{cc} {nsn}",
             f"00{cc}{nsn}", f"011 {cc} {nsn}", f"00 {cc} 0{nsn}", nsn, f"0{nsn}", f"+{cc} (0) {nsn}",
             f"({nsn[:3]}) {nsn[3:6]}-{nsn[6:]}", f"{nsn[:3]}.{nsn[3:]}", f"+{cc}/{nsn}", f" {nsn} "]
    return draw(st.sampled_from(forms))


@settings(max_examples=3000, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(written(), st.sampled_from(DEFAULTS))
def test_written_numbers_read_as_phonenumbers_reads_them(raw, region):
    assert_same(raw, region)


@settings(max_examples=1500, deadline=None, derandomize=True)
@given(st.text(alphabet="0123456789 +()-./", min_size=0, max_size=22), st.sampled_from(DEFAULTS))
def test_any_digits_and_punctuation_read_as_phonenumbers_reads_them(raw, region):
    assert_same(raw, region)


EDGES = [
    "", "+", "12", "+1", "+12", "++1 212 555 0101", "+0044 20 7946 0123", "00 0 44 20 7946 0123",
    "1 212 555 0101", "1-212-555-0101", "(212) 555-0101 ", "212\t555 0101", "212\xa0555\xa00101",
    "٢١٢٥٥٥٠١٠١", "21255501٠1", "+1 212 555 0101 x12", "+1 212 555 0101 ext. 7", "+1 212 555 0101#",
    "tel:+1-212-555-0101", "+1 212 555 0101;ext=3", "1 +212 555 0101", "-+1 212 555 0101",
    "(+44) 20 7946 0123", "+44 (0) 20 7946 0123", "+44 020 7946 0123", "0044 20 7946 0123",
    "011 44 20 7946 0123", "49 30 12345678", "49 1512 3456789", "030 12345678", "+49 030 12345678",
    "+241 006031234", "+241 06 03 12 34", "+57 03211234567", "+57 321 1234567", "55800123456",
    "+55 11 91234 5678", "0 11 91234 5678", "+54 9 11 1234 5678", "011 15 1234 5678",
    "+800 1234 5678", "+882 1234 5678", "+979 1 2345 6789", "+7 495 123 45 67", "8 495 123 45 67",
    "+1 212 555 0101" + " " * 240, "1" * 18, "+" + "9" * 20, "0", "00", "000", "+1 (212) 55-50-101",
]


@pytest.mark.parametrize("region", DEFAULTS)
def test_edge_cases_read_as_phonenumbers_reads_them(region):
    for raw in EDGES:
        assert_same(raw, region)


def test_the_fast_path_answers_most_numbers():
    phones = PhoneNormaliser("US")
    for raw in ["(212) 555-0101", "+44 20 7946 0123", "1 212 555 0102", "011 49 30 12345678", "+1 212 55"]:
        answer(phones, raw)
    assert (phones.fast, phones.slow) == (5, 0)
