"""The compiled SQL of a filter selects exactly what the Python evaluator selects.

A generated list of contacts with awkward data (numbers as strings and as JSON numbers, floats
PostgreSQL respells, invalid dates, booleans as strings, non-ASCII and mixed-case names, like
metacharacters, several or no time zones, North American and other numbers, missing values) is
loaded through catalog.add_contacts; hypothesis then draws filters (hostile strings included)
and, row by row, the value of the WHERE fragment in PostgreSQL — true, false or NULL — must be
the value core.filters.truth gives the same row read back from the database.
"""
from __future__ import annotations

import os
import random
import time
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from psycopg.rows import dict_row

from pom_actors.core import filters as F
from pom_actors.store import catalog
from pom_actors.store.filters import compile_sql, preview, selected_ids

from ..unit.test_filters_strategies import ATTRIBUTES, HOSTILE, WORDS, filters, quote

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 25, 15, 0, 0, 123456, tzinfo=timezone.utc)
N = 400
NAMES = WORDS + ["Ann", "ann", "ANN", "Émile", "ÉMILE", "émile", "Zed", "zed", "İlker", "straße", "Ωmega",
                 "O'Brien", "a%b", "a_b", "back\\slash", "", "Lee", "lee", "Müller", "mÜller"] + HOSTILE
PHONES = ["+12125551234", "+16465550000", "+14155550123", "+13125559876", "+11125551234", "+12120551234",
          "+447911123456", "+4930123456", "+8801712345678", "+33612345678", "12125551234", None, None]
ZONE_SETS = [[], ["America/New_York"], ["America/Chicago", "America/Denver"], ["Europe/London"],
             ["America/Los_Angeles", "America/New_York", "UTC"], ["Asia/Tokyo"]]
ATTRIBUTE_VALUES = {
    "segment": WORDS + [7, 2.5, True, None, "GOLD ", "gold\n"],
    "age": [0, 7, 18, 42, 65, 99, -3, 2.5, 1e-05, 1.5e16, -0.0, 0.1, "42", "042", "+7", "-1.50", "1e3", " 5",
            "abc", "", True, False, None, "99.999"],
    "since": ["2024-02-29", "2023-02-28", "2026-11-25", "2026-11-24", "2026-10-25", "1999-12-31", "2023-02-29",
              "0000-01-01", "2024-2-29", "2024-02-29T10:00", 20240229, None, "", "2030-01-01"],
    "vip": [True, False, "true", "false", "TRUE", "yes", 1, 0, None, "t"],
    "score": [0.1, 0.3, 1e-05, 1.5e16, -0.0, 2.0, 100, "100", "1e2", 12.5, -12.5],
    "odd name; --": ["x", "'; DROP TABLE contacts; --", "%s", "\\", None, 1],
}


def generated_contacts(seed: int = 20261125) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(N):
        attributes = {}
        for name, values in ATTRIBUTE_VALUES.items():
            if rng.random() < 0.8:
                attributes[name] = rng.choice(values)
        phone1 = rng.choice(PHONES)
        out.append({
            "external_id": rng.choice([f"f{i}", f"F{i}", f"x'{i}", f"{i:05d}"]),
            "first_name": rng.choice(NAMES), "last_name": rng.choice(NAMES),
            "phone1": phone1, "phone2": rng.choice(PHONES),
            "email": rng.choice([None, f"c{i}@example.com", f"C{i}@Example.COM", "o'brien@x.ie"]),
            "timezones": rng.choice(ZONE_SETS), "attributes": attributes,
        })
    return out


class Dataset(tuple):
    def __repr__(self) -> str:       # hypothesis prints its arguments: not 400 rows
        return f"<dataset of list {self[1]}>"


@pytest.fixture(scope="module")
def dataset(pom):
    """(connection, list id, the list's rows as the database gives them back)."""
    with pom.connect() as conn:
        rng = random.Random(7)
        contacts = generated_contacts()
        with conn.transaction():
            list_id = catalog.create_list(conn, f"filters-{time.monotonic_ns()}", attributes=ATTRIBUTES)
            catalog.add_contacts(conn, list_id, contacts)
            ids = [r[0] for r in conn.execute("SELECT id FROM contacts WHERE list_id = %s ORDER BY id", (list_id,))]
            with conn.cursor() as cur:     # created_at spread around the clock's now, to the microsecond
                cur.executemany("UPDATE contacts SET created_at = %s WHERE id = %s", [
                    (NOW - timedelta(seconds=rng.randint(-2 * 86400, 800 * 86400), microseconds=rng.randint(0, 999_999)),
                     cid) for cid in ids])
        with conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute("SELECT * FROM contacts WHERE list_id = %s ORDER BY id", (list_id,)).fetchall()
        assert len(rows) == N
        yield Dataset((conn, list_id, rows))


def sql_truth(conn, list_id: int, f: F.Filter, now: datetime, tz: str) -> dict[int, bool | None]:
    fragment, params = compile_sql(f, now, tz=tz)
    return dict(conn.execute(f"SELECT c.id, {fragment} FROM contacts c WHERE c.list_id = %s",
                             [*params, list_id]).fetchall())


def assert_backends_agree(dataset, text: str, now: datetime = NOW, tz: str = "UTC") -> dict:
    conn, list_id, rows = dataset
    f = F.parse(text, ATTRIBUTES)
    in_sql = sql_truth(conn, list_id, f, now, tz)
    check = F.predicate(f, now, tz)
    in_python = {row["id"]: check(row) for row in rows}
    differ = {i: (in_sql[i], in_python[i]) for i in in_python if in_sql[i] is not in_python[i]}
    assert not differ, (f"{text!r}: (sql, python) differ for {len(differ)} rows, e.g. "
                        + "; ".join(f"{next(r for r in rows if r['id'] == i)} -> {v}"
                                    for i, v in list(differ.items())[:3]))
    return in_python


@settings(max_examples=int(os.environ.get("POM_FILTER_EXAMPLES", "300")), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(filters, st.sampled_from(["UTC", "America/New_York", "Asia/Kolkata", "Pacific/Kiritimati"]),
       st.integers(-3 * 86400, 3 * 86400))
def test_sql_selects_what_python_selects(dataset, text, tz, shift):
    assert_backends_agree(dataset, text, NOW + timedelta(seconds=shift), tz)


@pytest.mark.parametrize("text", [
    "attr.age = 42", "attr.age >= 0.00001 and attr.age <= 0.00001", "attr.age = '0.00001'", "attr.score = '0.0'",
    "attr.score = '15000000000000000'", "attr.score > 99.99", "attr.age in (7, 42, 0.1)", "attr.age is null",
    "attr.since < today", "attr.since = date '2024-02-29'", "attr.since >= today - 1 month",
    "attr.vip = true", "attr.vip != false", "attr.vip = 'TRUE'", "attr.segment = 'gold'", "attr.segment = 7",
    "attr.segment ilike 'GOLD%'", "first_name > 'Z'", "first_name ilike 'émile'", "first_name ilike 'ann'",
    "last_name like '%\\%%'", "last_name like '%\\_%'", "last_name like '%\\\\%'", "last_name like '_'",
    "first_name = last_name", "area_code(phone1) in ('212', '646')", "area_code(phone2) is null",
    "country_code(phone1) = '44' or country_code(phone1) = '880'", "country_code(phone2) is null",
    "timezone in ('America/New_York', 'UTC')", "timezone not in ('America/New_York')", "timezone is null",
    "timezone like 'America/%'", "timezone ilike '%YORK'", "timezone != 'Europe/London'",
    "created_at > now - 30 days", "created_at >= today", "created_at between date '2026-01-01' and now",
    "created_at < timestamp '2026-06-01 12:00+02:00'", "not (phone2 = '+12125551234')", "email is not null",
    "attr.\"odd name; --\" = '''; DROP TABLE contacts; --'", "attr.\"odd name; --\" like '\\%s'", "true",
    "not (attr.age > 10 or attr.score < 1)",
])
def test_known_cases_agree(dataset, text):
    assert_backends_agree(dataset, text)


def test_cases_select_something(dataset):
    """The data exercises the semantics: typical filters select some rows and leave others."""
    for text in ("attr.age = 42", "attr.since < today", "attr.vip = true", "first_name ilike 'ann'",
                 "area_code(phone1) = '212'", "timezone = 'America/Denver'", "created_at > now - 30 days",
                 "attr.score = '15000000000000000'", "last_name like '%\\%%'"):
        selected = [v for v in assert_backends_agree(dataset, text).values() if v is True]
        assert 0 < len(selected) < N, text


def test_preview_counts_and_samples(dataset):
    conn, list_id, rows = dataset
    text = "attr.segment in ('gold', 'Gold') or area_code(phone1) = '212'"
    f = F.parse(text, ATTRIBUTES)
    expected = [r["id"] for r in rows if F.evaluate(f, r, NOW)]
    count, sample = preview(conn, list_id, text, sample=5, now=NOW)
    assert count == len(expected) > 5
    assert [r["id"] for r in sample] == expected[:5]
    assert set(sample[0]) >= {"id", "external_id", "first_name", "phone1", "timezones", "attributes"}
    assert selected_ids(conn, list_id, f, now=NOW) == expected
    assert preview(conn, list_id, "false", now=NOW) == (0, [])


def test_preview_refuses_unknown_attributes_with_their_position(dataset):
    conn, list_id, _ = dataset
    with pytest.raises(F.FilterError) as info:
        preview(conn, list_id, "attr.segment = 'gold' and attr.colour = 'red'", now=NOW)
    assert info.value.column == 32 and "colour" in info.value.message
    with pytest.raises(catalog.NotFound):
        preview(conn, 10**9, "true", now=NOW)


def test_hostile_text_leaves_the_table_alone(dataset):
    conn, list_id, _ = dataset
    for text in ["first_name = ''';DROP TABLE contacts;--'", "first_name = " + quote("\\' or true --"), "last_name = " + quote("\\"),
                 "first_name like '%'' or ''1''=''1'", """attr."segment') or (1=1" = 'x'""",
                 "first_name = '$$ || pg_sleep(5) || $$'", "first_name in ('%s', '%(x)s', '%%')"]:
        f = F.parse(text)
        fragment, params = compile_sql(f, NOW)
        conn.execute(f"SELECT count(*) FROM contacts c WHERE c.list_id = %s AND {fragment}",
                     [list_id, *params]).fetchone()
    assert conn.execute("SELECT count(*) FROM contacts WHERE list_id = %s", (list_id,)).fetchone()[0] == N


def test_largest_filters_run(dataset):
    """A filter at the length limit, and one at the nesting limit, compile to SQL PostgreSQL runs."""
    wide = " or ".join(f"attr.age = {i}" for i in range(400))
    wide = wide[:wide.rfind(" or ", 0, F.MAX_LENGTH)]
    assert len(wide) > F.MAX_LENGTH - 20
    assert_backends_agree(dataset, wide)
    deep = "not (" * (F.MAX_DEPTH // 2) + "attr.segment ilike '%o%'" + ")" * (F.MAX_DEPTH // 2)
    assert_backends_agree(dataset, deep)
